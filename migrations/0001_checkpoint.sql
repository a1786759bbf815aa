-- sluice's metadata on the target: the last batch each pipeline applied.
--
-- Migrations run with `sluice_meta` as the current database (sqlx keeps its
-- own `_sqlx_migrations` table there too). One row per pipeline, written
-- after every worker of a batch committed, so it never claims more than the
-- target holds. The authoritative position for resuming is the one in the
-- coordination store (etcd); this row lets an operator (and `sluice status`)
-- see from the target itself how far it is.
CREATE TABLE IF NOT EXISTS checkpoint (
    pipeline   VARCHAR(64)     NOT NULL,
    batch_id   BIGINT UNSIGNED NOT NULL,
    -- The batch's end position in `Position`'s text form (file:offset and
    -- GTID set); TEXT because a MySQL GTID set with many UUIDs is long.
    position   TEXT            NOT NULL,
    updated_at TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

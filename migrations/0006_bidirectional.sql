-- Bidirectional pipelines (`bidirectional:` in the pipeline file).
--
-- `origin`: the marker rows of `bidirectional.tagging: marker`. Every
-- target transaction of such a pipeline that writes rows first upserts its
-- row `(pipeline, worker)` here, so the transaction's first row change in
-- the target's binlog names the pipeline that applied it and the peer
-- pipeline (reading that binlog) drops it. One row per worker connection,
-- so parallel workers never wait for each other's lock; `transactions`
-- only counts. Unused with the default `tagging: server_id`.
CREATE TABLE IF NOT EXISTS origin (
    pipeline     VARCHAR(64)     NOT NULL,
    worker       INT UNSIGNED    NOT NULL,
    transactions BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (pipeline, worker)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

-- `conflicts`: every conflict a bidirectional pipeline met on this target:
-- a change whose target row was not what the source held before it (an
-- update or delete of a row changed here meanwhile, or an insert of a key
-- that exists here). Written in the transaction that resolved it, so a
-- record exists exactly when the resolution committed. Images are JSON
-- objects by column name (NULL: no row); `winner` is `source` or `target`.
CREATE TABLE IF NOT EXISTS conflicts (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    pipeline      VARCHAR(64)     NOT NULL,
    table_name    VARCHAR(200)    NOT NULL,
    row_key       TEXT            NOT NULL,
    source_before LONGTEXT        NULL,
    source_after  LONGTEXT        NULL,
    target_row    LONGTEXT        NULL,
    policy        VARCHAR(100)    NOT NULL,
    winner        VARCHAR(10)     NOT NULL,
    batch_id      BIGINT UNSIGNED NOT NULL,
    detected_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY by_pipeline (pipeline, detected_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

-- Snapshot progress, per pipeline and source table (`snapshot.mode: initial`
-- and `sluice snapshot --table`).
--
-- Written only under the pipeline's term fence. A table's row is created
-- (state `pending`) before streaming starts; after each chunk's batch is
-- committed its chunk key (`last_key`, JSON), `chunks_done` and
-- `rows_copied` advance; `inflight_rows` is set while a chunk is being
-- written, so a new leader knows how many rows it copies again.
CREATE TABLE IF NOT EXISTS snapshot_progress (
    pipeline        VARCHAR(64)  NOT NULL,
    source_table    VARCHAR(200) NOT NULL,
    state           VARCHAR(16)  NOT NULL,
    start_position  VARCHAR(255) NOT NULL,
    last_key        LONGTEXT     NULL,
    chunks_done     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rows_copied     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rows_estimated  BIGINT UNSIGNED NOT NULL DEFAULT 0,
    inflight_rows   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    rows_recopied   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, source_table)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

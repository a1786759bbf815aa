-- The leadership term that may write to the target, per pipeline.
--
-- A new leader raises `term` (its etcd leader-key revision, which only
-- grows) before it reads where to resume. Every transaction sluice runs on
-- the target first reads this row with a shared lock and refuses to go on
-- under another term. The new leader's update waits for the shared locks of
-- a previous leader's open transactions, so writes of an old term that was
-- paused or cut off are either committed before the new term starts (and
-- seen by it) or rejected: never interleaved with the new leader's writes.
CREATE TABLE IF NOT EXISTS term (
    pipeline   VARCHAR(64)  NOT NULL,
    term       BIGINT       NOT NULL,
    node       VARCHAR(64)  NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

-- Operator replacements that ran (`sluice errors replace`), per pipeline.
--
-- The statements an operator gives to run instead of a failing change run
-- in one transaction together with the insert of their row here, under the
-- pipeline's term fence; a retry (a lost commit answer, a new leader acting
-- on the same request) finds the row and does not run them again.
CREATE TABLE IF NOT EXISTS replacement (
    pipeline   VARCHAR(64)  NOT NULL,
    request    VARCHAR(190) NOT NULL,
    applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline, request)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci;

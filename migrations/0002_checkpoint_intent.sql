-- The batch being applied, written before its first statement runs.
--
-- A batch commits in several worker transactions, so after a crash the
-- target may hold part of the batch after the checkpoint. On restart sluice
-- replays from the checkpoint; while the replay has not passed
-- `applying_through` (the position after that batch's last event) the target
-- may be *ahead* of the replayed changes, so unique-key collisions are
-- resolved by REPLACE and DDL that was already applied is tolerated.
-- Both columns are NULL when no batch is in flight.
ALTER TABLE checkpoint
    ADD COLUMN applying_batch_id BIGINT UNSIGNED NULL,
    ADD COLUMN applying_through  TEXT            NULL;

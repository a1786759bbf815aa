-- Where exactly the last batch ended, and the batch being applied.
--
-- `applied_through`: the position after the last event of the checkpointed
-- batch. A batch may end inside a large transaction; `position` (where a
-- restart resumes) is then the transaction's start, and a restart skips the
-- transaction's events up to `applied_through`, which are already applied.
--
-- `applying_*`: the batch in flight, written before its first statement
-- runs. A batch commits in several worker transactions, so after a crash
-- the target may hold part of it beyond the checkpoint. While a replay has
-- not passed `applying_through` (the position after that batch's last
-- event) the target may be *ahead* of the replayed changes, so unique-key
-- collisions are resolved by REPLACE and DDL that was already applied is
-- tolerated. Both are NULL when no batch is in flight.
ALTER TABLE checkpoint
    ADD COLUMN applied_through   TEXT            NULL,
    ADD COLUMN applying_batch_id BIGINT UNSIGNED NULL,
    ADD COLUMN applying_through  TEXT            NULL;

-- Activations answered 202 (non-blocking, or blocking past the 60 s wait) whose record is not
-- written yet. A row is committed before the 202 leaves and deleted in the transaction that
-- writes the activation's record; a row left after a crash ends as the record in `doc` (a whisk
-- internal error saying the scheduler restarted), written when a scheduler starts. `owner` is
-- the scheduler instance that accepted it.
CREATE TABLE accepted (
    activation_id TEXT   PRIMARY KEY,
    owner         TEXT   NOT NULL,
    accepted_ms   BIGINT NOT NULL,
    doc           TEXT   NOT NULL
);
CREATE INDEX accepted_by_owner ON accepted (owner);

-- Scheduler instances and when each was last alive: the accepted rows of an instance not seen
-- for a while are claimed and finished by another one.
CREATE TABLE scheduler_instances (
    instance TEXT   PRIMARY KEY,
    seen_ms  BIGINT NOT NULL
);

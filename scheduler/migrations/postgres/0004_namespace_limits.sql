-- wisp PostgreSQL store, schema 4: a namespace's limits, stored with its user (the same columns as
-- migrations/sqlite/0003_namespace_limits.sql). NULL means "the scheduler's default".
--
-- Schedulers cache the limits by namespace, so every write of a user row now also notifies
-- 'limits:<namespace>' on wisp_entities (besides 'identity:<uuid>'), delivered when it commits.

ALTER TABLE users ADD COLUMN invocations_per_minute BIGINT;
ALTER TABLE users ADD COLUMN concurrent_invocations BIGINT;
ALTER TABLE users ADD COLUMN fires_per_minute BIGINT;

CREATE OR REPLACE FUNCTION wisp_notify_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('wisp_entities', 'identity:' || OLD.uuid);
        PERFORM pg_notify('wisp_entities', 'limits:' || OLD.namespace);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('wisp_entities', 'identity:' || NEW.uuid);
        PERFORM pg_notify('wisp_entities', 'limits:' || NEW.namespace);
    END IF;
    RETURN NULL;
END;
$$;

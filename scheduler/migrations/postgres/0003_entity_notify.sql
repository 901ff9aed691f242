-- wisp PostgreSQL store, schema 3: every write to an entity the schedulers cache (actions,
-- packages, users' keys) sends a notification on channel wisp_entities from its own transaction,
-- delivered when it commits. Each scheduler replica listens (src/store/postgres.rs) and drops its
-- cached copy, so replicas see each other's writes at once rather than after the cache TTL.
-- Payloads: 'action:<ns>/<pkg>/<name>' (pkg '' outside a package), 'package:<ns>/<name>',
-- 'identity:<uuid>'. PostgreSQL only: the embedded store has a single process.

CREATE FUNCTION wisp_notify_action() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('wisp_entities',
            'action:' || OLD.namespace || '/' || OLD.package || '/' || OLD.name);
    ELSE
        PERFORM pg_notify('wisp_entities',
            'action:' || NEW.namespace || '/' || NEW.package || '/' || NEW.name);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION wisp_notify_package() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('wisp_entities', 'package:' || OLD.namespace || '/' || OLD.name);
    ELSE
        PERFORM pg_notify('wisp_entities', 'package:' || NEW.namespace || '/' || NEW.name);
    END IF;
    RETURN NULL;
END;
$$;

-- A new key drops the old uuid's identity; a new user drops a cached "no such uuid".
CREATE FUNCTION wisp_notify_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('wisp_entities', 'identity:' || OLD.uuid);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('wisp_entities', 'identity:' || NEW.uuid);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER actions_notify AFTER INSERT OR UPDATE OR DELETE ON actions
    FOR EACH ROW EXECUTE FUNCTION wisp_notify_action();
CREATE TRIGGER packages_notify AFTER INSERT OR UPDATE OR DELETE ON packages
    FOR EACH ROW EXECUTE FUNCTION wisp_notify_package();
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION wisp_notify_identity();

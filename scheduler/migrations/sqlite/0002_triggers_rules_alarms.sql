-- wisp embedded store, schema 2: triggers, rules and the alarm feed's schedule. Kept in step with
-- migrations/postgres/0002_triggers_rules_alarms.sql (same tables and columns).

CREATE TABLE triggers (
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    version   TEXT   NOT NULL,
    updated   BIGINT NOT NULL,
    doc       TEXT   NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- trigger is the fully qualified name of the rule's trigger (/ns/name).
CREATE TABLE rules (
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    trigger   TEXT   NOT NULL,
    version   TEXT   NOT NULL,
    updated   BIGINT NOT NULL,
    doc       TEXT   NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX rules_by_trigger ON rules (namespace, trigger);

-- One row per trigger fed by the alarm feed: next_fire (epoch ms) is claimed by a conditional
-- UPDATE, so one scheduler replica fires each tick.
CREATE TABLE alarms (
    namespace TEXT   NOT NULL,
    trigger   TEXT   NOT NULL,
    next_fire BIGINT NOT NULL,
    spec      TEXT   NOT NULL,
    PRIMARY KEY (namespace, trigger)
);
CREATE INDEX alarms_by_next_fire ON alarms (next_fire);

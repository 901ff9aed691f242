-- wisp PostgreSQL store, schema 1: the same tables and columns as migrations/sqlite/0001_init.sql
-- (BYTEA for code, BIGSERIAL for the activation sequence), so both backends share the queries of
-- src/store/sql.rs. Written with the embedded store; the PostgreSQL Store itself is issue 6.

CREATE TABLE users (
    name      TEXT   PRIMARY KEY,
    namespace TEXT   NOT NULL UNIQUE,
    uuid      TEXT   NOT NULL UNIQUE,
    key_hash  TEXT   NOT NULL,
    created   BIGINT NOT NULL
);

CREATE TABLE code (
    digest  TEXT   PRIMARY KEY,
    bytes   BYTEA  NOT NULL,
    size    BIGINT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE actions (
    namespace TEXT   NOT NULL,
    package   TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    version   TEXT   NOT NULL,
    digest    TEXT,
    updated   BIGINT NOT NULL,
    doc       TEXT   NOT NULL,
    PRIMARY KEY (namespace, package, name)
);
CREATE INDEX actions_by_digest ON actions (digest);
CREATE INDEX actions_by_updated ON actions (namespace, updated);

CREATE TABLE packages (
    namespace TEXT   NOT NULL,
    name      TEXT   NOT NULL,
    version   TEXT   NOT NULL,
    updated   BIGINT NOT NULL,
    doc       TEXT   NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE activations (
    seq           BIGSERIAL PRIMARY KEY,
    activation_id TEXT      NOT NULL UNIQUE,
    namespace     TEXT      NOT NULL,
    name          TEXT      NOT NULL,
    entity        TEXT      NOT NULL,
    start_ms      BIGINT    NOT NULL,
    doc           TEXT      NOT NULL
);
CREATE INDEX activations_by_start ON activations (namespace, start_ms, seq);
CREATE INDEX activations_by_name ON activations (namespace, name, start_ms);
CREATE INDEX activations_by_entity ON activations (namespace, entity, start_ms);
CREATE INDEX activations_by_seq ON activations (namespace, seq);

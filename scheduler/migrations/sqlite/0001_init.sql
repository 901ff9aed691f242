-- wisp embedded store, schema 1. Kept in step with migrations/postgres/ (same tables and
-- columns; only BLOB/BYTEA and the activation sequence differ), so both backends share the
-- queries of src/store/sql.rs. JSON documents are stored as TEXT.

CREATE TABLE users (
    name      TEXT   PRIMARY KEY,
    namespace TEXT   NOT NULL UNIQUE,
    uuid      TEXT   NOT NULL UNIQUE,
    key_hash  TEXT   NOT NULL,
    created   BIGINT NOT NULL
);

-- Code blobs, once per sha256 digest.
CREATE TABLE code (
    digest  TEXT   PRIMARY KEY,
    bytes   BLOB   NOT NULL,
    size    BIGINT NOT NULL,
    created BIGINT NOT NULL
);

-- package is '' for actions outside a package.
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

-- entity is 'name' or 'pkg/name' (the activation list's name filter matches either column).
CREATE TABLE activations (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    activation_id TEXT    NOT NULL UNIQUE,
    namespace     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    entity        TEXT    NOT NULL,
    start_ms      BIGINT  NOT NULL,
    doc           TEXT    NOT NULL
);
CREATE INDEX activations_by_start ON activations (namespace, start_ms, seq);
CREATE INDEX activations_by_name ON activations (namespace, name, start_ms);
CREATE INDEX activations_by_entity ON activations (namespace, entity, start_ms);
CREATE INDEX activations_by_seq ON activations (namespace, seq);

-- wisp embedded store, schema 3: a namespace's limits, stored with its user. NULL means "the
-- scheduler's default" (--default-invocations-per-minute, --default-concurrent-invocations,
-- --default-fires-per-minute). Kept in step with migrations/postgres/0004_namespace_limits.sql.

ALTER TABLE users ADD COLUMN invocations_per_minute BIGINT;
ALTER TABLE users ADD COLUMN concurrent_invocations BIGINT;
ALTER TABLE users ADD COLUMN fires_per_minute BIGINT;

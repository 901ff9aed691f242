//! The SQL of the store, written once for SQLite and PostgreSQL: `$N` placeholders (which
//! SQLite accepts too), plain types (TEXT, BIGINT), JSON documents as TEXT, `ON CONFLICT`
//! upserts. Schema: `migrations/sqlite/` and `migrations/postgres/` (same tables and columns).

// ---- users ----
pub const INSERT_USER: &str = "INSERT INTO users (name, namespace, uuid, key_hash, created) \
     VALUES ($1, $2, $3, $4, $5)";
pub const UPSERT_USER: &str = "INSERT INTO users (name, namespace, uuid, key_hash, created) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (name) DO UPDATE SET uuid = excluded.uuid, key_hash = excluded.key_hash";
pub const SELECT_USER_BY_NAME: &str = "SELECT name, namespace, uuid FROM users WHERE name = $1";
pub const SELECT_IDENTITY_BY_UUID: &str =
    "SELECT name, namespace, uuid, key_hash FROM users WHERE uuid = $1";
pub const LIST_USERS: &str = "SELECT name, namespace, uuid FROM users ORDER BY name";
/// A user's limits by namespace (`NULL` columns: the default).
pub const SELECT_USER_LIMITS: &str = "SELECT invocations_per_minute, concurrent_invocations, \
     fires_per_minute FROM users WHERE namespace = $1";
pub const SELECT_USER_LIMITS_BY_NAME: &str = "SELECT invocations_per_minute, \
     concurrent_invocations, fires_per_minute FROM users WHERE name = $1";
pub const UPDATE_USER_LIMITS: &str = "UPDATE users SET invocations_per_minute = $2, \
     concurrent_invocations = $3, fires_per_minute = $4 WHERE name = $1";
pub const DELETE_USER: &str = "DELETE FROM users WHERE name = $1";
pub const DELETE_NAMESPACE_ACTIONS: &str = "DELETE FROM actions WHERE namespace = $1";
pub const DELETE_NAMESPACE_PACKAGES: &str = "DELETE FROM packages WHERE namespace = $1";
pub const DELETE_NAMESPACE_ACTIVATIONS: &str = "DELETE FROM activations WHERE namespace = $1";

// ---- code ----
pub const INSERT_CODE: &str = "INSERT INTO code (digest, bytes, size, created) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING";
pub const SELECT_CODE: &str = "SELECT bytes FROM code WHERE digest = $1";
pub const COUNT_CODE_OF: &str = "SELECT COUNT(*) FROM code WHERE digest = $1";
pub const CODE_EXISTS: &str = "SELECT COUNT(*) FROM code WHERE digest = $1";
pub const COUNT_CODE: &str = "SELECT COUNT(*) FROM code";
/// Deletes a code blob no action refers to any more.
pub const DELETE_UNUSED_CODE: &str = "DELETE FROM code WHERE digest = $1 \
     AND NOT EXISTS (SELECT 1 FROM actions WHERE digest = $1)";
pub const DELETE_ALL_UNUSED_CODE: &str =
    "DELETE FROM code WHERE NOT EXISTS (SELECT 1 FROM actions WHERE actions.digest = code.digest)";

// ---- actions ----
pub const SELECT_ACTION: &str =
    "SELECT doc FROM actions WHERE namespace = $1 AND package = $2 AND name = $3";
pub const SELECT_ACTION_DIGEST: &str =
    "SELECT version, digest FROM actions WHERE namespace = $1 AND package = $2 AND name = $3";
pub const UPSERT_ACTION: &str = "INSERT INTO actions \
     (namespace, package, name, version, digest, updated, doc) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (namespace, package, name) DO UPDATE SET version = excluded.version, \
     digest = excluded.digest, updated = excluded.updated, doc = excluded.doc";
pub const LIST_ACTIONS: &str = "SELECT doc FROM actions WHERE namespace = $1 \
     ORDER BY updated DESC, package, name LIMIT $2 OFFSET $3";
pub const LIST_PACKAGE_ACTIONS: &str = "SELECT doc FROM actions WHERE namespace = $1 \
     AND package = $2 ORDER BY updated DESC, name LIMIT $3 OFFSET $4";
pub const COUNT_ACTIONS: &str = "SELECT COUNT(*) FROM actions WHERE namespace = $1";
pub const COUNT_PACKAGE_ACTIONS: &str =
    "SELECT COUNT(*) FROM actions WHERE namespace = $1 AND package = $2";
pub const DELETE_ACTION: &str =
    "DELETE FROM actions WHERE namespace = $1 AND package = $2 AND name = $3";

// ---- packages ----
pub const SELECT_PACKAGE: &str = "SELECT doc FROM packages WHERE namespace = $1 AND name = $2";
pub const UPSERT_PACKAGE: &str = "INSERT INTO packages \
     (namespace, name, version, updated, doc) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (namespace, name) DO UPDATE SET version = excluded.version, \
     updated = excluded.updated, doc = excluded.doc";
pub const LIST_PACKAGES: &str = "SELECT doc FROM packages WHERE namespace = $1 \
     ORDER BY updated DESC, name LIMIT $2 OFFSET $3";
pub const COUNT_PACKAGES: &str = "SELECT COUNT(*) FROM packages WHERE namespace = $1";
pub const DELETE_PACKAGE: &str = "DELETE FROM packages WHERE namespace = $1 AND name = $2";

// ---- activations ----
pub const INSERT_ACTIVATION: &str = "INSERT INTO activations \
     (activation_id, namespace, name, entity, start_ms, doc) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (activation_id) DO NOTHING";
/// Multi-row form of [`INSERT_ACTIVATION`]: head, `VALUES (...), (...)`, then
/// the tail.
pub const INSERT_ACTIVATIONS_HEAD: &str =
    "INSERT INTO activations (activation_id, namespace, name, entity, start_ms, doc) ";
pub const INSERT_ACTIVATIONS_TAIL: &str = " ON CONFLICT (activation_id) DO NOTHING";
/// Rows per multi-row insert (6 binds each; well under SQLite's and PostgreSQL's bind limits).
pub const ACTIVATION_INSERT_CHUNK: usize = 128;
pub const SELECT_ACTIVATION: &str =
    "SELECT doc FROM activations WHERE namespace = $1 AND activation_id = $2";
/// `$2` name (or `pkg/name`) filter, `$3` since, `$4` upto: each `NULL` for none.
pub const LIST_ACTIVATIONS: &str = "SELECT doc FROM activations WHERE namespace = $1 \
     AND ($2 IS NULL OR name = $2 OR entity = $2) \
     AND ($3 IS NULL OR start_ms >= $3) AND ($4 IS NULL OR start_ms <= $4) \
     ORDER BY start_ms DESC, seq DESC LIMIT $5 OFFSET $6";
pub const COUNT_ACTIVATIONS: &str = "SELECT COUNT(*) FROM activations WHERE namespace = $1 \
     AND ($2 IS NULL OR name = $2 OR entity = $2) \
     AND ($3 IS NULL OR start_ms >= $3) AND ($4 IS NULL OR start_ms <= $4)";
/// Retention: keeps the newest `$2 + 1` records of namespace `$1` (by insertion order).
pub const PRUNE_ACTIVATIONS: &str = "DELETE FROM activations WHERE namespace = $1 AND seq < \
     (SELECT seq FROM activations WHERE namespace = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)";

// ---- accepted activations (durable 202s) ----
/// Multi-row insert of acceptances: head, `VALUES (...), (...)` of 4 binds each.
pub const INSERT_ACCEPTED_HEAD: &str =
    "INSERT INTO accepted (activation_id, owner, accepted_ms, doc) ";
pub const INSERT_ACCEPTED_TAIL: &str = " ON CONFLICT (activation_id) DO NOTHING";
/// Acceptances whose activation already has its record (a blocking invoke whose record was
/// queued just before its 202): nothing to finish, the row only goes.
pub const DELETE_SETTLED_ACCEPTED: &str = "DELETE FROM accepted WHERE EXISTS \
     (SELECT 1 FROM activations a WHERE a.activation_id = accepted.activation_id)";
/// The acceptances of owner `$1` (their records are written by the caller, which deletes
/// the rows in the same transaction).
pub const SELECT_ACCEPTED_OF: &str = "SELECT doc FROM accepted WHERE owner = $1";
/// Every acceptance, whoever the owner (the embedded store has one scheduler).
pub const SELECT_ALL_ACCEPTED: &str = "SELECT doc FROM accepted";
/// Moves to `$1` the acceptances of instances not seen since `$2` (epoch ms) or never seen,
/// returning them.
pub const CLAIM_ORPHANED_ACCEPTED: &str = "UPDATE accepted SET owner = $1 \
     WHERE owner <> $1 AND owner NOT IN \
     (SELECT instance FROM scheduler_instances WHERE seen_ms >= $2) RETURNING doc";
pub const UPSERT_INSTANCE: &str = "INSERT INTO scheduler_instances (instance, seen_ms) \
     VALUES ($1, $2) ON CONFLICT (instance) DO UPDATE SET seen_ms = excluded.seen_ms";
pub const DELETE_INSTANCE: &str = "DELETE FROM scheduler_instances WHERE instance = $1";

// ---- triggers ----
pub const SELECT_TRIGGER: &str = "SELECT doc FROM triggers WHERE namespace = $1 AND name = $2";
pub const UPSERT_TRIGGER: &str = "INSERT INTO triggers \
     (namespace, name, version, updated, doc) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (namespace, name) DO UPDATE SET version = excluded.version, \
     updated = excluded.updated, doc = excluded.doc";
pub const LIST_TRIGGERS: &str = "SELECT doc FROM triggers WHERE namespace = $1 \
     ORDER BY updated DESC, name LIMIT $2 OFFSET $3";
pub const COUNT_TRIGGERS: &str = "SELECT COUNT(*) FROM triggers WHERE namespace = $1";
pub const DELETE_TRIGGER: &str = "DELETE FROM triggers WHERE namespace = $1 AND name = $2";
pub const DELETE_NAMESPACE_TRIGGERS: &str = "DELETE FROM triggers WHERE namespace = $1";

// ---- rules ----
pub const SELECT_RULE: &str = "SELECT doc FROM rules WHERE namespace = $1 AND name = $2";
pub const UPSERT_RULE: &str = "INSERT INTO rules \
     (namespace, name, trigger, version, updated, doc) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (namespace, name) DO UPDATE SET trigger = excluded.trigger, \
     version = excluded.version, updated = excluded.updated, doc = excluded.doc";
pub const LIST_RULES: &str = "SELECT doc FROM rules WHERE namespace = $1 \
     ORDER BY updated DESC, name LIMIT $2 OFFSET $3";
pub const COUNT_RULES: &str = "SELECT COUNT(*) FROM rules WHERE namespace = $1";
/// Rules of namespace `$1` whose trigger is `$2` (`/ns/name`), in name order.
pub const RULES_FOR_TRIGGER: &str =
    "SELECT doc FROM rules WHERE namespace = $1 AND trigger = $2 ORDER BY name";
pub const DELETE_RULE: &str = "DELETE FROM rules WHERE namespace = $1 AND name = $2";
pub const DELETE_NAMESPACE_RULES: &str = "DELETE FROM rules WHERE namespace = $1";

// ---- alarms ----
pub const UPSERT_ALARM: &str = "INSERT INTO alarms (namespace, trigger, next_fire, spec) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, trigger) DO UPDATE SET \
     next_fire = excluded.next_fire, spec = excluded.spec";
pub const SELECT_ALARM: &str =
    "SELECT namespace, trigger, next_fire, spec FROM alarms WHERE namespace = $1 AND trigger = $2";
/// Alarms due at `$1` (epoch ms), soonest first, at most `$2`.
pub const DUE_ALARMS: &str = "SELECT namespace, trigger, next_fire, spec FROM alarms \
     WHERE next_fire <= $1 ORDER BY next_fire LIMIT $2";
/// Claims a tick: only the replica that still sees `next_fire = $3` moves it to `$4`.
pub const CLAIM_ALARM: &str = "UPDATE alarms SET next_fire = $4 \
     WHERE namespace = $1 AND trigger = $2 AND next_fire = $3";
/// Claims the last tick of an alarm (it has no next one): deletes it if still at `$3`.
pub const CLAIM_LAST_ALARM: &str =
    "DELETE FROM alarms WHERE namespace = $1 AND trigger = $2 AND next_fire = $3";
pub const DELETE_ALARM: &str = "DELETE FROM alarms WHERE namespace = $1 AND trigger = $2";
pub const DELETE_NAMESPACE_ALARMS: &str = "DELETE FROM alarms WHERE namespace = $1";

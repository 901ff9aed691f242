//! The entity and activation store.
//!
//! One object-safe [`Store`] trait (used as `Arc<dyn Store>`) for users/namespaces and their keys,
//! actions (code stored once per sha256 digest), packages, triggers, rules, the alarm feed's
//! schedule and activation records. Implementations:
//! - [`sqlite::SqliteStore`]: the embedded default, one file `<data-dir>/wisp.db` in WAL mode.
//!   Activation records go through a [`batcher::ActivationBatcher`] (OpenWhisk's dbBatcher):
//!   `put_activation` queues the record and returns once the writer task committed the batch
//!   it went into (group commit: a batch is whatever queued during the previous commit), so an
//!   acknowledged record survives `kill -9`; reads see queued records, and [`Store::flush`]
//!   drains the queue (called on clean shutdown).
//! - [`postgres::PostgresStore`]: PostgreSQL (`--store postgres://...`), shared by scheduler
//!   replicas; migrated at open, writes of other replicas heard through `LISTEN`.
//! - Both are [`common::SqlStore`] over their sqlx driver: one set of queries ([`sql`]) and
//!   flows, and one test suite ([`suite`]) that both pass.
//! - [`cache::CachedStore`]: a decorator over any store with moka caches for actions, packages
//!   and identities, invalidated on every write through it and, on PostgreSQL, on every write
//!   of another replica (seed 001's datastore cache).
//!
//! Keys are stored hashed (sha256) and compared in constant time. A user's [`NamespaceLimits`]
//! live in its row (nullable columns: `NULL` = the scheduler's default).

pub mod batcher;
pub mod cache;
pub mod common;
pub mod entities;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod suite;

use async_trait::async_trait;
use wisp_core::{ActionDoc, ActivationId, ActivationRecord, Digest, PackageDoc};

pub use entities::{AlarmRow, RuleDoc, RuleRef, TriggerDoc};

/// A failure of the store. The API maps these to HTTP statuses by variant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create without overwrite of an entity that exists (HTTP 409).
    #[error("{kind} '{name}' already exists")]
    Conflict { kind: &'static str, name: String },
    /// The entity to update or delete does not exist (HTTP 404).
    #[error("{kind} '{name}' does not exist")]
    NotFound { kind: &'static str, name: String },
    /// A package that still holds actions cannot be deleted (HTTP 409).
    #[error("package '{0}' is not empty")]
    PackageNotEmpty(String),
    /// An action refers to code the store does not hold.
    #[error("code {0} is missing")]
    MissingCode(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot use the data dir: {0}")]
    Io(#[from] std::io::Error),
    /// A stored document that does not parse (written by an incompatible version?).
    #[error("corrupt document in the store: {0}")]
    Corrupt(String),
    /// The activation writer stopped (the store was closed).
    #[error("the activation writer has stopped")]
    WriterClosed,
    /// The activation writer gave up on a batch (the disk is full or read-only?).
    #[error("writing activation records failed: {0}")]
    WriteFailed(String),
    /// A store URL this build cannot open.
    #[error("unsupported store URL {0:?}")]
    Unsupported(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the store cannot take writes for now (disk full, read-only, I/O failure, the
    /// database unreachable or shutting down) rather than refusing this request: the API
    /// answers 503 `store_unavailable` for these, and clients may retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::WriteFailed(_) | StoreError::WriterClosed | StoreError::Io(_) => true,
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    if code.len() == 5 {
                        // A PostgreSQL SQLSTATE: class 08 (connection), 53 (insufficient
                        // resources, e.g. 53100 disk_full), 57P0x (shutdown), 25006 (read-only
                        // transaction).
                        code.starts_with("08")
                            || code.starts_with("53")
                            || code.starts_with("57P0")
                            || code == "25006"
                    } else {
                        // An SQLite result code; extended codes keep the primary one in the low
                        // byte: 8 READONLY, 10 IOERR, 13 FULL.
                        code.parse::<u32>()
                            .is_ok_and(|n| matches!(n & 0xff, 8 | 10 | 13))
                    }
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A user: one namespace, one `uuid:key` credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
    pub namespace: String,
    pub uuid: String,
}

/// A user's credential, in the clear: only returned when created or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uuid: String,
    pub key: String,
}

impl Credentials {
    /// A fresh random credential (uuid v4, 64-character key), as OpenWhisk generates them.
    pub fn generate() -> Self {
        use rand::Rng as _;
        let key: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        Credentials {
            uuid: uuid::Uuid::new_v4().to_string(),
            key,
        }
    }

    /// Parses `uuid:key`.
    pub fn parse(auth: &str) -> Option<Self> {
        let (uuid, key) = auth.split_once(':')?;
        if uuid.is_empty() || key.is_empty() || uuid.len() > 256 || key.len() > 256 {
            return None;
        }
        Some(Credentials {
            uuid: uuid.to_string(),
            key: key.to_string(),
        })
    }

    /// `uuid:key`.
    pub fn auth(&self) -> String {
        format!("{}:{}", self.uuid, self.key)
    }
}

/// sha256 hex of a key: what the store keeps.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// Constant-time comparison of a presented key with a stored hash.
pub fn key_matches(key: &str, stored_hash: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    hash_key(key)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A namespace's own limits, stored with its user: each `None` means "the scheduler's default"
/// (`--default-invocations-per-minute` and the others, see
/// [`crate::config::SchedulerConfig`]). Values are whole numbers ≥ 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    pub invocations_per_minute: Option<u32>,
    pub concurrent_invocations: Option<u32>,
    pub fires_per_minute: Option<u32>,
}

/// A change of a user's [`NamespaceLimits`], key by key: `None` keeps the stored value,
/// `Some(None)` resets it to the default, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    pub invocations_per_minute: Option<Option<u32>>,
    pub concurrent_invocations: Option<Option<u32>>,
    pub fires_per_minute: Option<Option<u32>>,
}

impl LimitsUpdate {
    /// The limits after applying this change to `stored`.
    pub fn apply(&self, stored: NamespaceLimits) -> NamespaceLimits {
        NamespaceLimits {
            invocations_per_minute: self
                .invocations_per_minute
                .unwrap_or(stored.invocations_per_minute),
            concurrent_invocations: self
                .concurrent_invocations
                .unwrap_or(stored.concurrent_invocations),
            fires_per_minute: self.fires_per_minute.unwrap_or(stored.fires_per_minute),
        }
    }
}

/// A stored identity, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    pub name: String,
    pub namespace: String,
    pub uuid: String,
    pub key_hash: String,
}

/// Where an entity lives: namespace, optional package, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityKey {
    pub namespace: String,
    pub package: Option<String>,
    pub name: String,
}

impl EntityKey {
    pub fn new(namespace: &str, package: Option<&str>, name: &str) -> Self {
        EntityKey {
            namespace: namespace.to_string(),
            package: package.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// `ns` or `ns/pkg`: an action document's `namespace` field.
    pub fn doc_namespace(&self) -> String {
        match &self.package {
            Some(p) => format!("{}/{p}", self.namespace),
            None => self.namespace.clone(),
        }
    }

    /// `/ns/pkg/name` or `/ns/name`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.doc_namespace(), self.name)
    }
}

/// `name` or `pkg/name` of a record, from its `path` annotation (`ns/pkg/name`, OpenWhisk's
/// form, or `/ns/pkg/name`); the record's name when there is none.
pub fn entity_of(rec: &ActivationRecord) -> String {
    rec.annotation("path")
        .and_then(|v| v.as_str())
        .map(|p| p.trim_start_matches('/'))
        .and_then(|p| p.split_once('/'))
        .map(|(_, tail)| tail.to_string())
        .unwrap_or_else(|| rec.name.clone())
}

/// Filters of an activation listing (OpenWhisk's `name`, `since`, `upto`, `limit`, `skip`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationFilter {
    /// Action name (`hello`) or `pkg/name`.
    pub name: Option<String>,
    /// Only records that started at or after this epoch ms.
    pub since: Option<u64>,
    /// Only records that started at or before this epoch ms.
    pub upto: Option<u64>,
    pub limit: u64,
    pub skip: u64,
}

impl ActivationFilter {
    /// Whether `rec` (of the filter's namespace) passes the name and time filters.
    pub fn matches(&self, rec: &ActivationRecord) -> bool {
        if let Some(name) = &self.name
            && rec.name != *name
            && entity_of(rec) != *name
        {
            return false;
        }
        if self.since.is_some_and(|s| rec.start < s) {
            return false;
        }
        if self.upto.is_some_and(|u| rec.start > u) {
            return false;
        }
        true
    }
}

/// The entity and activation store. Every method is safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- users / namespaces ----

    /// Creates user `name` with namespace `name` and a fresh credential.
    /// [`StoreError::Conflict`] when the user exists.
    async fn create_user(&self, name: &str) -> StoreResult<Credentials>;
    /// Creates user `name` with `creds`, or replaces its credential when it exists.
    async fn set_user_key(&self, name: &str, creds: &Credentials) -> StoreResult<()>;
    /// The namespace of the user holding `uuid:key`, if the key matches.
    async fn authenticate(&self, uuid: &str, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .identity_by_uuid(uuid)
            .await?
            .filter(|id| key_matches(key, &id.key_hash))
            .map(|id| id.namespace))
    }
    /// The stored identity of `uuid` (hash included), for authentication.
    async fn identity_by_uuid(&self, uuid: &str) -> StoreResult<Option<StoredIdentity>>;
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Deletes the user, its namespace's actions, packages, triggers, rules, alarms and
    /// activations. `false` if unknown.
    async fn delete_user(&self, name: &str) -> StoreResult<bool>;
    /// The limits stored with the user whose namespace is `namespace` (`None`: no such user).
    /// Read on every invoke, so [`cache::CachedStore`] keeps them.
    async fn user_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>>;
    /// Applies `update` to the limits of user `name` in one transaction; answers the limits as
    /// stored afterwards, or `None` when there is no such user.
    async fn set_user_limits(
        &self,
        name: &str,
        update: &LimitsUpdate,
    ) -> StoreResult<Option<NamespaceLimits>>;

    // ---- actions and code ----

    /// Creates or (with `overwrite`) updates an action. The store sets `namespace`
    /// (`ns` or `ns/pkg`), `name`, `version` (`0.0.1`, or the stored one bumped) and `updated`.
    /// `code` is stored under `exec.digest` (which must be set for wasm actions) unless that
    /// digest is already stored. Returns the document as stored (no code).
    async fn put_action(
        &self,
        key: &EntityKey,
        doc: ActionDoc,
        code: Option<Vec<u8>>,
        overwrite: bool,
    ) -> StoreResult<ActionDoc>;
    /// The action (with `exec.digest`, without code).
    async fn get_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>>;
    /// Actions of `namespace` (all of them, or only package `package`'s), newest update first.
    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<ActionDoc>>;
    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> StoreResult<u64>;
    /// Deletes the action; returns it, or `None` when it did not exist. Code no other action
    /// uses is deleted too.
    async fn delete_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>>;
    /// A code blob by digest.
    async fn get_code(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>>;
    /// Whether the blob of `digest` is stored (some action uses it), without reading it.
    async fn has_code(&self, digest: &Digest) -> StoreResult<bool>;
    /// Number of stored code blobs (tests check deduplication with it).
    async fn count_code(&self) -> StoreResult<u64>;

    // ---- packages ----

    /// Creates or (with `overwrite`) updates a package; the store sets `namespace`, `version`
    /// and `updated`.
    async fn put_package(
        &self,
        namespace: &str,
        doc: PackageDoc,
        overwrite: bool,
    ) -> StoreResult<PackageDoc>;
    async fn get_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>>;
    async fn list_packages(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<PackageDoc>>;
    async fn count_packages(&self, namespace: &str) -> StoreResult<u64>;
    /// Deletes an empty package ([`StoreError::PackageNotEmpty`] otherwise).
    async fn delete_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>>;

    // ---- triggers ----

    /// Creates or (with `overwrite`) updates a trigger; the store sets `namespace`, `version`
    /// and `updated`.
    async fn put_trigger(
        &self,
        namespace: &str,
        doc: TriggerDoc,
        overwrite: bool,
    ) -> StoreResult<TriggerDoc>;
    async fn get_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>>;
    async fn list_triggers(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<TriggerDoc>>;
    async fn count_triggers(&self, namespace: &str) -> StoreResult<u64>;
    /// Deletes the trigger and its alarm (if any); returns it, or `None` when it did not exist.
    async fn delete_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>>;

    // ---- rules ----

    /// Creates or (with `overwrite`) updates a rule; the store sets `namespace`, `version`
    /// and `updated`.
    async fn put_rule(
        &self,
        namespace: &str,
        doc: RuleDoc,
        overwrite: bool,
    ) -> StoreResult<RuleDoc>;
    async fn get_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>>;
    async fn list_rules(&self, namespace: &str, limit: u64, skip: u64)
    -> StoreResult<Vec<RuleDoc>>;
    async fn count_rules(&self, namespace: &str) -> StoreResult<u64>;
    /// The rules of `namespace` whose trigger is `trigger_fqn` (`/ns/name`), by name.
    async fn rules_for_trigger(
        &self,
        namespace: &str,
        trigger_fqn: &str,
    ) -> StoreResult<Vec<RuleDoc>>;
    async fn delete_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>>;

    // ---- alarms (the built-in alarm feed) ----

    /// Creates or replaces the alarm of a trigger.
    async fn put_alarm(&self, alarm: &AlarmRow) -> StoreResult<()>;
    async fn get_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<Option<AlarmRow>>;
    /// Alarms whose `next_fire` is at or before `now` (epoch ms), soonest first, at most `limit`.
    async fn due_alarms(&self, now: u64, limit: u64) -> StoreResult<Vec<AlarmRow>>;
    /// Claims the tick `old_next` of an alarm: moves it to `new_next` (or deletes the alarm when
    /// `None`) only if it is still at `old_next`. `true` for the one caller whose claim took
    /// effect: several scheduler replicas polling one store fire each tick once.
    async fn claim_alarm(
        &self,
        namespace: &str,
        trigger: &str,
        old_next: u64,
        new_next: Option<u64>,
    ) -> StoreResult<bool>;
    /// Deletes a trigger's alarm; `false` when it had none.
    async fn delete_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<bool>;

    // ---- activations ----

    /// Writes a record through the group-committing writer: visible to reads at once, returns
    /// once it is committed (an error when the batch could not be written).
    async fn put_activation(&self, record: ActivationRecord) -> StoreResult<()>;
    /// Commits (group-committed like records) that scheduler `owner` answered 202 for activation
    /// `fallback.activation_id`, before the 202 leaves. The activation's own record, when it is
    /// put, deletes the acceptance in its transaction; if the scheduler dies first, `fallback`
    /// (a whisk internal error) is what [`Store::recover_accepted`] writes.
    async fn accept_activation(&self, owner: &str, fallback: ActivationRecord) -> StoreResult<()>;
    /// Ends as their fallback records the acceptances that [`Recovery`] names and that have no
    /// record (never running anything again: at most once), deleting them; how many it ended.
    async fn recover_accepted(&self, instance: &str, recovery: Recovery) -> StoreResult<u64>;
    /// Marks scheduler `instance` alive now (or, with `alive = false`, gone: a clean stop), so
    /// that the acceptances of instances not seen for a while can be claimed by another.
    async fn heartbeat(&self, instance: &str, alive: bool) -> StoreResult<()>;
    /// The record `id` of `namespace`.
    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> StoreResult<Option<ActivationRecord>>;
    /// Records of `namespace` passing `filter`, newest start first.
    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<Vec<ActivationRecord>>;
    /// How many records of `namespace` pass `filter` (limit/skip ignored).
    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<u64>;
    /// Waits until every record queued before this call is durably written.
    async fn flush(&self) -> StoreResult<()>;
    /// Flushes and stops background tasks; later writes fail with [`StoreError::WriterClosed`].
    async fn close(&self) -> StoreResult<()>;
}

/// Which acceptances [`Store::recover_accepted`] finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// All of them, whoever accepted them: the embedded store has a single scheduler, and it is
    /// starting, so none of them is still running.
    Everything,
    /// The calling instance's own, when it starts (none of them is running any more).
    Own,
    /// Those of instances not seen alive for `dead_after` (claimed first, so two replicas never
    /// finish the same one).
    Orphans { dead_after: std::time::Duration },
}

/// `url` with the password of its user info (`scheme://user:password@host`) replaced by `***`,
/// for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Opens the store `config` asks for: the embedded SQLite file in the data dir unless
/// `config.store` is set (`postgres://` or `postgresql://`: PostgreSQL), wrapped in the entity
/// cache (whose counters come along for `/metrics`).
pub async fn open(
    config: &crate::config::SchedulerConfig,
) -> StoreResult<(std::sync::Arc<dyn Store>, std::sync::Arc<cache::CacheStats>)> {
    let new_cache = |inner: std::sync::Arc<dyn Store>| {
        cache::CachedStore::new(inner, config.entity_cache_capacity, config.entity_cache_ttl)
    };
    let cached = match config.store.as_deref() {
        None | Some("") => new_cache(std::sync::Arc::new(
            sqlite::SqliteStore::open(&config.data_dir, sqlite::SqliteOptions::from_config(config))
                .await?,
        )),
        Some(url) if postgres::is_postgres_url(url) => {
            let store =
                postgres::PostgresStore::open(url, postgres::PostgresOptions::from_config(config))
                    .await?;
            // Listening before anything is cached: no write after this point goes unheard.
            let changes = match postgres::entity_changes(url).await {
                Ok(changes) => changes,
                Err(e) => {
                    let _ = store.close().await;
                    return Err(e);
                }
            };
            let cached = new_cache(std::sync::Arc::new(store));
            cached.follow(changes);
            cached
        }
        Some(other) => return Err(StoreError::Unsupported(other.to_string())),
    };
    let stats = cached.stats();
    Ok((std::sync::Arc::new(cached), stats))
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_and_nothing_else_changes() {
        assert_eq!(
            redact_url("postgres://wisp:s3cr@t@db:5432/wisp"),
            "postgres://wisp:***@db:5432/wisp"
        );
        assert_eq!(
            redact_url("postgres://wisp@db/wisp"),
            "postgres://wisp@db/wisp"
        );
        assert_eq!(redact_url("postgres://db/x@y"), "postgres://db/x@y");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}

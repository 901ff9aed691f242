//! The embedded store: one SQLite file `<data-dir>/wisp.db` (WAL, `synchronous=FULL`), opened
//! with migrations from `migrations/sqlite/`. Writes go through a one-connection pool (SQLite
//! has one writer at a time; this keeps lock upgrades out of the picture), reads through a small
//! pool that WAL lets run beside the writer. Activation records are batched
//! ([`super::batcher`]).
//!
//! Cost: opening runs the migrations and spawns one writer task; each entity write is one
//! transaction with an fsync; `put_activation` is a map insert and a channel send.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use wisp_core::entity::bump_version;
use wisp_core::{ActionDoc, ActivationId, ActivationRecord, Digest, Exec, PackageDoc, now_ms};

use super::batcher::{ActivationBatcher, ActivationSink};
use super::sql;
use super::{
    ActivationFilter, AlarmRow, Credentials, EntityKey, RuleDoc, Store, StoreError, StoreResult,
    StoredIdentity, TriggerDoc, User, entity_of, hash_key,
};

/// The file name of the embedded store inside the data dir.
pub const DB_FILE: &str = "wisp.db";

/// The embedded schema (the `migrations/sqlite/` files, compiled in).
pub fn migrator() -> Migrator {
    // Built by hand rather than with `sqlx::migrate!` so the crate needs no sqlx macros (and no
    // second, host-side build of sqlx and bundled SQLite for the proc macro).
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("init"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0001_init.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("triggers_rules_alarms"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!(
                    "../../migrations/sqlite/0002_triggers_rules_alarms.sql"
                )),
                false,
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub activation_retention: u64,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub read_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            activation_retention: 10_000,
            batch_size: 512,
            batch_linger: Duration::from_millis(5),
            read_connections: 4,
        }
    }
}

impl SqliteOptions {
    pub fn from_config(c: &crate::config::SchedulerConfig) -> Self {
        SqliteOptions {
            activation_retention: c.activation_retention,
            batch_size: c.activation_batch_size,
            batch_linger: c.activation_batch_linger,
            ..SqliteOptions::default()
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; lives as long as the scheduler.
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    batcher: ActivationBatcher,
}

struct Sink {
    write: SqlitePool,
    retention: u64,
    /// Records written per namespace since its last prune.
    since_prune: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Sink {
    /// Namespaces due for pruning after `batch`: a namespace is pruned once it received
    /// `retention / 16` records (at least 1) since its last prune, so it may briefly hold up to
    /// 1/16 more records than the retention, and a busy writer does not run the prune query on
    /// every batch.
    fn due_for_pruning(&self, batch: &[Arc<ActivationRecord>]) -> Vec<String> {
        if self.retention == 0 {
            return Vec::new();
        }
        let threshold = (self.retention / 16).max(1);
        let mut counts = self.since_prune.lock().unwrap_or_else(|e| e.into_inner());
        for r in batch {
            *counts.entry(r.namespace.clone()).or_default() += 1;
        }
        let due: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n >= threshold)
            .map(|(ns, _)| ns.clone())
            .collect();
        for ns in &due {
            counts.remove(ns);
        }
        due
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/wisp.db` and migrates it.
    pub async fn open(data_dir: &Path, options: SqliteOptions) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir)?;
        let connect = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(connect.clone())
            .await?;
        migrator().run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await?;
        let sink = Arc::new(Sink {
            write: write.clone(),
            retention: options.activation_retention,
            since_prune: Default::default(),
        });
        let batcher = ActivationBatcher::spawn(sink, options.batch_size, options.batch_linger);
        Ok(SqliteStore {
            write,
            read,
            batcher,
        })
    }

    /// Records waiting for the batched writer.
    pub fn pending_activations(&self) -> usize {
        self.batcher.pending_len()
    }
}

fn parse<T: serde::de::DeserializeOwned>(row: &SqliteRow) -> StoreResult<T> {
    let doc: String = row.try_get(0)?;
    serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_json<T: serde::Serialize>(doc: &T) -> StoreResult<String> {
    serde_json::to_string(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// SQLite integers are i64; limits and offsets beyond that are clamped.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn user_from(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        name: row.try_get(0)?,
        namespace: row.try_get(1)?,
        uuid: row.try_get(2)?,
    })
}

/// The version of an entity about to be written: `0.0.1` when new, the stored one bumped on
/// an update, [`StoreError::Conflict`] when it exists and `overwrite` is false.
fn next_version(
    existing: Option<SqliteRow>,
    overwrite: bool,
    kind: &'static str,
    namespace: &str,
    name: &str,
    version_of: impl FnOnce(&SqliteRow) -> StoreResult<String>,
) -> StoreResult<String> {
    match existing {
        Some(_) if !overwrite => Err(StoreError::Conflict {
            kind,
            name: format!("/{namespace}/{name}"),
        }),
        Some(row) => Ok(bump_version(&version_of(&row)?)),
        None => Ok("0.0.1".to_string()),
    }
}

fn alarm_from(row: &SqliteRow) -> StoreResult<AlarmRow> {
    let next: i64 = row.try_get(2)?;
    let spec: String = row.try_get(3)?;
    Ok(AlarmRow {
        namespace: row.try_get(0)?,
        trigger: row.try_get(1)?,
        next_fire: next.max(0) as u64,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// The shapes every named entity (packages, triggers, rules) shares: one document by name, a
/// window of a namespace's documents, a count, and a delete that answers the deleted document.
impl SqliteStore {
    async fn doc_by_name<T: serde::de::DeserializeOwned>(
        &self,
        query: &'static str,
        namespace: &str,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let row = sqlx::query(query)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(parse).transpose()
    }

    async fn docs_in<T: serde::de::DeserializeOwned>(
        &self,
        query: &'static str,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query(query)
            .bind(namespace)
            .bind(int(limit))
            .bind(int(skip))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(parse).collect()
    }

    async fn count_in(&self, query: &'static str, namespace: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(query)
            .bind(namespace)
            .fetch_one(&self.read)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Reads the document with `select`, then runs each of `deletes` (all bound to
    /// `(namespace, name)`) in the same transaction.
    async fn delete_named<T: serde::de::DeserializeOwned>(
        &self,
        select: &'static str,
        deletes: &[&'static str],
        namespace: &str,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let mut tx = begin(&self.write).await?;
        let Some(row) = sqlx::query(select)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: T = parse(&row)?;
        for query in deletes {
            sqlx::query(query)
                .bind(namespace)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(doc))
    }
}

async fn begin(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    Ok(pool.begin().await?)
}

#[async_trait]
impl ActivationSink for Sink {
    async fn write_batch(&self, records: &[Arc<ActivationRecord>]) -> StoreResult<()> {
        let mut tx = begin(&self.write).await?;
        // Multi-row inserts: one statement per chunk instead of one per record.
        for chunk in records.chunks(sql::ACTIVATION_INSERT_CHUNK) {
            let docs = chunk
                .iter()
                .map(|r| to_json(&**r))
                .collect::<StoreResult<Vec<_>>>()?;
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(sql::INSERT_ACTIVATIONS_HEAD);
            insert.push_values(chunk.iter().zip(docs), |mut row, (r, doc)| {
                row.push_bind(r.activation_id.as_str())
                    .push_bind(&r.namespace)
                    .push_bind(&r.name)
                    .push_bind(entity_of(r))
                    .push_bind(int(r.start))
                    .push_bind(doc);
            });
            insert.push(sql::INSERT_ACTIVATIONS_TAIL);
            insert.build().execute(&mut *tx).await?;
        }
        for ns in self.due_for_pruning(records) {
            sqlx::query(sql::PRUNE_ACTIVATIONS)
                .bind(&ns)
                .bind(int(self.retention - 1))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, name: &str) -> StoreResult<Credentials> {
        let creds = Credentials::generate();
        let res = sqlx::query(sql::INSERT_USER)
            .bind(name)
            .bind(name)
            .bind(&creds.uuid)
            .bind(hash_key(&creds.key))
            .bind(int(now_ms()))
            .execute(&self.write)
            .await;
        match res {
            Ok(_) => Ok(creds),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict {
                kind: "user",
                name: name.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_user_key(&self, name: &str, creds: &Credentials) -> StoreResult<()> {
        let res = sqlx::query(sql::UPSERT_USER)
            .bind(name)
            .bind(name)
            .bind(&creds.uuid)
            .bind(hash_key(&creds.key))
            .bind(int(now_ms()))
            .execute(&self.write)
            .await;
        match res {
            Ok(_) => Ok(()),
            // The uuid belongs to another user.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict {
                kind: "uuid",
                name: creds.uuid.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn identity_by_uuid(&self, uuid: &str) -> StoreResult<Option<StoredIdentity>> {
        let row = sqlx::query(sql::SELECT_IDENTITY_BY_UUID)
            .bind(uuid)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            Ok(StoredIdentity {
                name: r.try_get(0)?,
                namespace: r.try_get(1)?,
                uuid: r.try_get(2)?,
                key_hash: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(sql::SELECT_USER_BY_NAME)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sql::LIST_USERS).fetch_all(&self.read).await?;
        rows.iter().map(user_from).collect()
    }

    async fn delete_user(&self, name: &str) -> StoreResult<bool> {
        // Queued records of the namespace must not land after the delete.
        self.batcher.flush().await?;
        let mut tx = begin(&self.write).await?;
        let Some(row) = sqlx::query(sql::SELECT_USER_BY_NAME)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let user = user_from(&row)?;
        for q in [
            sql::DELETE_NAMESPACE_ACTIONS,
            sql::DELETE_NAMESPACE_PACKAGES,
            sql::DELETE_NAMESPACE_TRIGGERS,
            sql::DELETE_NAMESPACE_RULES,
            sql::DELETE_NAMESPACE_ALARMS,
            sql::DELETE_NAMESPACE_ACTIVATIONS,
        ] {
            sqlx::query(q)
                .bind(&user.namespace)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sql::DELETE_USER)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_ALL_UNUSED_CODE)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn put_action(
        &self,
        key: &EntityKey,
        mut doc: ActionDoc,
        code: Option<Vec<u8>>,
        overwrite: bool,
    ) -> StoreResult<ActionDoc> {
        let package = key.package.as_deref().unwrap_or("");
        let mut tx = begin(&self.write).await?;
        let existing = sqlx::query(sql::SELECT_ACTION_DIGEST)
            .bind(&key.namespace)
            .bind(package)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await?;
        let (version, old_digest) = match existing {
            Some(_) if !overwrite => {
                return Err(StoreError::Conflict {
                    kind: "action",
                    name: key.path(),
                });
            }
            Some(row) => {
                let v: String = row.try_get(0)?;
                (bump_version(&v), row.try_get::<Option<String>, _>(1)?)
            }
            None => ("0.0.1".to_string(), None),
        };
        doc.namespace = key.doc_namespace();
        doc.name = key.name.clone();
        doc.version = version;
        doc.updated = now_ms();
        let digest = match &mut doc.exec {
            Exec::Wasm {
                code: inline,
                digest,
                ..
            } => {
                *inline = None;
                digest.clone()
            }
            Exec::Sequence { .. } => None,
        };
        match (&digest, code) {
            (Some(d), Some(bytes)) => {
                sqlx::query(sql::INSERT_CODE)
                    .bind(d)
                    .bind(&bytes)
                    .bind(int(bytes.len() as u64))
                    .bind(int(now_ms()))
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())?;
            }
            (Some(d), None) => {
                let n: i64 = sqlx::query_scalar(sql::CODE_EXISTS)
                    .bind(d)
                    .fetch_one(&mut *tx)
                    .await?;
                if n == 0 {
                    return Err(StoreError::MissingCode(d.clone()));
                }
            }
            (None, _) if matches!(doc.exec, Exec::Wasm { .. }) => {
                return Err(StoreError::MissingCode("(no digest)".into()));
            }
            (None, _) => {}
        }
        sqlx::query(sql::UPSERT_ACTION)
            .bind(&key.namespace)
            .bind(package)
            .bind(&key.name)
            .bind(&doc.version)
            .bind(&digest)
            .bind(int(doc.updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old_digest.filter(|o| Some(o) != digest.as_ref()) {
            sqlx::query(sql::DELETE_UNUSED_CODE)
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(doc)
    }

    async fn get_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        let row = sqlx::query(sql::SELECT_ACTION)
            .bind(&key.namespace)
            .bind(key.package.as_deref().unwrap_or(""))
            .bind(&key.name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(parse).transpose()
    }

    async fn list_actions(
        &self,
        namespace: &str,
        package: Option<&str>,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<ActionDoc>> {
        let rows = match package {
            None => {
                sqlx::query(sql::LIST_ACTIONS)
                    .bind(namespace)
                    .bind(int(limit))
                    .bind(int(skip))
                    .fetch_all(&self.read)
                    .await?
            }
            Some(p) => {
                sqlx::query(sql::LIST_PACKAGE_ACTIONS)
                    .bind(namespace)
                    .bind(p)
                    .bind(int(limit))
                    .bind(int(skip))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(parse).collect()
    }

    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> StoreResult<u64> {
        let n: i64 = match package {
            None => {
                sqlx::query_scalar(sql::COUNT_ACTIONS)
                    .bind(namespace)
                    .fetch_one(&self.read)
                    .await?
            }
            Some(p) => {
                sqlx::query_scalar(sql::COUNT_PACKAGE_ACTIONS)
                    .bind(namespace)
                    .bind(p)
                    .fetch_one(&self.read)
                    .await?
            }
        };
        Ok(n.max(0) as u64)
    }

    async fn delete_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        let package = key.package.as_deref().unwrap_or("");
        let mut tx = begin(&self.write).await?;
        let Some(row) = sqlx::query(sql::SELECT_ACTION)
            .bind(&key.namespace)
            .bind(package)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: ActionDoc = parse(&row)?;
        sqlx::query(sql::DELETE_ACTION)
            .bind(&key.namespace)
            .bind(package)
            .bind(&key.name)
            .execute(&mut *tx)
            .await?;
        if let Exec::Wasm {
            digest: Some(d), ..
        } = &doc.exec
        {
            sqlx::query(sql::DELETE_UNUSED_CODE)
                .bind(d)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(doc))
    }

    async fn get_code(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::SELECT_CODE)
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await?)
    }

    async fn count_code(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_CODE)
            .fetch_one(&self.read)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn put_package(
        &self,
        namespace: &str,
        mut doc: PackageDoc,
        overwrite: bool,
    ) -> StoreResult<PackageDoc> {
        let mut tx = begin(&self.write).await?;
        let existing = sqlx::query(sql::SELECT_PACKAGE)
            .bind(namespace)
            .bind(&doc.name)
            .fetch_optional(&mut *tx)
            .await?;
        doc.version = match existing {
            Some(_) if !overwrite => {
                return Err(StoreError::Conflict {
                    kind: "package",
                    name: format!("/{namespace}/{}", doc.name),
                });
            }
            Some(row) => bump_version(&parse::<PackageDoc>(&row)?.version),
            None => "0.0.1".to_string(),
        };
        doc.namespace = namespace.to_string();
        doc.updated = now_ms();
        sqlx::query(sql::UPSERT_PACKAGE)
            .bind(namespace)
            .bind(&doc.name)
            .bind(&doc.version)
            .bind(int(doc.updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    async fn get_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>> {
        self.doc_by_name(sql::SELECT_PACKAGE, namespace, name).await
    }

    async fn list_packages(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<PackageDoc>> {
        self.docs_in(sql::LIST_PACKAGES, namespace, limit, skip)
            .await
    }

    async fn count_packages(&self, namespace: &str) -> StoreResult<u64> {
        self.count_in(sql::COUNT_PACKAGES, namespace).await
    }

    async fn delete_package(&self, namespace: &str, name: &str) -> StoreResult<Option<PackageDoc>> {
        let mut tx = begin(&self.write).await?;
        let Some(row) = sqlx::query(sql::SELECT_PACKAGE)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: PackageDoc = parse(&row)?;
        let n: i64 = sqlx::query_scalar(sql::COUNT_PACKAGE_ACTIONS)
            .bind(namespace)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(StoreError::PackageNotEmpty(format!("/{namespace}/{name}")));
        }
        sqlx::query(sql::DELETE_PACKAGE)
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(doc))
    }

    async fn put_trigger(
        &self,
        namespace: &str,
        mut doc: TriggerDoc,
        overwrite: bool,
    ) -> StoreResult<TriggerDoc> {
        let mut tx = begin(&self.write).await?;
        let existing = sqlx::query(sql::SELECT_TRIGGER)
            .bind(namespace)
            .bind(&doc.name)
            .fetch_optional(&mut *tx)
            .await?;
        doc.version = next_version(existing, overwrite, "trigger", namespace, &doc.name, |d| {
            parse::<TriggerDoc>(d).map(|t| t.version)
        })?;
        doc.namespace = namespace.to_string();
        doc.updated = now_ms();
        sqlx::query(sql::UPSERT_TRIGGER)
            .bind(namespace)
            .bind(&doc.name)
            .bind(&doc.version)
            .bind(int(doc.updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    async fn get_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>> {
        self.doc_by_name(sql::SELECT_TRIGGER, namespace, name).await
    }

    async fn list_triggers(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<TriggerDoc>> {
        self.docs_in(sql::LIST_TRIGGERS, namespace, limit, skip)
            .await
    }

    async fn count_triggers(&self, namespace: &str) -> StoreResult<u64> {
        self.count_in(sql::COUNT_TRIGGERS, namespace).await
    }

    async fn delete_trigger(&self, namespace: &str, name: &str) -> StoreResult<Option<TriggerDoc>> {
        // The trigger's alarm goes in the same transaction.
        self.delete_named(
            sql::SELECT_TRIGGER,
            &[sql::DELETE_TRIGGER, sql::DELETE_ALARM],
            namespace,
            name,
        )
        .await
    }

    async fn put_rule(
        &self,
        namespace: &str,
        mut doc: RuleDoc,
        overwrite: bool,
    ) -> StoreResult<RuleDoc> {
        let mut tx = begin(&self.write).await?;
        let existing = sqlx::query(sql::SELECT_RULE)
            .bind(namespace)
            .bind(&doc.name)
            .fetch_optional(&mut *tx)
            .await?;
        doc.version = next_version(existing, overwrite, "rule", namespace, &doc.name, |d| {
            parse::<RuleDoc>(d).map(|r| r.version)
        })?;
        doc.namespace = namespace.to_string();
        doc.updated = now_ms();
        sqlx::query(sql::UPSERT_RULE)
            .bind(namespace)
            .bind(&doc.name)
            .bind(doc.trigger.fqn())
            .bind(&doc.version)
            .bind(int(doc.updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    async fn get_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>> {
        self.doc_by_name(sql::SELECT_RULE, namespace, name).await
    }

    async fn list_rules(
        &self,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<RuleDoc>> {
        self.docs_in(sql::LIST_RULES, namespace, limit, skip).await
    }

    async fn count_rules(&self, namespace: &str) -> StoreResult<u64> {
        self.count_in(sql::COUNT_RULES, namespace).await
    }

    async fn rules_for_trigger(
        &self,
        namespace: &str,
        trigger_fqn: &str,
    ) -> StoreResult<Vec<RuleDoc>> {
        let rows = sqlx::query(sql::RULES_FOR_TRIGGER)
            .bind(namespace)
            .bind(trigger_fqn)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(parse).collect()
    }

    async fn delete_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>> {
        self.delete_named(sql::SELECT_RULE, &[sql::DELETE_RULE], namespace, name)
            .await
    }

    async fn put_alarm(&self, alarm: &AlarmRow) -> StoreResult<()> {
        sqlx::query(sql::UPSERT_ALARM)
            .bind(&alarm.namespace)
            .bind(&alarm.trigger)
            .bind(int(alarm.next_fire))
            .bind(to_json(&alarm.spec)?)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn get_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<Option<AlarmRow>> {
        let row = sqlx::query(sql::SELECT_ALARM)
            .bind(namespace)
            .bind(trigger)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(alarm_from).transpose()
    }

    async fn due_alarms(&self, now: u64, limit: u64) -> StoreResult<Vec<AlarmRow>> {
        let rows = sqlx::query(sql::DUE_ALARMS)
            .bind(int(now))
            .bind(int(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(alarm_from).collect()
    }

    async fn claim_alarm(
        &self,
        namespace: &str,
        trigger: &str,
        old_next: u64,
        new_next: Option<u64>,
    ) -> StoreResult<bool> {
        let done = match new_next {
            Some(next) => {
                sqlx::query(sql::CLAIM_ALARM)
                    .bind(namespace)
                    .bind(trigger)
                    .bind(int(old_next))
                    .bind(int(next))
                    .execute(&self.write)
                    .await?
            }
            None => {
                sqlx::query(sql::CLAIM_LAST_ALARM)
                    .bind(namespace)
                    .bind(trigger)
                    .bind(int(old_next))
                    .execute(&self.write)
                    .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn delete_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::DELETE_ALARM)
            .bind(namespace)
            .bind(trigger)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_activation(&self, record: ActivationRecord) -> StoreResult<()> {
        self.batcher.put(record).await
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> StoreResult<Option<ActivationRecord>> {
        if let Some(r) = self.batcher.get(namespace, id) {
            return Ok(Some(r));
        }
        let row = sqlx::query(sql::SELECT_ACTIVATION)
            .bind(namespace)
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        match row {
            Some(row) => parse(&row).map(Some),
            // Written between the two lookups?
            None => Ok(self.batcher.get(namespace, id)),
        }
    }

    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<Vec<ActivationRecord>> {
        let queued = self.batcher.matching(namespace, filter);
        // With queued records in the picture, fetch the first skip+limit stored ones and merge.
        let (limit, skip) = if queued.is_empty() {
            (filter.limit, filter.skip)
        } else {
            (filter.limit.saturating_add(filter.skip), 0)
        };
        let rows = sqlx::query(sql::LIST_ACTIVATIONS)
            .bind(namespace)
            .bind(filter.name.as_deref())
            .bind(filter.since.map(int))
            .bind(filter.upto.map(int))
            .bind(int(limit))
            .bind(int(skip))
            .fetch_all(&self.read)
            .await?;
        let stored: Vec<ActivationRecord> = rows.iter().map(parse).collect::<StoreResult<_>>()?;
        if queued.is_empty() {
            return Ok(stored);
        }
        // Queued records (most recent first) before stored ones (newest first), then a stable
        // sort by start: ties keep that order, the order stored records will have once written.
        let mut merged: Vec<ActivationRecord> = queued
            .into_iter()
            .filter(|q| !stored.iter().any(|s| s.activation_id == q.activation_id))
            .collect();
        merged.extend(stored);
        merged.sort_by_key(|r| std::cmp::Reverse(r.start));
        Ok(merged
            .into_iter()
            .skip(usize::try_from(filter.skip).unwrap_or(usize::MAX))
            .take(usize::try_from(filter.limit).unwrap_or(usize::MAX))
            .collect())
    }

    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> StoreResult<u64> {
        // Counting is rare: write what is queued rather than reconcile it record by record.
        if !self.batcher.matching(namespace, filter).is_empty() {
            self.batcher.flush().await?;
        }
        let n: i64 = sqlx::query_scalar(sql::COUNT_ACTIVATIONS)
            .bind(namespace)
            .bind(filter.name.as_deref())
            .bind(filter.since.map(int))
            .bind(filter.upto.map(int))
            .fetch_one(&self.read)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.batcher.flush().await
    }

    async fn close(&self) -> StoreResult<()> {
        let flushed = self.batcher.close().await;
        self.read.close().await;
        self.write.close().await;
        flushed
    }
}

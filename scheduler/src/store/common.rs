//! The [`Store`] both SQL backends run: [`SqlStore`], generic over the sqlx driver, with the
//! queries of [`super::sql`] and every flow written once (version bumping, document
//! (de)serialisation, row mapping, the transactions of `put_action`, `delete_user`...).
//! [`super::sqlite::SqliteStore`] and [`super::postgres::PostgresStore`] are its two
//! instantiations; each backend only says how to connect, how to migrate, and the few things a
//! driver does its own way ([`Backend`]).
//!
//! Cost: generics are monomorphised, so each backend runs the same machine code it would with
//! hand-written queries. Entity writes are one transaction each; `put_activation` queues
//! the record for the [`ActivationBatcher`], whose [`SqlSink`] writes group commits of multi-row
//! inserts, and returns once its batch is committed.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{
    Arguments as _, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row,
    Transaction, Type,
};
use wisp_core::entity::bump_version;
use wisp_core::{ActionDoc, ActivationId, ActivationRecord, Digest, Exec, PackageDoc, now_ms};

use super::batcher::{Acceptance, ActivationBatcher, ActivationSink, Batch};
use super::sql;
use super::{
    ActivationFilter, AlarmRow, Credentials, EntityKey, LimitsUpdate, NamespaceLimits, Recovery,
    RuleDoc, Store, StoreError, StoreResult, StoredIdentity, TriggerDoc, User, entity_of, hash_key,
};

/// What a driver does its own way.
pub trait Backend: Database {
    /// A statement taking a lock on the text key `$1` until the transaction ends, so writers of
    /// one entity in several processes take turns (PostgreSQL: an advisory lock). `None` where
    /// the store has a single writer anyway (SQLite's one write connection).
    const LOCK_KEY: Option<&'static str>;
    /// Rows an `UPDATE`/`DELETE` touched.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// An SQL store over the driver `DB`: a write pool, a read pool (the same pool where the
/// database handles concurrent writers), and the activation batcher.
pub struct SqlStore<DB: Database> {
    write: Pool<DB>,
    read: Pool<DB>,
    batcher: ActivationBatcher,
    /// A backend's maintenance task (SQLite's checkpointer), stopped and awaited by `close`
    /// after the pools are closed, so it can leave the files tidy (see [`Self::with_maintenance`]).
    maintenance: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl<DB: Database> SqlStore<DB> {
    /// Records waiting for the batched writer.
    pub fn pending_activations(&self) -> usize {
        self.batcher.pending_len()
    }

    /// The pool entity writes go through.
    pub fn write_pool(&self) -> &Pool<DB> {
        &self.write
    }
}

/// The activation writer of an [`SqlStore`]: multi-row inserts and per-namespace retention, one
/// transaction per batch.
pub struct SqlSink<DB: Database> {
    write: Pool<DB>,
    retention: u64,
    /// Records written per namespace since its last prune.
    since_prune: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl<DB: Database> SqlSink<DB> {
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

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A JSON document, as stored in a TEXT column.
pub fn to_json<T: serde::Serialize>(doc: &T) -> StoreResult<String> {
    serde_json::to_string(doc).map_err(corrupt)
}

/// SQL integers are i64; limits, offsets and times beyond that are clamped.
pub fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// The version of an entity about to be written: `0.0.1` when new, the stored one bumped on
/// an update, [`StoreError::Conflict`] when it exists and `overwrite` is false.
pub fn next_version(
    stored: Option<&str>,
    overwrite: bool,
    kind: &'static str,
    path: impl FnOnce() -> String,
) -> StoreResult<String> {
    match stored {
        Some(_) if !overwrite => Err(StoreError::Conflict { kind, name: path() }),
        Some(v) => Ok(bump_version(v)),
        None => Ok("0.0.1".to_string()),
    }
}

/// Sets what the store owns in an action document (namespace, name, version, updated), drops
/// inline code, and answers the code digest (`None` for sequences).
pub fn prepare_action(key: &EntityKey, doc: &mut ActionDoc, version: String) -> Option<String> {
    doc.namespace = key.doc_namespace();
    doc.name = key.name.clone();
    doc.version = version;
    doc.updated = now_ms();
    match &mut doc.exec {
        Exec::Wasm {
            code: inline,
            digest,
            ..
        } => {
            *inline = None;
            digest.clone()
        }
        Exec::Sequence { .. } => None,
    }
}

/// A page of activation records: queued ones (most recent first, not yet written) merged with
/// the first `skip + limit` stored ones (newest first), then the filter's window.
pub fn merge_activations(
    queued: Vec<ActivationRecord>,
    stored: Vec<ActivationRecord>,
    filter: &ActivationFilter,
) -> Vec<ActivationRecord> {
    // Queued records before stored ones, then a stable sort by start: ties keep that order, the
    // order stored records will have once written.
    let mut merged: Vec<ActivationRecord> = queued
        .into_iter()
        .filter(|q| !stored.iter().any(|s| s.activation_id == q.activation_id))
        .collect();
    merged.extend(stored);
    merged.sort_by_key(|r| std::cmp::Reverse(r.start));
    merged
        .into_iter()
        .skip(usize::try_from(filter.skip).unwrap_or(usize::MAX))
        .take(usize::try_from(filter.limit).unwrap_or(usize::MAX))
        .collect()
}

/// Adds `value` to `args` and its placeholder to `sql` (after `, ` when `comma`).
fn push_bind<'q, DB, T>(
    sql: &mut String,
    args: &mut DB::Arguments<'q>,
    value: T,
    comma: bool,
) -> StoreResult<()>
where
    DB: Database,
    T: 'q + Encode<'q, DB> + Type<DB>,
{
    if comma {
        sql.push_str(", ");
    }
    args.add(value).map_err(sqlx::Error::Encode)?;
    args.format_placeholder(sql)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The lock key of an action's code digest (see [`Backend::LOCK_KEY`]).
fn code_lock(digest: &str) -> String {
    format!("code:{digest}")
}

// The bounds below say "the driver can bind and decode the column types of migrations/: TEXT,
// BIGINT, bytes". They are repeated on each impl block because Rust does not imply where-clauses
// of a trait; both SQLite and PostgreSQL satisfy them.

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A store over `write` and `read` (clones of one pool where the database takes concurrent
    /// writers), with a batched activation writer on `write`. Needs a tokio runtime.
    pub fn from_pools(write: Pool<DB>, read: Pool<DB>, retention: u64, batch_size: usize) -> Self {
        let sink = Arc::new(SqlSink {
            write: write.clone(),
            retention,
            since_prune: Default::default(),
        });
        let batcher = ActivationBatcher::spawn(sink, batch_size);
        SqlStore {
            write,
            read,
            batcher,
            maintenance: std::sync::Mutex::new(None),
        }
    }

    /// The same store with a maintenance task that ends by itself once the write pool is closed;
    /// `close` waits for it.
    pub fn with_maintenance(self, task: tokio::task::JoinHandle<()>) -> Self {
        *self.maintenance.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        self
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, DB>> {
        Ok(self.write.begin().await?)
    }

    /// Takes the backend's lock on `key` for the rest of `tx` (nothing on SQLite).
    async fn lock(tx: &mut Transaction<'static, DB>, key: &str) -> StoreResult<()> {
        if let Some(lock) = DB::LOCK_KEY {
            sqlx::query::<DB>(lock).bind(key).execute(&mut **tx).await?;
        }
        Ok(())
    }

    fn parse<T: serde::de::DeserializeOwned>(row: &DB::Row) -> StoreResult<T> {
        let doc: String = row.try_get(0)?;
        serde_json::from_str(&doc).map_err(corrupt)
    }

    fn user_from(row: &DB::Row) -> StoreResult<User> {
        Ok(User {
            name: row.try_get(0)?,
            namespace: row.try_get(1)?,
            uuid: row.try_get(2)?,
        })
    }

    /// The three nullable limit columns of a user row; a value that is not a whole number
    /// ≥ 1 (written by hand?) reads as the default.
    fn limits_from(row: &DB::Row) -> StoreResult<NamespaceLimits> {
        let column = |i: usize| -> StoreResult<Option<u32>> {
            let v: Option<i64> = row.try_get(i)?;
            Ok(v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v >= 1))
        };
        Ok(NamespaceLimits {
            invocations_per_minute: column(0)?,
            concurrent_invocations: column(1)?,
            fires_per_minute: column(2)?,
        })
    }

    fn alarm_from(row: &DB::Row) -> StoreResult<AlarmRow> {
        let next: i64 = row.try_get(2)?;
        let spec: String = row.try_get(3)?;
        Ok(AlarmRow {
            namespace: row.try_get(0)?,
            trigger: row.try_get(1)?,
            next_fire: count(next),
            spec: serde_json::from_str(&spec).map_err(corrupt)?,
        })
    }

    /// Writes a user row (`INSERT_USER` or `UPSERT_USER`); a unique violation is a conflict on
    /// `kind`/`name`.
    async fn write_user(
        &self,
        query: &'static str,
        name: &str,
        creds: &Credentials,
        conflict: (&'static str, &str),
    ) -> StoreResult<()> {
        let res = sqlx::query::<DB>(query)
            .bind(name)
            .bind(name)
            .bind(creds.uuid.as_str())
            .bind(hash_key(&creds.key))
            .bind(int(now_ms()))
            .execute(&self.write)
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict {
                kind: conflict.0,
                name: conflict.1.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    // The shapes every named entity (packages, triggers, rules) shares: one document by name, a
    // window of a namespace's documents, a count, a versioned write and a delete that answers
    // the deleted document.

    async fn doc_by_name<T: serde::de::DeserializeOwned>(
        &self,
        query: &'static str,
        namespace: &str,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let row = sqlx::query::<DB>(query)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(Self::parse).transpose()
    }

    async fn docs_in<T: serde::de::DeserializeOwned>(
        &self,
        query: &'static str,
        namespace: &str,
        limit: u64,
        skip: u64,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query::<DB>(query)
            .bind(namespace)
            .bind(int(limit))
            .bind(int(skip))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(Self::parse).collect()
    }

    async fn count_in(&self, query: &'static str, namespace: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar::<DB, i64>(query)
            .bind(namespace)
            .fetch_one(&self.read)
            .await?;
        Ok(count(n))
    }

    /// Creates or updates the named document of `kind`: reads the stored one with `select`
    /// (for its version), stamps what the store owns, then writes it with `upsert` bound to
    /// `(namespace, name, [extra], version, updated, doc)`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per entity kind, each spelling out its queries"
    )]
    async fn put_named<T: NamedDoc>(
        &self,
        kind: &'static str,
        select: &'static str,
        upsert: &'static str,
        namespace: &str,
        extra: Option<String>,
        mut doc: T,
        overwrite: bool,
    ) -> StoreResult<T> {
        let name = doc.name().to_string();
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("{kind}:{namespace}/{name}")).await?;
        let existing = sqlx::query::<DB>(select)
            .bind(namespace)
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let stored: Option<T> = existing.as_ref().map(Self::parse).transpose()?;
        let version = next_version(
            stored.as_ref().map(|d| d.version()),
            overwrite,
            kind,
            || format!("/{namespace}/{name}"),
        )?;
        let updated = now_ms();
        doc.stamp(namespace, version, updated);
        let mut upsert = sqlx::query::<DB>(upsert)
            .bind(namespace)
            .bind(name.as_str());
        if let Some(extra) = extra {
            upsert = upsert.bind(extra);
        }
        upsert
            .bind(doc.version().to_string())
            .bind(int(updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// Reads the document with `select`, then runs each of `deletes` (all bound to
    /// `(namespace, name)`) in the same transaction.
    async fn delete_named<T: serde::de::DeserializeOwned>(
        &self,
        kind: &'static str,
        select: &'static str,
        deletes: &[&'static str],
        namespace: &str,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("{kind}:{namespace}/{name}")).await?;
        let Some(row) = sqlx::query::<DB>(select)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: T = Self::parse(&row)?;
        for query in deletes {
            sqlx::query::<DB>(query)
                .bind(namespace)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(doc))
    }
}

/// A named entity document (package, trigger, rule) whose namespace, version and update time
/// the store sets.
pub trait NamedDoc: serde::Serialize + serde::de::DeserializeOwned + Send {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    fn stamp(&mut self, namespace: &str, version: String, updated: u64);
}

macro_rules! named_doc {
    ($($t:ty),*) => {$(
        impl NamedDoc for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn version(&self) -> &str {
                &self.version
            }
            fn stamp(&mut self, namespace: &str, version: String, updated: u64) {
                self.namespace = namespace.to_string();
                self.version = version;
                self.updated = updated;
            }
        }
    )*};
}
named_doc!(PackageDoc, TriggerDoc, RuleDoc);

#[async_trait]
impl<DB> ActivationSink for SqlSink<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    async fn write_batch(&self, batch: &Batch) -> StoreResult<()> {
        let records = &batch.records;
        let mut tx = self.write.begin().await?;
        for chunk in batch.accepted.chunks(sql::ACTIVATION_INSERT_CHUNK) {
            let mut insert = String::from(sql::INSERT_ACCEPTED_HEAD);
            insert.push_str("VALUES ");
            let mut args = <DB::Arguments<'_>>::default();
            for (i, a) in chunk.iter().enumerate() {
                insert.push_str(if i == 0 { "(" } else { ", (" });
                push_bind(
                    &mut insert,
                    &mut args,
                    a.fallback.activation_id.as_str(),
                    false,
                )?;
                push_bind(&mut insert, &mut args, a.owner.as_str(), true)?;
                push_bind(&mut insert, &mut args, int(a.accepted_ms), true)?;
                push_bind(&mut insert, &mut args, to_json(&a.fallback)?, true)?;
                insert.push(')');
            }
            insert.push_str(sql::INSERT_ACCEPTED_TAIL);
            sqlx::query_with::<DB, _>(&insert, args)
                .execute(&mut *tx)
                .await?;
        }
        // Multi-row inserts: one statement per chunk instead of one per record.
        for chunk in records.chunks(sql::ACTIVATION_INSERT_CHUNK) {
            // Multi-row inserts, one statement per chunk, built as `QueryBuilder::push_values`
            // does (its borrow of the builder does not fit a generic driver's bounds).
            let mut insert = String::from(sql::INSERT_ACTIVATIONS_HEAD);
            insert.push_str("VALUES ");
            let mut args = <DB::Arguments<'_>>::default();
            for (i, r) in chunk.iter().enumerate() {
                insert.push_str(if i == 0 { "(" } else { ", (" });
                push_bind(&mut insert, &mut args, r.activation_id.as_str(), false)?;
                push_bind(&mut insert, &mut args, r.namespace.as_str(), true)?;
                push_bind(&mut insert, &mut args, r.name.as_str(), true)?;
                push_bind(&mut insert, &mut args, entity_of(r), true)?;
                push_bind(&mut insert, &mut args, int(r.start), true)?;
                push_bind(&mut insert, &mut args, to_json(&**r)?, true)?;
                insert.push(')');
            }
            insert.push_str(sql::INSERT_ACTIVATIONS_TAIL);
            sqlx::query_with::<DB, _>(&insert, args)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in batch.settled.chunks(sql::ACTIVATION_INSERT_CHUNK) {
            let mut delete = String::from("DELETE FROM accepted WHERE activation_id IN (");
            let mut args = <DB::Arguments<'_>>::default();
            for (i, id) in chunk.iter().enumerate() {
                push_bind(&mut delete, &mut args, id.as_str(), i > 0)?;
            }
            delete.push(')');
            sqlx::query_with::<DB, _>(&delete, args)
                .execute(&mut *tx)
                .await?;
        }
        for ns in self.due_for_pruning(records) {
            sqlx::query::<DB>(sql::PRUNE_ACTIVATIONS)
                .bind(ns.as_str())
                .bind(int(self.retention - 1))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_user(&self, name: &str) -> StoreResult<Credentials> {
        let creds = Credentials::generate();
        self.write_user(sql::INSERT_USER, name, &creds, ("user", name))
            .await?;
        Ok(creds)
    }

    async fn set_user_key(&self, name: &str, creds: &Credentials) -> StoreResult<()> {
        // A conflict here: the uuid belongs to another user.
        self.write_user(sql::UPSERT_USER, name, creds, ("uuid", &creds.uuid))
            .await
    }

    async fn identity_by_uuid(&self, uuid: &str) -> StoreResult<Option<StoredIdentity>> {
        let row = sqlx::query::<DB>(sql::SELECT_IDENTITY_BY_UUID)
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
        let row = sqlx::query::<DB>(sql::SELECT_USER_BY_NAME)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(Self::user_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query::<DB>(sql::LIST_USERS)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(Self::user_from).collect()
    }

    async fn delete_user(&self, name: &str) -> StoreResult<bool> {
        // Queued records of the namespace must not land after the delete.
        self.batcher.flush().await?;
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("user:{name}")).await?;
        let Some(row) = sqlx::query::<DB>(sql::SELECT_USER_BY_NAME)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let user = Self::user_from(&row)?;
        for q in [
            sql::DELETE_NAMESPACE_ACTIONS,
            sql::DELETE_NAMESPACE_PACKAGES,
            sql::DELETE_NAMESPACE_TRIGGERS,
            sql::DELETE_NAMESPACE_RULES,
            sql::DELETE_NAMESPACE_ALARMS,
            sql::DELETE_NAMESPACE_ACTIVATIONS,
        ] {
            sqlx::query::<DB>(q)
                .bind(user.namespace.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query::<DB>(sql::DELETE_USER)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>(sql::DELETE_ALL_UNUSED_CODE)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn user_limits(&self, namespace: &str) -> StoreResult<Option<NamespaceLimits>> {
        let row = sqlx::query::<DB>(sql::SELECT_USER_LIMITS)
            .bind(namespace)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(Self::limits_from).transpose()
    }

    async fn set_user_limits(
        &self,
        name: &str,
        update: &LimitsUpdate,
    ) -> StoreResult<Option<NamespaceLimits>> {
        // Read, merge and write under the user's lock: concurrent updates of different keys
        // (on any replica) all take effect.
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("user:{name}")).await?;
        let Some(row) = sqlx::query::<DB>(sql::SELECT_USER_LIMITS_BY_NAME)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let limits = update.apply(Self::limits_from(&row)?);
        let column = |v: Option<u32>| v.map(i64::from);
        sqlx::query::<DB>(sql::UPDATE_USER_LIMITS)
            .bind(name)
            .bind(column(limits.invocations_per_minute))
            .bind(column(limits.concurrent_invocations))
            .bind(column(limits.fires_per_minute))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(limits))
    }

    async fn put_action(
        &self,
        key: &EntityKey,
        mut doc: ActionDoc,
        code: Option<Vec<u8>>,
        overwrite: bool,
    ) -> StoreResult<ActionDoc> {
        let package = key.package.as_deref().unwrap_or("");
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("action:{}", key.path())).await?;
        let existing = sqlx::query::<DB>(sql::SELECT_ACTION_DIGEST)
            .bind(key.namespace.as_str())
            .bind(package)
            .bind(key.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let (stored_version, old_digest) = match &existing {
            Some(row) => (
                Some(row.try_get::<String, _>(0)?),
                row.try_get::<Option<String>, _>(1)?,
            ),
            None => (None, None),
        };
        let version = next_version(stored_version.as_deref(), overwrite, "action", || {
            key.path()
        })?;
        let digest = prepare_action(key, &mut doc, version);
        // Code is shared between actions: lock the digests this write touches, in one order.
        if DB::LOCK_KEY.is_some() {
            let mut digests: Vec<&String> = digest.iter().chain(old_digest.iter()).collect();
            digests.sort();
            digests.dedup();
            for d in digests {
                Self::lock(&mut tx, &code_lock(d)).await?;
            }
        }
        match (&digest, code) {
            (Some(d), Some(bytes)) => {
                sqlx::query::<DB>(sql::INSERT_CODE)
                    .bind(d.as_str())
                    .bind(bytes.as_slice())
                    .bind(int(bytes.len() as u64))
                    .bind(int(now_ms()))
                    .execute(&mut *tx)
                    .await?;
            }
            (Some(d), None) => {
                let n: i64 = sqlx::query_scalar::<DB, i64>(sql::CODE_EXISTS)
                    .bind(d.as_str())
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
        sqlx::query::<DB>(sql::UPSERT_ACTION)
            .bind(key.namespace.as_str())
            .bind(package)
            .bind(key.name.as_str())
            .bind(doc.version.as_str())
            .bind(digest.as_deref())
            .bind(int(doc.updated))
            .bind(to_json(&doc)?)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = old_digest.filter(|o| Some(o) != digest.as_ref()) {
            sqlx::query::<DB>(sql::DELETE_UNUSED_CODE)
                .bind(old.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(doc)
    }

    async fn get_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        let row = sqlx::query::<DB>(sql::SELECT_ACTION)
            .bind(key.namespace.as_str())
            .bind(key.package.as_deref().unwrap_or(""))
            .bind(key.name.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(Self::parse).transpose()
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
                sqlx::query::<DB>(sql::LIST_ACTIONS)
                    .bind(namespace)
                    .bind(int(limit))
                    .bind(int(skip))
                    .fetch_all(&self.read)
                    .await?
            }
            Some(p) => {
                sqlx::query::<DB>(sql::LIST_PACKAGE_ACTIONS)
                    .bind(namespace)
                    .bind(p)
                    .bind(int(limit))
                    .bind(int(skip))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(Self::parse).collect()
    }

    async fn count_actions(&self, namespace: &str, package: Option<&str>) -> StoreResult<u64> {
        let n: i64 = match package {
            None => {
                sqlx::query_scalar::<DB, i64>(sql::COUNT_ACTIONS)
                    .bind(namespace)
                    .fetch_one(&self.read)
                    .await?
            }
            Some(p) => {
                sqlx::query_scalar::<DB, i64>(sql::COUNT_PACKAGE_ACTIONS)
                    .bind(namespace)
                    .bind(p)
                    .fetch_one(&self.read)
                    .await?
            }
        };
        Ok(count(n))
    }

    async fn delete_action(&self, key: &EntityKey) -> StoreResult<Option<ActionDoc>> {
        let package = key.package.as_deref().unwrap_or("");
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("action:{}", key.path())).await?;
        let Some(row) = sqlx::query::<DB>(sql::SELECT_ACTION)
            .bind(key.namespace.as_str())
            .bind(package)
            .bind(key.name.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: ActionDoc = Self::parse(&row)?;
        sqlx::query::<DB>(sql::DELETE_ACTION)
            .bind(key.namespace.as_str())
            .bind(package)
            .bind(key.name.as_str())
            .execute(&mut *tx)
            .await?;
        if let Exec::Wasm {
            digest: Some(d), ..
        } = &doc.exec
        {
            Self::lock(&mut tx, &code_lock(d)).await?;
            sqlx::query::<DB>(sql::DELETE_UNUSED_CODE)
                .bind(d.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(doc))
    }

    async fn get_code(&self, digest: &Digest) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar::<DB, Vec<u8>>(sql::SELECT_CODE)
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await?)
    }

    async fn has_code(&self, digest: &Digest) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar::<DB, i64>(sql::COUNT_CODE_OF)
            .bind(digest.as_str())
            .fetch_one(&self.write)
            .await?;
        Ok(n > 0)
    }

    async fn count_code(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar::<DB, i64>(sql::COUNT_CODE)
            .fetch_one(&self.read)
            .await?;
        Ok(count(n))
    }

    async fn put_package(
        &self,
        namespace: &str,
        doc: PackageDoc,
        overwrite: bool,
    ) -> StoreResult<PackageDoc> {
        self.put_named(
            "package",
            sql::SELECT_PACKAGE,
            sql::UPSERT_PACKAGE,
            namespace,
            None,
            doc,
            overwrite,
        )
        .await
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
        let mut tx = self.begin().await?;
        Self::lock(&mut tx, &format!("package:{namespace}/{name}")).await?;
        let Some(row) = sqlx::query::<DB>(sql::SELECT_PACKAGE)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let doc: PackageDoc = Self::parse(&row)?;
        let n: i64 = sqlx::query_scalar::<DB, i64>(sql::COUNT_PACKAGE_ACTIONS)
            .bind(namespace)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Err(StoreError::PackageNotEmpty(format!("/{namespace}/{name}")));
        }
        sqlx::query::<DB>(sql::DELETE_PACKAGE)
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
        doc: TriggerDoc,
        overwrite: bool,
    ) -> StoreResult<TriggerDoc> {
        self.put_named(
            "trigger",
            sql::SELECT_TRIGGER,
            sql::UPSERT_TRIGGER,
            namespace,
            None,
            doc,
            overwrite,
        )
        .await
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
            "trigger",
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
        doc: RuleDoc,
        overwrite: bool,
    ) -> StoreResult<RuleDoc> {
        let trigger = doc.trigger.fqn();
        self.put_named(
            "rule",
            sql::SELECT_RULE,
            sql::UPSERT_RULE,
            namespace,
            Some(trigger),
            doc,
            overwrite,
        )
        .await
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
        let rows = sqlx::query::<DB>(sql::RULES_FOR_TRIGGER)
            .bind(namespace)
            .bind(trigger_fqn)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(Self::parse).collect()
    }

    async fn delete_rule(&self, namespace: &str, name: &str) -> StoreResult<Option<RuleDoc>> {
        self.delete_named(
            "rule",
            sql::SELECT_RULE,
            &[sql::DELETE_RULE],
            namespace,
            name,
        )
        .await
    }

    async fn put_alarm(&self, alarm: &AlarmRow) -> StoreResult<()> {
        sqlx::query::<DB>(sql::UPSERT_ALARM)
            .bind(alarm.namespace.as_str())
            .bind(alarm.trigger.as_str())
            .bind(int(alarm.next_fire))
            .bind(to_json(&alarm.spec)?)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn get_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<Option<AlarmRow>> {
        let row = sqlx::query::<DB>(sql::SELECT_ALARM)
            .bind(namespace)
            .bind(trigger)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(Self::alarm_from).transpose()
    }

    async fn due_alarms(&self, now: u64, limit: u64) -> StoreResult<Vec<AlarmRow>> {
        let rows = sqlx::query::<DB>(sql::DUE_ALARMS)
            .bind(int(now))
            .bind(int(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(Self::alarm_from).collect()
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
                sqlx::query::<DB>(sql::CLAIM_ALARM)
                    .bind(namespace)
                    .bind(trigger)
                    .bind(int(old_next))
                    .bind(int(next))
                    .execute(&self.write)
                    .await?
            }
            None => {
                sqlx::query::<DB>(sql::CLAIM_LAST_ALARM)
                    .bind(namespace)
                    .bind(trigger)
                    .bind(int(old_next))
                    .execute(&self.write)
                    .await?
            }
        };
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn delete_alarm(&self, namespace: &str, trigger: &str) -> StoreResult<bool> {
        let done = sqlx::query::<DB>(sql::DELETE_ALARM)
            .bind(namespace)
            .bind(trigger)
            .execute(&self.write)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn put_activation(&self, record: ActivationRecord) -> StoreResult<()> {
        self.batcher.put(record).await
    }

    async fn accept_activation(&self, owner: &str, fallback: ActivationRecord) -> StoreResult<()> {
        self.batcher
            .accept(Acceptance {
                owner: owner.to_string(),
                accepted_ms: now_ms(),
                fallback,
            })
            .await
    }

    async fn recover_accepted(&self, instance: &str, recovery: Recovery) -> StoreResult<u64> {
        sqlx::query::<DB>(sql::DELETE_SETTLED_ACCEPTED)
            .execute(&self.write)
            .await?;
        let rows = match recovery {
            Recovery::Everything => {
                sqlx::query::<DB>(sql::SELECT_ALL_ACCEPTED)
                    .fetch_all(&self.write)
                    .await?
            }
            Recovery::Own => {
                sqlx::query::<DB>(sql::SELECT_ACCEPTED_OF)
                    .bind(instance)
                    .fetch_all(&self.write)
                    .await?
            }
            Recovery::Orphans { dead_after } => {
                let seen_since = now_ms().saturating_sub(dead_after.as_millis() as u64);
                sqlx::query::<DB>(sql::CLAIM_ORPHANED_ACCEPTED)
                    .bind(instance)
                    .bind(int(seen_since))
                    .fetch_all(&self.write)
                    .await?
            }
        };
        let now = now_ms();
        let mut finished = Vec::with_capacity(rows.len());
        for row in rows {
            let doc: String = row.try_get(0)?;
            let mut record: ActivationRecord = serde_json::from_str(&doc).map_err(corrupt)?;
            record.end = now.max(record.start);
            record.duration = record.end - record.start;
            finished.push(self.batcher.put_settled(record));
        }
        let n = finished.len() as u64;
        for result in futures::future::join_all(finished).await {
            result?;
        }
        Ok(n)
    }

    async fn heartbeat(&self, instance: &str, alive: bool) -> StoreResult<()> {
        if alive {
            sqlx::query::<DB>(sql::UPSERT_INSTANCE)
                .bind(instance)
                .bind(int(now_ms()))
                .execute(&self.write)
                .await?;
        } else {
            sqlx::query::<DB>(sql::DELETE_INSTANCE)
                .bind(instance)
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> StoreResult<Option<ActivationRecord>> {
        if let Some(r) = self.batcher.get(namespace, id) {
            return Ok(Some(r));
        }
        let row = sqlx::query::<DB>(sql::SELECT_ACTIVATION)
            .bind(namespace)
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        match row {
            Some(row) => Self::parse(&row).map(Some),
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
        let rows = sqlx::query::<DB>(sql::LIST_ACTIVATIONS)
            .bind(namespace)
            .bind(filter.name.as_deref())
            .bind(filter.since.map(int))
            .bind(filter.upto.map(int))
            .bind(int(limit))
            .bind(int(skip))
            .fetch_all(&self.read)
            .await?;
        let stored: Vec<ActivationRecord> =
            rows.iter().map(Self::parse).collect::<StoreResult<_>>()?;
        if queued.is_empty() {
            return Ok(stored);
        }
        Ok(merge_activations(queued, stored, filter))
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
        let n: i64 = sqlx::query_scalar::<DB, i64>(sql::COUNT_ACTIVATIONS)
            .bind(namespace)
            .bind(filter.name.as_deref())
            .bind(filter.since.map(int))
            .bind(filter.upto.map(int))
            .fetch_one(&self.read)
            .await?;
        Ok(count(n))
    }

    async fn flush(&self) -> StoreResult<()> {
        self.batcher.flush().await
    }

    async fn close(&self) -> StoreResult<()> {
        let flushed = self.batcher.close().await;
        self.read.close().await;
        self.write.close().await;
        let maintenance = self
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = maintenance {
            let _ = task.await;
        }
        flushed
    }
}

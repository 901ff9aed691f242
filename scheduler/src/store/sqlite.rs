//! The embedded store: one SQLite file `<data-dir>/wisp.db` (WAL; `synchronous=NORMAL` by
//! default, `FULL` with `--store-sync full`, see [`crate::config::StoreSync`]), opened
//! with migrations from `migrations/sqlite/`. Writes go through a one-connection pool (SQLite
//! has one writer at a time; this keeps lock upgrades out of the picture), reads through a small
//! pool that WAL lets run beside the writer. Activation records are group-committed
//! ([`super::batcher`]): `put_activation` returns once its batch is committed.
//!
//! The queries and flows are [`super::common::SqlStore`]'s, shared with PostgreSQL; this file
//! only connects and migrates.
//!
//! Cost: opening runs the migrations and spawns one writer task; each entity write is one
//! transaction (with an fsync under `FULL`); `put_activation` waits for one group commit.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult};

use super::StoreResult;
use super::common::{Backend, SqlStore};

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
            Migration::new(
                3,
                Cow::Borrowed("namespace_limits"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!(
                    "../../migrations/sqlite/0003_namespace_limits.sql"
                )),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("accepted"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/sqlite/0004_accepted.sql")),
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
    pub read_connections: u32,
    /// `synchronous=NORMAL` (survives a process crash) or `FULL` (survives a power loss).
    pub sync: crate::config::StoreSync,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            activation_retention: 10_000,
            batch_size: 512,
            read_connections: 4,
            sync: crate::config::StoreSync::default(),
        }
    }
}

impl SqliteOptions {
    pub fn from_config(c: &crate::config::SchedulerConfig) -> Self {
        SqliteOptions {
            activation_retention: c.activation_retention,
            batch_size: c.activation_batch_size,
            sync: c.store_sync,
            ..SqliteOptions::default()
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; lives as long as the scheduler.
pub type SqliteStore = SqlStore<Sqlite>;

impl Backend for Sqlite {
    // One write connection: writers already take turns.
    const LOCK_KEY: Option<&'static str> = None;

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) `<data_dir>/wisp.db` and migrates it.
    pub async fn open(data_dir: &Path, options: SqliteOptions) -> StoreResult<Self> {
        make_private(data_dir)?;
        let connect = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // After a checkpoint resets the WAL, SQLite truncates the file down to this.
            .pragma("journal_size_limit", WAL_TRUNCATE_BYTES.to_string())
            .synchronous(options.sync.sqlite())
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A COMMIT that fails on an I/O error (disk full, read-only) is rolled back by
            // SQLite itself; sqlx's own ROLLBACK then fails and the connection stays "in a
            // transaction", so every later write would be a savepoint that never commits
            // (answered Ok, lost). Such a connection is closed; the pool opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        migrator().run(&write).await?;
        // Checkpoints off the commit path: SQLite's automatic checkpoint runs inside the commit
        // that crosses 1,000 WAL pages, copying the WAL into the database file (and fsyncing
        // it), which stalls that group commit — and every invoke waiting on it — for
        // milliseconds. The writer never checkpoints; a task does PASSIVE checkpoints (which
        // never block the writer or readers) on a connection of its own.
        let checkpointer =
            spawn_checkpointer(connect.clone(), write.clone(), data_dir.join(WAL_FILE)).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await?;
        Ok(SqlStore::from_pools(
            write,
            read,
            options.activation_retention,
            options.batch_size,
        )
        .with_maintenance(checkpointer))
    }
}

/// Makes `data_dir` (created if missing) `0700` and the store's files in it `0600`, whatever the
/// umask: they hold every tenant's parameters, code, results and key hashes. The database file
/// is created here, before SQLite opens it, because SQLite gives the `-wal` and `-shm` files it
/// creates later the mode of the database file.
pub fn make_private(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let db = data_dir.join(DB_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&db)?;
    for suffix in ["", "-wal", "-shm"] {
        let path = data_dir.join(format!("{DB_FILE}{suffix}"));
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// The write-ahead log beside [`DB_FILE`].
pub const WAL_FILE: &str = "wisp.db-wal";

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The WAL size past which the checkpointer forces a `TRUNCATE` checkpoint, and the size SQLite
/// truncates the WAL to after a reset (`journal_size_limit`).
pub const WAL_TRUNCATE_BYTES: u64 = 64 << 20;

/// Keeps the WAL bounded without putting checkpoints on the commit path.
///
/// Every [`CHECKPOINT_EVERY`] it runs `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its
/// own: that never blocks the writer or readers, but under steady load it never *completes* —
/// some reader always holds an older snapshot, so the WAL is never reset and grows without
/// bound (measured: 14.7 GB in 5 minutes). So once the WAL file is past
/// [`WAL_TRUNCATE_BYTES`] it runs `wal_checkpoint(TRUNCATE)`, which waits (busy timeout) for
/// the readers to move to the newest snapshot, holds up writes for the few ms it takes to copy
/// the rest (it runs on the one write connection, so writes queue behind it), and truncates
/// the file: the WAL stays under about twice the threshold, at the
/// price of one short write stall per 64 MB of records. When `write` is closed (the store's
/// `close`) it does a last `TRUNCATE` and closes its connection, the last one, so SQLite
/// removes the WAL: a clean stop leaves only `wisp.db`. A failed checkpoint is logged and
/// retried at the next tick.
async fn spawn_checkpointer(
    connect: SqliteConnectOptions,
    write: sqlx::SqlitePool,
    wal: std::path::PathBuf,
) -> StoreResult<tokio::task::JoinHandle<()>> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if write.is_closed() {
                break;
            }
            let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            // TRUNCATE takes the writer lock. On a connection of its own it would race the
            // write connection's deferred transactions, which SQLite then fails at once with
            // SQLITE_BUSY (a reader cannot wait to become a writer); on the write connection
            // itself, writes simply queue behind it for the pool.
            let (mode, on) = if wal_bytes > WAL_TRUNCATE_BYTES {
                ("TRUNCATE", &write)
            } else {
                ("PASSIVE", &pool)
            };
            if let Err(e) = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})"))
                .execute(on)
                .await
            {
                tracing::warn!(error = %e, mode, "WAL checkpoint failed");
            }
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        pool.close().await;
    }))
}

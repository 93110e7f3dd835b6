//! The operational store: SQLite (embedded default) or PostgreSQL (production) behind one
//! interface. Queries are written once, with `$N` placeholders that both accept; what differs —
//! migrations, how a write transaction starts, what a constraint error looks like — lives here.
//!
//! SQLite has one writer at a time, so the store gives it exactly one: every write goes through
//! `writer()`, one connection, and waits in its in-process queue (first come, first served)
//! instead of many connections racing for the file lock. Reads use the readers (WAL: they never
//! wait for the writer). SQLite's connections are called in place, without sqlx's thread per
//! connection (`sqlite.rs` says why); sqlx's own pools remain for migrations and the outbox's
//! relay. A write transaction still starts with `BEGIN IMMEDIATE`, which takes the lock up
//! front, so another process on the same file (a one-shot command beside `parkflow serve`)
//! cannot interleave a check-then-insert; a lock held by another process is waited for
//! asynchronously, and changes queued for the writer share one commit, each that joins a
//! waiting one in a savepoint (`handles.rs`). PostgreSQL runs writers concurrently
//! (`writer()` is the pool itself); there, constraints (unique and exclusion) are what settle
//! races.

use crate::domain::error::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, SqlSafeStr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(Error::Config(format!(
                "unsupported database URL `{url}`: use sqlite://path or postgres://…"
            )))
        }
    }

    /// Every migration of this backend, in version order: `build.rs` embeds each file of
    /// `migrations/<backend>/`, so none can be left out.
    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Self::Sqlite => embedded::SQLITE,
            Self::Postgres => embedded::POSTGRES,
        }
    }
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// Bytes per page of an SQLite file the store creates (SQLite's default is 4,096). Each commit
/// copies every page it changed into the WAL, and a booking changes a leaf of several indexes
/// at scattered places (by spot, by user, the key, the driver's messages): half-size pages
/// halve those copies. `bench api` booked 2–7 % more with 2,048 than with 4,096, and 10 % less
/// with 8,192 (BENCHMARKS.md, stop 42). A file made before keeps the size it was made with.
pub const SQLITE_PAGE_SIZE: u32 = 2048;

#[derive(Debug, Clone)]
pub struct Store {
    /// Readers (and, on PostgreSQL, writers too).
    pool: Handle,
    /// The one connection that writes to an SQLite file; on PostgreSQL the pool itself.
    writer: Handle,
    /// sqlx's pools on the same database, for the outbox's reads and the relay's one write
    /// (on PostgreSQL, `pool` again).
    outbox_pools: (AnyPool, AnyPool),
    /// SQLite's WAL checkpoints, on a thread of their own (`checkpoint.rs`), kept for as long
    /// as the store.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    backend: Backend,
    /// Poked after each committed [`Change`]: this process's side of the change signal (other
    /// processes' changes are seen by reading the outbox, see `services::live`).
    committed: Arc<Notify>,
    /// PostgreSQL's booking writer (`group.rs`); none on SQLite, whose writer groups every
    /// change.
    bookings: Option<group::GroupWriter>,
}

impl Store {
    /// Open (creating an SQLite file if missing) and migrate the database at `url`, with the
    /// default connections.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`open`](Self::open) with `options`' connections.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self> {
        let writers = options.sqlite_writers;
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (outbox_pool, outbox_writer) = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let sqlite = |connections: u32| {
                    // A local file does not drop connections: no ping before each use (on
                    // the one writer, a ping per write would queue behind every write).
                    AnyPoolOptions::new()
                        .max_connections(connections)
                        .test_before_acquire(false)
                        .acquire_timeout(Duration::from_secs(60))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // The page size first: it only takes on a file not yet
                                // written, and WAL mode fixes it.
                                conn.execute(AssertSqlSafe(format!(
                                    "PRAGMA page_size = {SQLITE_PAGE_SIZE}; \
                                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;"
                                )))
                                .await?;
                                Ok(())
                            })
                        })
                };
                // The writer first: it creates the file and switches it to WAL.
                let writer = sqlite(writers.max(1)).connect(&url).await?;
                (sqlite(4).connect(&url).await?, writer)
            }
            Backend::Postgres => {
                let pool = options::postgres_pool(&options).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        let migrator = Migrator::with_migrations(
            backend
                .migrations()
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        (*d).into(),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        );
        migrator.run(&outbox_writer).await?;
        let (pool, writer, checkpointer) = match backend {
            // The writer's own connection, unless several were asked for (the old way).
            Backend::Sqlite if writers <= 1 => {
                let path = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_owned();
                // Readers never commit; the writer checkpoints what the thread has not.
                let readers = (0..READERS)
                    .map(|_| sqlite::Connection::open(&path, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let writer_pages = checkpoint::WRITER_CHECKPOINT_PAGES;
                (
                    Handle::Sqlite(Arc::new(Connections::new(readers))),
                    Handle::Sqlite(Arc::new(Connections::writer(sqlite::Connection::open(
                        &path,
                        writer_pages,
                    )?)?)),
                    Some(Arc::new(checkpoint::Checkpointer::start(&path)?)),
                )
            }
            // Readers lent without the pool's round trip as each goes back (`lender.rs`), as
            // many as the pool has; changes on the pool.
            Backend::Postgres => (
                Handle::Lender(Arc::new(
                    handles::lender::Lender::new(
                        outbox_pool.connect_options(),
                        options.postgres_connections,
                        options.postgres_wait,
                    )
                    .with_limits(options.postgres_lifetime, options.postgres_idle),
                )),
                Handle::Pool(outbox_writer.clone()),
                None,
            ),
            Backend::Sqlite => (
                Handle::Pool(outbox_pool.clone()),
                Handle::Pool(outbox_writer.clone()),
                None,
            ),
        };
        let committed = Arc::new(Notify::new());
        let bookings = match (&writer, backend) {
            (Handle::Pool(pool), Backend::Postgres) => {
                let limits = (options.postgres_lifetime, options.postgres_idle);
                Some(group::GroupWriter::start(
                    pool.clone(),
                    committed.clone(),
                    limits,
                ))
            }
            _ => None,
        };
        Ok(Self {
            pool,
            writer,
            outbox_pools: (outbox_pool, outbox_writer),
            _checkpointer: checkpointer,
            backend,
            committed,
            bookings,
        })
    }

    /// The readers. A statement that changes a row goes to `writer()` instead. While a
    /// [`Batch`] runs, the writer itself: only its connection sees the batch's changes.
    pub fn pool(&self) -> &Handle {
        match &self.writer {
            Handle::Sqlite(set) if set.in_batch() => &self.writer,
            _ => &self.pool,
        }
    }

    /// Run the changes that follow in a [`Batch`] (`handles/batch.rs`): each answered at once,
    /// all written at the batch's commits. Only for a replay that is the store's one client;
    /// on PostgreSQL each change still commits on its own.
    pub async fn begin_batch(&self) -> Result<Batch> {
        match &self.writer {
            Handle::Sqlite(set) => Batch::begin(set).await,
            Handle::Pool(_) | Handle::Lender(_) => Ok(Batch::none()),
        }
    }

    /// Where every write goes: a single-statement change runs on it directly, a multi-statement
    /// one in `begin_change()`. Never hold a write transaction while waiting for the writer: on
    /// SQLite that waits for itself.
    pub fn writer(&self) -> &Handle {
        &self.writer
    }

    /// Close readers and the writer (the WAL is checkpointed when the last connection closes).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
        self.outbox_pools.0.close().await;
        self.outbox_pools.1.close().await;
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The single SQLite writer's transactions and the other connections' commits it found
    /// (`watch.rs`); `None` on PostgreSQL or with several writers.
    pub fn writer_watch(&self) -> Option<&Arc<WriterWatch>> {
        match &self.writer {
            Handle::Sqlite(set) => set.watch(),
            Handle::Pool(_) | Handle::Lender(_) => None,
        }
    }

    /// A state change made at `now`: its rows, events, audit rows and messages commit together
    /// (see [`Change`]). Its transaction holds SQLite's write lock from the start.
    pub async fn begin_change(&self, now: DateTime<Utc>) -> Result<Change> {
        let conn = match (&self.writer, self.backend) {
            (Handle::Sqlite(set), _) => Conn::Sqlite(set.begin_change().await?),
            (Handle::Pool(pool), Backend::Sqlite) => {
                Conn::Transaction(pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            (Handle::Pool(pool), Backend::Postgres) => Conn::Transaction(pool.begin().await?),
            (Handle::Lender(_), _) => unreachable!("the writer is a pool or SQLite's own"),
        };
        Ok(Change::new(conn, now, self.committed.clone()))
    }

    /// Wait until a change of this process commits (one that committed since the last wait
    /// counts too: the wake-up is kept until someone waits).
    pub async fn committed(&self) {
        self.committed.notified().await
    }

    /// The outbox of this database.
    pub fn outbox(&self) -> parkflow_outbox::Outbox {
        parkflow_outbox::Outbox::with_writer(
            self.outbox_pools.0.clone(),
            self.outbox_pools.1.clone(),
        )
    }

    /// Number of events recorded in the outbox.
    pub async fn outbox_len(&self) -> Result<i64> {
        Ok(self.outbox().len().await?)
    }

    /// Highest outbox position written so far (0 when empty).
    pub async fn outbox_head(&self) -> Result<i64> {
        Ok(self.outbox().head().await?)
    }
}

/// `sqlx::FromRow` for a struct whose fields are named as its columns (sqlx's derive needs its
/// macros feature, which would build the drivers a second time for the compiler).
macro_rules! from_row {
    ($name:ident { $($field:ident),+ $(,)? }) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $name {
            fn from_row(row: &'r sqlx::any::AnyRow) -> sqlx::Result<Self> {
                use sqlx::Row;
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?,)+
                })
            }
        }
    };
}

/// The SQL condition "this reservation holds its spot", optionally on a table alias.
macro_rules! holding {
    () => {
        "status IN ('active', 'checked_in')"
    };
    ($alias:literal) => {
        concat!($alias, ".status IN ('active', 'checked_in')")
    };
}

/// "Reservation `r` overlaps `[$3, $4)`" per store. PostgreSQL spells it as the expression of
/// the `holding_reservations_by_lot_window` GiST index, which leads with the lot: a btree can
/// bound only one end of an interval, and the exclusion constraint's index (led by the spot,
/// with another range expression on purpose) would read every lot's overlapping reservations.
macro_rules! overlaps_window {
    (sqlite) => {
        "r.start_at < $4 AND r.end_at > $3"
    };
    (postgres) => {
        "int8range(r.start_at, r.end_at) && int8range($3, $4)"
    };
}

/// Open spots of lot `$1` that no holding reservation occupies during `[$3, $4)` — with
/// `except`, none other than `$5` (a change moving its own reservation); with `any`, there is
/// no `$5`. With `spot`, only spot `$2`, found by its key (one text for both forms, with
/// `$2 IS NULL OR s.id = $2`, made SQLite walk the lot's spots to find it: 87 µs instead of
/// 4.5); with `lot`, all of them (`$2` is then null and unused, so that both forms take the
/// same arguments). SQLite probes its per-spot index for each spot, latest start first
/// (migration 0018), so a taken spot is known from its first entry; without `$5` the probe
/// reads the index alone (the reservation's id is not in it: with `r.id <> $5` every taken
/// spot also read its reservation's row, which made a full window's refusal read a table page
/// per spot). PostgreSQL
/// reads the lot's overlapping holds once through the lot-and-window GiST index into a hashed
/// set: a correlated `NOT EXISTS` there becomes, while the table's statistics are still young,
/// a nested loop that scans the window once per spot (60 ms instead of 1 ms on a busy lot).
macro_rules! free_spots_sql {
    ($store:ident, spot, $except:ident) => {
        free_spots_sql!($store, "s.id = $2 AND s.lot_id = $1", $except)
    };
    ($store:ident, lot, $except:ident) => {
        free_spots_sql!(
            $store,
            "s.lot_id = $1 AND CAST($2 AS BIGINT) IS NULL",
            $except
        )
    };
    ($store:ident, $which:literal, any) => {
        free_spots_sql!($store, $which, "")
    };
    ($store:ident, $which:literal, except) => {
        free_spots_sql!($store, $which, " AND r.id <> $5")
    };
    (sqlite, $which:literal, $except:literal) => {
        concat!(
            "SELECT s.id, s.label, s.vehicle_type, s.latitude, s.longitude FROM spots s WHERE ",
            $which,
            " AND s.closed = 0
               AND NOT EXISTS (SELECT 1 FROM reservations r
                               WHERE r.spot_id = s.id AND ",
            holding!("r"),
            " AND ",
            overlaps_window!(sqlite),
            $except,
            ")
             ORDER BY s.id"
        )
    };
    (postgres, $which:literal, $except:literal) => {
        concat!(
            "SELECT s.id, s.label, s.vehicle_type, s.latitude, s.longitude FROM spots s WHERE ",
            $which,
            " AND s.closed = 0
               AND s.id NOT IN (SELECT r.spot_id FROM reservations r
                                WHERE r.lot_id = $1 AND ",
            holding!("r"),
            " AND ",
            overlaps_window!(postgres),
            $except,
            ")
             ORDER BY s.id"
        )
    };
}

pub mod accounts;
mod change;
mod checkpoint;
pub mod desk;
pub mod forecasts;
pub mod group;
mod handles;
pub mod idempotency;
pub mod lots;
pub mod monthly;
pub mod notifications;
mod options;
pub mod payments;
pub mod rates;
pub mod reservations;
mod sqlite;
pub mod stays;
pub mod waitlist;
mod watch;

/// Anything a statement can run on: the readers (`store.pool()`), the writer
/// (`store.writer()`), a connection, or a transaction (`&mut *tx`). Repositories take one, so
/// the caller decides whether a statement joins its transaction.
pub trait Db<'c>: sqlx::Executor<'c, Database = Any> {}

impl<'c, T: sqlx::Executor<'c, Database = Any>> Db<'c> for T {}

/// How a write lost to a concurrent one. The database rolled the whole transaction back, so
/// running it again on what has been committed meanwhile is safe; what the caller does next
/// depends on which race it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRace {
    /// A unique key (one open stay per spot, an idempotency key) went to the other writer.
    Unique,
    /// PostgreSQL's exclusion constraint refused a booking overlapping one just committed.
    Exclusion,
    /// PostgreSQL chose this transaction to break a deadlock, or to keep serializable
    /// transactions consistent. Two bookings inserting overlapping rows at the same instant
    /// each wait for the other's exclusion check: one of them ends here.
    Aborted,
}

/// PostgreSQL's codes for the races of [`LostRace`] (SQLite's single writer has none of them).
const EXCLUSION_VIOLATION: &str = "23P01";
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";

/// Which race `e` says the transaction lost, if that is what it says.
pub fn lost_race(e: &Error) -> Option<LostRace> {
    if let Some(race) = group::lost_in_group(e) {
        return Some(race);
    }
    let Error::Storage(cause) = e else {
        return None;
    };
    let Some(sqlx::Error::Database(d)) = cause.downcast_ref::<sqlx::Error>() else {
        return None;
    };
    if d.is_unique_violation() {
        return Some(LostRace::Unique);
    }
    match d.code().as_deref() {
        Some(EXCLUSION_VIOLATION) => Some(LostRace::Exclusion),
        Some(SERIALIZATION_FAILURE | DEADLOCK_DETECTED) => Some(LostRace::Aborted),
        _ => None,
    }
}

/// What an insert `... ON CONFLICT DO NOTHING` that may meet a row already under one of its
/// unique keys did: `true` inserted, `false` the key was taken. The insert does nothing rather
/// than fail, so it may run inside a transaction: on PostgreSQL a failed statement aborts it.
fn unless_taken(inserted: sqlx::any::AnyQueryResult) -> bool {
    inserted.rows_affected() == 1
}

pub use change::Change;
use handles::Connections;
pub use handles::batch::Batch;
pub use handles::{Conn, Handle};
use options::PING_WHEN_IDLE_FOR;
pub use options::{
    CLOSE_WHEN_IDLE_FOR, CONNECTION_LIFETIME, POSTGRES_CONNECTIONS, POSTGRES_WAIT, StoreOptions,
};
pub use watch::{Watched, WriterWatch};

/// SQLite's readers: enough for the API's concurrent reads on two cores (each read holds one
/// only while SQLite steps it).
const READERS: usize = 4;

/// The driver's errors are storage faults of the core's [`Error`]; only this layer looks
/// inside them ([`lost_race`]).
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // No connection came free (or could be made) in the pool's wait: answered 503.
            sqlx::Error::PoolTimedOut => Error::Unavailable { retry_after_s: 1 },
            e => Error::Storage(Box::new(e)),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Storage(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::{SQLITE_PAGE_SIZE, Store};

    /// A file the store creates gets the store's page size; a file made before with SQLite's
    /// default keeps it, and opens and migrates as before.
    #[tokio::test]
    async fn new_files_get_the_stores_page_size_and_older_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |store: Store| async move {
            let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(store.writer())
                .await
                .unwrap();
            let lots: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lots")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(lots, 0, "migrated");
            size
        };
        let fresh = dir.path().join("fresh.db");
        let store = Store::open(&format!("sqlite://{}", fresh.display()))
            .await
            .unwrap();
        assert_eq!(page_size(store).await, i64::from(SQLITE_PAGE_SIZE));
        let older = dir.path().join("older.db");
        rusqlite::Connection::open(&older)
            .unwrap()
            .execute_batch(
                "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);",
            )
            .unwrap();
        let store = Store::open(&format!("sqlite://{}", older.display()))
            .await
            .unwrap();
        assert_eq!(page_size(store).await, 4096);
    }
}

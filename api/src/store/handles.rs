//! Where the store's statements run: SQLite's own connections called in place
//! ([`super::sqlite`]), or a sqlx pool (PostgreSQL; and SQLite with several writers, which only
//! `parkflow bench api` opens, to print what the single writer saves).
//!
//! [`Handle`] is what `Store::pool()` and `Store::writer()` give: a statement runs on it
//! directly, or [`Handle::acquire`] lends a [`Conn`] for several. A [`Conn`] is also what a
//! `Change` writes through. All three are sqlx executors of the `Any` database, so a repository
//! takes any of them.

use super::sqlite::{self, Connection, Done};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Either, Execute, Executor, SqlStr, Transaction};
use sqlx_core::any::AnyValueKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long a statement outside a transaction keeps retrying while another process holds
/// the database's lock (what `busy_timeout` did on sqlx's connections).
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Readers or the writer of a store.
#[derive(Debug, Clone)]
pub enum Handle {
    /// SQLite connections called in place; the writer is a set of one.
    Sqlite(Arc<Connections>),
    Pool(AnyPool),
}

/// SQLite connections lent one task at a time, first come first served.
pub struct Connections {
    all: Vec<Arc<Mutex<Connection>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} SQLite connections", self.all.len())
    }
}

impl Connections {
    pub fn new(all: Vec<Connection>) -> Self {
        Self {
            all: all.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free connection, or the next one's turn when all are lent.
    async fn lend(&self) -> SqliteConn {
        for c in &self.all {
            if let Ok(guard) = c.clone().try_lock_owned() {
                return SqliteConn(guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.all.len();
        SqliteConn(self.all[i].clone().lock_owned().await)
    }

    async fn close(&self) {
        for c in &self.all {
            c.lock().await.close();
        }
    }
}

/// A lent SQLite connection. Given back with a transaction still open (a change dropped
/// without committing, or a task cancelled mid-change), it rolls the transaction back first.
pub struct SqliteConn(OwnedMutexGuard<Connection>);

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if !self.0.autocommit() {
            // Nothing to report to: the change this belonged to is gone, and a failed
            // rollback leaves the connection in the transaction, which the next run reports.
            let _ = self.0.run("ROLLBACK", &[], true);
        }
    }
}

impl SqliteConn {
    /// Run `sql` in place; outside a transaction, a database another process has locked is
    /// waited for asynchronously (the calling thread never sleeps in SQLite).
    pub async fn run(
        &mut self,
        sql: &str,
        args: &[AnyValueKind],
        persistent: bool,
    ) -> Result<Done, sqlx::Error> {
        let deadline = Instant::now() + BUSY_WAIT;
        loop {
            match self.0.run(sql, args, persistent) {
                Err(e)
                    if sqlite::is_busy(&e) && self.0.autocommit() && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn query<'q>(&mut self, mut query: impl Execute<'q, Any>) -> Result<Done, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent();
        let sql = query.sql();
        let values = arguments.as_ref().map_or(&[][..], |a| &a.values.0[..]);
        self.run(sql.as_str(), values, persistent).await
    }
}

/// A connection held across statements.
pub enum Conn {
    Sqlite(SqliteConn),
    Pooled(PoolConnection<Any>),
    /// A write transaction on a pool's connection (PostgreSQL).
    Transaction(Transaction<'static, Any>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "an SQLite connection",
            Conn::Pooled(_) => "a pooled connection",
            Conn::Transaction(_) => "a transaction",
        })
    }
}

impl Handle {
    /// A connection for several statements (a transaction is begun on it by `Change`).
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Handle::Sqlite(set) => Conn::Sqlite(set.lend().await),
            Handle::Pool(pool) => Conn::Pooled(pool.acquire().await?),
        })
    }

    pub(super) async fn close(&self) {
        match self {
            Handle::Sqlite(set) => set.close().await,
            Handle::Pool(pool) => pool.close().await,
        }
    }
}

fn unprepared<'e>() -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>> {
    Box::pin(async {
        Err(sqlx::Error::AnyDriverError(
            "the embedded store runs statements in place and prepares none for callers".into(),
        ))
    })
}

fn in_place<'e>(
    run: impl Future<Output = Result<Done, sqlx::Error>> + Send + 'e,
) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
    Box::pin(
        stream::once(run)
            .map_ok(|done| stream::iter(done.into_results()))
            .try_flatten(),
    )
}

fn first_row(done: Done) -> Option<AnyRow> {
    done.rows.into_iter().next()
}

impl<'c> Executor<'c> for &'c Handle {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Handle::Sqlite(set) => in_place(async move { set.lend().await.query(query).await }),
            Handle::Pool(pool) => pool.fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Handle::Sqlite(set) => {
                Box::pin(async move { Ok(first_row(set.lend().await.query(query).await?)) })
            }
            Handle::Pool(pool) => pool.fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Handle::Sqlite(_) => unprepared(),
            Handle::Pool(pool) => pool.prepare_with(sql, parameters),
        }
    }
}

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn::Sqlite(c) => in_place(c.query(query)),
            Conn::Pooled(c) => (&mut **c).fetch_many(query),
            Conn::Transaction(t) => (&mut **t).fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn::Sqlite(c) => Box::pin(async move { Ok(first_row(c.query(query).await?)) }),
            Conn::Pooled(c) => (&mut **c).fetch_optional(query),
            Conn::Transaction(t) => (&mut **t).fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Conn::Sqlite(_) => unprepared(),
            Conn::Pooled(c) => (&mut **c).prepare_with(sql, parameters),
            Conn::Transaction(t) => (&mut **t).prepare_with(sql, parameters),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;
    use std::sync::Arc;

    fn database(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("t.db");
        let create = rusqlite::Connection::open(&path).unwrap();
        create
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            .unwrap();
        path
    }

    fn text(s: &str) -> AnyValueKind {
        AnyValueKind::Text(Arc::new(s.to_owned()))
    }

    #[tokio::test]
    async fn parameters_take_their_numbered_arguments_and_rows_read_back_typed() {
        let dir = tempfile::tempdir().unwrap();
        let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
        let mut c = set.lend().await;
        let done = c
            .run(
                "SELECT $2 AS b, $1 AS a, $2 AS again, 1.5 AS x, NULL AS n",
                &[AnyValueKind::BigInt(7), text("é,\n")],
                true,
            )
            .await
            .unwrap();
        let row = &done.rows[0];
        assert_eq!(row.get::<String, _>("b"), "é,\n");
        assert_eq!(row.get::<i64, _>("a"), 7);
        assert_eq!(row.get::<String, _>("again"), "é,\n");
        assert_eq!(row.get::<f64, _>("x"), 1.5);
        assert_eq!(row.get::<Option<i64>, _>("n"), None);
        // A parameter with no argument is an error, not a NULL.
        assert!(c.run("SELECT $3", &[], true).await.is_err());
    }

    #[tokio::test]
    async fn a_unique_violation_is_reported_as_one_and_counts_changes() {
        let dir = tempfile::tempdir().unwrap();
        let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
        let mut c = set.lend().await;
        let insert = "INSERT INTO t (name) VALUES ($1)";
        let done = c.run(insert, &[text("a")], true).await.unwrap();
        assert_eq!(done.rows_affected, 1);
        let Err(sqlx::Error::Database(e)) = c.run(insert, &[text("a")], true).await else {
            panic!("a second `a` must be refused");
        };
        assert!(e.is_unique_violation(), "{e}");
    }

    #[tokio::test]
    async fn a_connection_given_back_mid_transaction_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let set = Connections::new(vec![Connection::open(&database(&dir), 0).unwrap()]);
        let mut c = set.lend().await;
        c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
        c.run("INSERT INTO t (name) VALUES ('lost')", &[], true)
            .await
            .unwrap();
        drop(c);
        let mut c = set.lend().await;
        let done = c
            .run("SELECT COUNT(*) AS n FROM t", &[], true)
            .await
            .unwrap();
        assert_eq!(done.rows[0].get::<i64, _>("n"), 0);
        c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
    }

    /// Another process's lock is waited for by sleeping asynchronously: on a single-threaded
    /// runtime the task that releases the lock still runs while the write waits.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lock_held_elsewhere_is_waited_for_without_blocking_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = database(&dir);
        let set = Connections::new(vec![Connection::open(&path, 0).unwrap()]);
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let held = Duration::from_millis(100);
        let release = tokio::spawn(async move {
            tokio::time::sleep(held).await;
            other.execute_batch("COMMIT").unwrap();
        });
        let started = Instant::now();
        let mut c = set.lend().await;
        c.run("BEGIN IMMEDIATE", &[], true).await.unwrap();
        assert!(started.elapsed() >= held, "the write waited for the lock");
        // A busy handler sleeping in SQLite would have kept the release from running until
        // it gave up (seconds).
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        release.await.unwrap();
    }
}

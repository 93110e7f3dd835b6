//! Where the store's statements run: SQLite's own connections called in place
//! ([`super::sqlite`]), or a sqlx pool (PostgreSQL; and SQLite with several writers, which only
//! `parkflow bench api` opens, to print what the single writer saves).
//!
//! [`Handle`] is what `Store::pool()` and `Store::writer()` give: a statement runs on it
//! directly, or [`Handle::acquire`] lends a [`Conn`] for several. A [`Conn`] is also what a
//! `Change` writes through. All three are sqlx executors of the `Any` database, so a repository
//! takes any of them.
//!
//! Group commit (SQLite): the changes that queue for the one writer share its transaction. The
//! first change begins it; each change that joins it while earlier ones wait runs in a
//! savepoint. A change that commits while others wait for the connection hands the connection
//! on with the transaction open, and the last change of the queue (or the 64th) commits for
//! all. Every change's `commit` returns only once that commit did, with its outcome, so nothing
//! is reported written before it is; a change that fails or is dropped rolls back its
//! savepoint (or, alone in the transaction, the transaction) and takes no one with it. One
//! statement run on the writer outside a change (`sqlx::query(..).execute(store.writer())`) is
//! a change of its own: it joins the group and returns once the group committed. A lent
//! connection ([`Handle::acquire`]) commits the waiting group before its statements run. One
//! commit then writes the WAL pages that a queue of bookings touches in common
//! (the outbox's last page, the indexes' hot pages) once, instead of once per booking; a
//! change that queues behind no one pays nothing for it.
//!
//! A batch ([`batch`]) is the other way to share a commit: while one runs, a change's commit
//! answers at once and the batch writes them all when its owner says so.

use super::sqlite::{self, Connection, Done};
use super::watch::WriterWatch;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Execute, Transaction};
use sqlx_core::any::AnyValueKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// How long a statement outside a transaction keeps retrying while another process holds
/// the database's lock (what `busy_timeout` did on sqlx's connections).
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Readers or the writer of a store.
#[derive(Debug, Clone)]
pub enum Handle {
    /// SQLite connections called in place; the writer is a set of one.
    Sqlite(Arc<Connections>),
    Pool(AnyPool),
    /// PostgreSQL's readers, lent without sqlx's pool ([`lender`]).
    Lender(Arc<lender::Lender>),
}

/// The most changes one commit of the writer carries.
const GROUP: usize = 64;

/// The fewest changes a group commits with while other changes still queue for the writer
/// ([`SqliteConn::group_is_due`]): smaller groups lose more to handing the writer over after
/// each commit than they gain (BENCHMARKS.md "Stop 39").
const GROUP_FLOOR: usize = 8;

/// The outcome of a group's commit, as each of its changes learns it.
pub type Outcome = Result<(), Arc<str>>;

/// A connection and the changes that released their savepoints in its open transaction and
/// wait for it to commit.
struct Slot {
    conn: Connection,
    members: Vec<oneshot::Sender<Outcome>>,
    /// The writer's: its transactions and the other connections' commits ([`WriterWatch`]).
    watch: Option<Arc<WriterWatch>>,
}

/// SQLite connections lent one task at a time, first come first served.
pub struct Connections {
    all: Vec<Arc<Mutex<Slot>>>,
    next: AtomicUsize,
    /// Tasks waiting for a connection: while some wait, a committed change leaves the
    /// transaction open for them.
    waiting: Arc<AtomicUsize>,
    /// The writer: a statement run outside a change is a change of its own.
    writes: bool,
    /// A batch runs on the writer ([`batch`]).
    batched: Arc<AtomicBool>,
    /// The writer's transactions, as its slot tells them.
    watch: Option<Arc<WriterWatch>>,
}

/// Counts a task as waiting for as long as it lives (a cancelled wait stops counting too).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} SQLite connections", self.all.len())
    }
}

impl Connections {
    /// Readers: a statement runs on whichever connection is free.
    pub fn new(all: Vec<Connection>) -> Self {
        let slots = all.into_iter().map(|conn| Slot {
            conn,
            members: Vec::new(),
            watch: None,
        });
        Self {
            all: slots.map(|s| Arc::new(Mutex::new(s))).collect(),
            next: AtomicUsize::new(0),
            waiting: Arc::new(AtomicUsize::new(0)),
            writes: false,
            batched: Arc::new(AtomicBool::new(false)),
            watch: None,
        }
    }

    /// The single writer, whose changes share commits and whose transactions are watched.
    pub fn writer(mut conn: Connection) -> Result<Self, sqlx::Error> {
        let watch = Arc::new(WriterWatch::new(data_version(&mut conn)?));
        let slot = Slot {
            conn,
            members: Vec::new(),
            watch: Some(watch.clone()),
        };
        Ok(Self {
            all: vec![Arc::new(Mutex::new(slot))],
            writes: true,
            watch: Some(watch),
            ..Self::new(Vec::new())
        })
    }

    /// The writer's watch; `None` for readers.
    pub fn watch(&self) -> Option<&Arc<WriterWatch>> {
        self.watch.as_ref()
    }

    /// One statement outside any change. On the writer it is a change of its own, in the
    /// group's transaction, and returns once that committed; on a reader, or in a batch, it
    /// runs as it is (SQLite undoes a failed statement alone).
    async fn one<'q>(&self, query: impl Execute<'q, Any>) -> Result<Done, sqlx::Error> {
        if !self.writes || self.in_batch() {
            return self.lend().await.query(query).await;
        }
        let mut c = self.begin_change().await?;
        // A failed statement drops `c`, which undoes it alone.
        let done = c.query(query).await?;
        c.commit().await?;
        Ok(done)
    }

    /// A free connection, or the next one's turn when all are lent. A group of changes
    /// waiting on it is still open: [`SqliteConn::join`] or [`Slot::settle`].
    async fn lend_raw(&self) -> SqliteConn {
        for c in &self.all {
            if let Ok(slot) = c.clone().try_lock_owned() {
                return self.lent(slot);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.all.len();
        self.lent(queue_for(&self.all[i], &self.waiting).await)
    }

    fn lent(&self, slot: OwnedMutexGuard<Slot>) -> SqliteConn {
        SqliteConn {
            slot,
            waiting: self.waiting.clone(),
            in_change: None,
            hold_open: false,
            batched: self.batched.clone(),
        }
    }

    /// Whether a batch runs on this writer.
    pub(super) fn in_batch(&self) -> bool {
        self.batched.load(Ordering::SeqCst)
    }

    /// A connection with a change begun on it, in the transaction of the changes waiting on
    /// it if there are (the module's group commit).
    pub(super) async fn begin_change(&self) -> Result<SqliteConn, sqlx::Error> {
        let mut c = self.lend_raw().await;
        c.join().await?;
        Ok(c)
    }

    /// A connection for statements of their own: the changes waiting on it are committed
    /// first.
    async fn lend(&self) -> SqliteConn {
        let mut c = self.lend_raw().await;
        c.slot.settle();
        c
    }

    async fn close(&self) {
        for c in &self.all {
            let mut slot = c.lock().await;
            slot.settle();
            slot.conn.close();
        }
    }
}

/// `PRAGMA data_version` on `conn`: it moves when another connection commits.
fn data_version(conn: &mut Connection) -> Result<i64, sqlx::Error> {
    let done = conn.run("PRAGMA data_version", &[], true)?;
    let row = done.rows.first().ok_or(sqlx::Error::RowNotFound)?;
    sqlx::Row::try_get(row, 0)
}

impl Slot {
    /// End the open transaction with `sql` (`COMMIT` or `ROLLBACK`), telling the watch first:
    /// once it ends, other connections may commit.
    fn end(&mut self, sql: &str) -> Result<Done, sqlx::Error> {
        self.ended();
        self.conn.run(sql, &[], true)
    }

    /// Tell the watch the writer's transaction is over (or about to be).
    fn ended(&self) {
        if let Some(watch) = &self.watch {
            watch.ending();
        }
    }

    /// Commit the open transaction for the changes waiting on it and tell them how it went.
    fn settle(&mut self) {
        if self.members.is_empty() {
            return;
        }
        let outcome: Outcome = if self.conn.autocommit() {
            // SQLite ended the transaction itself (an I/O error, a full disk).
            self.ended();
            Err("the transaction was rolled back before it could commit".into())
        } else {
            match self.end("COMMIT") {
                Ok(_) => Ok(()),
                Err(e) => {
                    if !self.conn.autocommit() {
                        let _ = self.end("ROLLBACK");
                    }
                    Err(e.to_string().into())
                }
            }
        };
        tracing::trace!(changes = self.members.len(), "group committed");
        for member in self.members.drain(..) {
            // A change whose task was cancelled no longer listens.
            let _ = member.send(outcome.clone());
        }
    }
}

/// A lent SQLite connection. Given back in the middle of a change (a change dropped without
/// committing, or a task cancelled mid-change), it rolls that change back; then the
/// transaction is committed for the changes waiting on it, unless more wait for the
/// connection to join them.
pub struct SqliteConn {
    slot: OwnedMutexGuard<Slot>,
    waiting: Arc<AtomicUsize>,
    /// Inside a change, and how it is undone.
    in_change: Option<Scope>,
    /// Given back with the transaction open although no task waits: its change
    /// ([`commit`](SqliteConn::commit)) commits it after letting the ready tasks join.
    hold_open: bool,
    /// The writer's batch flag ([`batch`]).
    batched: Arc<AtomicBool>,
}

/// Armed while a task waits for a connection, or a released change for its outcome. If the
/// wait is given up (the task cancelled: an HTTP client that went away), the open group is
/// committed then if the connection is free, so that the changes in it — which may have handed
/// this very wait their transaction — are not left waiting for the writer's next use; if it is
/// not free, whoever holds it commits or hands it on.
struct Settles(Option<Arc<Mutex<Slot>>>);

impl Drop for Settles {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(mut slot) = writer.try_lock()
        {
            slot.settle();
        }
    }
}

/// `slot`'s connection once its turn comes, counted among the waiters meanwhile (so a change
/// committing ahead leaves its transaction open for this one). A change may hand this wait its
/// group's open transaction: a wait given up commits it.
async fn queue_for(slot: &Arc<Mutex<Slot>>, waiting: &Arc<AtomicUsize>) -> OwnedMutexGuard<Slot> {
    let _counted = Waiting::new(waiting);
    let mut settles = Settles(Some(slot.clone()));
    let turn = slot.clone().lock_owned().await;
    settles.0 = None;
    turn
}

/// What a change on the writer runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A transaction of its own, begun for it: no change waits on it yet, so a rollback
    /// undoes this change alone. A change that begins no group pays for no savepoint (SQLite
    /// copies each page a savepoint changes to a sub-journal).
    Transaction,
    /// A savepoint in the transaction of the changes waiting to commit.
    Savepoint,
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        // Nothing to report to in here: a failed rollback leaves the connection in the
        // transaction, which the next run reports.
        let _ = self.undo();
        if self.batched.load(Ordering::SeqCst) {
            // The batch's transaction stays open for the changes after this one.
            return;
        }
        if self.slot.members.is_empty() {
            if !self.slot.conn.autocommit() {
                let _ = self.slot.end("ROLLBACK");
            }
        } else if self.group_is_due() {
            self.slot.settle();
        }
    }
}

impl SqliteConn {
    /// Whether the open group commits now, as this change leaves it: when no change waits for
    /// the writer (unless this one holds the group open for the tasks about to join), when it
    /// is full, or once it is at least as large as the queue behind it. In a closed loop of
    /// clients each waiting for its answer, a group that waited for the queue to drain gathered
    /// nearly all of them while one core idled; committing when half of the changes in flight
    /// are in the group lets the released half's next requests be served while the writer works
    /// through the other half, with 32 clients or 128 (BENCHMARKS.md "Stop 40").
    fn group_is_due(&self) -> bool {
        let (members, waiting) = (self.slot.members.len(), self.waiting.load(Ordering::SeqCst));
        (waiting == 0 && !self.hold_open)
            || members >= GROUP
            || (members >= GROUP_FLOOR && members >= waiting)
    }

    /// Begin a change: in the open transaction of the changes before it, or in a new one. In
    /// a batch every change is a savepoint of the batch's transaction.
    async fn join(&mut self) -> Result<(), sqlx::Error> {
        let batched = self.batched.load(Ordering::SeqCst);
        if batched && self.slot.conn.autocommit() {
            self.run("BEGIN IMMEDIATE", &[], true).await?;
        }
        self.in_change = Some(if self.slot.conn.autocommit() {
            // Whatever ended the last transaction (SQLite itself, after an error), it is over.
            self.slot.ended();
            self.run("BEGIN IMMEDIATE", &[], true).await?;
            if let Some(watch) = self.slot.watch.clone() {
                // Not known (an error): the transaction is not marked open, and no refusal
                // relies on it.
                let version = data_version(&mut self.slot.conn);
                version.map(|v| watch.began(v)).ok();
            }
            Scope::Transaction
        } else {
            self.run("SAVEPOINT change", &[], true).await?;
            Scope::Savepoint
        });
        Ok(())
    }

    /// End the change begun by [`join`](Self::join) and give the connection back; the
    /// change is written once the returned outcome says so.
    pub fn release(mut self) -> Result<oneshot::Receiver<Outcome>, sqlx::Error> {
        if self.in_change == Some(Scope::Savepoint) {
            self.slot.conn.run("RELEASE change", &[], true)?;
        }
        self.in_change = None;
        let (tell, told) = oneshot::channel();
        self.slot.members.push(tell);
        Ok(told)
    }

    /// End the change begun by [`join`](Self::join), give the connection back and return once
    /// the change is written. A change that no task queues behind does not commit at once:
    /// it yields first, so that the tasks ready to run (other requests, other lots of the
    /// simulator) reach the writer and join its transaction, and then commits for all of them,
    /// unless one of them did.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.batched.load(Ordering::SeqCst) {
            // The batch writes it ([`batch`]): the savepoint is let go, the change kept. A
            // release that fails leaves the change in progress, for the drop to undo.
            if self.in_change == Some(Scope::Savepoint) {
                self.slot.conn.run("RELEASE change", &[], true)?;
            }
            self.in_change = None;
            return Ok(());
        }
        let writer = OwnedMutexGuard::mutex(&self.slot).clone();
        let waiting = self.waiting.clone();
        self.hold_open = waiting.load(Ordering::SeqCst) == 0;
        let hold_open = self.hold_open;
        // Armed before the release: a release that fails leaves the group to it.
        let mut settles = Settles(Some(writer.clone()));
        let mut told = self.release()?;
        let lost = "the writer went away before the change was committed";
        let mut outcome = None;
        if hold_open {
            tokio::task::yield_now().await;
            match told.try_recv() {
                Ok(settled) => outcome = Some(settled),
                Err(oneshot::error::TryRecvError::Closed) => outcome = Some(Err(lost.into())),
                Err(oneshot::error::TryRecvError::Empty) => {
                    queue_for(&writer, &waiting).await.settle();
                }
            }
        }
        let outcome = match outcome {
            Some(settled) => settled,
            None => told.await.unwrap_or_else(|_| Err(lost.into())),
        };
        settles.0 = None;
        outcome.map_err(|failed| sqlx::Error::AnyDriverError(failed.to_string().into()))
    }

    /// Undo the change begun by [`join`](Self::join) and give the connection back.
    pub fn roll_back(mut self) -> Result<(), sqlx::Error> {
        self.undo()
    }

    /// Undo the change in progress, if any: its savepoint, or its own transaction.
    fn undo(&mut self) -> Result<(), sqlx::Error> {
        match self.in_change.take() {
            Some(Scope::Savepoint) => {
                self.slot.conn.run("ROLLBACK TO change", &[], true)?;
                self.slot.conn.run("RELEASE change", &[], true)?;
            }
            // No change waits on the transaction: it goes whole.
            Some(Scope::Transaction) => {
                self.slot.end("ROLLBACK")?;
            }
            None => {}
        }
        Ok(())
    }

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
            match self.slot.conn.run(sql, args, persistent) {
                Err(e)
                    if sqlite::is_busy(&e)
                        && self.slot.conn.autocommit()
                        && Instant::now() < deadline =>
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
    /// A PostgreSQL reader ([`lender`]).
    Lent(lender::Lent),
    /// A write transaction on a pool's connection (PostgreSQL).
    Transaction(Transaction<'static, Any>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "an SQLite connection",
            Conn::Pooled(_) => "a pooled connection",
            Conn::Lent(_) => "a lent reader",
            Conn::Transaction(_) => "a transaction",
        })
    }
}

impl Handle {
    /// A connection for several statements, outside any change.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Handle::Sqlite(set) => Conn::Sqlite(set.lend().await),
            Handle::Pool(pool) => Conn::Pooled(pool.acquire().await?),
            Handle::Lender(lender) => Conn::Lent(lender.lend().await?),
        })
    }

    pub(super) async fn close(&self) {
        match self {
            Handle::Sqlite(set) => set.close().await,
            Handle::Pool(pool) => pool.close().await,
            Handle::Lender(lender) => lender.close().await,
        }
    }
}

pub mod batch;
mod executor;
pub mod lender;
#[cfg(test)]
mod tests;

//! PostgreSQL's readers: connections the store lends to one task at a time and takes back as
//! they are. sqlx's pool tests every connection with a round trip as it goes back
//! (`PoolConnection::return_to_pool`), and a booking takes a reader twice (its token's account,
//! then its plan), so the readers are lent from here instead: a connection idle for
//! `PING_WHEN_IDLE_FOR` or longer is tested before it is lent (as the pool tests one before
//! it gives it), one a statement failed on for its connection's sake is closed, and one a
//! dropped task left in the middle of a statement is safe to lend again (the driver reads
//! what the server still sends before it writes the next statement: sqlx-postgres's
//! `wait_until_ready`). No reader ever opens a transaction: changes run on the pool
//! (`Store::writer`).

use super::super::{CLOSE_WHEN_IDLE_FOR, CONNECTION_LIFETIME, PING_WHEN_IDLE_FOR};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `size` connections to one database, opened as they are first needed; each closed
/// once it has been open for `lifetime`, or unused for `idle_for`.
#[derive(Debug)]
pub struct Lender {
    /// Given back, the most recently given back last.
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    options: Arc<AnyConnectOptions>,
    /// How long a task waits for a connection before it is refused (`PoolTimedOut`, which
    /// the API answers 503).
    wait: Duration,
    size: u32,
    lifetime: Duration,
    idle_for: Duration,
}

/// A connection given back: when it was, and when it was opened.
#[derive(Debug)]
struct Idle {
    conn: AnyConnection,
    returned: Instant,
    opened: Instant,
}

impl Lender {
    pub fn new(options: Arc<AnyConnectOptions>, size: u32, wait: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1) as usize)),
            options,
            wait,
            size: size.max(1),
            lifetime: CONNECTION_LIFETIME,
            idle_for: CLOSE_WHEN_IDLE_FOR,
        }
    }

    /// The same lender with another lifetime and idle limit (`StoreOptions::postgres_lifetime`
    /// and `postgres_idle`; by default 30 and 10 minutes, as sqlx's pool's).
    pub fn with_limits(mut self, lifetime: Duration, idle_for: Duration) -> Self {
        self.lifetime = lifetime;
        self.idle_for = idle_for;
        self
    }

    /// How many connections are open and not lent now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("lender lock").len()
    }

    /// How many connections it lends at most.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// A connection of its own for the caller until the [`Lent`] is dropped.
    pub async fn lend(self: &Arc<Self>) -> Result<Lent, sqlx::Error> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self.idle.lock().expect("lender lock").pop();
            let Some(Idle {
                mut conn,
                returned,
                opened,
            }) = idle
            else {
                return Ok(self.lent(self.connect().await?, Instant::now(), permit));
            };
            if self.expired(returned, opened) {
                let _ = conn.close().await;
                continue;
            }
            if returned.elapsed() < PING_WHEN_IDLE_FOR || conn.ping().await.is_ok() {
                return Ok(self.lent(conn, opened, permit));
            }
            // Dropped: the server or the network let it go while it was idle.
        }
    }

    /// Whether a connection opened at `opened` and unused since `returned` is to be closed.
    fn expired(&self, returned: Instant, opened: Instant) -> bool {
        opened.elapsed() >= self.lifetime || returned.elapsed() >= self.idle_for
    }

    /// A new connection. A database out of reach (or not taking connections now) is tried
    /// again until the wait is over, then refused as `PoolTimedOut` (an overload to the API,
    /// 503), as sqlx's pool does; any other failure (a wrong password) is returned at once.
    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut pause = Duration::from_millis(10);
        loop {
            match tokio::time::timeout_at(deadline, self.options.connect()).await {
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) if !is_fatal(&e) && !is_busy(&e) => return Err(e),
                Ok(Err(_)) => {
                    let next = (tokio::time::Instant::now() + pause).min(deadline);
                    tokio::time::sleep_until(next).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn lent(
        self: &Arc<Self>,
        conn: AnyConnection,
        opened: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Lent {
        Lent {
            conn: Some(conn),
            opened,
            lender: self.clone(),
            broken: Arc::new(AtomicBool::new(false)),
            _permit: permit,
        }
    }

    /// Close the idle connections and lend no more.
    pub async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().expect("lender lock"));
        for Idle { conn, .. } in idle {
            let _ = conn.close().await;
        }
    }
}

/// A lent connection; dropping it gives it back (or closes it, when a statement found it
/// broken or the lender was closed meanwhile).
#[derive(Debug)]
pub struct Lent {
    conn: Option<AnyConnection>,
    opened: Instant,
    lender: Arc<Lender>,
    broken: Arc<AtomicBool>,
    _permit: OwnedSemaphorePermit,
}

impl Lent {
    /// The flag a statement's error sets when it is the connection's (see [`is_fatal`]).
    pub fn broken_flag(&self) -> Arc<AtomicBool> {
        self.broken.clone()
    }
}

/// Whether `e` says the connection itself cannot be used again (as opposed to a statement the
/// database refused): a broken socket or protocol, or the server ending the session (SQLSTATE
/// class 08, connection exception, or 57P, a shutdown or `pg_terminate_backend`).
pub fn is_fatal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        e => matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::PoolClosed
        ),
    }
}

/// Whether `e` is the server refusing a connection for now: too many connections (SQLSTATE
/// 53300) or starting up (57P03, which [`is_fatal`] covers).
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("53300"))
}

impl Deref for Lent {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("lent until dropped")
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("lent until dropped")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Closing needs a round trip; dropping the socket ends the session as well.
        let now = Instant::now();
        let lender = &self.lender;
        let mut idle = lender.idle.lock().expect("lender lock");
        // The longest unused are first: those unused for too long are let go.
        let stale = idle
            .iter()
            .take_while(|i| lender.expired(i.returned, i.opened))
            .count();
        idle.drain(..stale);
        let broken = self.broken.load(Ordering::SeqCst);
        if !broken && !lender.permits.is_closed() && !lender.expired(now, self.opened) {
            idle.push(Idle {
                conn,
                returned: now,
                opened: self.opened,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A database that cannot be reached is refused as an overload once the wait is over, not
    /// as a fault at once, and not after any longer.
    #[tokio::test]
    async fn an_unreachable_database_is_unavailable_after_the_wait() {
        sqlx::any::install_default_drivers();
        // Port 1: nothing listens there, so every connection is refused.
        let options = AnyConnectOptions::from_str("postgres://parkflow@127.0.0.1:1/none").unwrap();
        let lender = Arc::new(Lender::new(
            Arc::new(options),
            1,
            Duration::from_millis(300),
        ));
        let asked = Instant::now();
        let refused = lender.lend().await.unwrap_err();
        assert!(matches!(refused, sqlx::Error::PoolTimedOut), "{refused}");
        let waited = asked.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}

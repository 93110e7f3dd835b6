//! How many connections a [`Store`](super::Store) opens to its database, how long a request
//! waits for one, and how long PostgreSQL's connections live.

use sqlx::Connection;
use sqlx::any::AnyPoolOptions;
use std::time::Duration;

/// How many connections a [`Store`](super::Store) opens to its database, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// SQLite: connections that write. One is the single writer; more is how the store worked
    /// before it (the connections race for the file lock and sleep in the busy handler), which
    /// `parkflow bench api` opens to print the comparison and nothing else should.
    pub sqlite_writers: u32,
    /// PostgreSQL: the pool's connections (changes), and as many readers
    /// (`handles/lender.rs`).
    pub postgres_connections: u32,
    /// PostgreSQL: how long a request waits for a connection before it is refused as an
    /// overload (`Error::Unavailable`, HTTP 503 with `Retry-After`).
    pub postgres_wait: Duration,
    /// PostgreSQL: how long any of the store's connections (the pool's, the readers, the
    /// booking writer's) is used before it is closed and replaced, so that what the server
    /// keeps for one session stays bounded ([`CONNECTION_LIFETIME`]).
    pub postgres_lifetime: Duration,
    /// PostgreSQL: how long one may stay unused before it is closed, so that a burst's
    /// connections do not stay open on the server for good ([`CLOSE_WHEN_IDLE_FOR`]).
    pub postgres_idle: Duration,
}

/// The PostgreSQL pool's size by default, and as many readers (`handles/lender.rs`); the
/// booking writer has one connection more, of its own (`group.rs`). Connections beyond what
/// the database's cores can run only wait on each other: on the two-core bench machine, with
/// 32 clients booking, a pool of 4 to 6 booked 6–14 % more than one of 10 once bookings were
/// written in groups, and answered availability 20 % faster (BENCHMARKS.md, stops 42 and 43).
/// A database with more cores takes more (`api.database_connections`).
pub const POSTGRES_CONNECTIONS: u32 = 5;

/// How long a request waits for a PostgreSQL connection by default: as long as a keyed
/// request waits for another holding its key (`http::idempotency::WAIT`). Five connections
/// answer thousands of requests a second, so a wait this long means the database is
/// overloaded, and the client is told so (and when to retry) instead of being held on.
pub const POSTGRES_WAIT: Duration = Duration::from_secs(10);

/// A PostgreSQL connection's lifetime by default: sqlx's pool's own default (`max_lifetime`).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long a PostgreSQL connection may stay unused by default: sqlx's pool's own default
/// (`idle_timeout`).
pub const CLOSE_WHEN_IDLE_FOR: Duration = Duration::from_secs(10 * 60);

/// How long a PostgreSQL connection may sit idle and still be used without a ping.
pub(super) const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sqlite_writers: 1,
            postgres_connections: POSTGRES_CONNECTIONS,
            postgres_wait: POSTGRES_WAIT,
            postgres_lifetime: CONNECTION_LIFETIME,
            postgres_idle: CLOSE_WHEN_IDLE_FOR,
        }
    }
}

/// PostgreSQL's pool for changes under `options`. A connection used within the last few
/// seconds is not pinged before its next use (a round trip each time a request takes one);
/// one idle longer is, so a server restart or a dropped idle connection is found before a
/// request runs on it.
pub(super) fn postgres_pool(options: &StoreOptions) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(options.postgres_connections.max(1))
        .acquire_timeout(options.postgres_wait)
        .max_lifetime(options.postgres_lifetime)
        .idle_timeout(options.postgres_idle)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

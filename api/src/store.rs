//! The operational store: SQLite (embedded default) or PostgreSQL (production) behind one
//! interface. Queries are written once, with `$N` placeholders that both accept; what differs —
//! migrations, how a write transaction starts, what a constraint error looks like — lives here.
//!
//! SQLite has one writer at a time: every state change takes the write lock up front
//! (`BEGIN IMMEDIATE`) so a check-then-insert cannot interleave with another writer. PostgreSQL
//! runs writers concurrently; there, constraints (unique and exclusion) are what settle races.

use crate::error::{Error, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, SqlSafeStr, Transaction};
use std::time::Duration;

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

    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Self::Sqlite => &[
                (
                    1,
                    "init",
                    include_str!("../migrations/sqlite/0001_init.sql"),
                ),
                (
                    2,
                    "reservations",
                    include_str!("../migrations/sqlite/0002_reservations.sql"),
                ),
                (
                    3,
                    "accounts",
                    include_str!("../migrations/sqlite/0003_accounts.sql"),
                ),
                (
                    4,
                    "gate passes",
                    include_str!("../migrations/sqlite/0004_gate_passes.sql"),
                ),
                (
                    5,
                    "ev spots and unpublished outbox",
                    include_str!("../migrations/sqlite/0005_ev_spots.sql"),
                ),
                (
                    7,
                    "notification outbox",
                    include_str!("../migrations/sqlite/0007_notification_outbox.sql"),
                ),
                (
                    8,
                    "payments",
                    include_str!("../migrations/sqlite/0008_payments.sql"),
                ),
                (
                    9,
                    "waitlist",
                    include_str!("../migrations/sqlite/0009_waitlist.sql"),
                ),
                (
                    10,
                    "notification deliveries",
                    include_str!("../migrations/sqlite/0010_deliveries.sql"),
                ),
                (
                    11,
                    "inquiries and admin audit",
                    include_str!("../migrations/sqlite/0011_admin.sql"),
                ),
                (
                    12,
                    "idempotency keys, waitlist reasons, balance currency",
                    include_str!("../migrations/sqlite/0012_idempotency_waitlist_currency.sql"),
                ),
            ],
            Self::Postgres => &[
                (
                    1,
                    "init",
                    include_str!("../migrations/postgres/0001_init.sql"),
                ),
                (
                    2,
                    "reservations",
                    include_str!("../migrations/postgres/0002_reservations.sql"),
                ),
                (
                    3,
                    "accounts",
                    include_str!("../migrations/postgres/0003_accounts.sql"),
                ),
                (
                    4,
                    "gate passes",
                    include_str!("../migrations/postgres/0004_gate_passes.sql"),
                ),
                (
                    5,
                    "ev spots and unpublished outbox",
                    include_str!("../migrations/postgres/0005_ev_spots.sql"),
                ),
                // PostgreSQL only: SQLite's free-spot query probes its per-spot index.
                (
                    6,
                    "holds by lot and window",
                    include_str!("../migrations/postgres/0006_holds_by_lot.sql"),
                ),
                (
                    7,
                    "notification outbox",
                    include_str!("../migrations/postgres/0007_notification_outbox.sql"),
                ),
                (
                    8,
                    "payments",
                    include_str!("../migrations/postgres/0008_payments.sql"),
                ),
                (
                    9,
                    "waitlist",
                    include_str!("../migrations/postgres/0009_waitlist.sql"),
                ),
                (
                    10,
                    "notification deliveries",
                    include_str!("../migrations/postgres/0010_deliveries.sql"),
                ),
                (
                    11,
                    "inquiries and admin audit",
                    include_str!("../migrations/postgres/0011_admin.sql"),
                ),
                (
                    12,
                    "idempotency keys, waitlist reasons, balance currency",
                    include_str!("../migrations/postgres/0012_idempotency_waitlist_currency.sql"),
                ),
            ],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Open (creating an SQLite file if missing) and migrate the database at `url`.
    pub async fn open(url: &str) -> Result<Self> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(32)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?
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
        migrator.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction for a state change (holding SQLite's write lock from its first statement).
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The outbox of this database.
    pub fn outbox(&self) -> parkflow_outbox::Outbox {
        parkflow_outbox::Outbox::new(self.pool.clone())
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

/// Whether `e` is a unique-constraint violation (a lost race for a unique slot).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Record `event` in the outbox inside the caller's transaction (the outbox crate owns the
/// table).
pub use parkflow_outbox::append as append_event;

//! The operational store (SQLite, embedded default): connection set-up, migrations, write
//! transactions and the outbox.
//!
//! SQLite has one writer at a time; every state change takes the write lock up front
//! (`BEGIN IMMEDIATE`) so that a check-then-insert can never interleave with another writer.

use crate::error::Result;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlSafeStr, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;
use warehouse_schema::Event;

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if missing) and migrate the database at `url` (`sqlite://path`).
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let migrator = Migrator::with_migrations(
            SQLITE_MIGRATIONS
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
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction holding the write lock from its first statement.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Number of events recorded in the outbox.
    pub async fn outbox_len(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Highest outbox position written so far (0 when empty).
    pub async fn outbox_head(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Record `event` in the outbox inside the caller's transaction: it commits or rolls back with
/// the state change it describes.
pub async fn append_event(conn: &mut SqliteConnection, event: &Event) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (event_id, lot_id, event_type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(event.event_id.0.to_string())
    .bind(event.lot_id.0)
    .bind(event.payload.type_name())
    .bind(event.to_json())
    .bind(event.occurred_at.timestamp_millis())
    .execute(conn)
    .await?;
    Ok(())
}

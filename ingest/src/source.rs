//! The outbox as an ordered source: rows after a position, in position order.
//!
//! The table is written by the operational API (`api/migrations`) in the same transaction as
//! each state change; ingest only reads it (and, as relay, marks rows published).

use crate::error::Result;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;

/// One outbox row: its position and the event exactly as recorded.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub position: i64,
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct SqliteOutbox {
    pool: SqlitePool,
}

impl SqliteOutbox {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Connect to the operational database at `url` (must exist: the API creates it).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?.read_only(true);
        Ok(Self::new(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?,
        ))
    }

    /// Up to `limit` rows with position greater than `after`, in order.
    pub async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(position, payload)| OutboxRow { position, payload })
            .collect())
    }

    /// The highest position written so far (0 when empty).
    pub async fn head(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

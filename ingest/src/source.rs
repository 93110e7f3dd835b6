//! The outbox as an ordered source: rows after a position, in position order.
//!
//! The table is written by the operational API (`api/migrations`) in the same transaction as
//! each state change; ingest only reads it. On SQLite, positions are assigned by the single
//! writer in commit order, so "everything after the last position" is exact.

use crate::error::Result;
use sqlx::AnyPool;

/// One outbox row: its position and the event exactly as recorded.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub position: i64,
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    pool: AnyPool,
}

impl Outbox {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Up to `limit` rows with position greater than `after`, in order.
    pub async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, payload FROM outbox WHERE id > $1 ORDER BY id LIMIT $2")
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

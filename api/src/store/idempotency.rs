//! `idempotency_keys`: one row per (driver, key), bound to the fingerprint of the request that
//! first used it, holding that request's answer once it has one. The scheme itself (who waits,
//! what is kept) is `crate::http::idempotency`; this is only its table.

use super::{Db, unless_taken};
use crate::domain::error::Result;
use warehouse_schema::UserId;

/// A key as stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub fingerprint: String,
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub locked_until: i64,
}

from_row!(StoredKey {
    fingerprint,
    status_code,
    response,
    locked_until
});

/// A kept answer, for the driver's data export.
#[derive(Debug, Clone)]
pub struct KeptAnswer {
    pub idem_key: String,
    pub status_code: Option<i64>,
    pub response: Option<String>,
    pub created_at: i64,
}

from_row!(KeptAnswer {
    idem_key,
    status_code,
    response,
    created_at
});

/// Take `key` for a request with `fingerprint`, held until `locked_until`. False when the key
/// exists already.
pub async fn insert<'c>(
    db: impl Db<'c>,
    user: UserId,
    key: &str,
    fingerprint: &str,
    at: i64,
    locked_until: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, created_at, locked_until)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(user.0.to_string())
    .bind(key)
    .bind(fingerprint)
    .bind(at)
    .bind(locked_until)
    .execute(db)
    .await?;
    Ok(unless_taken(inserted))
}

/// Take `key` for the request with `fingerprint` and keep its `answer` (status, JSON body)
/// under it at once, at `at`. False when the key exists already (nothing is written).
pub async fn insert_answered<'c>(
    db: impl Db<'c>,
    (user, key, fingerprint): (UserId, &str, &str),
    (status, response): (u16, &str),
    at: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, created_at, locked_until,
                                       status_code, response, completed_at)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(user.0.to_string())
    .bind(key)
    .bind(fingerprint)
    .bind(at)
    .bind(i64::from(status))
    .bind(response)
    .execute(db)
    .await?;
    Ok(unless_taken(inserted))
}

pub async fn find<'c>(db: impl Db<'c>, user: UserId, key: &str) -> Result<Option<StoredKey>> {
    Ok(sqlx::query_as(
        "SELECT fingerprint, status_code, response, locked_until FROM idempotency_keys
         WHERE user_id = $1 AND idem_key = $2",
    )
    .bind(user.0.to_string())
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// Extend an unanswered claim whose lease still reads `expired_lease` to `locked_until`. True
/// when this caller took it over (no other did first).
pub async fn take_over<'c>(
    db: impl Db<'c>,
    user: UserId,
    key: &str,
    expired_lease: i64,
    locked_until: i64,
) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET locked_until = $1
         WHERE user_id = $2 AND idem_key = $3 AND locked_until = $4 AND status_code IS NULL",
    )
    .bind(locked_until)
    .bind(user.0.to_string())
    .bind(key)
    .bind(expired_lease)
    .execute(db)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Keep the answer of the request holding `key`.
pub async fn complete<'c>(
    db: impl Db<'c>,
    user: UserId,
    key: &str,
    status: u16,
    response: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $1, response = $2, completed_at = $3
         WHERE user_id = $4 AND idem_key = $5",
    )
    .bind(i64::from(status))
    .bind(response)
    .bind(at)
    .bind(user.0.to_string())
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

/// Let go of an unanswered claim, so the same key may be tried again.
pub async fn release<'c>(db: impl Db<'c>, user: UserId, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND status_code IS NULL",
    )
    .bind(user.0.to_string())
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

/// Every key `user` used, oldest first.
pub async fn of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<KeptAnswer>> {
    Ok(sqlx::query_as(
        "SELECT idem_key, status_code, response, created_at FROM idempotency_keys
         WHERE user_id = $1 ORDER BY created_at, idem_key",
    )
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// Forget every key of `user` (erasure).
pub async fn delete_user<'c>(db: impl Db<'c>, user: UserId) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1")
            .bind(user.0.to_string())
            .execute(db)
            .await?
            .rows_affected(),
    )
}

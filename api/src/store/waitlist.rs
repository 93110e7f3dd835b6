//! `waitlist`: drivers waiting for a window of a full lot, in joining order. Who is served and
//! when is `crate::waitlist`'s; this reads and moves rows, and a move only ever starts from
//! `waiting`, so two sweeps cannot serve one entry twice.

use super::Db;
use crate::domain::WaitlistStatus;
use crate::domain::error::{Error, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, UserId, VehicleType};

/// An entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitlistRow {
    pub id: Uuid,
    pub user: UserId,
    pub lot: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    pub auto_book: bool,
    pub status: WaitlistStatus,
    pub reservation_id: Option<ReservationId>,
    pub reason: Option<String>,
}

type Raw = (
    String,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "id, user_id, lot_id, start_at, end_at, vehicle_type, auto_book, status, reservation_id, reason";

fn parse(raw: Raw) -> Result<WaitlistRow> {
    let (id, user, lot, start, end, vt, auto, status, reservation, reason) = raw;
    let bad = |what: &str| Error::Invalid(format!("stored waitlist entry {id}: {what}"));
    let at = |ms| DateTime::from_timestamp_millis(ms).ok_or_else(|| bad("time"));
    Ok(WaitlistRow {
        id: id.parse().map_err(|_| bad("id"))?,
        user: UserId(user.parse().map_err(|_| bad("user"))?),
        lot: LotId(lot),
        start_at: at(start)?,
        end_at: at(end)?,
        vehicle_type: vt.parse().map_err(|_| bad("vehicle type"))?,
        auto_book: auto != 0,
        status: status.parse().map_err(|e: String| bad(&e))?,
        reservation_id: reservation.and_then(|r| r.parse().ok()).map(ReservationId),
        reason,
    })
}

/// A new `waiting` entry.
pub async fn insert<'c>(db: impl Db<'c>, e: &WaitlistRow, created_at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO waitlist (id, user_id, lot_id, start_at, end_at, vehicle_type, auto_book, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.id.to_string())
    .bind(e.user.0.to_string())
    .bind(e.lot.0)
    .bind(e.start_at.timestamp_millis())
    .bind(e.end_at.timestamp_millis())
    .bind(e.vehicle_type.as_str())
    .bind(i64::from(e.auto_book))
    .bind(e.status.as_str())
    .bind(created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// `user`'s entries, newest first.
pub async fn of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<WaitlistRow>> {
    let rows: Vec<Raw> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM waitlist WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?;
    rows.into_iter().map(parse).collect()
}

/// `lot`'s waiting entries, in joining order.
pub async fn waiting<'c>(db: impl Db<'c>, lot: LotId) -> Result<Vec<WaitlistRow>> {
    let rows: Vec<Raw> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM waitlist WHERE lot_id = $1 AND status = 'waiting' ORDER BY created_at, id"
    )))
    .bind(lot.0)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(parse).collect()
}

/// Lots with someone waiting, in order of id (a sweep serves them in the same order each run).
pub async fn lots_with_waiters<'c>(db: impl Db<'c>) -> Result<Vec<LotId>> {
    let lots: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT lot_id FROM waitlist WHERE status = 'waiting' ORDER BY lot_id",
    )
    .fetch_all(db)
    .await?;
    Ok(lots.into_iter().map(LotId).collect())
}

/// End `lot`'s waiting entries whose window started by `now`; how many ended.
pub async fn expire_started<'c>(db: impl Db<'c>, lot: LotId, now: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE waitlist SET status = 'expired', resolved_at = $1
         WHERE lot_id = $2 AND status = 'waiting' AND start_at <= $1",
    )
    .bind(now)
    .bind(lot.0)
    .execute(db)
    .await?
    .rows_affected())
}

/// How a waiting entry ends.
#[derive(Debug, Clone, Copy)]
pub struct Resolution<'a> {
    pub status: WaitlistStatus,
    pub reservation: Option<ReservationId>,
    pub reason: Option<&'a str>,
    pub at: i64,
}

/// Move entry `id` out of `waiting`. False when it was not waiting any more.
pub async fn resolve<'c>(db: impl Db<'c>, id: Uuid, r: Resolution<'_>) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE waitlist SET status = $1, reservation_id = $2, reason = $3, resolved_at = $4
         WHERE id = $5 AND status = 'waiting'",
    )
    .bind(r.status.as_str())
    .bind(r.reservation.map(|x| x.0.to_string()))
    .bind(r.reason)
    .bind(r.at)
    .bind(id.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `user` withdraws their waiting entry `id`. False when it is not theirs or not waiting.
pub async fn withdraw<'c>(db: impl Db<'c>, id: Uuid, user: UserId, at: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE waitlist SET status = 'withdrawn', resolved_at = $1
         WHERE id = $2 AND user_id = $3 AND status = 'waiting'",
    )
    .bind(at)
    .bind(id.to_string())
    .bind(user.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forget `user`'s entries (erasure); how many there were.
pub async fn delete_user<'c>(db: impl Db<'c>, user: UserId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM waitlist WHERE user_id = $1")
        .bind(user.0.to_string())
        .execute(db)
        .await?
        .rows_affected())
}

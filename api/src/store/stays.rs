//! `parking_sessions`: stays, from entry to exit. A spot has at most one open stay (a partial
//! unique index); a stay closes once (`exited_at IS NULL` in the close's `WHERE`). What a stay
//! costs is `crate::tariff`'s; which spot a car gets is the lot's `SpotPolicy`.

use super::Db;
use crate::domain::error::Result;
use warehouse_schema::{LotId, MonthlyPassId, ReservationId, SessionId, UserId};

/// A stay opening now.
#[derive(Debug, Clone)]
pub struct NewSessionRow<'a> {
    pub id: SessionId,
    pub lot: LotId,
    pub spot: i64,
    pub vehicle_type: &'a str,
    pub method: &'a str,
    pub plate: Option<&'a str>,
    pub user: Option<String>,
    pub entered_at: i64,
    pub reservation: Option<ReservationId>,
    pub monthly_pass: Option<MonthlyPassId>,
}

/// The entries of known drivers into `lot` since `since` (epoch ms): driver, entered at,
/// vehicle type.
pub async fn known_entries<'c>(
    db: impl Db<'c>,
    lot: LotId,
    since: i64,
) -> Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, entered_at, vehicle_type FROM parking_sessions
         WHERE lot_id = $1 AND entered_at >= $2 AND user_id IS NOT NULL",
    )
    .bind(lot.0)
    .bind(since)
    .fetch_all(db)
    .await?)
}

pub async fn insert<'c>(db: impl Db<'c>, s: &NewSessionRow<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO parking_sessions (id, lot_id, spot_id, vehicle_type, method, plate, user_id, entered_at,
                                       reservation_id, monthly_pass_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(s.id.0.to_string())
    .bind(s.lot.0)
    .bind(s.spot)
    .bind(s.vehicle_type)
    .bind(s.method)
    .bind(s.plate)
    .bind(s.user.as_deref())
    .bind(s.entered_at)
    .bind(s.reservation.map(|r| r.0.to_string()))
    .bind(s.monthly_pass.map(|m| m.0.to_string()))
    .execute(db)
    .await?;
    Ok(())
}

/// "Spot `s` has no car in it and no holding reservation other than `$4` during `[$2, $3)`"
/// (epoch ms): what makes a spot free to enter now, in both queries that look for one.
macro_rules! free_between {
    () => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL)
             AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.spot_id = s.id AND ",
            holding!("r"),
            " AND r.start_at < $3 AND r.end_at > $2 AND r.id <> $4)"
        )
    };
}

/// Open spots of `lot` with no car in them and no reservation other than `mine` holding them
/// between `from` and `until`: id, label, vehicle type, by id.
pub async fn free_now<'c>(
    db: impl Db<'c>,
    lot: LotId,
    (from, until): (i64, i64),
    mine: Option<ReservationId>,
) -> Result<Vec<(i64, String, String)>> {
    Ok(sqlx::query_as(concat!(
        "SELECT s.id, s.label, s.vehicle_type FROM spots s
         WHERE s.lot_id = $1 AND s.closed = 0 AND ",
        free_between!(),
        " ORDER BY s.id"
    ))
    .bind(lot.0)
    .bind(from)
    .bind(until)
    .bind(mine.map(|r| r.0.to_string()).unwrap_or_default())
    .fetch_all(db)
    .await?)
}

/// Per spot type of `lot`: its open spots, how many have a car in them, and how many
/// [`free_now`] would list for `[from, until)` (epoch ms).
pub async fn free_count_by_type<'c>(
    db: impl Db<'c>,
    lot: LotId,
    (from, until): (i64, i64),
) -> Result<Vec<(String, i64, i64, i64)>> {
    Ok(sqlx::query_as(concat!(
        "SELECT s.vehicle_type, COUNT(*),
                SUM(CASE WHEN EXISTS (SELECT 1 FROM parking_sessions o
                                      WHERE o.spot_id = s.id AND o.exited_at IS NULL)
                    THEN 1 ELSE 0 END),
                SUM(CASE WHEN ",
        free_between!(),
        " THEN 1 ELSE 0 END)
         FROM spots s WHERE s.lot_id = $1 AND s.closed = 0
         GROUP BY s.vehicle_type ORDER BY s.vehicle_type"
    ))
    .bind(lot.0)
    .bind(from)
    .bind(until)
    .bind("")
    .fetch_all(db)
    .await?)
}

/// The lowest-id spot of `spot_type` in `lot` that [`free_now`] would list, with its label.
/// Through the lot-and-type index in id order, it stops at the first free spot instead of
/// probing every spot of the lot and sending all the free ones back.
pub async fn first_free_of_type<'c>(
    db: impl Db<'c>,
    lot: LotId,
    spot_type: &str,
    (from, until): (i64, i64),
    mine: Option<ReservationId>,
) -> Result<Option<(i64, String)>> {
    Ok(sqlx::query_as(concat!(
        "SELECT s.id, s.label FROM spots s
         WHERE s.lot_id = $1 AND s.vehicle_type = $5 AND s.closed = 0 AND ",
        free_between!(),
        " ORDER BY s.id LIMIT 1"
    ))
    .bind(lot.0)
    .bind(from)
    .bind(until)
    .bind(mine.map(|r| r.0.to_string()).unwrap_or_default())
    .bind(spot_type)
    .fetch_optional(db)
    .await?)
}

/// The label of `spot` if it is open and no car is in it.
pub async fn spot_free<'c>(db: impl Db<'c>, spot: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT s.label FROM spots s WHERE s.id = $1 AND s.closed = 0
           AND NOT EXISTS (SELECT 1 FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL)",
    )
    .bind(spot)
    .fetch_optional(db)
    .await?)
}

/// What an exit needs of a stay, with its reservation's quote and end when it had one.
#[derive(Debug, Clone)]
pub struct ExitRow {
    pub vehicle_type: String,
    pub entered_at: i64,
    pub exited_at: Option<i64>,
    pub reservation_id: Option<String>,
    pub user_id: Option<String>,
    pub quote_cents: Option<i64>,
    pub end_at: Option<i64>,
    pub monthly_pass_id: Option<String>,
}

from_row!(ExitRow {
    vehicle_type,
    entered_at,
    exited_at,
    reservation_id,
    user_id,
    quote_cents,
    end_at,
    monthly_pass_id
});

pub async fn for_exit<'c>(
    db: impl Db<'c>,
    session: SessionId,
    lot: LotId,
) -> Result<Option<ExitRow>> {
    Ok(sqlx::query_as(
        "SELECT p.vehicle_type, p.entered_at, p.exited_at, p.reservation_id, p.user_id, r.quote_cents, r.end_at,
                p.monthly_pass_id
         FROM parking_sessions p LEFT JOIN reservations r ON r.id = p.reservation_id
         WHERE p.id = $1 AND p.lot_id = $2",
    )
    .bind(session.0.to_string())
    .bind(lot.0)
    .fetch_optional(db)
    .await?)
}

/// Close an open stay, charged `amount_cents`. False when it had closed already.
pub async fn close<'c>(
    db: impl Db<'c>,
    session: SessionId,
    at: i64,
    amount_cents: i64,
    currency: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE parking_sessions SET exited_at = $1, amount_cents = $2, currency = $3
         WHERE id = $4 AND exited_at IS NULL",
    )
    .bind(at)
    .bind(amount_cents)
    .bind(currency)
    .bind(session.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The open stay of `plate` in `lot` (the earliest, should there be two).
pub async fn open_by_plate<'c>(db: impl Db<'c>, lot: LotId, plate: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM parking_sessions WHERE lot_id = $1 AND plate = $2 AND exited_at IS NULL
         ORDER BY entered_at LIMIT 1",
    )
    .bind(lot.0)
    .bind(plate)
    .fetch_optional(db)
    .await?)
}

/// The open stay on monthly pass `pass`, if any (at most one: a unique index).
pub async fn open_of_pass<'c>(db: impl Db<'c>, pass: MonthlyPassId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM parking_sessions WHERE monthly_pass_id = $1 AND exited_at IS NULL",
    )
    .bind(pass.0.to_string())
    .fetch_optional(db)
    .await?)
}

/// A stay as a driver's data export shows it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub id: String,
    pub lot_id: i64,
    pub spot_id: i64,
    pub vehicle_type: String,
    pub method: String,
    pub plate: Option<String>,
    pub entered_at: i64,
    pub exited_at: Option<i64>,
    pub amount_cents: Option<i64>,
    pub currency: Option<String>,
}

from_row!(ExportRow {
    id,
    lot_id,
    spot_id,
    vehicle_type,
    method,
    plate,
    entered_at,
    exited_at,
    amount_cents,
    currency,
});

/// Every stay of `user`, by entry.
pub async fn export_of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<ExportRow>> {
    Ok(sqlx::query_as(
        "SELECT id, lot_id, spot_id, vehicle_type, method, plate, entered_at, exited_at,
                amount_cents, currency
         FROM parking_sessions WHERE user_id = $1 ORDER BY entered_at",
    )
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// Strip the plate from `user`'s stays; how many were.
pub async fn forget_plates<'c>(db: impl Db<'c>, user: UserId) -> Result<u64> {
    Ok(
        sqlx::query("UPDATE parking_sessions SET plate = NULL WHERE user_id = $1")
            .bind(user.0.to_string())
            .execute(db)
            .await?
            .rows_affected(),
    )
}

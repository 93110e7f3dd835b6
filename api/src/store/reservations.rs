//! `reservations`: the rows and the moves between states. Every move names the state it starts
//! from in its `WHERE`, so of two racing moves exactly one happens and the other reads `false`.
//! Which move is allowed when is `crate::reservations`'s (and the booking rules'); the
//! no-double-booking guarantee is the store's (SQLite: one writer; PostgreSQL: the
//! `no_double_booking` exclusion constraint).

use super::lots::SpotColumns;
use super::{Backend, Db};
use crate::domain::ReservationStatus;
use crate::domain::error::Result;
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, SessionId, UserId};

/// A new `active` reservation.
#[derive(Debug, Clone)]
pub struct NewReservationRow<'a> {
    pub id: ReservationId,
    pub lot: LotId,
    pub spot: i64,
    pub user: UserId,
    pub vehicle_type: &'a str,
    pub vehicle_id: Option<String>,
    pub plate: Option<String>,
    pub start_at: i64,
    pub end_at: i64,
    pub quote_cents: i64,
    pub currency: &'a str,
    pub idempotency_key: &'a str,
    pub created_at: i64,
    /// Set for the spot a monthly pass keeps for its holder in one period: not a booking, so
    /// never listed, reminded, swept as a no-show or entered as one.
    pub monthly_pass: Option<warehouse_schema::MonthlyPassId>,
}

/// The insert of a reservation, ending with `$rows` (the values, or a query giving them).
macro_rules! insert_reservation {
    ($rows:literal) => {
        concat!(
            "INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, vehicle_id, plate,
                                       start_at, end_at, status, quote_cents, currency,
                                       idempotency_key, created_at, monthly_pass_id) ",
            $rows
        )
    };
}

/// Insert a reservation. On PostgreSQL the insert first takes the spot's turn
/// ([`take_turn_on_spot`]) itself — before its row meets the exclusion constraint, whose check
/// reads what is committed rather than the statement's snapshot — one round trip instead of two.
pub async fn insert<'c>(
    db: impl Db<'c>,
    backend: Backend,
    r: &NewReservationRow<'_>,
) -> Result<()> {
    sqlx::query(match backend {
        Backend::Sqlite => insert_reservation!(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ),
        Backend::Postgres => insert_reservation!(
            "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
             FROM (SELECT pg_advisory_xact_lock($3)) AS turn"
        ),
    })
    .bind(r.id.0.to_string())
    .bind(r.lot.0)
    .bind(r.spot)
    .bind(r.user.0.to_string())
    .bind(r.vehicle_type)
    .bind(r.vehicle_id.as_deref())
    .bind(r.plate.as_deref())
    .bind(r.start_at)
    .bind(r.end_at)
    .bind(ReservationStatus::Active.as_str())
    .bind(r.quote_cents)
    .bind(r.currency)
    .bind(r.idempotency_key)
    .bind(r.created_at)
    .bind(r.monthly_pass.map(|m| m.0.to_string()))
    .execute(db)
    .await?;
    Ok(())
}

/// End an `active` reservation as `to` (`Cancelled` or `NoShow`) at `at`, with the id of the
/// driver's cancellation when they asked for it. False when it was not active any more.
pub async fn end_active<'c>(
    db: impl Db<'c>,
    id: ReservationId,
    to: ReservationStatus,
    at: i64,
    cancellation: Option<Uuid>,
) -> Result<bool> {
    debug_assert!(matches!(
        to,
        ReservationStatus::Cancelled | ReservationStatus::NoShow
    ));
    let done = sqlx::query(
        "UPDATE reservations SET status = $1, cancelled_at = $2, cancellation_id = $3
         WHERE id = $4 AND status = 'active'",
    )
    .bind(to.as_str())
    .bind(at)
    .bind(cancellation.map(|c| c.to_string()))
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a change (`PATCH`) of an active reservation sets.
#[derive(Debug, Clone)]
pub struct ChangedReservation<'a> {
    pub spot: i64,
    pub start_at: i64,
    pub end_at: i64,
    pub vehicle_type: &'a str,
    pub vehicle_id: Option<String>,
    pub plate: Option<String>,
    pub quote_cents: i64,
}

/// Apply a change to an `active` reservation. False when it was not active any more.
pub async fn change<'c>(
    db: impl Db<'c>,
    id: ReservationId,
    c: &ChangedReservation<'_>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET spot_id = $1, start_at = $2, end_at = $3, vehicle_type = $4,
                vehicle_id = $5, plate = $6, quote_cents = $7
         WHERE id = $8 AND status = 'active'",
    )
    .bind(c.spot)
    .bind(c.start_at)
    .bind(c.end_at)
    .bind(c.vehicle_type)
    .bind(c.vehicle_id.as_deref())
    .bind(c.plate.as_deref())
    .bind(c.quote_cents)
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extend a holding reservation (booked, or its car in) that still ends at `old_end` to end at
/// `end`, on `spot`, now quoted `quote_cents`. False when it changed meanwhile (ended, or
/// extended by another request).
pub async fn extend<'c>(
    db: impl Db<'c>,
    id: ReservationId,
    old_end: i64,
    (spot, end, quote_cents): (i64, i64, i64),
) -> Result<bool> {
    let done = sqlx::query(concat!(
        "UPDATE reservations SET spot_id = $1, end_at = $2, quote_cents = $3
         WHERE id = $4 AND end_at = $5 AND ",
        holding!()
    ))
    .bind(spot)
    .bind(end)
    .bind(quote_cents)
    .bind(id.0.to_string())
    .bind(old_end)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The car of an `active` reservation entered, opening stay `session`. False when it was not
/// active any more (it entered already, or was cancelled meanwhile).
pub async fn check_in<'c>(db: impl Db<'c>, id: ReservationId, session: SessionId) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET status = 'checked_in', session_id = $1 WHERE id = $2 AND status = 'active'",
    )
    .bind(session.0.to_string())
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The `active` reservation of lot `$1` and plate `$2` starting between `$4` and `$3`, the
/// soonest first. Its terms are those of the stores' `arriving_reservations_by_plate` (SQLite's
/// migration 0020, PostgreSQL's 0022), so that the index serves it.
const ARRIVING_BY_PLATE: &str = "SELECT id, user_id FROM reservations
     WHERE lot_id = $1 AND plate = $2 AND status = 'active' AND start_at <= $3 AND start_at >= $4
       AND monthly_pass_id IS NULL
     ORDER BY start_at LIMIT 1";

/// The `active` reservation of `plate` in `lot` starting between `earliest` and `latest`, the
/// soonest first: its id and its driver.
pub async fn arriving_by_plate<'c>(
    db: impl Db<'c>,
    lot: LotId,
    plate: &str,
    earliest: i64,
    latest: i64,
) -> Result<Option<(String, String)>> {
    Ok(sqlx::query_as(ARRIVING_BY_PLATE)
        .bind(lot.0)
        .bind(plate)
        .bind(latest)
        .bind(earliest)
        .fetch_optional(db)
        .await?)
}

/// An `active` reservation due for a reminder or a no-show check, with its lot's name and time
/// zone and its spot's label.
#[derive(Debug, Clone)]
pub struct DueRow {
    pub id: String,
    pub user_id: String,
    pub lot_id: i64,
    pub name: String,
    pub time_zone: String,
    pub label: String,
    pub start_at: i64,
}

from_row!(DueRow {
    id,
    user_id,
    lot_id,
    name,
    time_zone,
    label,
    start_at
});

/// `active` reservations starting by `to`, soonest first.
pub async fn active_starting_by<'c>(db: impl Db<'c>, to: i64) -> Result<Vec<DueRow>> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.user_id, r.lot_id, l.name, l.time_zone, s.label, r.start_at
         FROM reservations r JOIN lots l ON l.id = r.lot_id JOIN spots s ON s.id = r.spot_id
         WHERE r.status = 'active' AND r.start_at <= $1 AND r.monthly_pass_id IS NULL
         ORDER BY r.start_at, r.id",
    )
    .bind(to)
    .fetch_all(db)
    .await?)
}

/// A checked-in reservation's car left. False when it was not checked in.
pub async fn complete<'c>(db: impl Db<'c>, id: ReservationId) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET status = 'completed' WHERE id = $1 AND status = 'checked_in'",
    )
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which reservation to read.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// `id`, if it is `user`'s.
    Own { id: ReservationId, user: UserId },
    /// `user`'s booking made with Idempotency-Key `key`.
    ByKey { user: UserId, key: &'a str },
}

/// A reservation as stored, with its spot's label.
#[derive(Debug, Clone)]
pub struct ReservationRow {
    pub id: String,
    pub lot_id: i64,
    pub spot_id: i64,
    pub label: String,
    pub start_at: i64,
    pub end_at: i64,
    pub vehicle_type: String,
    pub vehicle_id: Option<String>,
    pub plate: Option<String>,
    pub status: String,
    pub quote_cents: i64,
    pub currency: String,
    pub cancellation_id: Option<String>,
    pub session_id: Option<String>,
}

from_row!(ReservationRow {
    id,
    lot_id,
    spot_id,
    label,
    start_at,
    end_at,
    vehicle_type,
    vehicle_id,
    plate,
    status,
    quote_cents,
    currency,
    cancellation_id,
    session_id,
});

pub async fn find<'c>(db: impl Db<'c>, lookup: Lookup<'_>) -> Result<Option<ReservationRow>> {
    let (condition, a, b) = match lookup {
        Lookup::Own { id, user } => (
            "r.id = $1 AND r.user_id = $2 AND r.monthly_pass_id IS NULL",
            id.0.to_string(),
            user.0.to_string(),
        ),
        Lookup::ByKey { user, key } => (
            "r.user_id = $1 AND r.idempotency_key = $2 AND r.monthly_pass_id IS NULL",
            user.0.to_string(),
            key.to_owned(),
        ),
    };
    let sql = format!(
        "SELECT r.id, r.lot_id, r.spot_id, s.label, r.start_at, r.end_at, r.vehicle_type, r.vehicle_id,
                r.plate, r.status, r.quote_cents, r.currency, r.cancellation_id, r.session_id
         FROM reservations r JOIN spots s ON s.id = r.spot_id WHERE {condition}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(a)
        .bind(b)
        .fetch_optional(db)
        .await?)
}

/// How many reservations `user` has.
/// The lot reservation `id` is in.
pub async fn lot_of<'c>(db: impl Db<'c>, id: ReservationId) -> Result<Option<LotId>> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT lot_id FROM reservations WHERE id = $1")
            .bind(id.0.to_string())
            .fetch_optional(db)
            .await?
            .map(LotId),
    )
}

pub async fn count_of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM reservations WHERE user_id = $1 AND monthly_pass_id IS NULL",
    )
    .bind(user.0.to_string())
    .fetch_one(db)
    .await?)
}

/// The ids of a page of `user`'s reservations, latest start first.
pub async fn page_of_user<'c>(
    db: impl Db<'c>,
    user: UserId,
    limit: i64,
    offset: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM reservations WHERE user_id = $1 AND monthly_pass_id IS NULL
         ORDER BY start_at DESC, id LIMIT $2 OFFSET $3",
    )
    .bind(user.0.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?)
}

/// Pairs of reservations of `lot` that hold one spot for overlapping windows (the audit of the
/// no-double-booking guarantee: always 0).
pub async fn overlapping_holds<'c>(db: impl Db<'c>, lot: LotId) -> Result<i64> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM reservations a JOIN reservations b
           ON a.spot_id = b.spot_id AND a.id < b.id AND a.start_at < b.end_at AND b.start_at < a.end_at
         WHERE a.lot_id = $1 AND ",
        holding!("a"),
        " AND ",
        holding!("b")
    ))
    .bind(lot.0)
    .fetch_one(db)
    .await?)
}

/// A reservation as a driver's data export shows it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub id: String,
    pub lot_id: i64,
    pub spot_id: i64,
    pub vehicle_type: String,
    pub plate: Option<String>,
    pub start_at: i64,
    pub end_at: i64,
    pub status: String,
    pub quote_cents: i64,
    pub currency: String,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
}

from_row!(ExportRow {
    id,
    lot_id,
    spot_id,
    vehicle_type,
    plate,
    start_at,
    end_at,
    status,
    quote_cents,
    currency,
    created_at,
    cancelled_at,
});

/// Every reservation of `user`, by start.
pub async fn export_of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<ExportRow>> {
    Ok(sqlx::query_as(
        "SELECT id, lot_id, spot_id, vehicle_type, plate, start_at, end_at, status, quote_cents,
                currency, created_at, cancelled_at
         FROM reservations WHERE user_id = $1 AND monthly_pass_id IS NULL ORDER BY start_at",
    )
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// `user`'s reservations that have not started (`active`): id and lot.
pub async fn active_of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT id, lot_id FROM reservations
         WHERE user_id = $1 AND status = 'active' AND monthly_pass_id IS NULL",
    )
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// Strip plate and vehicle from `user`'s reservations; how many were.
pub async fn forget_vehicles<'c>(db: impl Db<'c>, user: UserId) -> Result<u64> {
    Ok(
        sqlx::query("UPDATE reservations SET plate = NULL, vehicle_id = NULL WHERE user_id = $1")
            .bind(user.0.to_string())
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// The filters of an admin's reservation search; `None` filters nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Search<'a> {
    pub lot: Option<i64>,
    pub status: Option<&'a str>,
    pub email: Option<&'a str>,
    /// Ending after.
    pub from: Option<i64>,
    /// Starting before.
    pub to: Option<i64>,
}

/// A reservation as the admins' search lists it.
#[derive(Debug, Clone)]
pub struct SearchRow {
    pub id: String,
    pub lot_id: i64,
    pub lot_name: String,
    pub label: String,
    pub email: Option<String>,
    pub vehicle_type: String,
    pub start_at: i64,
    pub end_at: i64,
    pub status: String,
    pub quote_cents: i64,
    pub currency: String,
}

from_row!(SearchRow {
    id,
    lot_id,
    lot_name,
    label,
    email,
    vehicle_type,
    start_at,
    end_at,
    status,
    quote_cents,
    currency,
});

/// Reservations matching `q`, the latest start first; at most `limit`.
pub async fn search<'c>(db: impl Db<'c>, q: Search<'_>, limit: i64) -> Result<Vec<SearchRow>> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.lot_id, l.name AS lot_name, s.label, u.email, r.vehicle_type, r.start_at,
                r.end_at, r.status, r.quote_cents, r.currency
         FROM reservations r
         JOIN lots l ON l.id = r.lot_id
         JOIN spots s ON s.id = r.spot_id
         LEFT JOIN users u ON u.id = r.user_id
         WHERE ($1 IS NULL OR r.lot_id = $1) AND ($2 IS NULL OR r.status = $2)
           AND ($3 IS NULL OR u.email = $3) AND ($4 IS NULL OR r.end_at > $4)
           AND ($5 IS NULL OR r.start_at < $5)
         ORDER BY r.start_at DESC, r.id LIMIT $6",
    )
    .bind(q.lot)
    .bind(q.status)
    .bind(q.email)
    .bind(q.from)
    .bind(q.to)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The text of [`free_spots`] on `backend`, for one spot (`only`) or the lot, with or without
/// a reservation to leave out (`except`): `$1` lot, `$2` spot or NULL, `$3`/`$4` the window,
/// `$5` the reservation left out.
pub fn free_spots_sql(backend: Backend, only: bool, except: bool) -> &'static str {
    match (backend, only, except) {
        (Backend::Sqlite, true, false) => free_spots_sql!(sqlite, spot, any),
        (Backend::Sqlite, true, true) => free_spots_sql!(sqlite, spot, except),
        (Backend::Sqlite, false, false) => free_spots_sql!(sqlite, lot, any),
        (Backend::Sqlite, false, true) => free_spots_sql!(sqlite, lot, except),
        (Backend::Postgres, true, false) => free_spots_sql!(postgres, spot, any),
        (Backend::Postgres, true, true) => free_spots_sql!(postgres, spot, except),
        (Backend::Postgres, false, false) => free_spots_sql!(postgres, lot, any),
        (Backend::Postgres, false, true) => free_spots_sql!(postgres, lot, except),
    }
}

/// Open spots of `lot` (only `only`, if given) that no holding reservation other than
/// `except` occupies during `[start, end)`, by id.
pub async fn free_spots<'c>(
    db: impl Db<'c>,
    backend: Backend,
    lot: LotId,
    only: Option<i64>,
    (start, end): (i64, i64),
    except: Option<ReservationId>,
) -> Result<Vec<SpotColumns>> {
    let query = sqlx::query_as(free_spots_sql(backend, only.is_some(), except.is_some()))
        .bind(lot.0)
        .bind(only)
        .bind(start)
        .bind(end);
    let query = match except {
        Some(r) => query.bind(r.0.to_string()),
        None => query,
    };
    Ok(query.fetch_all(db).await?)
}

/// Every reservation holding a spot of `lot`: id, spot, start, end.
pub async fn holds_of_lot<'c>(db: impl Db<'c>, lot: LotId) -> Result<Vec<(String, i64, i64, i64)>> {
    Ok(sqlx::query_as(concat!(
        "SELECT id, spot_id, start_at, end_at FROM reservations WHERE lot_id = $1 AND ",
        holding!()
    ))
    .bind(lot.0)
    .fetch_all(db)
    .await?)
}

/// On PostgreSQL, hold `spot` until the transaction ends: bookings and changes of one spot take
/// turns (the next one sees the first committed and is refused by the exclusion constraint at
/// once) instead of inserting at the same instant and waiting on each other's exclusion check,
/// a deadlock PostgreSQL breaks only after its `deadlock_timeout` (a second, with the
/// connection held). SQLite's single writer needs no turn.
pub async fn take_turn_on_spot<'c>(db: impl Db<'c>, backend: Backend, spot: i64) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS turn")
            .bind(spot)
            .execute(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

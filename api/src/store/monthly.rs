//! `pass_products` and `monthly_passes`: what operators sell and what drivers hold. A product's
//! `held` counter moves by guarded updates (`take_place`, `give_back_place`), so of two buyers
//! of the last place exactly one gets it; a pass moves between states by updates that name the
//! state they start from, like reservations.

use super::Db;
use crate::domain::PassStatus;
use crate::domain::error::Result;
use warehouse_schema::{LotId, MonthlyPassId, UserId};

/// A product as stored.
#[derive(Debug, Clone)]
pub struct ProductRow {
    pub id: String,
    pub lot_id: i64,
    pub name: String,
    pub days: i64,
    pub from_hour: i64,
    pub until_hour: i64,
    pub vehicle_types: String,
    pub price_cents: i64,
    pub currency: String,
    pub spots: i64,
    pub held: i64,
    pub keeps_spot: i32,
    pub retired: i32,
}

from_row!(ProductRow {
    id,
    lot_id,
    name,
    days,
    from_hour,
    until_hour,
    vehicle_types,
    price_cents,
    currency,
    spots,
    held,
    keeps_spot,
    retired,
});

const PRODUCT: &str =
    "SELECT id, lot_id, name, days, from_hour, until_hour, vehicle_types, price_cents,
        currency, spots, held, keeps_spot, retired FROM pass_products";

pub async fn insert_product<'c>(db: impl Db<'c>, p: &ProductRow, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO pass_products (id, lot_id, name, days, from_hour, until_hour, vehicle_types,
                                    price_cents, currency, spots, held, keeps_spot, retired, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, 0, $12)",
    )
    .bind(&p.id)
    .bind(p.lot_id)
    .bind(&p.name)
    .bind(p.days)
    .bind(p.from_hour)
    .bind(p.until_hour)
    .bind(&p.vehicle_types)
    .bind(p.price_cents)
    .bind(&p.currency)
    .bind(p.spots)
    .bind(p.keeps_spot)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn product<'c>(db: impl Db<'c>, id: &str) -> Result<Option<ProductRow>> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{PRODUCT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// `lot`'s products on sale (retired ones too when `all`), oldest first.
pub async fn products_of_lot<'c>(
    db: impl Db<'c>,
    lot: LotId,
    all: bool,
) -> Result<Vec<ProductRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PRODUCT} WHERE lot_id = $1 AND (retired = 0 OR $2 = 1) ORDER BY created_at, id"
    )))
    .bind(lot.0)
    .bind(i32::from(all))
    .fetch_all(db)
    .await?)
}

/// Stop selling a product (passes held keep running to their period's end). False when it was
/// retired already or is not `lot`'s.
pub async fn retire_product<'c>(db: impl Db<'c>, lot: LotId, id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pass_products SET retired = 1 WHERE id = $1 AND lot_id = $2 AND retired = 0",
    )
    .bind(id)
    .bind(lot.0)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Take one of the product's places for a new pass. False when all are held or it is retired.
pub async fn take_place<'c>(db: impl Db<'c>, product: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pass_products SET held = held + 1 WHERE id = $1 AND held < spots AND retired = 0",
    )
    .bind(product)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A pass ended: its place is free again.
pub async fn give_back_place<'c>(db: impl Db<'c>, product: &str) -> Result<()> {
    sqlx::query("UPDATE pass_products SET held = held - 1 WHERE id = $1 AND held > 0")
        .bind(product)
        .execute(db)
        .await?;
    Ok(())
}

/// A pass as stored, with its product's terms.
#[derive(Debug, Clone)]
pub struct PassRow {
    pub id: String,
    pub product_id: String,
    pub lot_id: i64,
    pub user_id: String,
    pub vehicle_id: String,
    pub plate: String,
    pub vehicle_type: String,
    pub status: String,
    pub period: i64,
    pub period_start: i64,
    pub period_end: i64,
    pub renews: i32,
    pub reminded_period: i64,
    pub method: String,
    pub token: Option<String>,
    pub last4: Option<String>,
    pub hold_id: Option<String>,
    pub spot_id: Option<i64>,
    pub spot_label: Option<String>,
    pub name: String,
    pub days: i64,
    pub from_hour: i64,
    pub until_hour: i64,
    pub price_cents: i64,
    pub currency: String,
    pub keeps_spot: i32,
}

from_row!(PassRow {
    id,
    product_id,
    lot_id,
    user_id,
    vehicle_id,
    plate,
    vehicle_type,
    status,
    period,
    period_start,
    period_end,
    renews,
    reminded_period,
    method,
    token,
    last4,
    hold_id,
    spot_id,
    spot_label,
    name,
    days,
    from_hour,
    until_hour,
    price_cents,
    currency,
    keeps_spot,
});

const PASS: &str =
    "SELECT m.id, m.product_id, m.lot_id, m.user_id, m.vehicle_id, m.plate, m.vehicle_type,
        m.status, m.period, m.period_start, m.period_end, m.renews, m.reminded_period, m.method,
        m.token, m.last4, m.hold_id, m.spot_id, s.label AS spot_label, p.name, p.days, p.from_hour,
        p.until_hour, p.price_cents, p.currency, p.keeps_spot
     FROM monthly_passes m JOIN pass_products p ON p.id = m.product_id
     LEFT JOIN spots s ON s.id = m.spot_id";

/// A new pass, `pending` until its first payment settles.
#[derive(Debug, Clone)]
pub struct NewPass<'a> {
    pub id: MonthlyPassId,
    pub product_id: &'a str,
    pub lot: LotId,
    pub user: UserId,
    pub vehicle_id: String,
    pub plate: &'a str,
    pub vehicle_type: &'a str,
    pub period_start: i64,
    pub period_end: i64,
    pub method: &'a str,
    pub token: Option<&'a str>,
    pub last4: Option<&'a str>,
    pub key: &'a str,
    pub now: i64,
}

pub async fn insert_pass<'c>(db: impl Db<'c>, p: &NewPass<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO monthly_passes (id, product_id, lot_id, user_id, vehicle_id, plate, vehicle_type,
                                     status, period, period_start, period_end, renews, method, token,
                                     last4, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 1, $8, $9, 1, $10, $11, $12, $13, $14)",
    )
    .bind(p.id.0.to_string())
    .bind(p.product_id)
    .bind(p.lot.0)
    .bind(p.user.0.to_string())
    .bind(&p.vehicle_id)
    .bind(p.plate)
    .bind(p.vehicle_type)
    .bind(p.period_start)
    .bind(p.period_end)
    .bind(p.method)
    .bind(p.token)
    .bind(p.last4)
    .bind(p.key)
    .bind(p.now)
    .execute(db)
    .await?;
    Ok(())
}

/// Which pass to read.
#[derive(Debug, Clone, Copy)]
pub enum PassLookup<'a> {
    Id(MonthlyPassId),
    Own(UserId, MonthlyPassId),
    ByKey(UserId, &'a str),
}

pub async fn pass<'c>(db: impl Db<'c>, lookup: PassLookup<'_>) -> Result<Option<PassRow>> {
    let (condition, a, b) = match lookup {
        PassLookup::Id(id) => ("m.id = $1 AND $2 = ''", id.0.to_string(), String::new()),
        PassLookup::Own(user, id) => (
            "m.id = $1 AND m.user_id = $2",
            id.0.to_string(),
            user.0.to_string(),
        ),
        PassLookup::ByKey(user, key) => (
            "m.user_id = $1 AND m.idempotency_key = $2",
            user.0.to_string(),
            key.to_owned(),
        ),
    };
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{PASS} WHERE {condition}")))
            .bind(a)
            .bind(b)
            .fetch_optional(db)
            .await?,
    )
}

/// `user`'s passes, newest first.
pub async fn passes_of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<PassRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASS} WHERE m.user_id = $1 ORDER BY m.created_at DESC, m.id"
    )))
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// The `active` pass of `plate` in `lot` whose period covers `now`.
pub async fn active_by_plate<'c>(
    db: impl Db<'c>,
    lot: LotId,
    plate: &str,
    now: i64,
) -> Result<Option<PassRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASS} WHERE m.lot_id = $1 AND m.plate = $2 AND m.status = 'active'
           AND m.period_start <= $3 AND m.period_end > $3
         ORDER BY m.created_at LIMIT 1"
    )))
    .bind(lot.0)
    .bind(plate)
    .bind(now)
    .fetch_optional(db)
    .await?)
}

/// `active` passes whose period ends by `by`: due for a reminder (with a later `by`) or for
/// renewal or their end.
pub async fn active_ending_by<'c>(db: impl Db<'c>, by: i64) -> Result<Vec<PassRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASS} WHERE m.status = 'active' AND m.period_end <= $1 ORDER BY m.period_end, m.id"
    )))
    .bind(by)
    .fetch_all(db)
    .await?)
}

/// The first payment settled: `pending` → `active` (its kept spot was set with it). False when
/// it was not pending.
pub async fn activate<'c>(db: impl Db<'c>, id: MonthlyPassId) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE monthly_passes SET status = 'active' WHERE id = $1 AND status = 'pending'",
    )
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Set the spot kept for a pending pass (before its payment settles).
pub async fn keep_spot<'c>(
    db: impl Db<'c>,
    id: MonthlyPassId,
    hold: &str,
    spot: i64,
) -> Result<()> {
    sqlx::query("UPDATE monthly_passes SET hold_id = $1, spot_id = $2 WHERE id = $3")
        .bind(hold)
        .bind(spot)
        .bind(id.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The next period, paid: from period `period` to `period + 1`. False when the pass moved on.
pub async fn renew<'c>(
    db: impl Db<'c>,
    id: MonthlyPassId,
    period: i64,
    (start, end): (i64, i64),
    hold: Option<(String, i64)>,
) -> Result<bool> {
    let (hold_id, spot) = hold.unzip();
    let done = sqlx::query(
        "UPDATE monthly_passes SET period = period + 1, period_start = $1, period_end = $2,
                hold_id = $3, spot_id = $4
         WHERE id = $5 AND status = 'active' AND period = $6",
    )
    .bind(start)
    .bind(end)
    .bind(hold_id)
    .bind(spot)
    .bind(id.0.to_string())
    .bind(period)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// End a pending or active pass as `status` (`ended`, `payment_failed`, `lapsed`). False when
/// it had ended already.
pub async fn end_pass<'c>(
    db: impl Db<'c>,
    id: MonthlyPassId,
    status: PassStatus,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE monthly_passes SET status = $1, ended_at = $2
         WHERE id = $3 AND status IN ('pending', 'active')",
    )
    .bind(status.as_str())
    .bind(at)
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The holder stops (or resumes) the renewal: the pass runs to its period's end either way.
pub async fn set_renews<'c>(db: impl Db<'c>, id: MonthlyPassId, renews: bool) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE monthly_passes SET renews = $1 WHERE id = $2 AND status IN ('pending', 'active')",
    )
    .bind(i32::from(renews))
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The renewal reminder of `period` went out. False when it had already.
pub async fn mark_reminded<'c>(db: impl Db<'c>, id: MonthlyPassId, period: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE monthly_passes SET reminded_period = $1 WHERE id = $2 AND reminded_period < $1",
    )
    .bind(period)
    .bind(id.0.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// End the spot kept by a pass's hold (its period is over, or the pass ended early): the
/// reservation row of the pass is completed.
pub async fn release_hold<'c>(db: impl Db<'c>, hold: &str) -> Result<()> {
    sqlx::query(
        "UPDATE reservations SET status = 'completed'
         WHERE id = $1 AND monthly_pass_id IS NOT NULL AND status = 'active'",
    )
    .bind(hold)
    .execute(db)
    .await?;
    Ok(())
}

/// Passes of a lot per status (the portal's figures).
pub async fn count_by_status<'c>(db: impl Db<'c>, lot: LotId) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT status, COUNT(*) FROM monthly_passes WHERE lot_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(lot.0)
    .fetch_all(db)
    .await?)
}

/// Passes still `pending` that were bought before `before`: their buyer went away mid-payment.
pub async fn pending_since<'c>(db: impl Db<'c>, before: i64) -> Result<Vec<PassRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PASS} WHERE m.status = 'pending' AND m.created_at < $1 ORDER BY m.created_at, m.id"
    )))
    .bind(before)
    .fetch_all(db)
    .await?)
}

/// Strip plate, vehicle and gateway token from `user`'s passes (their account is erased).
pub async fn forget_user<'c>(db: impl Db<'c>, user: UserId) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE monthly_passes SET plate = '', vehicle_id = '', token = NULL, last4 = NULL
         WHERE user_id = $1",
    )
    .bind(user.0.to_string())
    .execute(db)
    .await?
    .rows_affected())
}

//! `payments`, `balances` and `gateway_events`: each payment from `pending` to its final
//! state, the prepaid balance it may be paid from or credited to, and the gateway's webhooks
//! already handled. What a payment may do is `crate::payments`'s.

use super::{Db, unless_taken};
use crate::domain::PaymentStatus;
use crate::domain::error::Result;
use warehouse_schema::{ReservationId, UserId};

/// A `payments` row as the API reads it.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: String,
    pub user_id: String,
    pub purpose: String,
    pub reservation_id: Option<String>,
    pub method: String,
    pub last4: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub reason: Option<String>,
    pub refunded_cents: i64,
    pub gateway_ref: Option<String>,
    pub created_at: i64,
    pub monthly_pass_id: Option<String>,
}

from_row!(PaymentRow {
    id,
    user_id,
    purpose,
    reservation_id,
    method,
    last4,
    amount_cents,
    currency,
    status,
    reason,
    refunded_cents,
    gateway_ref,
    created_at,
    monthly_pass_id,
});

const COLUMNS: &str = "id, user_id, purpose, reservation_id, method, last4, amount_cents, \
                       currency, status, reason, refunded_cents, gateway_ref, created_at, \
                       monthly_pass_id";

/// The payment `user` made under idempotency `key`.
pub async fn by_key<'c>(db: impl Db<'c>, user: UserId, key: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE user_id = $1 AND idempotency_key = $2"
    )))
    .bind(user.0.to_string())
    .bind(key)
    .fetch_optional(db)
    .await?)
}

pub async fn by_id<'c>(db: impl Db<'c>, id: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The payment the gateway knows as `reference`.
pub async fn by_gateway_ref<'c>(db: impl Db<'c>, reference: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE gateway_ref = $1"
    )))
    .bind(reference)
    .fetch_optional(db)
    .await?)
}

/// The captured payment of reservation `r`, if it has one.
pub async fn captured_for<'c>(db: impl Db<'c>, r: ReservationId) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE reservation_id = $1 AND status = 'captured'"
    )))
    .bind(r.0.to_string())
    .fetch_optional(db)
    .await?)
}

/// Every payment of `user`, oldest first.
pub async fn of_user<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE user_id = $1 ORDER BY created_at, id"
    )))
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// Strip gateway tokens and card digits from `user`'s payments (they stay as revenue records).
pub async fn forget_cards<'c>(db: impl Db<'c>, user: UserId) -> Result<()> {
    sqlx::query("UPDATE payments SET token = NULL, last4 = NULL WHERE user_id = $1")
        .bind(user.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// `user`'s card and wallet top-ups that can still be refunded, newest first.
pub async fn refundable_top_ups<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments
         WHERE user_id = $1 AND purpose = 'top_up' AND status IN ('captured', 'refunded')
           AND gateway_ref IS NOT NULL AND amount_cents > refunded_cents
         ORDER BY created_at DESC, id DESC"
    )))
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// A payment about to be charged.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub id: &'a str,
    pub user: UserId,
    pub purpose: &'a str,
    pub reservation: Option<ReservationId>,
    pub method: &'a str,
    pub token: Option<&'a str>,
    pub last4: Option<&'a str>,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub idempotency_key: &'a str,
    pub now: i64,
    /// The monthly pass whose period this pays.
    pub monthly_pass: Option<String>,
}

/// Record `p` as `pending`; `false` when `user` already has a payment under its key.
pub async fn insert_pending<'c>(db: impl Db<'c>, p: &NewPayment<'_>) -> Result<bool> {
    Ok(unless_taken(
        sqlx::query(
            "INSERT INTO payments (id, user_id, purpose, reservation_id, method, token, last4,
                                   amount_cents, currency, status, idempotency_key, created_at,
                                   updated_at, monthly_pass_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(p.id)
        .bind(p.user.0.to_string())
        .bind(p.purpose)
        .bind(p.reservation.map(|r| r.0.to_string()))
        .bind(p.method)
        .bind(p.token)
        .bind(p.last4)
        .bind(p.amount_cents)
        .bind(p.currency)
        .bind(p.idempotency_key)
        .bind(p.now)
        .bind(p.monthly_pass.as_deref())
        .execute(db)
        .await?,
    ))
}

/// Record a stay paid from the balance at exit: captured at once, keyed by its session.
pub async fn insert_captured_stay<'c>(
    db: impl Db<'c>,
    id: &str,
    user: &str,
    (amount_cents, currency): (i64, &str),
    session_key: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, user_id, purpose, method, amount_cents, currency, status,
                               idempotency_key, created_at, updated_at)
         VALUES ($1, $2, 'stay', 'balance', $3, $4, 'captured', $5, $6, $6)",
    )
    .bind(id)
    .bind(user)
    .bind(amount_cents)
    .bind(currency)
    .bind(session_key)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The gateway's answer on a payment: `status` with its `reason` and charge reference.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub status: PaymentStatus,
    pub reason: Option<&'a str>,
    pub gateway_ref: Option<&'a str>,
}

/// Move payment `id` out of `pending` to `outcome`; `false` when another request did first.
pub async fn settle<'c>(db: impl Db<'c>, id: &str, outcome: Outcome<'_>, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET status = $1, reason = $2, gateway_ref = $3, updated_at = $4
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(outcome.status.as_str())
    .bind(outcome.reason)
    .bind(outcome.gateway_ref)
    .bind(now)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Declare a payment just settled as captured `declined` after all (the balance fell short).
pub async fn decline_settled<'c>(db: impl Db<'c>, id: &str, reason: &str) -> Result<()> {
    sqlx::query("UPDATE payments SET status = $1, reason = $2 WHERE id = $3")
        .bind(PaymentStatus::Declined.as_str())
        .bind(reason)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Refund `cents` of captured payment `id` in one go; `false` when it is no longer captured.
pub async fn refund_captured<'c>(db: impl Db<'c>, id: &str, cents: i64, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET status = 'refunded', refunded_cents = $1, updated_at = $2
         WHERE id = $3 AND status = 'captured'",
    )
    .bind(cents)
    .bind(now)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Add `cents` to what top-up `id` has refunded, if it has refunded exactly `before` so far
/// (a concurrent payout then records nothing twice); refunded in full, it is `refunded`.
pub async fn add_refund<'c>(
    db: impl Db<'c>,
    id: &str,
    cents: i64,
    before: i64,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET refunded_cents = refunded_cents + $1, updated_at = $2,
                status = CASE WHEN refunded_cents + $1 >= amount_cents THEN 'refunded' ELSE status END
         WHERE id = $3 AND refunded_cents = $4",
    )
    .bind(cents)
    .bind(now)
    .bind(id)
    .bind(before)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The gateway took payment `id` back (a chargeback or a late failure).
pub async fn reverse<'c>(db: impl Db<'c>, id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'reversed', reason = 'reversed by the gateway',
                updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Remember gateway event `event_id`; `false` when it was handled before.
pub async fn first_delivery<'c>(
    db: impl Db<'c>,
    event_id: &str,
    kind: &str,
    now: i64,
) -> Result<bool> {
    let fresh = sqlx::query(
        "INSERT INTO gateway_events (event_id, kind, received_at) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .bind(now)
    .execute(db)
    .await?;
    Ok(fresh.rows_affected() == 1)
}

/// `user`'s prepaid balance and its currency, without a top-up none.
pub async fn balance<'c>(db: impl Db<'c>, user: UserId) -> Result<Option<(i64, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT cents, currency FROM balances WHERE user_id = $1")
            .bind(user.0.to_string())
            .fetch_optional(db)
            .await?,
    )
}

/// Make sure `user` has a balance row; a new one holds nothing in `currency`. An insert that
/// may meet a concurrent one's row does nothing instead of failing (on PostgreSQL a failed
/// statement would abort the caller's transaction).
pub async fn open_balance<'c>(db: impl Db<'c>, user: UserId, currency: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO balances (user_id, cents, currency) VALUES ($1, 0, $2)
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user.0.to_string())
    .bind(currency)
    .execute(db)
    .await?;
    Ok(())
}

/// Add `cents` to `user`'s balance if it is held in `currency` (or its currency is not fixed
/// yet: then `currency` fixes it); `false` when it is held in another or there is none.
pub async fn add<'c>(db: impl Db<'c>, user: UserId, cents: i64, currency: &str) -> Result<bool> {
    let added = sqlx::query(
        "UPDATE balances SET cents = cents + $1, currency = COALESCE(currency, $3)
         WHERE user_id = $2 AND (currency IS NULL OR currency = $3)",
    )
    .bind(cents)
    .bind(user.0.to_string())
    .bind(currency)
    .execute(db)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// Take `cents` from `user`'s balance in `currency`, only if it holds that much.
pub async fn debit_covered<'c>(
    db: impl Db<'c>,
    user: UserId,
    cents: i64,
    currency: &str,
) -> Result<bool> {
    let debited = sqlx::query(
        "UPDATE balances SET cents = cents - $1
         WHERE user_id = $2 AND cents >= $1 AND currency = $3",
    )
    .bind(cents)
    .bind(user.0.to_string())
    .bind(currency)
    .execute(db)
    .await?;
    Ok(debited.rows_affected() == 1)
}

/// Take `cents` from `user`'s balance in `currency` even below zero (the car is already
/// out); `false` when there is no balance in that currency.
pub async fn debit<'c>(db: impl Db<'c>, user: &str, cents: i64, currency: &str) -> Result<bool> {
    let debited =
        sqlx::query("UPDATE balances SET cents = cents - $1 WHERE user_id = $2 AND currency = $3")
            .bind(cents)
            .bind(user)
            .bind(currency)
            .execute(db)
            .await?;
    Ok(debited.rows_affected() == 1)
}

/// Take `cents` paid back to a card from `user`'s balance, whatever it holds.
pub async fn paid_back<'c>(db: impl Db<'c>, user: UserId, cents: i64) -> Result<()> {
    sqlx::query("UPDATE balances SET cents = cents - $1 WHERE user_id = $2")
        .bind(cents)
        .bind(user.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// Delete `user`'s balance (paid out before).
pub async fn delete_balance<'c>(db: impl Db<'c>, user: UserId) -> Result<()> {
    sqlx::query("DELETE FROM balances WHERE user_id = $1")
        .bind(user.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}

//! Payments: reservations paid by card token, wallet token or prepaid balance; balance top-ups;
//! refunds on cancellation; gateway webhooks.
//!
//! - Only gateway tokens and the last four digits reach storage. A request carrying anything else
//!   (a card number, a CVV) is refused by the strict JSON shape before it is read, and error
//!   messages never echo the values.
//! - Every request carries an idempotency key: the same key returns the first result and never
//!   charges twice. The key is passed on to the gateway, which is idempotent on it too, so a
//!   retry after a timeout (or after a crash between the call and the write) cannot charge twice.
//! - A declined, failed or (later, by webhook) reversed payment cancels the reservation, frees
//!   its spot and tells the driver. Webhook events are handled once per event id.

use crate::auth::TokenSigner;
use crate::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind, enqueue};
use crate::reservations::cancel_active;
use crate::service::ParkingService;
use crate::store::{append_event, is_unique_violation};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, LotId, PaymentId, ReservationId, UserId};

/// How the driver pays. Tokens come from the gateway's client-side SDK; parkflow never sees the
/// card itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "camelCase", deny_unknown_fields)]
pub enum PaymentMethod {
    Card { token: String, last4: String },
    Wallet { token: String },
    Balance,
}

impl PaymentMethod {
    fn name(&self) -> &'static str {
        match self {
            Self::Card { .. } => "card",
            Self::Wallet { .. } => "wallet",
            Self::Balance => "balance",
        }
    }

    fn validate(&self) -> Result<()> {
        let token_ok = |t: &str, prefix: &str| {
            t.starts_with(prefix)
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match self {
            Self::Card { token, last4 } => {
                if !token_ok(token, "tok_") {
                    return Err(Error::Invalid(
                        "a card is paid with a gateway token (tok_…), never with card details"
                            .into(),
                    ));
                }
                if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Invalid("last4 is the last four digits".into()));
                }
            }
            Self::Wallet { token } if !token_ok(token, "wal_") => {
                return Err(Error::Invalid(
                    "a wallet is paid with a wallet token (wal_…)".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn token(&self) -> Option<&str> {
        match self {
            Self::Card { token, .. } | Self::Wallet { token } => Some(token),
            Self::Balance => None,
        }
    }
}

/// Refunds on cancellation: the share refunded when cancelling at least `before_start_minutes`
/// before the start; the first tier that applies wins (list them longest notice first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTier {
    pub before_start_minutes: u32,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// A driver with a prepaid account needs at least this balance to enter without a
    /// reservation.
    pub min_balance_cents: i64,
    pub refund_policy: Vec<RefundTier>,
    /// Shared secret of the gateway's webhook signatures (HMAC-SHA256, base64url).
    pub webhook_secret: crate::config::Secret,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            min_balance_cents: 0,
            refund_policy: vec![
                RefundTier {
                    before_start_minutes: 24 * 60,
                    percent: 100,
                },
                RefundTier {
                    before_start_minutes: 60,
                    percent: 50,
                },
            ],
            webhook_secret: crate::config::Secret("dev-webhook-secret".into()),
        }
    }
}

impl PaymentsConfig {
    /// Percent refunded when cancelling `notice_minutes` before the start.
    pub fn refund_percent(&self, notice_minutes: i64) -> u32 {
        self.refund_policy
            .iter()
            .find(|t| notice_minutes >= i64::from(t.before_start_minutes))
            .map_or(0, |t| t.percent.min(100))
    }
}

/// One charge at the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub token: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutcome {
    Captured { reference: String },
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying with the same idempotency key (timeout, 5xx).
    #[error("gateway unavailable: {0}")]
    Retryable(String),
    #[error("gateway error: {0}")]
    Fatal(String),
}

pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A payment service provider.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> GatewayFuture<'a, GatewayOutcome>;
    /// Refund part or all of a captured charge; returns the refund's reference.
    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> GatewayFuture<'a, String>;
}

/// A gateway that behaves like real ones, with deterministic test tokens:
/// `tok_ok`/`wal_ok` are captured, `tok_decline`/`wal_decline` declined, `tok_retry` times out
/// on the first attempt of each idempotency key and is captured on the next, `tok_reverse` is
/// captured (and reversed later by a webhook the test sends). Idempotent on the key, like real
/// gateways: a repeated key returns the first outcome.
#[derive(Debug, Default)]
pub struct SandboxGateway {
    state: Mutex<SandboxState>,
}

#[derive(Debug, Default)]
struct SandboxState {
    outcomes: HashMap<String, GatewayOutcome>,
    attempts: HashMap<String, u32>,
    refunds: HashMap<String, String>,
    captured: u64,
}

impl SandboxGateway {
    /// Charges captured so far (each idempotency key at most once).
    pub fn captured(&self) -> u64 {
        self.state.lock().expect("sandbox lock").captured
    }
}

impl PaymentGateway for SandboxGateway {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> GatewayFuture<'a, GatewayOutcome> {
        Box::pin(async move {
            let mut s = self.state.lock().expect("sandbox lock");
            if let Some(o) = s.outcomes.get(&req.idempotency_key) {
                return Ok(o.clone());
            }
            let attempt = {
                let a = s.attempts.entry(req.idempotency_key.clone()).or_default();
                *a += 1;
                *a
            };
            let captured = || GatewayOutcome::Captured {
                reference: format!("ch_{}", uuid::Uuid::now_v7().simple()),
            };
            let outcome = match req.token.as_str() {
                "tok_ok" | "wal_ok" | "tok_reverse" => captured(),
                "tok_retry" if attempt == 1 => {
                    return Err(GatewayError::Retryable("timeout".into()));
                }
                "tok_retry" => captured(),
                "tok_decline" => GatewayOutcome::Declined {
                    reason: "card_declined".into(),
                },
                "wal_decline" => GatewayOutcome::Declined {
                    reason: "insufficient_funds".into(),
                },
                _ => GatewayOutcome::Declined {
                    reason: "unknown_token".into(),
                },
            };
            if matches!(outcome, GatewayOutcome::Captured { .. }) {
                s.captured += 1;
            }
            s.outcomes
                .insert(req.idempotency_key.clone(), outcome.clone());
            Ok(outcome)
        })
    }

    fn refund<'a>(
        &'a self,
        reference: &'a str,
        _amount_cents: i64,
        idempotency_key: &'a str,
    ) -> GatewayFuture<'a, String> {
        Box::pin(async move {
            let mut s = self.state.lock().expect("sandbox lock");
            let r = s
                .refunds
                .entry(idempotency_key.to_owned())
                .or_insert_with(|| format!("re_{reference}"));
            Ok(r.clone())
        })
    }
}

/// A stored payment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRecord {
    pub id: String,
    pub purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    /// `pending`, `captured`, `declined`, `failed`, `reversed` or `refunded`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub refunded_cents: i64,
}

/// A `payments` row as [`PAYMENT_COLUMNS`] reads it.
type PaymentRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
);

const PAYMENT_COLUMNS: &str = "id, purpose, reservation_id, method, last4, amount_cents, currency, status, reason, refunded_cents, gateway_ref";

/// The payment as the API shows it, and the gateway's reference of its charge.
fn record(row: PaymentRow) -> (PaymentRecord, Option<String>) {
    let (
        id,
        purpose,
        reservation_id,
        method,
        last4,
        amount,
        currency,
        status,
        reason,
        refunded,
        gref,
    ) = row;
    (
        PaymentRecord {
            id,
            purpose,
            reservation_id,
            method,
            last4,
            amount_cents: amount,
            currency,
            status,
            reason,
            refunded_cents: refunded,
        },
        gref,
    )
}

/// A gateway webhook event (the body the gateway posts, signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookEvent {
    pub event_id: String,
    /// `payment.reversed` (a chargeback or a late failure).
    #[serde(rename = "type")]
    pub kind: String,
    /// The gateway's reference of the charge.
    pub reference: String,
}

/// What happens to a payment that did not go through.
const RETRIES: u32 = 3;

impl ParkingService {
    /// Pay `user`'s active reservation. A repeated `key` returns the first result.
    pub async fn pay_reservation(
        &self,
        user: UserId,
        reservation: ReservationId,
        method: PaymentMethod,
        key: &str,
    ) -> Result<PaymentRecord> {
        method.validate()?;
        check_key(key)?;
        if let Some(existing) = self.payment_by_key(user, key).await? {
            return self.resume(user, existing, method).await;
        }
        let r = self.reservation_of(user, reservation).await?;
        if r.status != "active" {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {reservation} is {}", r.status),
            ));
        }
        let paid: Option<String> = sqlx::query_scalar(
            "SELECT id FROM payments WHERE reservation_id = $1 AND status = 'captured'",
        )
        .bind(reservation.0.to_string())
        .fetch_optional(self.store().pool())
        .await?;
        if paid.is_some() {
            return Err(Error::conflict(
                "already_paid",
                format!("reservation {reservation} is paid"),
            ));
        }
        if matches!(method, PaymentMethod::Balance)
            && let Some(held) = self.balance_currency(user).await?
            && held != r.currency
        {
            return Err(currency_mismatch(&held, &r.currency));
        }
        let p = self
            .insert_payment(
                user,
                "reservation",
                Some(reservation),
                &method,
                r.quote_cents,
                &r.currency,
                key,
            )
            .await?;
        self.resume(user, p, method).await
    }

    /// Add `amount_cents` to `user`'s prepaid balance, paid by card or wallet.
    ///
    /// A balance holds one currency: the first top-up fixes it (`currency`, by default the
    /// operator's [`DEFAULT_CURRENCY`](crate::service::DEFAULT_CURRENCY)); a top-up in another
    /// is refused (`currency_mismatch`), never converted.
    pub async fn top_up(
        &self,
        user: UserId,
        amount_cents: i64,
        currency: Option<String>,
        method: PaymentMethod,
        key: &str,
    ) -> Result<PaymentRecord> {
        method.validate()?;
        check_key(key)?;
        if matches!(method, PaymentMethod::Balance) {
            return Err(Error::Invalid("a top-up is paid by card or wallet".into()));
        }
        if !(100..=100_000).contains(&amount_cents) {
            return Err(Error::Invalid("a top-up is 100 to 100000 cents".into()));
        }
        let requested = currency
            .map(|c| crate::service::currency_code(&c))
            .transpose()?;
        let currency = match (self.balance_currency(user).await?, requested) {
            (Some(held), Some(asked)) if held != asked => {
                return Err(currency_mismatch(&held, &asked));
            }
            (Some(held), _) => held,
            (None, Some(asked)) => asked,
            (None, None) => crate::service::DEFAULT_CURRENCY.to_owned(),
        };
        if let Some(existing) = self.payment_by_key(user, key).await? {
            return self.resume(user, existing, method).await;
        }
        let p = self
            .insert_payment(user, "top_up", None, &method, amount_cents, &currency, key)
            .await?;
        self.resume(user, p, method).await
    }

    /// Pay `user`'s prepaid balance back to the cards and wallets it was topped up from, newest
    /// top-up first, as their account is erased. Each refund is recorded as it succeeds, so a
    /// retried erasure pays only what is left (and the gateway's idempotency key makes a refund
    /// whose record was lost happen once). A balance that no top-up can take back is refused
    /// (`balance_remaining`) for the operator to settle. Returns the cents paid out.
    pub(crate) async fn pay_out_balance(&self, user: UserId) -> Result<i64> {
        let mut left = self.balance(user).await?;
        let mut paid = 0;
        if left <= 0 {
            return Ok(0);
        }
        let top_ups: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT id, gateway_ref, amount_cents, refunded_cents FROM payments
             WHERE user_id = $1 AND purpose = 'top_up' AND status IN ('captured', 'refunded')
               AND gateway_ref IS NOT NULL AND amount_cents > refunded_cents
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user.0.to_string())
        .fetch_all(self.store().pool())
        .await?;
        for (id, reference, amount, refunded) in top_ups {
            if left == 0 {
                break;
            }
            let cents = left.min(amount - refunded);
            self.gateway()
                .refund(
                    reference.as_deref().unwrap_or_default(),
                    cents,
                    &format!("pf-payout-{id}-{refunded}"),
                )
                .await
                .map_err(|e| Error::unprocessable("refund_failed", e.to_string()))?;
            let now = self.now().timestamp_millis();
            let mut tx = self.store().begin_write().await?;
            let recorded = sqlx::query(
                "UPDATE payments SET refunded_cents = refunded_cents + $1, updated_at = $2,
                        status = CASE WHEN refunded_cents + $1 >= amount_cents THEN 'refunded' ELSE status END
                 WHERE id = $3 AND refunded_cents = $4",
            )
            .bind(cents)
            .bind(now)
            .bind(&id)
            .bind(refunded)
            .execute(&mut *tx)
            .await?;
            if recorded.rows_affected() == 1 {
                sqlx::query("UPDATE balances SET cents = cents - $1 WHERE user_id = $2")
                    .bind(cents)
                    .bind(user.0.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            left -= cents;
            paid += cents;
        }
        if left > 0 {
            return Err(Error::conflict(
                "balance_remaining",
                format!(
                    "{}.{:02} of prepaid balance cannot be paid back to a card or wallet; the operator settles it before the account is erased",
                    left / 100,
                    left % 100
                ),
            ));
        }
        Ok(paid)
    }

    /// `user`'s prepaid balance (0 without an account).
    pub async fn balance(&self, user: UserId) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT cents FROM balances WHERE user_id = $1")
                .bind(user.0.to_string())
                .fetch_optional(self.store().pool())
                .await?
                .unwrap_or(0),
        )
    }

    /// The currency of `user`'s prepaid balance, once a top-up has fixed it.
    pub async fn balance_currency(&self, user: UserId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT currency FROM balances WHERE user_id = $1",
        )
        .bind(user.0.to_string())
        .fetch_optional(self.store().pool())
        .await?
        .flatten())
    }

    async fn payment_by_key(&self, user: UserId, key: &str) -> Result<Option<PaymentRecord>> {
        let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = $1 AND idempotency_key = $2"
        )))
        .bind(user.0.to_string())
        .bind(key)
        .fetch_optional(self.store().pool())
        .await?;
        Ok(row.map(|r| record(r).0))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_payment(
        &self,
        user: UserId,
        purpose: &str,
        reservation: Option<ReservationId>,
        method: &PaymentMethod,
        amount: i64,
        currency: &str,
        key: &str,
    ) -> Result<PaymentRecord> {
        let now = self.now().timestamp_millis();
        let id = PaymentId::new();
        let last4 = match method {
            PaymentMethod::Card { last4, .. } => Some(last4.clone()),
            _ => None,
        };
        let inserted = sqlx::query(
            "INSERT INTO payments (id, user_id, purpose, reservation_id, method, token, last4, amount_cents,
                                   currency, status, idempotency_key, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)",
        )
        .bind(id.0.to_string())
        .bind(user.0.to_string())
        .bind(purpose)
        .bind(reservation.map(|r| r.0.to_string()))
        .bind(method.name())
        .bind(method.token())
        .bind(&last4)
        .bind(amount)
        .bind(currency)
        .bind(key)
        .bind(now)
        .execute(self.store().pool())
        .await;
        match inserted {
            Ok(_) => {}
            // The same key raced in from another request: its row is the payment.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        self.payment_by_key(user, key)
            .await?
            .ok_or_else(|| Error::NotFound("payment".into()))
    }

    /// Carry a payment to its final state: charge the gateway (or the balance) for a pending
    /// one, with the payment's own idempotency key; a final one is returned as it is.
    async fn resume(
        &self,
        user: UserId,
        p: PaymentRecord,
        method: PaymentMethod,
    ) -> Result<PaymentRecord> {
        if p.status != "pending" {
            return Ok(p);
        }
        if p.method != method.name() {
            return Err(Error::conflict(
                "idempotency_key_reused",
                "this idempotency key was used for another payment",
            ));
        }
        let outcome = match &method {
            // Debited by `settle`, in the transaction that finalises the payment.
            PaymentMethod::Balance => Ok(GatewayOutcome::Captured {
                reference: format!("balance-{}", p.id),
            }),
            _ => {
                let req = ChargeRequest {
                    idempotency_key: format!("pf-{}", p.id),
                    token: method.token().unwrap_or_default().to_owned(),
                    amount_cents: p.amount_cents,
                    currency: p.currency.clone(),
                };
                self.charge_with_retries(&req).await
            }
        };
        self.settle(user, p, outcome).await
    }

    async fn charge_with_retries(&self, req: &ChargeRequest) -> Result<GatewayOutcome, String> {
        let mut wait = std::time::Duration::from_millis(20);
        for attempt in 1..=RETRIES {
            match self.gateway().charge(req).await {
                Ok(o) => return Ok(o),
                Err(GatewayError::Retryable(e)) if attempt < RETRIES => {
                    tracing::warn!(attempt, error = %e, "gateway unavailable, retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("gateway unavailable".into())
    }

    /// Record the outcome; a failed reservation payment cancels the reservation and tells the
    /// driver; a captured top-up credits the balance.
    async fn settle(
        &self,
        user: UserId,
        p: PaymentRecord,
        outcome: Result<GatewayOutcome, String>,
    ) -> Result<PaymentRecord> {
        let now = self.now();
        let (mut status, mut reason, reference) = match &outcome {
            Ok(GatewayOutcome::Captured { reference }) => {
                ("captured", None, Some(reference.clone()))
            }
            Ok(GatewayOutcome::Declined { reason }) => ("declined", Some(reason.clone()), None),
            Err(e) => ("failed", Some(e.clone()), None),
        };
        let reservation: Option<ReservationId> = p
            .reservation_id
            .as_deref()
            .and_then(|r| r.parse().ok())
            .map(ReservationId);
        let mut tx = self.store().begin_write().await?;
        // Only the request that moves the payment out of `pending` acts on it: a concurrent
        // request with the same key finds it settled.
        let claimed = sqlx::query(
            "UPDATE payments SET status = $1, reason = $2, gateway_ref = $3, updated_at = $4
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(&reason)
        .bind(&reference)
        .bind(now.timestamp_millis())
        .bind(&p.id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            tx.rollback().await?;
            return self.payment_by_id(&p.id).await;
        }
        if p.method == "balance" && status == "captured" {
            let debited = sqlx::query(
                "UPDATE balances SET cents = cents - $1 WHERE user_id = $2 AND cents >= $1 AND currency = $3",
            )
            .bind(p.amount_cents)
            .bind(user.0.to_string())
            .bind(&p.currency)
            .execute(&mut *tx)
            .await?;
            if debited.rows_affected() != 1 {
                (status, reason) = ("declined", Some("insufficient_balance".to_owned()));
                sqlx::query("UPDATE payments SET status = $1, reason = $2 WHERE id = $3")
                    .bind(status)
                    .bind(&reason)
                    .bind(&p.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let lot = match reservation {
            Some(r) => self.reservation_lot(&mut tx, r).await?,
            None => None,
        };
        if p.purpose == "top_up" && status == "captured" {
            credit(&mut tx, user, p.amount_cents, &p.currency).await?;
        }
        let mut cancelled = None;
        if let (Some(r), Some(lot)) = (reservation, lot) {
            let payload = Payment {
                payment_id: payment_id(&p.id)?,
                reservation_id: Some(r),
                session_id: None,
                amount_cents: Cents(p.amount_cents),
                currency: p.currency.clone(),
                reason: reason.clone(),
                method: Some(p.method.clone()),
            };
            let event = Event::new(
                now,
                lot,
                if status == "captured" {
                    EventPayload::PaymentCaptured(payload)
                } else {
                    EventPayload::PaymentFailed(payload)
                },
            );
            append_event(&mut tx, &event).await?;
            if status != "captured" && cancel_active(&mut tx, r, lot, "payment_failed", now).await?
            {
                cancelled = Some(r);
            }
        }
        tx.commit().await?;
        if let (Some(r), Some(lot)) = (cancelled, lot) {
            self.released(lot, r).await;
            self.tell(
                user,
                lot,
                &format!("reservation:{}:payment_failed", r.0),
                format!(
                    "Your payment did not go through ({}); the reservation was cancelled",
                    reason.as_deref().unwrap_or("declined")
                ),
            )
            .await?;
        }
        self.payment_by_id(&p.id).await
    }

    async fn payment_by_id(&self, id: &str) -> Result<PaymentRecord> {
        let row: PaymentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(self.store().pool())
        .await?;
        Ok(record(row).0)
    }

    async fn reservation_lot(
        &self,
        conn: &mut sqlx::AnyConnection,
        r: ReservationId,
    ) -> Result<Option<LotId>> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT lot_id FROM reservations WHERE id = $1")
                .bind(r.0.to_string())
                .fetch_optional(conn)
                .await?
                .map(LotId),
        )
    }

    async fn tell(&self, user: UserId, lot: LotId, key: &str, body: String) -> Result<bool> {
        let name = self.lot(lot).await.map(|l| l.name).unwrap_or_default();
        enqueue(
            self.store(),
            &NewNotification {
                user_id: user,
                kind: NotificationKind::PaymentProblem,
                dedup_key: key.to_owned(),
                lot_id: Some(lot),
                title: name,
                body,
            },
            self.now(),
        )
        .await
    }

    /// Refund the captured payment of reservation `r` cancelled by the driver, per the policy:
    /// to the card or wallet through the gateway, or back to the balance. Returns the cents.
    pub(crate) async fn refund_on_cancel(
        &self,
        r: ReservationId,
        start_at: DateTime<Utc>,
    ) -> Result<i64> {
        let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE reservation_id = $1 AND status = 'captured'"
        )))
        .bind(r.0.to_string())
        .fetch_optional(self.store().pool())
        .await?;
        let Some(row) = row else {
            return Ok(0);
        };
        let (p, reference) = record(row);
        let now = self.now();
        let percent = self
            .payments_config()
            .refund_percent((start_at - now).num_minutes());
        let cents = p.amount_cents * i64::from(percent) / 100;
        if cents > 0 && p.method != "balance" {
            let reference = reference.unwrap_or_default();
            self.gateway()
                .refund(&reference, cents, &format!("pf-refund-{}", p.id))
                .await
                .map_err(|e| Error::unprocessable("refund_failed", e.to_string()))?;
        }
        let mut tx = self.store().begin_write().await?;
        let done = sqlx::query(
            "UPDATE payments SET status = 'refunded', refunded_cents = $1, updated_at = $2
             WHERE id = $3 AND status = 'captured'",
        )
        .bind(cents)
        .bind(now.timestamp_millis())
        .bind(&p.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            if p.method == "balance" && cents > 0 {
                let user: String = sqlx::query_scalar("SELECT user_id FROM payments WHERE id = $1")
                    .bind(&p.id)
                    .fetch_one(&mut *tx)
                    .await?;
                let user = UserId(user.parse().map_err(|_| Error::Invalid("user id".into()))?);
                credit(&mut tx, user, cents, &p.currency).await?;
            }
            if let Some(lot) = self.reservation_lot(&mut tx, r).await? {
                let event = Event::new(
                    now,
                    lot,
                    EventPayload::PaymentRefunded(Payment {
                        payment_id: payment_id(&p.id)?,
                        reservation_id: Some(r),
                        session_id: None,
                        amount_cents: Cents(cents),
                        currency: p.currency.clone(),
                        reason: Some(format!("cancelled, {percent}% refunded")),
                        method: Some(p.method.clone()),
                    }),
                );
                append_event(&mut tx, &event).await?;
            }
        }
        tx.commit().await?;
        Ok(cents)
    }

    /// At exit, a drive-up stay of a driver with a prepaid account is paid from the balance
    /// (which may go below zero: the car is already out), inside the check-out transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn pay_stay_from_balance(
        &self,
        conn: &mut sqlx::AnyConnection,
        lot: LotId,
        session: warehouse_schema::SessionId,
        user: &str,
        amount: i64,
        currency: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Only a balance in the lot's currency pays; another is never converted.
        let debited = sqlx::query(
            "UPDATE balances SET cents = cents - $1 WHERE user_id = $2 AND currency = $3",
        )
        .bind(amount)
        .bind(user)
        .bind(currency)
        .execute(&mut *conn)
        .await?;
        if debited.rows_affected() != 1 {
            return Ok(false);
        }
        let id = PaymentId::new();
        sqlx::query(
            "INSERT INTO payments (id, user_id, purpose, method, amount_cents, currency, status,
                                   idempotency_key, created_at, updated_at)
             VALUES ($1, $2, 'stay', 'balance', $3, $4, 'captured', $5, $6, $6)",
        )
        .bind(id.0.to_string())
        .bind(user)
        .bind(amount)
        .bind(currency)
        .bind(format!("stay-{}", session.0))
        .bind(now.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        let event = Event::new(
            now,
            lot,
            EventPayload::PaymentCaptured(Payment {
                payment_id: id,
                reservation_id: None,
                session_id: Some(session),
                amount_cents: Cents(amount),
                currency: currency.to_owned(),
                reason: None,
                method: Some("balance".into()),
            }),
        );
        append_event(conn, &event).await?;
        Ok(true)
    }

    /// A signed gateway webhook. Returns false for an event already handled.
    pub async fn gateway_webhook(&self, body: &[u8], signature: &str) -> Result<bool> {
        let signer = TokenSigner::new(self.payments_config().webhook_secret.expose());
        if !signer.verify_signature(body, signature) {
            return Err(Error::Unauthorized);
        }
        let event: WebhookEvent = serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("webhook body: {e}")))?;
        if event.kind != "payment.reversed" {
            return Err(Error::Invalid(format!(
                "unknown webhook type `{}`",
                event.kind
            )));
        }
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let fresh = sqlx::query(
            "INSERT INTO gateway_events (event_id, kind, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.event_id)
        .bind(&event.kind)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if fresh.rows_affected() == 0 {
            return Ok(false);
        }
        let row: Option<(String, String, Option<String>, i64, String, String)> = sqlx::query_as(
            "SELECT id, user_id, reservation_id, amount_cents, currency, method FROM payments WHERE gateway_ref = $1",
        )
        .bind(&event.reference)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, user, reservation, amount, currency, method)) = row else {
            return Err(Error::NotFound(format!("payment {}", event.reference)));
        };
        sqlx::query("UPDATE payments SET status = 'reversed', reason = 'reversed by the gateway', updated_at = $1 WHERE id = $2")
            .bind(now.timestamp_millis())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let user = UserId(user.parse().map_err(|_| Error::Invalid("user id".into()))?);
        let reservation: Option<ReservationId> =
            reservation.and_then(|r| r.parse().ok()).map(ReservationId);
        let mut cancelled = None;
        if let Some(r) = reservation
            && let Some(lot) = self.reservation_lot(&mut tx, r).await?
        {
            let event = Event::new(
                now,
                lot,
                EventPayload::PaymentFailed(Payment {
                    payment_id: payment_id(&id)?,
                    reservation_id: Some(r),
                    session_id: None,
                    amount_cents: Cents(amount),
                    currency,
                    reason: Some("reversed".into()),
                    method: Some(method),
                }),
            );
            append_event(&mut tx, &event).await?;
            if cancel_active(&mut tx, r, lot, "payment_reversed", now).await? {
                cancelled = Some((r, lot));
            }
        }
        tx.commit().await?;
        if let Some((r, lot)) = cancelled {
            self.released(lot, r).await;
            self.tell(
                user,
                lot,
                &format!("reservation:{}:payment_reversed", r.0),
                "Your payment was reversed by your bank; the reservation was cancelled".into(),
            )
            .await?;
        }
        Ok(true)
    }
}

/// Add `cents` in `currency` to `user`'s balance; the first credit fixes its currency.
async fn credit(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
    cents: i64,
    currency: &str,
) -> Result<()> {
    if add_to_balance(conn, user, cents, currency).await? {
        return Ok(());
    }
    match sqlx::query("INSERT INTO balances (user_id, cents, currency) VALUES ($1, $2, $3)")
        .bind(user.0.to_string())
        .bind(cents)
        .bind(currency)
        .execute(&mut *conn)
        .await
    {
        Ok(_) => Ok(()),
        // Made meanwhile by a concurrent top-up: add to it if it holds the same currency.
        Err(e) if is_unique_violation(&e) => {
            if add_to_balance(conn, user, cents, currency).await? {
                Ok(())
            } else {
                Err(currency_mismatch("another currency", currency))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Add to an existing balance in `currency` (or one whose currency is not fixed yet).
async fn add_to_balance(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
    cents: i64,
    currency: &str,
) -> Result<bool> {
    let added = sqlx::query(
        "UPDATE balances SET cents = cents + $1, currency = COALESCE(currency, $3)
         WHERE user_id = $2 AND (currency IS NULL OR currency = $3)",
    )
    .bind(cents)
    .bind(user.0.to_string())
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(added.rows_affected() == 1)
}

fn currency_mismatch(held: &str, asked: &str) -> Error {
    Error::unprocessable(
        "currency_mismatch",
        format!("the prepaid balance is held in {held}, not {asked}; amounts are never converted"),
    )
}

fn payment_id(id: &str) -> Result<PaymentId> {
    Ok(PaymentId(id.parse().map_err(|_| {
        Error::Invalid(format!("stored payment id {id}"))
    })?))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 {
        return Err(Error::Invalid(
            "an Idempotency-Key of 1 to 200 characters is required".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_follow_the_notice_given() {
        let c = PaymentsConfig::default();
        assert_eq!(c.refund_percent(2 * 24 * 60), 100);
        assert_eq!(c.refund_percent(24 * 60), 100);
        assert_eq!(c.refund_percent(90), 50);
        assert_eq!(c.refund_percent(59), 0);
        assert_eq!(c.refund_percent(-5), 0, "after the start");
    }

    #[test]
    fn card_details_are_refused_and_never_echoed() {
        let pan = "4242424242424242";
        let body = format!(r#"{{"method":"card","cardNumber":"{pan}","cvv":"123"}}"#);
        let e = serde_json::from_str::<PaymentMethod>(&body)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(pan) && !e.contains("123\""), "{e}");
        let as_token = PaymentMethod::Card {
            token: pan.into(),
            last4: "4242".into(),
        };
        let e = as_token.validate().unwrap_err().to_string();
        assert!(!e.contains(pan), "{e}");
        assert!(
            PaymentMethod::Card {
                token: "tok_ok".into(),
                last4: "42x2".into()
            }
            .validate()
            .is_err()
        );
    }

    #[tokio::test]
    async fn the_sandbox_is_idempotent_and_retries_once() {
        let g = SandboxGateway::default();
        let req = |key: &str, token: &str| ChargeRequest {
            idempotency_key: key.into(),
            token: token.into(),
            amount_cents: 500,
            currency: "EUR".into(),
        };
        let a = g.charge(&req("k1", "tok_ok")).await.unwrap();
        assert_eq!(g.charge(&req("k1", "tok_ok")).await.unwrap(), a);
        assert_eq!(g.captured(), 1);
        assert!(matches!(
            g.charge(&req("k2", "tok_retry")).await,
            Err(GatewayError::Retryable(_))
        ));
        assert!(matches!(
            g.charge(&req("k2", "tok_retry")).await,
            Ok(GatewayOutcome::Captured { .. })
        ));
        assert!(matches!(
            g.charge(&req("k3", "tok_decline")).await,
            Ok(GatewayOutcome::Declined { .. })
        ));
        assert_eq!(g.captured(), 2);
    }
}

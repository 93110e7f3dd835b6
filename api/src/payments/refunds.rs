//! Refunds by policy on cancellation, and the gateway's signed webhooks (reversals), each
//! handled once.

use super::balance::credit;
use super::*;
use crate::auth::TokenSigner;
use crate::error::{Error, Result};
use crate::reservations::cancel_active;
use crate::service::ParkingService;
use crate::store::append_event;
use chrono::{DateTime, Utc};
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, ReservationId, UserId};

impl ParkingService {
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
        let (p, reference) = record(row)?;
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

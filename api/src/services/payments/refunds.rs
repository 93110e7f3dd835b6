//! Refunds by policy on cancellation, and the gateway's signed webhooks (reversals), each
//! handled once.

use super::balance::credit;
use super::*;
use crate::auth::TokenSigner;
use crate::domain::Money;
use crate::domain::error::{Error, Result};
use crate::services::Payments;
use crate::services::reservations::cancel_active;
use crate::store::payments as rows;
use chrono::{DateTime, Utc};
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, ReservationId};

/// What cancelling a reservation now would refund (all 0 when nothing was paid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundPreview {
    pub paid_cents: i64,
    pub refund_cents: i64,
    pub percent: u32,
}

impl Payments<'_> {
    /// Refund the captured payment of reservation `r` cancelled by the driver, per the policy:
    /// to the card or wallet through the gateway, or back to the balance. Returns the cents.
    pub(crate) async fn refund_on_cancel(
        &self,
        r: ReservationId,
        start_at: DateTime<Utc>,
    ) -> Result<i64> {
        let Some(row) = rows::captured_for(self.store().pool(), r).await? else {
            return Ok(0);
        };
        let p = record(&row)?;
        let now = self.now();
        let (refund, percent) = self.refund_due(p.amount_cents, start_at)?;
        let cents = refund.cents();
        if cents > 0 && p.method != "balance" {
            let reference = row.gateway_ref.as_deref().unwrap_or_default();
            self.gateway()
                .refund(reference, cents, &format!("pf-refund-{}", p.id))
                .await
                .map_err(|e| Error::unprocessable("refund_failed", e.to_string()))?;
        }
        let mut tx = self.store().begin_change(now).await?;
        if rows::refund_captured(&mut *tx, &p.id, cents, now.timestamp_millis()).await? {
            if p.method == "balance" && cents > 0 {
                credit(&mut tx, owner(&row)?, cents, &p.currency).await?;
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
                tx.event(event);
            }
        }
        tx.commit().await?;
        Ok(cents)
    }

    /// What cancelling reservation `r`, starting at `start_at`, now would give back of its
    /// captured payment: the same policy and arithmetic as the refund itself.
    pub(crate) async fn refund_preview(
        &self,
        r: ReservationId,
        start_at: DateTime<Utc>,
    ) -> Result<RefundPreview> {
        let Some(row) = rows::captured_for(self.store().pool(), r).await? else {
            return Ok(RefundPreview::default());
        };
        let p = record(&row)?;
        let (refund, percent) = self.refund_due(p.amount_cents, start_at)?;
        Ok(RefundPreview {
            paid_cents: p.amount_cents,
            refund_cents: refund.cents(),
            percent,
        })
    }

    /// The refund of `paid_cents` by the policy, cancelling now before `start_at`.
    fn refund_due(&self, paid_cents: i64, start_at: DateTime<Utc>) -> Result<(Money, u32)> {
        self.payments_config().refund_policy.refund(
            Money::from_cents(paid_cents),
            (start_at - self.now()).num_minutes(),
        )
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
        let mut tx = self.store().begin_change(now).await?;
        if !rows::first_delivery(
            &mut *tx,
            &event.event_id,
            &event.kind,
            now.timestamp_millis(),
        )
        .await?
        {
            return Ok(false);
        }
        let Some(row) = rows::by_gateway_ref(&mut *tx, &event.reference).await? else {
            return Err(Error::NotFound(format!("payment {}", event.reference)));
        };
        rows::reverse(&mut *tx, &row.id, now.timestamp_millis()).await?;
        let user = owner(&row)?;
        let reservation: Option<ReservationId> = row
            .reservation_id
            .as_deref()
            .and_then(|r| r.parse().ok())
            .map(ReservationId);
        // A reversed payment of a monthly pass's period ends the pass.
        let pass = match row.monthly_pass_id.as_deref().and_then(|m| m.parse().ok()) {
            Some(id) => {
                crate::store::monthly::pass(
                    &mut *tx,
                    crate::store::monthly::PassLookup::Id(warehouse_schema::MonthlyPassId(id)),
                )
                .await?
            }
            None => None,
        };
        let mut pass_ended = false;
        if let Some(pass) = &pass {
            pass_ended = self
                .monthly_passes()
                .end_within(
                    &mut tx,
                    pass,
                    (crate::domain::PassStatus::PaymentFailed, "payment_reversed"),
                    now,
                )
                .await?;
        }
        let mut cancelled = None;
        if let Some(r) = reservation
            && let Some(lot) = self.reservation_lot(&mut tx, r).await?
        {
            let event = Event::new(
                now,
                lot,
                EventPayload::PaymentFailed(Payment {
                    payment_id: payment_id(&row.id)?,
                    reservation_id: Some(r),
                    session_id: None,
                    amount_cents: Cents(row.amount_cents),
                    currency: row.currency.clone(),
                    reason: Some("reversed".into()),
                    method: Some(row.method.clone()),
                }),
            );
            tx.event(event);
            if cancel_active(&mut tx, r, lot, "payment_reversed", now).await? {
                cancelled = Some((r, lot));
            }
        }
        tx.commit().await?;
        if let Some(pass) = pass.filter(|_| pass_ended) {
            self.monthly_passes().unindex(&pass);
            self.tell(
                user,
                warehouse_schema::LotId(pass.lot_id),
                &format!("monthly-pass:{}:payment_reversed", pass.id),
                format!(
                    "Your payment was reversed by your bank; the monthly pass for {} has ended",
                    pass.plate
                ),
            )
            .await?;
        }
        if let Some((r, lot)) = cancelled {
            self.waitlist().released(lot, r).await;
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

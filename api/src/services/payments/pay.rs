//! Paying a reservation and topping up the balance: the payment recorded as `pending`, the
//! gateway charged with the payment's own idempotency key, the outcome settled in one
//! transaction that only the request moving the payment out of `pending` performs.

use super::balance::{credit, currency_mismatch};
use super::*;
use crate::domain::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind, enqueue};
use crate::services::Payments;
use crate::services::reservations::cancel_active;
use crate::store::payments as rows;
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, LotId, PaymentId, ReservationId, UserId};

impl Payments<'_> {
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
        let r = self
            .reservations()
            .reservation_of(user, reservation)
            .await?;
        if r.status != crate::services::reservations::ReservationStatus::Active {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {reservation} is {}", r.status),
            ));
        }
        let paid = rows::captured_for(self.store().pool(), reservation).await?;
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
                (r.quote_cents, &r.currency),
                key,
                None,
            )
            .await?;
        self.resume(user, p, method).await
    }

    /// Add `amount_cents` to `user`'s prepaid balance, paid by card or wallet.
    ///
    /// A balance holds one currency: the first top-up fixes it (`currency`, by default the
    /// operator's [`DEFAULT_CURRENCY`](crate::services::DEFAULT_CURRENCY)); a top-up in another
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
        let allowed = crate::domain::TOP_UP_CENTS;
        if !allowed.contains(&amount_cents) {
            return Err(Error::Invalid(format!(
                "a top-up is {} to {} cents",
                allowed.start(),
                allowed.end()
            )));
        }
        let requested = currency
            .map(|c| crate::services::currency_code(&c))
            .transpose()?;
        let currency = match (self.balance_currency(user).await?, requested) {
            (Some(held), Some(asked)) if held != asked => {
                return Err(currency_mismatch(&held, &asked));
            }
            (Some(held), _) => held,
            (None, Some(asked)) => asked,
            (None, None) => crate::services::DEFAULT_CURRENCY.to_owned(),
        };
        if let Some(existing) = self.payment_by_key(user, key).await? {
            return self.resume(user, existing, method).await;
        }
        let p = self
            .insert_payment(
                user,
                "top_up",
                None,
                &method,
                (amount_cents, &currency),
                key,
                None,
            )
            .await?;
        self.resume(user, p, method).await
    }

    /// Charge `amount_cents` for a period of a monthly pass by `method`. A repeated `key` (the
    /// purchase's, or a renewal's own) carries the first payment to its end instead of
    /// charging again.
    pub(crate) async fn pay_monthly_pass(
        &self,
        (user, pass): (UserId, warehouse_schema::MonthlyPassId),
        method: PaymentMethod,
        (amount_cents, currency): (i64, &str),
        key: &str,
    ) -> Result<PaymentRecord> {
        method.validate()?;
        if let Some(existing) = self.payment_by_key(user, key).await? {
            return self.resume(user, existing, method).await;
        }
        if matches!(method, PaymentMethod::Balance)
            && let Some(held) = self.balance_currency(user).await?
            && held != currency
        {
            return Err(currency_mismatch(&held, currency));
        }
        let p = self
            .insert_payment(
                user,
                "monthly_pass",
                None,
                &method,
                (amount_cents, currency),
                key,
                Some(pass),
            )
            .await?;
        self.resume(user, p, method).await
    }

    pub(super) async fn payment_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<PaymentRecord>> {
        rows::by_key(self.store().pool(), user, key)
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn insert_payment(
        &self,
        user: UserId,
        purpose: &str,
        reservation: Option<ReservationId>,
        method: &PaymentMethod,
        (amount, currency): (i64, &str),
        key: &str,
        monthly_pass: Option<warehouse_schema::MonthlyPassId>,
    ) -> Result<PaymentRecord> {
        let id = PaymentId::new().0.to_string();
        let last4 = match method {
            PaymentMethod::Card { last4, .. } => Some(last4.as_str()),
            _ => None,
        };
        let payment = rows::NewPayment {
            id: &id,
            user,
            purpose,
            reservation,
            method: method.name(),
            token: method.token(),
            last4,
            amount_cents: amount,
            currency,
            idempotency_key: key,
            now: self.now().timestamp_millis(),
            monthly_pass: monthly_pass.map(|m| m.0.to_string()),
        };
        // When the same key raced in from another request, its row is the payment.
        rows::insert_pending(self.store().writer(), &payment).await?;
        self.payment_by_key(user, key)
            .await?
            .ok_or_else(|| Error::NotFound("payment".into()))
    }

    /// Carry a payment to its final state: charge the gateway (or the balance) for a pending
    /// one, with the payment's own idempotency key; a final one is returned as it is.
    pub(super) async fn resume(
        &self,
        user: UserId,
        p: PaymentRecord,
        method: PaymentMethod,
    ) -> Result<PaymentRecord> {
        if p.status != PaymentStatus::Pending {
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

    pub(super) async fn charge_with_retries(
        &self,
        req: &ChargeRequest,
    ) -> Result<GatewayOutcome, String> {
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
    pub(super) async fn settle(
        &self,
        user: UserId,
        p: PaymentRecord,
        outcome: Result<GatewayOutcome, String>,
    ) -> Result<PaymentRecord> {
        let now = self.now();
        let (mut status, mut reason, reference) = match &outcome {
            Ok(GatewayOutcome::Captured { reference }) => {
                (PaymentStatus::Captured, None, Some(reference.clone()))
            }
            Ok(GatewayOutcome::Declined { reason }) => {
                (PaymentStatus::Declined, Some(reason.clone()), None)
            }
            Err(e) => (PaymentStatus::Failed, Some(e.clone()), None),
        };
        let reservation: Option<ReservationId> = p
            .reservation_id
            .as_deref()
            .and_then(|r| r.parse().ok())
            .map(ReservationId);
        let mut tx = self.store().begin_change(now).await?;
        // Only the request that moves the payment out of `pending` acts on it: a concurrent
        // request with the same key finds it settled.
        let outcome = rows::Outcome {
            status,
            reason: reason.as_deref(),
            gateway_ref: reference.as_deref(),
        };
        if !rows::settle(&mut *tx, &p.id, outcome, now.timestamp_millis()).await? {
            tx.rollback().await?;
            return self.payment_by_id(&p.id).await;
        }
        if p.method == "balance"
            && status == PaymentStatus::Captured
            && !rows::debit_covered(&mut *tx, user, p.amount_cents, &p.currency).await?
        {
            (status, reason) = (
                PaymentStatus::Declined,
                Some("insufficient_balance".to_owned()),
            );
            rows::decline_settled(&mut *tx, &p.id, "insufficient_balance").await?;
        }
        let lot = match reservation {
            Some(r) => self.reservation_lot(&mut tx, r).await?,
            None => None,
        };
        if p.purpose == "top_up" && status == PaymentStatus::Captured {
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
                if status == PaymentStatus::Captured {
                    EventPayload::PaymentCaptured(payload)
                } else {
                    EventPayload::PaymentFailed(payload)
                },
            );
            tx.event(event);
            if status != PaymentStatus::Captured
                && cancel_active(&mut tx, r, lot, "payment_failed", now).await?
            {
                cancelled = Some(r);
            }
        }
        tx.commit().await?;
        if let (Some(r), Some(lot)) = (cancelled, lot) {
            self.waitlist().released(lot, r).await;
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

    pub(super) async fn payment_by_id(&self, id: &str) -> Result<PaymentRecord> {
        let row = rows::by_id(self.store().pool(), id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("payment {id}")))?;
        record(&row)
    }

    pub(super) async fn reservation_lot(
        &self,
        conn: &mut crate::store::Conn,
        r: ReservationId,
    ) -> Result<Option<LotId>> {
        crate::store::reservations::lot_of(conn, r).await
    }

    pub(super) async fn tell(
        &self,
        user: UserId,
        lot: LotId,
        key: &str,
        body: String,
    ) -> Result<bool> {
        let name = self
            .lots()
            .lot(lot)
            .await
            .map(|l| l.name)
            .unwrap_or_default();
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
}

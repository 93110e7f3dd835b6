//! The prepaid balance: one currency, credited by top-ups and refunds, debited by balance
//! payments and drive-up stays, paid back on erasure.

use crate::domain::Money;
use crate::domain::error::{Error, Result};
use crate::services::Payments;
use crate::store::Change;
use crate::store::payments as rows;
use chrono::{DateTime, Utc};
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, LotId, PaymentId, UserId};

/// Add `cents` in `currency` to `user`'s balance; the first credit fixes its currency.
pub(super) async fn credit(
    conn: &mut crate::store::Conn,
    user: UserId,
    cents: i64,
    currency: &str,
) -> Result<()> {
    rows::open_balance(&mut *conn, user, currency).await?;
    if rows::add(&mut *conn, user, cents, currency).await? {
        Ok(())
    } else {
        Err(currency_mismatch("another currency", currency))
    }
}

pub(super) fn currency_mismatch(held: &str, asked: &str) -> Error {
    Error::unprocessable(
        "currency_mismatch",
        format!("the prepaid balance is held in {held}, not {asked}; amounts are never converted"),
    )
}

impl Payments<'_> {
    /// Pay `user`'s prepaid balance back to the cards and wallets it was topped up from, newest
    /// top-up first, as their account is erased. Each refund is recorded as it succeeds, so a
    /// retried erasure pays only what is left (and the gateway's idempotency key makes a refund
    /// whose record was lost happen once). A balance that no top-up can take back is refused
    /// (`balance_remaining`) for the operator to settle. Returns the cents paid out.
    pub(crate) async fn pay_out_balance(&self, user: UserId) -> Result<i64> {
        let mut left = Money::from_cents(self.balance(user).await?);
        let mut paid = Money::ZERO;
        if left <= Money::ZERO {
            return Ok(0);
        }
        let top_ups = rows::refundable_top_ups(self.store().pool(), user).await?;
        for top_up in top_ups {
            if left == Money::ZERO {
                break;
            }
            let (id, refunded) = (&top_up.id, top_up.refunded_cents);
            let refundable =
                Money::from_cents(top_up.amount_cents).checked_sub(Money::from_cents(refunded))?;
            let cents = left.min(refundable).cents();
            self.gateway()
                .refund(
                    top_up.gateway_ref.as_deref().unwrap_or_default(),
                    cents,
                    &format!("pf-payout-{id}-{refunded}"),
                )
                .await
                .map_err(|e| Error::unprocessable("refund_failed", e.to_string()))?;
            let at = self.now();
            let now = at.timestamp_millis();
            let mut tx = self.store().begin_change(at).await?;
            if rows::add_refund(&mut *tx, id, cents, refunded, now).await? {
                rows::paid_back(&mut *tx, user, cents).await?;
            }
            tx.commit().await?;
            left = left.checked_sub(Money::from_cents(cents))?;
            paid = paid.checked_add(Money::from_cents(cents))?;
        }
        if left > Money::ZERO {
            return Err(Error::conflict(
                "balance_remaining",
                format!(
                    "{} of prepaid balance cannot be paid back to a card or wallet; the operator settles it before the account is erased",
                    left
                ),
            ));
        }
        Ok(paid.cents())
    }

    /// `user`'s prepaid balance (0 without an account).
    pub async fn balance(&self, user: UserId) -> Result<i64> {
        Ok(self.prepaid(user).await?.0)
    }

    /// `user`'s prepaid balance and its currency (0 and none without a top-up), in one read.
    pub(crate) async fn prepaid(&self, user: UserId) -> Result<(i64, Option<String>)> {
        Ok(rows::balance(self.store().pool(), user)
            .await?
            .unwrap_or((0, None)))
    }

    /// The currency of `user`'s prepaid balance, once a top-up has fixed it.
    pub async fn balance_currency(&self, user: UserId) -> Result<Option<String>> {
        Ok(self.prepaid(user).await?.1)
    }

    /// At exit, a drive-up stay of a driver with a prepaid account is paid from the balance
    /// (which may go below zero: the car is already out), inside the check-out transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn pay_stay_from_balance(
        &self,
        change: &mut Change,
        lot: LotId,
        session: warehouse_schema::SessionId,
        user: &str,
        amount: i64,
        currency: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Only a balance in the lot's currency pays; another is never converted.
        if !rows::debit(&mut **change, user, amount, currency).await? {
            return Ok(false);
        }
        let id = PaymentId::new();
        rows::insert_captured_stay(
            &mut **change,
            &id.0.to_string(),
            user,
            (amount, currency),
            &format!("stay-{}", session.0),
            now.timestamp_millis(),
        )
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
        change.event(event);
        Ok(true)
    }
}

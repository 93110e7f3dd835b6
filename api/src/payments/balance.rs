//! The prepaid balance: one currency, credited by top-ups and refunds, debited by balance
//! payments and drive-up stays, paid back on erasure.

use crate::error::{Error, Result};
use crate::service::ParkingService;
use crate::store::{append_event, is_unique_violation};
use chrono::{DateTime, Utc};
use warehouse_schema::event::Payment;
use warehouse_schema::{Cents, Event, EventPayload, LotId, PaymentId, UserId};

/// Add `cents` in `currency` to `user`'s balance; the first credit fixes its currency.
pub(super) async fn credit(
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
pub(super) async fn add_to_balance(
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

pub(super) fn currency_mismatch(held: &str, asked: &str) -> Error {
    Error::unprocessable(
        "currency_mismatch",
        format!("the prepaid balance is held in {held}, not {asked}; amounts are never converted"),
    )
}

impl ParkingService {
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
        Ok(self.prepaid(user).await?.0)
    }

    /// `user`'s prepaid balance and its currency (0 and none without a top-up), in one read.
    pub(crate) async fn prepaid(&self, user: UserId) -> Result<(i64, Option<String>)> {
        Ok(sqlx::query_as::<_, (i64, Option<String>)>(
            "SELECT cents, currency FROM balances WHERE user_id = $1",
        )
        .bind(user.0.to_string())
        .fetch_optional(self.store().pool())
        .await?
        .unwrap_or((0, None)))
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
}

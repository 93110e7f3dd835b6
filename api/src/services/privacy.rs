//! A driver's rights over their data: export everything held about them, and erase their
//! account.
//!
//! Erasure first pays the prepaid balance back to the cards and wallets it came from. It then
//! deletes the account (e-mail, password hash, workplace), its vehicles, refresh tokens,
//! messages, inquiries, waitlist entries, kept answers of keyed requests and balance; cancels its reservations that have not started; and strips
//! plates, gateway tokens and card digits from the reservations, stays and payments that remain
//! (they are the lot's records of spot use and revenue). The account's access tokens stop
//! working at once (they are checked against the account on every request).
//! What remains refers to the driver only by the random user id, which is also all the
//! warehouse ever held: its events carry no e-mail, name or plate.

use crate::domain::PassStatus;
use crate::domain::error::{Error, Result};
use crate::services::Privacy;
use crate::services::reservations::cancel_active;
use crate::store::{
    accounts, desk, idempotency, notifications, payments, reservations, stays, waitlist,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use warehouse_schema::{LotId, ReservationId, UserId};

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    pub cancelled_reservations: u64,
    pub anonymised_reservations: u64,
    pub anonymised_stays: u64,
    pub deleted_vehicles: u64,
    pub deleted_notifications: u64,
    pub deleted_waitlist_entries: u64,
    /// Prepaid balance paid back to the cards and wallets it came from.
    pub paid_out_cents: i64,
}

fn at(ms: Option<i64>) -> Value {
    ms.and_then(DateTime::from_timestamp_millis)
        .map_or(Value::Null, |t| json!(t))
}

impl Privacy<'_> {
    /// Everything stored about `user`, as one JSON document.
    pub async fn export_user_data(&self, user: UserId) -> Result<Value> {
        let pool = self.store().pool();
        let id = user.0.to_string();
        let account = accounts::user(pool, user)
            .await?
            .ok_or_else(|| Error::NotFound("account".into()))?;
        let vehicles: Vec<Value> = accounts::vehicles(pool, user)
            .await?
            .into_iter()
            .map(|v| {
                json!({
                    "id": v.id, "plate": v.plate, "region": v.region,
                    "vehicleType": v.vehicle_type, "createdAt": at(Some(v.created_at)),
                })
            })
            .collect();
        let reservations: Vec<Value> = reservations::export_of_user(pool, user)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id, "lotId": r.lot_id, "spotId": r.spot_id,
                    "vehicleType": r.vehicle_type, "plate": r.plate,
                    "startAt": at(Some(r.start_at)), "endAt": at(Some(r.end_at)),
                    "status": r.status, "quoteCents": r.quote_cents, "currency": r.currency,
                    "createdAt": at(Some(r.created_at)), "cancelledAt": at(r.cancelled_at),
                })
            })
            .collect();
        let stays: Vec<Value> = stays::export_of_user(pool, user)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id, "lotId": r.lot_id, "spotId": r.spot_id,
                    "vehicleType": r.vehicle_type, "method": r.method, "plate": r.plate,
                    "enteredAt": at(Some(r.entered_at)), "exitedAt": at(r.exited_at),
                    "amountCents": r.amount_cents, "currency": r.currency,
                })
            })
            .collect();
        let notifications = crate::notifications::of_user(self.store(), user, i64::MAX).await?;
        let payments: Vec<Value> = payments::of_user(pool, user)
            .await?
            .into_iter()
            .map(|p| {
                json!({
                    "id": p.id, "purpose": p.purpose, "reservationId": p.reservation_id,
                    "method": p.method, "last4": p.last4, "amountCents": p.amount_cents,
                    "currency": p.currency, "status": p.status,
                    "refundedCents": p.refunded_cents, "createdAt": at(Some(p.created_at)),
                })
            })
            .collect();
        let monthly_passes = self.monthly_passes().passes_of(user).await?;
        let inquiries = self.admin().inquiries_of(user).await?;
        let waitlist = self.waitlist().waitlist_of(user).await?;
        let keyed_requests: Vec<Value> = idempotency::of_user(pool, user)
            .await?
            .into_iter()
            .map(|k| {
                json!({
                    "idempotencyKey": k.idem_key,
                    "status": k.status_code,
                    "answer": k.response.and_then(|a| serde_json::from_str::<Value>(&a).ok()),
                    "createdAt": at(Some(k.created_at)),
                })
            })
            .collect();
        let (balance, balance_currency) = self.payments().prepaid(user).await?;
        let workplace = match (account.workplace_latitude, account.workplace_longitude) {
            (Some(lat), Some(lng)) => json!({ "latitude": lat, "longitude": lng }),
            _ => Value::Null,
        };
        Ok(json!({
            "account": {
                "id": id, "email": account.email, "role": account.role,
                "createdAt": at(Some(account.created_at)), "workplace": workplace,
            },
            "vehicles": vehicles,
            "reservations": reservations,
            "stays": stays,
            "notifications": notifications,
            "payments": payments,
            "inquiries": inquiries,
            "waitlist": waitlist,
            "monthlyPasses": monthly_passes,
            "keyedRequests": keyed_requests,
            "balanceCents": balance,
            "balanceCurrency": balance_currency,
        }))
    }

    /// Erase `user`'s account (see the module documentation), in one transaction.
    pub async fn erase_user(&self, user: UserId, now: DateTime<Utc>) -> Result<Erasure> {
        // The gateway is called outside the erasure's transaction; a refused payout stops the
        // erasure before anything is deleted.
        let paid_out_cents = self.payments().pay_out_balance(user).await?;
        let mut tx = self.store().begin_change(now).await?;
        if accounts::standing(&mut *tx, user).await?.is_none() {
            return Err(Error::NotFound("account".into()));
        }
        let upcoming = reservations::active_of_user(&mut *tx, user).await?;
        let mut out = Erasure {
            paid_out_cents,
            ..Erasure::default()
        };
        let mut released = Vec::new();
        for (reservation, lot) in upcoming {
            let rid = ReservationId(
                reservation
                    .parse()
                    .map_err(|_| Error::Invalid(format!("stored reservation id {reservation}")))?,
            );
            if cancel_active(&mut tx, rid, LotId(lot), "account_deleted", now).await? {
                released.push((LotId(lot), rid));
                out.cancelled_reservations += 1;
            }
        }
        // Passes end with the account (nothing renews for it): their places and kept spots are
        // given back, and they keep no plate or gateway token.
        let passes = crate::store::monthly::passes_of_user(&mut *tx, user).await?;
        for pass in &passes {
            self.monthly_passes()
                .end_within(&mut tx, pass, (PassStatus::Ended, "account_deleted"), now)
                .await?;
        }
        crate::store::monthly::forget_user(&mut *tx, user).await?;
        out.anonymised_reservations = reservations::forget_vehicles(&mut *tx, user).await?;
        out.anonymised_stays = stays::forget_plates(&mut *tx, user).await?;
        out.deleted_notifications = notifications::delete_user(&mut tx, user).await?;
        // Payments stay as the lot's revenue records, without the gateway token or card digits.
        payments::forget_cards(&mut *tx, user).await?;
        // Inquiries are the driver's own words: they go with the account.
        desk::delete_inquiries_of(&mut *tx, user).await?;
        // Waiting is the driver's own wish: it ends with the account, so nothing is booked for
        // an account that no longer exists.
        out.deleted_waitlist_entries = waitlist::delete_user(&mut *tx, user).await?;
        // The answers kept for keyed requests name reservations, payments and plates.
        idempotency::delete_user(&mut *tx, user).await?;
        payments::delete_balance(&mut *tx, user).await?;
        out.deleted_vehicles = accounts::delete_user(&mut tx, user).await?;
        tx.commit().await?;
        for (lot, rid) in released {
            self.availability().release(lot, rid);
        }
        for pass in &passes {
            self.monthly_passes().unindex(pass);
        }
        Ok(out)
    }
}

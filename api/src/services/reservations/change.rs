//! Changing and cancelling a reservation before it starts.

use super::*;
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::{Choice, best_spot};
use crate::notifications::{NotificationKind, about_reservation};
use crate::services::Reservations;
use crate::store::reservations as rows;
use warehouse_schema::{Event, EventPayload, ReservationId, SpotId, UserId};

impl Reservations<'_> {
    /// Change `user`'s reservation before it starts: a new window, vehicle or spot, under the
    /// same rules and the same no-overlap guarantee as a new one. The spot is kept when it
    /// still fits and is free; otherwise the best free one is chosen (or the one asked for).
    pub async fn modify_reservation(
        &self,
        user: UserId,
        id: ReservationId,
        change: ReservationChange,
    ) -> Result<Reservation> {
        if change.start_at.is_none()
            && change.end_at.is_none()
            && change.vehicle_type.is_none()
            && change.vehicle.is_none()
            && change.spot_id.is_none()
        {
            return Err(Error::Invalid("nothing to change".into()));
        }
        for attempt in 1..=PLACING_ATTEMPTS {
            let outcome = self.try_modify(user, id, &change).await;
            if let Placing::Done(outcome) = placing(outcome, change.spot_id.is_some(), attempt) {
                let r = outcome?;
                self.hold_in_index(&r);
                return Ok(r);
            }
        }
        unreachable!("the last attempt returns")
    }

    pub(super) async fn try_modify(
        &self,
        user: UserId,
        id: ReservationId,
        change: &ReservationChange,
    ) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let old = self.own_reservation(&mut tx, user, id).await?;
        require_active(&old)?;
        if old.start_at <= now {
            return Err(Error::conflict(
                "already_started",
                format!("reservation {id} has started and can no longer be changed"),
            ));
        }
        let window = TimeRange::new(
            change.start_at.unwrap_or(old.start_at),
            change.end_at.unwrap_or(old.end_at),
        )?;
        let (vehicle_type, vehicle_id, plate) = match (&change.vehicle, change.vehicle_type) {
            (Some((v, vt)), _) => (*vt, Some(v.id), Some(v.plate.clone())),
            // A bare vehicle type no longer names the registered vehicle.
            (None, Some(vt)) if vt != old.vehicle_type => (vt, None, None),
            _ => (old.vehicle_type, old.vehicle_id, old.plate.clone()),
        };
        let rules = LotRules::load(&mut tx, old.lot_id).await?;
        rules.check(window, now)?;
        let backend = self.store().backend();
        let free = free_spot_rows(
            &mut tx,
            backend,
            old.lot_id,
            window,
            change.spot_id,
            Some(id),
        )
        .await?;
        let chosen = match change.spot_id {
            Some(spot) => {
                named_spot(&mut tx, old.lot_id, spot, rules.policy, vehicle_type, free).await?
            }
            None => match free.iter().find(|s| {
                s.id == old.spot_id.0 && rules.policy.rank(vehicle_type, s.vehicle_type).is_some()
            }) {
                Some(same) => same.clone(),
                None => best_spot(
                    &free,
                    rules.policy,
                    Choice {
                        vehicle: vehicle_type,
                        near: change.near,
                        // From what the reservation holds, not its (random) id: the same
                        // change of the same booking picks the same spot, so a seeded
                        // simulation replays alike.
                        spread: spread_of(&format!(
                            "{}/{}",
                            old.spot_label,
                            old.start_at.timestamp_millis()
                        )),
                    },
                )
                .cloned()
                .ok_or_else(|| no_spot(vehicle_type))?,
            },
        };
        let quote = rules
            .quote(
                &mut tx,
                old.lot_id,
                window,
                vehicle_type,
                self.quote_rules(),
            )
            .await?;
        let changed = rows::ChangedReservation {
            spot: chosen.id,
            start_at: window.start().timestamp_millis(),
            end_at: window.end().timestamp_millis(),
            vehicle_type: vehicle_type.as_str(),
            vehicle_id: vehicle_id.map(|v| v.to_string()),
            plate: plate.clone(),
            quote_cents: quote,
        };
        rows::take_turn_on_spot(&mut *tx, self.store().backend(), chosen.id).await?;
        if !rows::change(&mut *tx, id, &changed).await? {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {id} changed meanwhile"),
            ));
        }
        let r = Reservation {
            spot_id: SpotId(chosen.id),
            spot_label: chosen.label,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type,
            vehicle_id,
            plate,
            quote_cents: quote,
            ..old
        };
        record_modified(&mut tx, &r, user, rules.tz, now);
        tx.commit().await?;
        Ok(r)
    }

    /// Cancel `user`'s reservation; someone else's is reported as not found.
    /// What cancelling `user`'s active reservation `id` now would refund.
    pub async fn refund_if_cancelled(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<RefundQuote> {
        let r = self.reservation_of(user, id).await?;
        require_active(&r)?;
        let preview = self.payments().refund_preview(id, r.start_at).await?;
        Ok(RefundQuote {
            reservation_id: id,
            paid_cents: preview.paid_cents,
            refund_cents: preview.refund_cents,
            percent: preview.percent,
            currency: r.currency,
        })
    }

    pub async fn cancel_reservation(&self, user: UserId, id: ReservationId) -> Result<Cancelled> {
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let mut r = self.own_reservation(&mut tx, user, id).await?;
        require_active(&r)?;
        let cancellation = uuid::Uuid::now_v7();
        let cancelled = ReservationStatus::Cancelled;
        let at = now.timestamp_millis();
        if !rows::end_active(&mut *tx, id, cancelled, at, Some(cancellation)).await? {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {id} changed meanwhile"),
            ));
        }
        let event = Event::new(
            now,
            r.lot_id,
            EventPayload::ReservationCancelled(warehouse_schema::event::ReservationRef {
                reservation_id: id,
                reason: Some("driver".into()),
            }),
        );
        tx.event(event);
        let tz = self.lots().lot_row(&mut tx, r.lot_id).await?.tz;
        tx.notify(about_reservation(
            NotificationKind::ReservationCancelled,
            user,
            r.lot_id,
            id,
            tz,
            (r.start_at, r.end_at),
            &r.spot_label,
            (r.quote_cents, &r.currency),
        ));
        tx.commit().await?;
        self.waitlist().released(r.lot_id, id).await;
        r.status = ReservationStatus::Cancelled;
        r.cancellation_id = Some(cancellation);
        // Paid? Refund per the policy. The cancellation stands either way; a refund the gateway
        // refused leaves the payment `captured` on a cancelled reservation, and is logged.
        let refunded_cents = match self.payments().refund_on_cancel(id, r.start_at).await {
            Ok(cents) => cents,
            Err(e) => {
                tracing::error!(reservation = %id, error = %e, "refund after cancellation failed");
                0
            }
        };
        Ok(Cancelled {
            reservation: r,
            refunded_cents,
        })
    }
}

/// What cancelling a reservation now would give back, before the driver decides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundQuote {
    #[schema(value_type = String, format = Uuid)]
    pub reservation_id: ReservationId,
    /// What was paid for it (0: not paid).
    pub paid_cents: i64,
    /// What cancelling now would refund, by the policy.
    pub refund_cents: i64,
    /// The policy's share for this much notice.
    pub percent: u32,
    pub currency: String,
}

/// A reservation its driver cancelled, and what of its payment the refund policy gave back:
/// 0 when it was not paid, when the policy refunds nothing this close to the start, or when
/// the gateway refused the refund (logged; the cancellation stands).
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub reservation: Reservation,
    pub refunded_cents: i64,
}

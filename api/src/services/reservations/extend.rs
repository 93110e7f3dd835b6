//! Extending a booking before it starts or a stay while the car is in: the price of the extra
//! time at the rates in force, whether the spot stays free for it (and which spots would hold
//! the whole longer window if not), and the extension itself under the same no-overlap
//! guarantee as a booking. The preview and the extension are one plan, read on a reader or
//! inside the writing transaction, so they cannot disagree.

use super::quote::quote_parts;
use super::*;
use crate::domain::Money;
use crate::domain::error::{Error, Result};
use crate::services::Reservations;
use crate::store::reservations as rows;
use warehouse_schema::{ReservationId, SpotId, UserId};

/// How many other spots a preview offers when the reservation's own is taken.
const ALTERNATIVES: usize = 10;

/// How the extra time of an extension is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The booking is not paid yet: paying it pays the new total.
    WithPayment,
    /// The booking is paid, or the car is in: the extra time is added to the exit charge
    /// (the exit receipt's `dueCents`).
    AtExit,
}

/// A spot that would hold the whole longer window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpotChoice {
    #[schema(value_type = i64)]
    pub spot_id: SpotId,
    pub label: String,
}

/// What extending a reservation to `newEndAt` would cost and whether it can be done.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionPreview {
    #[schema(value_type = String, format = Uuid)]
    pub reservation_id: ReservationId,
    pub status: ReservationStatus,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub new_end_at: DateTime<Utc>,
    /// The extra time's price at the rates in force now.
    pub extra_cents: i64,
    /// The reservation's quote after the extension (the booked time keeps its price).
    pub quote_cents: i64,
    pub currency: String,
    /// The extra time's stretches, each at one hourly rate.
    pub parts: Vec<QuotePart>,
    /// Whether the reservation's spot is free for the extra time.
    pub spot_stays_free: bool,
    /// When it is not and the car is not in yet: spots free for the whole longer window
    /// (extend with one of them as `spotId` to move there). A stay in progress keeps its spot.
    pub alternatives: Vec<SpotChoice>,
    pub settlement: Settlement,
}

/// An extension made: the reservation as it is now, its new pass (when its car is not in
/// yet), and what the extra time cost.
#[derive(Debug, Clone)]
pub struct Extended {
    pub reservation: Reservation,
    pub pass: Option<GatePass>,
    pub extra_cents: i64,
    pub settlement: Settlement,
}

/// An extension worked out against one view of the store.
struct Plan {
    old: Reservation,
    window: TimeRange,
    preview: ExtensionPreview,
    /// The spot the longer window would take, when one is free.
    spot: Option<SpotRow>,
    tz: chrono_tz::Tz,
    grace: i64,
}

impl Reservations<'_> {
    /// What extending `user`'s reservation `id` to end at `new_end` would cost, and whether its
    /// spot stays free.
    pub async fn extension_preview(
        &self,
        user: UserId,
        id: ReservationId,
        new_end: DateTime<Utc>,
    ) -> Result<ExtensionPreview> {
        let mut conn = self.store().pool().acquire().await?;
        Ok(self.plan(&mut conn, user, id, new_end, None).await?.preview)
    }

    /// Extend `user`'s reservation `id` to end at `new_end`, on its spot (or, before the car is
    /// in, on `spot`, one of the preview's alternatives). The extra time is priced at the rates
    /// in force and added to the quote; the pass follows the new end.
    pub async fn extend(
        &self,
        user: UserId,
        id: ReservationId,
        new_end: DateTime<Utc>,
        spot: Option<SpotId>,
    ) -> Result<Extended> {
        // The spot is always named here, so losing a race for it is `spot_taken` at once.
        let outcome = self.try_extend(user, id, new_end, spot).await;
        match placing(outcome, true, 1) {
            Placing::Done(outcome) => {
                let extended = outcome?;
                self.hold_in_index(&extended.reservation);
                Ok(extended)
            }
            Placing::Again => unreachable!("a named spot is never tried again"),
        }
    }

    async fn try_extend(
        &self,
        user: UserId,
        id: ReservationId,
        new_end: DateTime<Utc>,
        spot: Option<SpotId>,
    ) -> Result<Extended> {
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let plan = self.plan(&mut tx, user, id, new_end, spot).await?;
        let chosen = match plan.spot {
            Some(s) => s,
            None => {
                let offer = if plan.preview.alternatives.is_empty() {
                    String::new()
                } else {
                    "; extend onto one of the spots the preview offers".to_owned()
                };
                return Err(Error::conflict(
                    "spot_taken",
                    format!(
                        "spot {} is reserved by someone else before {new_end}{offer}",
                        plan.old.spot_label
                    ),
                ));
            }
        };
        let old = &plan.old;
        let quote = plan.preview.quote_cents;
        rows::take_turn_on_spot(&mut *tx, self.store().backend(), chosen.id).await?;
        let extended = rows::extend(
            &mut *tx,
            id,
            old.end_at.timestamp_millis(),
            (chosen.id, new_end.timestamp_millis(), quote),
        )
        .await?;
        if !extended {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {id} changed meanwhile"),
            ));
        }
        let reservation = Reservation {
            spot_id: SpotId(chosen.id),
            spot_label: chosen.label,
            end_at: plan.window.end(),
            quote_cents: quote,
            ..plan.old
        };
        record_modified(&mut tx, &reservation, user, plan.tz, now);
        tx.commit().await?;
        let pass = (reservation.status == ReservationStatus::Active)
            .then(|| self.pass_of(user, &reservation, plan.grace));
        Ok(Extended {
            reservation,
            pass,
            extra_cents: plan.preview.extra_cents,
            settlement: plan.preview.settlement,
        })
    }

    /// The one reading of an extension, for the preview and inside the extension's transaction.
    async fn plan(
        &self,
        conn: &mut crate::store::Conn,
        user: UserId,
        id: ReservationId,
        new_end: DateTime<Utc>,
        wanted: Option<SpotId>,
    ) -> Result<Plan> {
        let now = self.now();
        let old = self.own_reservation(conn, user, id).await?;
        let in_stay = match old.status {
            ReservationStatus::Active => false,
            ReservationStatus::CheckedIn => true,
            other => {
                return Err(Error::conflict(
                    "not_active",
                    format!(
                        "reservation {id} is {other}: only a booking or a stay in progress can be extended"
                    ),
                ));
            }
        };
        if new_end <= old.end_at {
            return Err(Error::Invalid(format!(
                "an extension ends after the reservation's end ({})",
                old.end_at
            )));
        }
        if new_end <= now {
            return Err(Error::Invalid("an extension ends in the future".into()));
        }
        let rules = LotRules::load(conn, old.lot_id).await?;
        let window = TimeRange::new(old.start_at, new_end)?;
        let minutes = window.duration().num_minutes();
        if minutes > rules.max_minutes {
            return Err(Error::Invalid(format!(
                "a reservation lasts at most {} minutes; extended to {new_end} it would last {minutes}",
                rules.max_minutes
            )));
        }
        if wanted.is_some_and(|s| s != old.spot_id) && in_stay {
            return Err(Error::conflict(
                "stay_in_progress",
                "the car is in: a stay in progress is extended on its own spot",
            ));
        }
        let (tariff, reasons) = rules
            .explained_tariff(
                conn,
                old.lot_id,
                window,
                old.vehicle_type,
                self.quote_rules(),
            )
            .await?;
        let extra = tariff.charge(old.end_at, new_end)?.cents;
        let quote = Money::from_cents(old.quote_cents)
            .checked_add(Money::from_cents(extra))?
            .cents();
        let backend = self.store().backend();
        let free = free_spot_rows(conn, backend, old.lot_id, window, None, Some(id)).await?;
        let own = free.iter().find(|s| s.id == old.spot_id.0).cloned();
        let fits = |s: &&SpotRow| {
            rules
                .policy
                .rank(old.vehicle_type, s.vehicle_type)
                .is_some()
        };
        let mut alternatives: Vec<&SpotRow> = if in_stay || own.is_some() {
            Vec::new()
        } else {
            free.iter().filter(fits).collect()
        };
        alternatives.sort_by_key(|s| (rules.policy.rank(old.vehicle_type, s.vehicle_type), s.id));
        alternatives.truncate(ALTERNATIVES);
        let spot = match wanted {
            None => own.clone(),
            Some(s) if s == old.spot_id => own.clone(),
            Some(s) => {
                let only =
                    free_spot_rows(conn, backend, old.lot_id, window, Some(s), Some(id)).await?;
                Some(named_spot(conn, old.lot_id, s, rules.policy, old.vehicle_type, only).await?)
            }
        };
        let paid = crate::store::payments::captured_for(&mut *conn, id)
            .await?
            .is_some();
        let preview = ExtensionPreview {
            reservation_id: id,
            status: old.status,
            start_at: old.start_at,
            end_at: old.end_at,
            new_end_at: new_end,
            extra_cents: extra,
            quote_cents: quote,
            currency: old.currency.clone(),
            parts: quote_parts(&tariff, &reasons, old.end_at, new_end),
            spot_stays_free: own.is_some(),
            alternatives: alternatives
                .into_iter()
                .map(|s| SpotChoice {
                    spot_id: SpotId(s.id),
                    label: s.label.clone(),
                })
                .collect(),
            settlement: if paid || in_stay {
                Settlement::AtExit
            } else {
                Settlement::WithPayment
            },
        };
        Ok(Plan {
            old,
            window,
            preview,
            spot,
            tz: rules.tz,
            grace: rules.entry_grace_minutes,
        })
    }
}

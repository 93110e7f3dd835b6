//! The spot a monthly pass keeps for its holder: a reservation row of the pass for the whole
//! period, so every guarantee of bookings covers it too — no double booking (SQLite's single
//! writer, PostgreSQL's exclusion constraint), availability and drive-ups leave it alone. It is
//! never listed, reminded, swept as a no-show or entered as a booking (the store's reservation
//! queries skip rows with a `monthly_pass_id`).

use super::spots::free_spot_rows;
use super::*;
use crate::domain::availability::Hold;
use crate::domain::error::Result;
use crate::domain::spot_choice::{Choice, best_spot};
use crate::services::Reservations;
use crate::store::Change;
use crate::store::reservations as rows;
use warehouse_schema::{LotId, MonthlyPassId, ReservationId, SpotId, UserId, VehicleType};

/// What a pass asks to be kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpotToKeep<'a> {
    pub(crate) pass: MonthlyPassId,
    pub(crate) period: i64,
    pub(crate) lot: LotId,
    pub(crate) user: UserId,
    pub(crate) vehicle_type: VehicleType,
    pub(crate) plate: &'a str,
    pub(crate) window: TimeRange,
    /// The spot of the previous period: kept again if it is free.
    pub(crate) prefer: Option<SpotId>,
}

/// A kept spot: the pass's reservation row, the spot and its label.
#[derive(Debug, Clone)]
pub(crate) struct KeptSpot {
    pub(crate) hold: ReservationId,
    pub(crate) spot: SpotId,
    pub(crate) label: String,
}

impl Reservations<'_> {
    /// Keep the best free spot for `k.window` (the preferred one when free) inside `change`;
    /// none when every spot the vehicle may use is taken some time in the window.
    pub(crate) async fn keep_spot(
        &self,
        change: &mut Change,
        k: SpotToKeep<'_>,
    ) -> Result<Option<KeptSpot>> {
        let backend = self.store().backend();
        let rules = LotRules::load(change, k.lot).await?;
        let mut chosen = None;
        if let Some(spot) = k.prefer {
            let free = free_spot_rows(change, backend, k.lot, k.window, Some(spot), None).await?;
            let choice = Choice {
                vehicle: k.vehicle_type,
                near: None,
                spread: 0,
            };
            chosen = best_spot(&free, rules.policy, choice).cloned();
        }
        if chosen.is_none() {
            let free = free_spot_rows(change, backend, k.lot, k.window, None, None).await?;
            let choice = Choice {
                vehicle: k.vehicle_type,
                near: None,
                // The holder's plate, not the pass's (random) id: the same pass of the same
                // car keeps the same spot, so a seeded simulation replays alike.
                spread: spread_of(k.plate),
            };
            chosen = best_spot(&free, rules.policy, choice).cloned();
        }
        let Some(spot) = chosen else {
            return Ok(None);
        };
        let hold = ReservationId::new();
        let key = format!("monthly-pass:{}:{}", k.pass.0, k.period);
        rows::insert(
            &mut **change,
            backend,
            &rows::NewReservationRow {
                id: hold,
                lot: k.lot,
                spot: spot.id,
                user: k.user,
                vehicle_type: k.vehicle_type.as_str(),
                vehicle_id: None,
                plate: Some(k.plate.to_owned()),
                start_at: k.window.start().timestamp_millis(),
                end_at: k.window.end().timestamp_millis(),
                quote_cents: 0,
                currency: &rules.currency,
                idempotency_key: &key,
                created_at: self.now().timestamp_millis(),
                monthly_pass: Some(k.pass),
            },
        )
        .await?;
        Ok(Some(KeptSpot {
            hold,
            spot: SpotId(spot.id),
            label: spot.label,
        }))
    }

    /// Tell the availability index about a kept spot (after its change committed).
    pub(crate) fn index_kept(&self, lot: LotId, kept: &KeptSpot, window: TimeRange) {
        self.availability().hold(
            lot,
            Hold {
                reservation: kept.hold,
                spot: kept.spot,
                start_ms: window.start().timestamp_millis(),
                end_ms: window.end().timestamp_millis(),
            },
        );
    }
}

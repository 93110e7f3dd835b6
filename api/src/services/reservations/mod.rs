//! Reservations: a spot for a time window `[start, end)`, never double-booked.
//!
//! A reservation holds its spot while `active` (booked) or `checked_in` (the car is in) and lets
//! it go when `completed`, `cancelled` or `no_show`; `store::holding!` spells that condition
//! once.
//!
//! SQLite checks for an overlapping active reservation and inserts inside one `BEGIN IMMEDIATE`
//! transaction, which no other writer can interleave with. PostgreSQL runs writers concurrently;
//! its `no_double_booking` exclusion constraint refuses the loser of a race, which then tries
//! another spot (or is told the spot it asked for is taken).

use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::SpotPolicy;
use crate::store::Conn;
use crate::store::reservations as rows;
use crate::store::{Change, LostRace};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SessionId, SpotId, VehicleType};

/// A driver's registered vehicle, named on a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VehicleRef {
    pub id: Uuid,
    pub plate: String,
}

#[derive(Debug, Clone)]
pub struct NewReservation {
    pub lot_id: LotId,
    pub spot_id: Option<SpotId>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    /// The vehicle, when reserved with a `vehicleId` (its plate then opens the gate too).
    pub vehicle: Option<VehicleRef>,
    /// Without a spot: prefer the one nearest to this (latitude, longitude), e.g. the workplace.
    pub near: Option<(f64, f64)>,
}

impl NewReservation {
    /// A reservation of any spot that fits `vehicle_type`, with no vehicle or place named.
    pub fn new(
        lot_id: LotId,
        start_at: DateTime<Utc>,
        end_at: DateTime<Utc>,
        vehicle_type: VehicleType,
    ) -> Self {
        Self {
            lot_id,
            spot_id: None,
            start_at,
            end_at,
            vehicle_type,
            vehicle: None,
            near: None,
        }
    }
}

/// What a driver may change on a reservation before it starts (`PATCH`); absent means keep.
#[derive(Debug, Clone, Default)]
pub struct ReservationChange {
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub vehicle_type: Option<VehicleType>,
    /// Another of the driver's vehicles (sets the vehicle type and plate too).
    pub vehicle: Option<(VehicleRef, VehicleType)>,
    pub spot_id: Option<SpotId>,
    pub near: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    #[schema(value_type = String, format = Uuid)]
    pub id: ReservationId,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    #[schema(value_type = i64)]
    pub spot_id: SpotId,
    pub spot_label: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    pub status: ReservationStatus,
    pub quote_cents: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_id: Option<uuid::Uuid>,
    /// The parking session opened at the gate for this reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
}

pub use crate::domain::ReservationStatus;

/// The signed pass of a reservation, shown as a QR code or sent over NFC at the gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatePass {
    #[schema(value_type = String, format = Uuid)]
    pub reservation_id: ReservationId,
    pub pass: String,
    /// The gate opens for it from `entryFrom` until `entryUntil`.
    pub entry_from: DateTime<Utc>,
    pub entry_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Local midnight of `date` in `tz` (the first instant of that local day, also on DST days).
fn local_midnight(tz: Tz, date: chrono::NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    loop {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
}

/// A lot's booking rules and prices, read inside the booking transaction.
pub(crate) struct LotRules {
    tz: Tz,
    currency: String,
    default_cents_per_hour: i64,
    window_days: i64,
    min_minutes: i64,
    max_minutes: i64,
    policy: SpotPolicy,
    entry_grace_minutes: i64,
}

impl LotRules {
    async fn load(conn: &mut Conn, lot: LotId) -> Result<Self> {
        let row = crate::store::lots::settings(conn, lot)
            .await?
            .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        Ok(Self::from_settings(row))
    }

    /// [`load`](Self::load), and whether a change that frees a spot of `lot` was recorded after
    /// outbox position `after` (`RELEASING_EVENTS`), from one read.
    async fn load_unless_freed(conn: &mut Conn, lot: LotId, after: i64) -> Result<(Self, bool)> {
        let (row, freed) = crate::store::lots::settings_unless_freed(
            conn,
            lot,
            after,
            crate::services::lots::RELEASING_EVENTS,
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        Ok((Self::from_settings(row), freed))
    }

    /// [`load`](Self::load) with the rates a booking of `vehicle` ending at `until` is priced
    /// by, from one read ([`priced`](Self::priced) prices it).
    async fn load_with_rates(
        conn: &mut Conn,
        lot: LotId,
        vehicle: VehicleType,
        until: DateTime<Utc>,
    ) -> Result<(Self, Vec<crate::domain::tariff::ScheduledRate>)> {
        let (row, rates) =
            crate::store::lots::settings_and_rates(conn, lot, vehicle, until.timestamp_millis())
                .await?
                .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        Ok((
            Self::from_settings(row),
            crate::services::as_scheduled(rates)?,
        ))
    }

    fn from_settings(row: crate::store::lots::LotSettings) -> Self {
        Self {
            tz: row.time_zone.parse().unwrap_or(Tz::UTC),
            currency: row.currency,
            default_cents_per_hour: row.default_cents_per_hour,
            window_days: row.booking_window_days,
            min_minutes: row.min_reservation_minutes,
            max_minutes: row.max_reservation_minutes,
            policy: SpotPolicy {
                ev_spots_open_to_cars: row.ev_spots_open_to_cars != 0,
            },
            entry_grace_minutes: row.entry_grace_minutes,
        }
    }

    /// Start in the future, within the booking window (whole local days), duration in bounds.
    /// `start..end` as a window these rules accept at `now`.
    pub(crate) fn window(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<TimeRange> {
        let window = TimeRange::new(start, end)?;
        self.check(window, now)?;
        Ok(window)
    }

    /// The shortest booking these rules accept.
    pub(crate) fn shortest(&self) -> Duration {
        Duration::minutes(self.min_minutes)
    }

    fn check(&self, window: TimeRange, now: DateTime<Utc>) -> Result<()> {
        if window.start() <= now {
            return Err(Error::Invalid(
                "a reservation must start in the future".into(),
            ));
        }
        // The booking window counts whole local days: "7 days ahead" ends at local midnight.
        let today = now.with_timezone(&self.tz).date_naive();
        let horizon = local_midnight(self.tz, today + Duration::days(self.window_days + 1));
        if window.start() >= horizon {
            return Err(Error::Invalid(format!(
                "reservations open {} days ahead (until {horizon})",
                self.window_days
            )));
        }
        let minutes = window.duration().num_minutes();
        if minutes < self.min_minutes || minutes > self.max_minutes {
            return Err(Error::Invalid(format!(
                "a reservation lasts {} to {} minutes, this one {minutes}",
                self.min_minutes, self.max_minutes
            )));
        }
        Ok(())
    }

    /// The price of `window` for `vehicle`: the tariff engine over the window, with the rates
    /// published so far (each band of the window at its rate), under `rules`.
    async fn quote(
        &self,
        conn: &mut Conn,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
        rules: crate::domain::tariff::TariffRules,
    ) -> Result<i64> {
        let rates = crate::services::scheduled_rates(conn, lot, vehicle, window.end()).await?;
        self.priced(rates, window, rules)
    }

    /// [`tariff_of`](Self::tariff_of) the rates published so far for `window`, with their
    /// reasons, from one read: what a quote shows.
    async fn explained_tariff(
        &self,
        conn: &mut Conn,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
        rules: crate::domain::tariff::TariffRules,
    ) -> Result<(
        crate::domain::tariff::Tariff,
        crate::services::lots::RateReasons,
    )> {
        let (rates, reasons) = crate::services::lots::explained_rates(
            conn,
            (lot, vehicle),
            window.end(),
            (self.tz, &self.currency),
        )
        .await?;
        let tariff = self.tariff_of(rates, rules);
        Ok((tariff, reasons))
    }

    /// The price of `window` under `rules` with `rates` (those [`load_with_rates`] read for
    /// it): what [`quote`](Self::quote) gives without reading them.
    ///
    /// [`load_with_rates`]: Self::load_with_rates
    fn priced(
        &self,
        rates: Vec<crate::domain::tariff::ScheduledRate>,
        window: TimeRange,
        rules: crate::domain::tariff::TariffRules,
    ) -> Result<i64> {
        Ok(self
            .tariff_of(rates, rules)
            .charge(window.start(), window.end())?
            .cents)
    }

    /// The tariff a window is priced by: `rates` (those published so far for it) under
    /// `rules`. A booking, a change, a quote and its explanation all come from it.
    fn tariff_of(
        &self,
        rates: Vec<crate::domain::tariff::ScheduledRate>,
        rules: crate::domain::tariff::TariffRules,
    ) -> crate::domain::tariff::Tariff {
        crate::domain::tariff::Tariff::new(rules, self.tz, self.default_cents_per_hour, rates)
    }
}

/// How many times a booking or a change is tried before it gives up as `spot_taken`.
pub(super) const PLACING_ATTEMPTS: usize = 8;

/// What a booking or a change does after one attempt at placing a reservation.
pub(super) enum Placing<T> {
    /// Try again: the transaction lost its spot and was rolled back whole.
    Again,
    /// Answer with this.
    Done(Result<T>),
}

/// The one retry rule of bookings and changes: an attempt that lost its spot to an overlapping
/// booking (another committed first, or PostgreSQL rolled this one back in the exclusion check)
/// chooses again from what is free now — unless the driver named the spot, or `attempt` was
/// the last: then the spot is `spot_taken`. Any other outcome is the answer.
pub(super) fn placing<T>(outcome: Result<T>, named_spot: bool, attempt: usize) -> Placing<T> {
    match outcome.as_ref().err().and_then(crate::store::lost_race) {
        Some(LostRace::Exclusion | LostRace::Aborted)
            if named_spot || attempt >= PLACING_ATTEMPTS =>
        {
            Placing::Done(Err(Error::conflict(
                "spot_taken",
                "the spot was just reserved for an overlapping window",
            )))
        }
        Some(LostRace::Exclusion | LostRace::Aborted) => Placing::Again,
        _ => Placing::Done(outcome),
    }
}

/// Inside `change`: reservation `r` (as it is now) got a new window, spot or vehicle — its
/// driver's message and its `reservation_modified` event, one path for changes and extensions.
pub(super) fn record_modified(
    change: &mut Change,
    r: &Reservation,
    user: warehouse_schema::UserId,
    tz: Tz,
    now: DateTime<Utc>,
) {
    change.notify(crate::notifications::about_reservation(
        crate::notifications::NotificationKind::ReservationModified,
        user,
        r.lot_id,
        r.id,
        tz,
        (r.start_at, r.end_at),
        &r.spot_label,
        (r.quote_cents, &r.currency),
    ));
    change.event(Event::new(
        now,
        r.lot_id,
        EventPayload::ReservationModified(warehouse_schema::event::ReservationWindow {
            reservation_id: r.id,
            user_id: user,
            spot_id: r.spot_id,
            start_at: r.start_at,
            end_at: r.end_at,
            vehicle_type: r.vehicle_type,
        }),
    ));
}

/// Cancel reservation `r` of `lot` if it is still `active`, with its `reservation_cancelled`
/// event, inside the caller's transaction (for cancellations the driver did not ask for: a
/// failed payment, an erased account). Returns whether it was active.
pub(crate) async fn cancel_active(
    change: &mut Change,
    r: ReservationId,
    lot: LotId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let cancelled = ReservationStatus::Cancelled;
    let at = now.timestamp_millis();
    if !rows::end_active(&mut **change, r, cancelled, at, None).await? {
        return Ok(false);
    }
    let event = Event::new(
        now,
        lot,
        EventPayload::ReservationCancelled(warehouse_schema::event::ReservationRef {
            reservation_id: r,
            reason: Some(reason.into()),
        }),
    );
    change.event(event);
    Ok(true)
}

mod book;
mod change;
mod extend;
mod keep;
pub mod lifecycle;
mod quote;
mod read;
mod request;
mod spots;

pub use crate::domain::TimeRange;
pub use crate::domain::availability::FreeSpot;
pub(crate) use crate::domain::availability::SpotRow;
pub use book::KeepAnswer;
pub use change::{Cancelled, RefundQuote};
pub use extend::{Extended, ExtensionPreview, Settlement, SpotChoice};
pub(crate) use keep::{KeptSpot, SpotToKeep};
pub use quote::{Quote, QuotePart};
pub use request::{BookingRequest, ChangeRequest, Near, VehicleChoice};
use spots::*;

/// A vehicle type as a message names it: "a car", "an ev".
pub(crate) fn with_article(vt: VehicleType) -> String {
    let name = vt.as_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// Only an `active` reservation (booked, car not yet in) can be changed, cancelled or given a
/// pass.
fn require_active(r: &Reservation) -> Result<()> {
    if r.status == ReservationStatus::Active {
        Ok(())
    } else {
        Err(Error::conflict(
            "not_active",
            format!("reservation {} is {}", r.id, r.status),
        ))
    }
}

/// A retried request gets the first answer again; a different request under the same key is
/// refused rather than silently answered with the wrong reservation.
fn same_request(existing: Reservation, req: &NewReservation) -> Result<Reservation> {
    let same = existing.lot_id == req.lot_id
        && existing.start_at == req.start_at
        && existing.end_at == req.end_at
        && existing.vehicle_type == req.vehicle_type
        && existing.vehicle_id == req.vehicle.as_ref().map(|v| v.id)
        && req.spot_id.is_none_or(|s| s == existing.spot_id);
    if same {
        Ok(existing)
    } else {
        Err(Error::Invalid(
            "this Idempotency-Key was used for a different reservation".into(),
        ))
    }
}

//! Reservations: a spot for a time window `[start, end)`, never double-booked.
//!
//! A reservation holds its spot while `active` (booked) or `checked_in` (the car is in) and lets
//! it go when `completed`, `cancelled` or `no_show`; `holding!` spells that condition once.
//!
//! SQLite checks for an overlapping active reservation and inserts inside one `BEGIN IMMEDIATE`
//! transaction, which no other writer can interleave with. PostgreSQL runs writers concurrently;
//! its `no_double_booking` exclusion constraint refuses the loser of a race, which then tries
//! another spot (or is told the spot it asked for is taken).

use crate::availability::{Hold, SpotPolicy, distance_m};
use crate::error::{Error, Result};
use crate::notifications::{NotificationKind, about_reservation, enqueue_in};
use crate::passes::PassClaims;
use crate::service::ParkingService;
use crate::store::{Backend, append_event, is_unique_violation};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;
use warehouse_schema::event::ReservationWindow;
use warehouse_schema::{
    Event, EventPayload, LotId, ReservationId, SessionId, SpotId, UserId, VehicleType,
};

/// The SQL condition "this reservation holds its spot", optionally on a table alias.
macro_rules! holding {
    () => {
        "status IN ('active', 'checked_in')"
    };
    ($alias:literal) => {
        concat!($alias, ".status IN ('active', 'checked_in')")
    };
}
pub(crate) use holding;

/// A time window with `start < end`, checked once at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(Error::Invalid(format!(
                "the window must end after it starts ({start} .. {end})"
            )))
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Half-open overlap: touching windows do not overlap.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: ReservationId,
    pub lot_id: LotId,
    pub spot_id: SpotId,
    pub spot_label: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    pub status: String,
    pub quote_cents: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_id: Option<uuid::Uuid>,
    /// The parking session opened at the gate for this reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}

/// A spot that is free for a whole window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FreeSpot {
    pub spot_id: SpotId,
    pub label: String,
    pub vehicle_type: VehicleType,
    /// Metres from the point the driver gave (their workplace), when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

/// The signed pass of a reservation, shown as a QR code or sent over NFC at the gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatePass {
    pub reservation_id: ReservationId,
    pub pass: String,
    /// The gate opens for it from `entryFrom` until `entryUntil`.
    pub entry_from: DateTime<Utc>,
    pub entry_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The PostgreSQL error code of an exclusion-constraint violation.
const EXCLUSION_VIOLATION: &str = "23P01";

pub(crate) fn is_exclusion_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(EXCLUSION_VIOLATION))
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
struct LotRules {
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
    async fn load(conn: &mut AnyConnection, lot: LotId) -> Result<Self> {
        let row = sqlx::query(
            "SELECT time_zone, currency, default_cents_per_hour, booking_window_days,
                    min_reservation_minutes, max_reservation_minutes, ev_spots_open_to_cars,
                    entry_grace_minutes
             FROM lots WHERE id = $1",
        )
        .bind(lot.0)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        Ok(Self {
            tz: row.get::<String, _>("time_zone").parse().unwrap_or(Tz::UTC),
            currency: row.get("currency"),
            default_cents_per_hour: row.get("default_cents_per_hour"),
            window_days: row.get("booking_window_days"),
            min_minutes: row.get("min_reservation_minutes"),
            max_minutes: row.get("max_reservation_minutes"),
            policy: SpotPolicy {
                ev_spots_open_to_cars: row.get::<i64, _>("ev_spots_open_to_cars") != 0,
            },
            entry_grace_minutes: row.get("entry_grace_minutes"),
        })
    }

    /// Start in the future, within the booking window (whole local days), duration in bounds.
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
        conn: &mut AnyConnection,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
        rules: crate::tariff::TariffRules,
    ) -> Result<i64> {
        let rates = crate::service::scheduled_rates(conn, lot, vehicle, window.end()).await?;
        Ok(
            crate::tariff::Tariff::new(rules, self.tz, self.default_cents_per_hour, rates)
                .charge(window.start(), window.end())
                .cents,
        )
    }
}

/// Cancel reservation `r` of `lot` if it is still `active`, with its `reservation_cancelled`
/// event, inside the caller's transaction (for cancellations the driver did not ask for: a
/// failed payment, an erased account). Returns whether it was active.
pub(crate) async fn cancel_active(
    conn: &mut AnyConnection,
    r: ReservationId,
    lot: LotId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET status = 'cancelled', cancelled_at = $1 WHERE id = $2 AND status = 'active'",
    )
    .bind(now.timestamp_millis())
    .bind(r.0.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
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
    append_event(conn, &event).await?;
    Ok(true)
}

/// `id, label, vehicle_type, latitude, longitude` of a spot.
pub(crate) type SpotColumns = (i64, String, String, Option<f64>, Option<f64>);

/// An open spot of a lot as read from the store.
#[derive(Debug, Clone)]
pub(crate) struct SpotRow {
    pub(crate) id: i64,
    pub(crate) label: String,
    pub(crate) vehicle_type: VehicleType,
    pub(crate) position: Option<(f64, f64)>,
}

/// "Reservation `r` overlaps `[$3, $4)`" per store. PostgreSQL spells it as the expression of
/// the `holding_reservations_by_lot_window` GiST index, which leads with the lot: a btree can
/// bound only one end of an interval, and the exclusion constraint's index (led by the spot,
/// with another range expression on purpose) would read every lot's overlapping reservations.
macro_rules! overlaps_window {
    (sqlite) => {
        "r.start_at < $4 AND r.end_at > $3"
    };
    (postgres) => {
        "int8range(r.start_at, r.end_at) && int8range($3, $4)"
    };
}

/// Open spots of lot `$1` (only spot `$2`, if not null) that no holding reservation other than
/// `$5` occupies during `[$3, $4)`. SQLite probes its per-spot index for each spot. PostgreSQL
/// reads the lot's overlapping holds once through the lot-and-window GiST index into a hashed
/// set: a correlated `NOT EXISTS` there becomes, while the table's statistics are still young,
/// a nested loop that scans the window once per spot (60 ms instead of 1 ms on a busy lot).
macro_rules! free_spots_sql {
    (sqlite) => {
        concat!(
            "SELECT s.id, s.label, s.vehicle_type, s.latitude, s.longitude FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0 AND ($2 IS NULL OR s.id = $2)
               AND NOT EXISTS (SELECT 1 FROM reservations r
                               WHERE r.spot_id = s.id AND ",
            holding!("r"),
            " AND ",
            overlaps_window!(sqlite),
            " AND r.id <> $5)
             ORDER BY s.id"
        )
    };
    (postgres) => {
        concat!(
            "SELECT s.id, s.label, s.vehicle_type, s.latitude, s.longitude FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0 AND ($2 IS NULL OR s.id = $2)
               AND s.id NOT IN (SELECT r.spot_id FROM reservations r
                                WHERE r.lot_id = $1 AND ",
            holding!("r"),
            " AND ",
            overlaps_window!(postgres),
            " AND r.id <> $5)
             ORDER BY s.id"
        )
    };
}

/// Open spots of `lot` (only `only`, if given) that no holding reservation other than `except`
/// occupies during `window`.
async fn free_spot_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    lot: LotId,
    window: TimeRange,
    only: Option<SpotId>,
    except: Option<ReservationId>,
) -> Result<Vec<SpotRow>> {
    let sql = match backend {
        Backend::Sqlite => free_spots_sql!(sqlite),
        Backend::Postgres => free_spots_sql!(postgres),
    };
    let rows: Vec<SpotColumns> = sqlx::query_as(sql)
        .bind(lot.0)
        .bind(only.map(|s| s.0))
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .bind(except.map(|r| r.0.to_string()).unwrap_or_default())
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|(id, label, vt, lat, lng)| {
            Ok(SpotRow {
                id,
                label,
                vehicle_type: vt.parse().map_err(Error::Invalid)?,
                position: lat.zip(lng),
            })
        })
        .collect()
}

/// The best spot for `vehicle` among `free`: the best fit, then the nearest to `near`. Without a
/// point every best-fit spot is as good as another, and `spread` (a hash of the request) picks
/// one: concurrent requests then rarely race for the same spot, which on PostgreSQL would make
/// all but one retry.
fn best_spot(
    free: &[SpotRow],
    policy: SpotPolicy,
    vehicle: VehicleType,
    near: Option<(f64, f64)>,
    spread: u64,
) -> Option<&SpotRow> {
    let best_fit = free
        .iter()
        .filter_map(|s| policy.rank(vehicle, s.vehicle_type))
        .min()?;
    let best: Vec<&SpotRow> = free
        .iter()
        .filter(|s| policy.rank(vehicle, s.vehicle_type) == Some(best_fit))
        .collect();
    match near {
        Some(n) => {
            let distance = |s: &SpotRow| s.position.map_or(f64::MAX, |p| distance_m(p, n));
            best.into_iter()
                .min_by(|a, b| distance(a).total_cmp(&distance(b)).then(a.id.cmp(&b.id)))
        }
        None => best.get((spread % best.len() as u64) as usize).copied(),
    }
}

/// A stable hash of `text` (FNV-1a), to spread spot choices.
fn spread_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The one spot a request names: it must exist in the lot, fit the vehicle and be free.
async fn named_spot(
    conn: &mut AnyConnection,
    lot: LotId,
    spot: SpotId,
    policy: SpotPolicy,
    vehicle: VehicleType,
    free: Vec<SpotRow>,
) -> Result<SpotRow> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT vehicle_type FROM spots WHERE id = $1 AND lot_id = $2")
            .bind(spot.0)
            .bind(lot.0)
            .fetch_optional(conn)
            .await?;
    let kind: VehicleType = kind
        .ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {lot}")))?
        .parse()
        .map_err(Error::Invalid)?;
    if policy.rank(vehicle, kind).is_none() {
        return Err(Error::Invalid(format!(
            "{} may not use {} spot",
            with_article(vehicle),
            with_article(kind)
        )));
    }
    free.into_iter().next().ok_or_else(|| {
        Error::conflict(
            "spot_taken",
            format!("spot {spot} is reserved for an overlapping window"),
        )
    })
}

impl ParkingService {
    /// The window `start..end` checked against `lot`'s booking rules (in the future, within the
    /// booking horizon, duration in bounds): the one validation behind booking, availability
    /// and the waitlist, so none of them offers or accepts a window another would refuse.
    pub async fn bookable_window(
        &self,
        lot: LotId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<TimeRange> {
        let window = TimeRange::new(start, end)?;
        let mut conn = self.store().pool().acquire().await?;
        LotRules::load(&mut conn, lot)
            .await?
            .check(window, self.now())?;
        Ok(window)
    }

    /// Reserve a spot for `user`. The same `idempotency_key` with the same request returns the
    /// first reservation again; with a different request it is refused.
    pub async fn reserve(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
    ) -> Result<Reservation> {
        Ok(self.reserve_with_pass(user, req, idempotency_key).await?.0)
    }

    /// [`reserve`](Self::reserve), with the gate pass of a reservation that can still open a
    /// gate (a retry may find it checked in already: then no pass). A new booking's pass is
    /// issued from what the booking read, without reading it back.
    pub async fn reserve_with_pass(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
    ) -> Result<(Reservation, Option<GatePass>)> {
        if idempotency_key.is_empty() || idempotency_key.len() > 200 {
            return Err(Error::Invalid(
                "an Idempotency-Key of 1 to 200 characters is required".into(),
            ));
        }
        let window = TimeRange::new(req.start_at, req.end_at)?;
        if let Some(existing) = self.reservation_by_key(user, idempotency_key).await? {
            return self.with_pass(user, same_request(existing, &req)?).await;
        }
        const ATTEMPTS: usize = 8;
        // Spots the index offered that the store then refused (another process took them).
        let mut tried = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match self
                .try_reserve(user, &req, window, idempotency_key, &mut tried)
                .await
            {
                Err(Error::Storage(e)) if is_exclusion_violation(&e) => {
                    if req.spot_id.is_some() || attempt == ATTEMPTS {
                        return Err(Error::conflict(
                            "spot_taken",
                            "the spot was just reserved for an overlapping window",
                        ));
                    }
                }
                Err(Error::Storage(e)) if is_unique_violation(&e) => {
                    // The same key won a concurrent race: answer as for a retry.
                    let existing = self.reservation_by_key(user, idempotency_key).await?;
                    let r = existing.map_or(Err(Error::Storage(e)), |r| same_request(r, &req))?;
                    return self.with_pass(user, r).await;
                }
                Ok((r, grace)) => {
                    self.hold_in_index(&r);
                    let pass = self.pass_of(user, &r, grace);
                    return Ok((r, Some(pass)));
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `r` with its pass when it can still open a gate.
    async fn with_pass(
        &self,
        user: UserId,
        r: Reservation,
    ) -> Result<(Reservation, Option<GatePass>)> {
        let pass = match require_active(&r) {
            Ok(()) => Some(self.gate_pass(user, r.id).await?),
            Err(_) => None,
        };
        Ok((r, pass))
    }

    fn hold_in_index(&self, r: &Reservation) {
        self.availability().hold(
            r.lot_id,
            Hold {
                reservation: r.id,
                spot: r.spot_id,
                start_ms: r.start_at.timestamp_millis(),
                end_ms: r.end_at.timestamp_millis(),
            },
        );
    }

    /// One booking transaction. On PostgreSQL, a request for any spot takes its candidates from
    /// the availability index instead of asking the store which spots are free: the exclusion
    /// constraint refuses a spot the index wrongly believed free, and the spot is added to
    /// `tried` so the next attempt skips it. When the index offers nothing the store is asked,
    /// so a stale index never turns a booking away. SQLite has no such constraint: its single
    /// writer checks and inserts in one transaction.
    async fn try_reserve(
        &self,
        user: UserId,
        req: &NewReservation,
        window: TimeRange,
        key: &str,
        tried: &mut Vec<SpotId>,
    ) -> Result<(Reservation, i64)> {
        let now = self.now();
        let backend = self.store().backend();
        let from_index = if backend == Backend::Postgres && req.spot_id.is_none() {
            self.unreserved_spots(req.lot_id, window, tried).await?
        } else {
            Vec::new()
        };
        let mut tx = self.store().begin_write().await?;
        let rules = LotRules::load(&mut tx, req.lot_id).await?;
        rules.check(window, now)?;
        let spread = spread_of(key);
        let best = |free: &[SpotRow]| {
            best_spot(free, rules.policy, req.vehicle_type, req.near, spread).cloned()
        };
        let chosen = match (req.spot_id, best(&from_index)) {
            (None, Some(hint)) => {
                tried.push(SpotId(hint.id));
                hint
            }
            (None, None) => {
                let free = free_spot_rows(&mut tx, backend, req.lot_id, window, None, None).await?;
                best(&free).ok_or_else(|| {
                    Error::conflict(
                        "no_spot_available",
                        format!("no {} spot is free for that window", req.vehicle_type),
                    )
                })?
            }
            (Some(spot), _) => {
                let free =
                    free_spot_rows(&mut tx, backend, req.lot_id, window, Some(spot), None).await?;
                named_spot(
                    &mut tx,
                    req.lot_id,
                    spot,
                    rules.policy,
                    req.vehicle_type,
                    free,
                )
                .await?
            }
        };
        let quote = rules
            .quote(
                &mut tx,
                req.lot_id,
                window,
                req.vehicle_type,
                self.quote_rules(),
            )
            .await?;

        let id = ReservationId::new();
        sqlx::query(
            "INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, vehicle_id, plate, start_at,
                                       end_at, status, quote_cents, currency, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $12, $13)",
        )
        .bind(id.0.to_string())
        .bind(req.lot_id.0)
        .bind(chosen.id)
        .bind(user.0.to_string())
        .bind(req.vehicle_type.as_str())
        .bind(req.vehicle.as_ref().map(|v| v.id.to_string()))
        .bind(req.vehicle.as_ref().map(|v| v.plate.clone()))
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .bind(quote)
        .bind(&rules.currency)
        .bind(key)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        enqueue_in(
            &mut tx,
            &about_reservation(
                NotificationKind::ReservationConfirmed,
                user,
                req.lot_id,
                id,
                rules.tz,
                (window.start(), window.end()),
                &chosen.label,
                (quote, &rules.currency),
            ),
            now,
        )
        .await?;
        let event = Event::new(
            now,
            req.lot_id,
            EventPayload::ReservationCreated(ReservationWindow {
                reservation_id: id,
                user_id: user,
                spot_id: SpotId(chosen.id),
                start_at: window.start(),
                end_at: window.end(),
                vehicle_type: req.vehicle_type,
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        let reservation = Reservation {
            id,
            lot_id: req.lot_id,
            spot_id: SpotId(chosen.id),
            spot_label: chosen.label,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type: req.vehicle_type,
            vehicle_id: req.vehicle.as_ref().map(|v| v.id),
            plate: req.vehicle.as_ref().map(|v| v.plate.clone()),
            status: "active".into(),
            quote_cents: quote,
            currency: rules.currency,
            cancellation_id: None,
            session_id: None,
        };
        Ok((reservation, rules.entry_grace_minutes))
    }

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
        const ATTEMPTS: usize = 8;
        for attempt in 1..=ATTEMPTS {
            match self.try_modify(user, id, &change).await {
                Err(Error::Storage(e)) if is_exclusion_violation(&e) => {
                    if change.spot_id.is_some() || attempt == ATTEMPTS {
                        return Err(Error::conflict(
                            "spot_taken",
                            "the spot was just reserved for an overlapping window",
                        ));
                    }
                }
                Ok(r) => {
                    self.hold_in_index(&r);
                    return Ok(r);
                }
                other => return other,
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn try_modify(
        &self,
        user: UserId,
        id: ReservationId,
        change: &ReservationChange,
    ) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
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
                    vehicle_type,
                    change.near,
                    spread_of(&id.to_string()),
                )
                .cloned()
                .ok_or_else(|| {
                    Error::conflict(
                        "no_spot_available",
                        format!("no {vehicle_type} spot is free for that window"),
                    )
                })?,
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
        let updated = sqlx::query(
            "UPDATE reservations SET spot_id = $1, start_at = $2, end_at = $3, vehicle_type = $4,
                    vehicle_id = $5, plate = $6, quote_cents = $7
             WHERE id = $8 AND status = 'active'",
        )
        .bind(chosen.id)
        .bind(window.start().timestamp_millis())
        .bind(window.end().timestamp_millis())
        .bind(vehicle_type.as_str())
        .bind(vehicle_id.map(|v| v.to_string()))
        .bind(&plate)
        .bind(quote)
        .bind(id.0.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(Error::conflict(
                "not_active",
                format!("reservation {id} changed meanwhile"),
            ));
        }
        enqueue_in(
            &mut tx,
            &about_reservation(
                NotificationKind::ReservationModified,
                user,
                old.lot_id,
                id,
                rules.tz,
                (window.start(), window.end()),
                &chosen.label,
                (quote, &old.currency),
            ),
            now,
        )
        .await?;
        let event = Event::new(
            now,
            old.lot_id,
            EventPayload::ReservationModified(ReservationWindow {
                reservation_id: id,
                user_id: user,
                spot_id: SpotId(chosen.id),
                start_at: window.start(),
                end_at: window.end(),
                vehicle_type,
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Reservation {
            spot_id: SpotId(chosen.id),
            spot_label: chosen.label,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type,
            vehicle_id,
            plate,
            quote_cents: quote,
            ..old
        })
    }

    /// Cancel `user`'s reservation; someone else's is reported as not found.
    pub async fn cancel_reservation(&self, user: UserId, id: ReservationId) -> Result<Reservation> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let mut r = self.own_reservation(&mut tx, user, id).await?;
        require_active(&r)?;
        let cancellation = uuid::Uuid::now_v7();
        let updated = sqlx::query(
            "UPDATE reservations SET status = 'cancelled', cancelled_at = $1, cancellation_id = $2
             WHERE id = $3 AND status = 'active'",
        )
        .bind(now.timestamp_millis())
        .bind(cancellation.to_string())
        .bind(id.0.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
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
        append_event(&mut tx, &event).await?;
        let tz = self.lot_row(&mut tx, r.lot_id).await?.tz;
        enqueue_in(
            &mut tx,
            &about_reservation(
                NotificationKind::ReservationCancelled,
                user,
                r.lot_id,
                id,
                tz,
                (r.start_at, r.end_at),
                &r.spot_label,
                (r.quote_cents, &r.currency),
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.released(r.lot_id, id).await;
        r.status = "cancelled".into();
        r.cancellation_id = Some(cancellation);
        // Paid? Refund per the policy. The cancellation stands either way; a refund the gateway
        // refused leaves the payment `captured` on a cancelled reservation, and is logged.
        if let Err(e) = self.refund_on_cancel(id, r.start_at).await {
            tracing::error!(reservation = %id, error = %e, "refund after cancellation failed");
        }
        Ok(r)
    }

    /// The gate pass of `user`'s reservation, while it can still open a gate.
    pub async fn gate_pass(&self, user: UserId, id: ReservationId) -> Result<GatePass> {
        let r = self.reservation_of(user, id).await?;
        require_active(&r)?;
        let mut conn = self.store().pool().acquire().await?;
        let grace = self.lot_row(&mut conn, r.lot_id).await?.entry_grace_minutes;
        Ok(self.pass_of(user, &r, grace))
    }

    /// The signed pass of `r`, whose lot opens the gate `grace` minutes around the start.
    fn pass_of(&self, user: UserId, r: &Reservation, grace: i64) -> GatePass {
        let pass = self.passes().issue(&PassClaims {
            reservation_id: r.id,
            user_id: user,
            lot_id: r.lot_id,
            plate: r.plate.clone(),
            expires_at: r.end_at.timestamp(),
        });
        GatePass {
            reservation_id: r.id,
            pass,
            entry_from: r.start_at - Duration::minutes(grace),
            entry_until: (r.start_at + Duration::minutes(grace)).min(r.end_at),
            expires_at: r.end_at,
        }
    }

    /// Pairs of reservations of `lot` that hold one spot for overlapping windows: an audit of
    /// the no-double-booking guarantee, always 0.
    pub async fn overlapping_holds(&self, lot: LotId) -> Result<i64> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM reservations a JOIN reservations b
               ON a.spot_id = b.spot_id AND a.id < b.id AND a.start_at < b.end_at AND b.start_at < a.end_at
             WHERE a.lot_id = $1 AND ",
            holding!("a"),
            " AND ",
            holding!("b")
        ))
        .bind(lot.0)
        .fetch_one(self.store().pool())
        .await?)
    }

    async fn reservation_by_key(&self, user: UserId, key: &str) -> Result<Option<Reservation>> {
        let mut conn = self.store().pool().acquire().await?;
        self.reservation_where(
            &mut conn,
            "r.user_id = $1 AND r.idempotency_key = $2",
            &user.0.to_string(),
            key,
        )
        .await
    }

    pub(crate) async fn reservation_where(
        &self,
        conn: &mut sqlx::AnyConnection,
        condition: &'static str,
        a: &str,
        b: &str,
    ) -> Result<Option<Reservation>> {
        let sql = format!(
            "SELECT r.id, r.lot_id, r.spot_id, s.label, r.start_at, r.end_at, r.vehicle_type, r.vehicle_id,
                    r.plate, r.status, r.quote_cents, r.currency, r.cancellation_id, r.session_id
             FROM reservations r JOIN spots s ON s.id = r.spot_id WHERE {condition}"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(b)
            .fetch_optional(conn)
            .await?
        else {
            return Ok(None);
        };
        let ms =
            |c: &str| DateTime::from_timestamp_millis(row.get::<i64, _>(c)).unwrap_or_default();
        let uuid = |c: &str| {
            row.get::<Option<String>, _>(c)
                .and_then(|v| v.parse::<Uuid>().ok())
        };
        Ok(Some(Reservation {
            id: ReservationId(
                row.get::<String, _>("id")
                    .parse()
                    .map_err(|e| Error::Invalid(format!("{e}")))?,
            ),
            lot_id: LotId(row.get("lot_id")),
            spot_id: SpotId(row.get("spot_id")),
            spot_label: row.get("label"),
            start_at: ms("start_at"),
            end_at: ms("end_at"),
            vehicle_type: row
                .get::<String, _>("vehicle_type")
                .parse()
                .map_err(Error::Invalid)?,
            vehicle_id: uuid("vehicle_id"),
            plate: row.get("plate"),
            status: row.get("status"),
            quote_cents: row.get("quote_cents"),
            currency: row.get("currency"),
            cancellation_id: uuid("cancellation_id"),
            session_id: uuid("session_id").map(SessionId),
        }))
    }

    /// One of `user`'s reservations; another driver's is not found.
    pub async fn reservation_of(&self, user: UserId, id: ReservationId) -> Result<Reservation> {
        let mut conn = self.store().pool().acquire().await?;
        self.own_reservation(&mut conn, user, id).await
    }

    /// `user`'s reservation `id`, read on `conn` (inside a transaction, say); another driver's
    /// is not found.
    async fn own_reservation(
        &self,
        conn: &mut AnyConnection,
        user: UserId,
        id: ReservationId,
    ) -> Result<Reservation> {
        self.reservation_where(
            conn,
            "r.id = $1 AND r.user_id = $2",
            &id.0.to_string(),
            &user.0.to_string(),
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("reservation {id}")))
    }

    /// `user`'s reservations, latest start first, one page at a time, with the total count.
    pub async fn reservations_of(
        &self,
        user: UserId,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<Reservation>, i64)> {
        let pool = self.store().pool();
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE user_id = $1")
            .bind(user.0.to_string())
            .fetch_one(pool)
            .await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM reservations WHERE user_id = $1 ORDER BY start_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(user.0.to_string())
        .bind(i64::from(per_page))
        .bind(i64::from(page - 1) * i64::from(per_page))
        .fetch_all(pool)
        .await?;
        let mut conn = pool.acquire().await?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self
                .reservation_where(
                    &mut conn,
                    "r.id = $1 AND r.user_id = $2",
                    &id,
                    &user.0.to_string(),
                )
                .await?
            {
                items.push(r);
            }
        }
        Ok((items, total))
    }
}

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
    if r.status == "active" {
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

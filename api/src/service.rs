//! The business rules of lots, spots, stays and rates. HTTP handlers and the in-process
//! simulator both call this layer; every state change and its event commit together.

use crate::admin::{Actor, audit};
use crate::availability::{AvailabilityIndex, SpotPolicy, distance_m};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::metrics::ApiMetrics;
use crate::passes::PassSigner;
use crate::payments::{PaymentGateway, PaymentsConfig, SandboxGateway};
use crate::reservations::holding;
use crate::store::{Store, append_event, is_unique_violation};
use crate::tariff::{ScheduledRate, Tariff, TariffRules};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use warehouse_schema::event::{CheckIn, Exit, LotRegistered, RatePublished};
use warehouse_schema::{
    Cents, DayKind, EntryMethod, Event, EventPayload, LotId, ReservationId, SessionId, SpotId,
    TimeBand, UserId, VehicleType,
};

/// The largest lot one request may create; keeps a typo from creating a million spots.
pub const MAX_SPOTS_PER_LOT: u32 = 5_000;
/// An hourly rate above this is refused as a likely unit mistake (cents, not dollars).
pub const MAX_CENTS_PER_HOUR: i64 = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLot {
    pub name: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default = "default_currency")]
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// Number of spots to create per spot type.
    pub spots: BTreeMap<VehicleType, u32>,
    /// Let cars use EV spots (as their last choice); by default an EV spot takes only EVs.
    #[serde(default)]
    pub ev_spots_open_to_cars: bool,
}

/// The currency of a lot, and of a prepaid balance, when none is given.
pub const DEFAULT_CURRENCY: &str = "USD";

fn default_currency() -> String {
    DEFAULT_CURRENCY.into()
}

/// An ISO 4217 code as a client sends it: three capital letters.
pub fn currency_code(code: &str) -> Result<String> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err(Error::Invalid(
            "currency must be an ISO 4217 code such as USD".into(),
        ))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lot {
    pub id: LotId,
    pub name: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub currency: String,
    pub capacity: i64,
    pub free_spots: i64,
    /// The rate a car pays per hour right now.
    pub current_cents_per_hour: i64,
    /// Metres from the point the driver gave (their workplace), when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckInRequest {
    pub vehicle_type: VehicleType,
    pub method: EntryMethod,
    #[serde(default)]
    pub plate: Option<String>,
    #[serde(default)]
    pub user_id: Option<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckInReceipt {
    pub session_id: SessionId,
    pub lot_id: LotId,
    pub spot_id: SpotId,
    pub spot_label: String,
    pub entered_at: DateTime<Utc>,
    /// The reservation this stay belongs to (entry by pass or by a reserved plate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitRequest {
    pub session_id: SessionId,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExitReceipt {
    pub session_id: SessionId,
    pub duration_s: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub cents_per_hour: i64,
    pub band: TimeBand,
    /// A reserved stay pays its quote, plus any time past the reserved end at the rate above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub vehicle_type: VehicleType,
    pub cents_per_hour: i64,
    /// When omitted on publishing: now.
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
}

impl From<RatePublished> for Rate {
    /// A rate as pricing announces it on the rates topic.
    fn from(r: RatePublished) -> Self {
        Self {
            band: r.band,
            day_kind: r.day_kind,
            vehicle_type: r.vehicle_type,
            cents_per_hour: r.cents_per_hour.0,
            effective_from: Some(r.effective_from),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRates {
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateSchedule {
    pub lot_id: LotId,
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// The rate in force now for every band, day kind and vehicle type that has one.
    pub current: Vec<Rate>,
    /// Rates announced to start later.
    pub upcoming: Vec<Rate>,
}

#[derive(Debug, Clone)]
pub struct ParkingService {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: ApiMetrics,
    passes: PassSigner,
    availability: Arc<AvailabilityIndex>,
    /// The outbox position up to which other processes' changes were applied to `availability`.
    availability_position: Arc<AtomicI64>,
    tariff: TariffRules,
    payments: Arc<PaymentsConfig>,
    gateway: Arc<dyn PaymentGateway>,
}

/// A stay about to open: where, who and how.
pub(crate) struct NewStay<'a> {
    pub(crate) lot: LotId,
    /// Spot id and label.
    pub(crate) spot: (i64, String),
    pub(crate) vehicle_type: VehicleType,
    pub(crate) method: EntryMethod,
    pub(crate) plate: Option<&'a str>,
    pub(crate) user: Option<UserId>,
    pub(crate) reservation: Option<ReservationId>,
}

pub(crate) struct LotRow {
    pub(crate) tz: Tz,
    pub(crate) currency: String,
    pub(crate) default_cents_per_hour: i64,
    pub(crate) entry_grace_minutes: i64,
    pub(crate) drive_up_horizon_minutes: i64,
    pub(crate) policy: SpotPolicy,
}

/// Spots are laid out in rows of this many, so each gets a position inside the lot.
const SPOTS_PER_ROW: u32 = 20;
/// Width of a spot and distance between rows, metres.
const SPOT_WIDTH_M: f64 = 2.5;
const ROW_PITCH_M: f64 = 6.0;

/// The spots of a new lot, counted without overflow: each count and their sum must lie in
/// 1..=[`MAX_SPOTS_PER_LOT`], so one request writes a bounded number of rows in its transaction.
pub fn lot_capacity(spots: &BTreeMap<VehicleType, u32>) -> Result<u32> {
    let out_of_range =
        || Error::Invalid(format!("a lot needs 1 to {MAX_SPOTS_PER_LOT} spots in all"));
    let total = spots
        .values()
        .try_fold(0u32, |sum, &n| sum.checked_add(n))
        .ok_or_else(out_of_range)?;
    if (1..=MAX_SPOTS_PER_LOT).contains(&total) {
        Ok(total)
    } else {
        Err(out_of_range())
    }
}

/// Where the `i`-th of `n` spots lies in a lot centred on `centre`: rows of spots around it.
pub(crate) fn spot_position(centre: (f64, f64), i: u32, n: u32) -> (f64, f64) {
    const METRES_PER_DEGREE: f64 = 111_320.0;
    let rows = n.div_ceil(SPOTS_PER_ROW);
    let east = (f64::from(i % SPOTS_PER_ROW) - f64::from(SPOTS_PER_ROW - 1) / 2.0) * SPOT_WIDTH_M;
    let north =
        (f64::from(i / SPOTS_PER_ROW) - f64::from(rows.saturating_sub(1)) / 2.0) * ROW_PITCH_M;
    let lat = centre.0 + north / METRES_PER_DEGREE;
    let lng = centre.1 + east / (METRES_PER_DEGREE * centre.0.to_radians().cos().max(0.01));
    (lat, lng)
}

impl ParkingService {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: ApiMetrics,
        passes: PassSigner,
    ) -> Self {
        Self {
            store,
            clock,
            metrics,
            passes,
            availability: Arc::new(AvailabilityIndex::new()),
            availability_position: Arc::new(AtomicI64::new(0)),
            tariff: TariffRules::default(),
            payments: Arc::new(PaymentsConfig::default()),
            gateway: Arc::new(SandboxGateway::default()),
        }
    }

    /// Take payments under `config` through `gateway`.
    pub fn with_payments(
        mut self,
        config: PaymentsConfig,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        self.payments = Arc::new(config);
        self.gateway = gateway;
        self
    }

    pub fn gateway(&self) -> &dyn PaymentGateway {
        self.gateway.as_ref()
    }

    /// The tariff rules a reservation's quote is priced by: the stay's rules without grace
    /// period or free minutes (those are for drive-ups).
    pub(crate) fn quote_rules(&self) -> TariffRules {
        TariffRules {
            grace_minutes: 0,
            free_minutes: 0,
            ..self.tariff
        }
    }

    pub(crate) fn payments_config(&self) -> &PaymentsConfig {
        &self.payments
    }

    /// Charge stays under `rules` (grace, free minutes, increment, daily cap).
    pub fn with_tariff(mut self, rules: TariffRules) -> Self {
        self.tariff = rules;
        self
    }

    pub(crate) fn metrics(&self) -> &ApiMetrics {
        &self.metrics
    }

    pub(crate) fn passes(&self) -> &PassSigner {
        &self.passes
    }

    pub(crate) fn availability(&self) -> &AvailabilityIndex {
        &self.availability
    }

    pub(crate) fn availability_position(&self) -> i64 {
        self.availability_position.load(Ordering::Acquire)
    }

    pub(crate) fn set_availability_position(&self, position: i64) {
        self.availability_position
            .fetch_max(position, Ordering::AcqRel);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn create_lot(&self, new: NewLot) -> Result<Lot> {
        self.create_lot_by(None, new).await
    }

    /// [`Self::create_lot`], recorded in the audit log when an admin asked for it.
    pub async fn create_lot_by(&self, actor: Option<&Actor>, new: NewLot) -> Result<Lot> {
        let tz: Tz = new
            .time_zone
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown time zone `{}`", new.time_zone)))?;
        let name = crate::text::line("name", &new.name, 200)?;
        if !(-90.0..=90.0).contains(&new.latitude) || !(-180.0..=180.0).contains(&new.longitude) {
            return Err(Error::Invalid("latitude/longitude out of range".into()));
        }
        currency_code(&new.currency)?;
        check_rate(new.default_cents_per_hour)?;
        let capacity = lot_capacity(&new.spots)?;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO lots (name, time_zone, latitude, longitude, currency, default_cents_per_hour, created_at,
                               ev_spots_open_to_cars)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&name)
        .bind(tz.name())
        .bind(new.latitude)
        .bind(new.longitude)
        .bind(&new.currency)
        .bind(new.default_cents_per_hour)
        .bind(now.timestamp_millis())
        .bind(i64::from(new.ev_spots_open_to_cars))
        .fetch_one(&mut *tx)
        .await?;
        let mut placed = 0;
        for (vt, n) in &new.spots {
            for i in 1..=*n {
                let (lat, lng) = spot_position((new.latitude, new.longitude), placed, capacity);
                placed += 1;
                sqlx::query(
                    "INSERT INTO spots (lot_id, label, vehicle_type, latitude, longitude) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(format!("{}-{i:03}", spot_prefix(*vt)))
                .bind(vt.as_str())
                .bind(lat)
                .bind(lng)
                .execute(&mut *tx)
                .await?;
            }
        }
        let event = Event::new(
            now,
            LotId(id),
            EventPayload::LotRegistered(LotRegistered {
                name: name.clone(),
                time_zone: tz.name().to_owned(),
                latitude: new.latitude,
                longitude: new.longitude,
                capacity: capacity as i32,
            }),
        );
        append_event(&mut tx, &event).await?;
        if let Some(actor) = actor {
            let detail = serde_json::json!({ "name": name, "capacity": capacity });
            audit(
                &mut tx,
                actor,
                "lot.create",
                &format!("lot {id}"),
                detail,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.lot(LotId(id)).await
    }

    pub async fn lot(&self, lot: LotId) -> Result<Lot> {
        self.lots_where(Some(lot), None)
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("lot {lot}")))
    }

    pub async fn lots(&self) -> Result<Vec<Lot>> {
        self.lots_where(None, None).await
    }

    /// Every lot with its distance from `near` (latitude, longitude), nearest first.
    pub async fn lots_near(&self, near: (f64, f64)) -> Result<Vec<Lot>> {
        let mut lots = self.lots_where(None, Some(near)).await?;
        lots.sort_by(|a, b| {
            a.distance_m
                .unwrap_or(f64::MAX)
                .total_cmp(&b.distance_m.unwrap_or(f64::MAX))
                .then(a.id.cmp(&b.id))
        });
        Ok(lots)
    }

    async fn lots_where(&self, only: Option<LotId>, near: Option<(f64, f64)>) -> Result<Vec<Lot>> {
        let rows = sqlx::query(
            "SELECT l.id, l.name, l.time_zone, l.latitude, l.longitude, l.currency, l.default_cents_per_hour,
                    (SELECT COUNT(*) FROM spots s WHERE s.lot_id = l.id AND s.closed = 0) AS capacity,
                    (SELECT COUNT(*) FROM parking_sessions p WHERE p.lot_id = l.id AND p.exited_at IS NULL) AS occupied
             FROM lots l WHERE ($1 IS NULL OR l.id = $1) ORDER BY l.id",
        )
        .bind(only.map(|l| l.0))
        .fetch_all(self.store.pool())
        .await?;
        let now = self.now();
        let mut lots = Vec::with_capacity(rows.len());
        for r in rows {
            let id = LotId(r.get("id"));
            let tz_name: String = r.get("time_zone");
            let tz: Tz = tz_name.parse().unwrap_or(Tz::UTC);
            let capacity: i64 = r.get("capacity");
            let occupied: i64 = r.get("occupied");
            let default: i64 = r.get("default_cents_per_hour");
            let rate = self
                .rate_in_force(id, VehicleType::Car, tz, now)
                .await?
                .unwrap_or(default);
            let (latitude, longitude): (f64, f64) = (r.get("latitude"), r.get("longitude"));
            lots.push(Lot {
                id,
                name: r.get("name"),
                time_zone: tz_name,
                latitude,
                longitude,
                distance_m: near.map(|n| distance_m((latitude, longitude), n).round()),
                currency: r.get("currency"),
                capacity,
                free_spots: (capacity - occupied).max(0),
                current_cents_per_hour: rate,
            });
        }
        Ok(lots)
    }

    pub(crate) async fn lot_row(
        &self,
        conn: &mut sqlx::AnyConnection,
        lot: LotId,
    ) -> Result<LotRow> {
        let row = sqlx::query(
            "SELECT time_zone, currency, default_cents_per_hour, entry_grace_minutes, drive_up_horizon_minutes,
                    ev_spots_open_to_cars
             FROM lots WHERE id = $1",
        )
        .bind(lot.0)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        let tz: String = row.get("time_zone");
        Ok(LotRow {
            tz: tz.parse().unwrap_or(Tz::UTC),
            currency: row.get("currency"),
            default_cents_per_hour: row.get("default_cents_per_hour"),
            entry_grace_minutes: row.get("entry_grace_minutes"),
            drive_up_horizon_minutes: row.get("drive_up_horizon_minutes"),
            policy: SpotPolicy {
                ev_spots_open_to_cars: row.get::<i64, _>("ev_spots_open_to_cars") != 0,
            },
        })
    }

    /// A vehicle drives up without a reservation: it gets the best free spot its type may use
    /// that no reservation claims within the lot's drive-up horizon, or `lot_full`.
    ///
    /// On PostgreSQL two gates may pick the same free spot at once; the loser's insert hits the
    /// one-open-stay-per-spot index and it simply tries again with what is then free.
    pub async fn check_in(&self, lot: LotId, req: CheckInRequest) -> Result<CheckInReceipt> {
        // A known driver entering without a reservation pays from their prepaid balance: it
        // must hold the configured minimum.
        let min = self.payments.min_balance_cents;
        if let Some(user) = req.user_id
            && min > 0
        {
            let balance = self.balance(user).await?;
            let lot_currency: Option<String> =
                sqlx::query_scalar("SELECT currency FROM lots WHERE id = $1")
                    .bind(lot.0)
                    .fetch_optional(self.store.pool())
                    .await?;
            if let (Some(held), Some(charged)) = (self.balance_currency(user).await?, lot_currency)
                && held != charged
            {
                return Err(Error::PaymentRequired {
                    code: "balance_currency",
                    message: format!(
                        "entry needs a prepaid balance in {charged}; this one is held in {held}"
                    ),
                });
            }
            if balance < min {
                return Err(Error::PaymentRequired {
                    code: "balance_too_low",
                    message: format!(
                        "entry needs a prepaid balance of at least {min} cents; it is {balance}"
                    ),
                });
            }
        }
        const ATTEMPTS: usize = 8;
        for _ in 1..ATTEMPTS {
            match self.try_check_in(lot, &req).await {
                Err(Error::Storage(e)) if is_unique_violation(&e) => continue,
                other => return other,
            }
        }
        self.try_check_in(lot, &req).await
    }

    async fn try_check_in(&self, lot: LotId, req: &CheckInRequest) -> Result<CheckInReceipt> {
        if let Some(p) = &req.plate {
            crate::accounts::normalise_plate(p)?;
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let info = self.lot_row(&mut tx, lot).await?;
        let horizon = now + chrono::Duration::minutes(info.drive_up_horizon_minutes);
        let (spot_id, label) = self
            .free_spot_now(
                &mut tx,
                lot,
                info.policy,
                req.vehicle_type,
                (now, horizon),
                None,
            )
            .await?;
        let receipt = self
            .open_stay(
                &mut tx,
                SessionId::new(),
                NewStay {
                    lot,
                    spot: (spot_id, label),
                    vehicle_type: req.vehicle_type,
                    method: req.method,
                    plate: req.plate.as_deref(),
                    user: req.user_id,
                    reservation: None,
                },
                now,
            )
            .await?;
        tx.commit().await?;
        self.metrics.check_ins.inc();
        Ok(receipt)
    }

    /// Record, inside the caller's transaction, a stay that opens at `now`: its session row and
    /// its `check_in` event. Drive-ups and reservations entering at the gate both come here.
    pub(crate) async fn open_stay(
        &self,
        conn: &mut sqlx::AnyConnection,
        session: SessionId,
        stay: NewStay<'_>,
        now: DateTime<Utc>,
    ) -> Result<CheckInReceipt> {
        let (spot_id, label) = stay.spot;
        sqlx::query(
            "INSERT INTO parking_sessions (id, lot_id, spot_id, vehicle_type, method, plate, user_id, entered_at, reservation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(session.0.to_string())
        .bind(stay.lot.0)
        .bind(spot_id)
        .bind(stay.vehicle_type.as_str())
        .bind(stay.method.as_str())
        .bind(stay.plate)
        .bind(stay.user.map(|u| u.0.to_string()))
        .bind(now.timestamp_millis())
        .bind(stay.reservation.map(|r| r.0.to_string()))
        .execute(&mut *conn)
        .await?;
        let event = Event::new(
            now,
            stay.lot,
            EventPayload::CheckIn(CheckIn {
                session_id: session,
                user_id: stay.user,
                reservation_id: stay.reservation,
                spot_id: Some(SpotId(spot_id)),
                vehicle_type: stay.vehicle_type,
                method: stay.method,
            }),
        );
        append_event(conn, &event).await?;
        Ok(CheckInReceipt {
            session_id: session,
            lot_id: stay.lot,
            spot_id: SpotId(spot_id),
            spot_label: label,
            entered_at: event.occurred_at,
            reservation_id: stay.reservation,
        })
    }

    /// The best spot for `vehicle` that has no car in it now and that no reservation (other than
    /// `mine`) holds between `now` and `until`; `lot_full` when there is none.
    pub(crate) async fn free_spot_now(
        &self,
        conn: &mut sqlx::AnyConnection,
        lot: LotId,
        policy: SpotPolicy,
        vehicle: VehicleType,
        (now, until): (DateTime<Utc>, DateTime<Utc>),
        mine: Option<ReservationId>,
    ) -> Result<(i64, String)> {
        let free: Vec<(i64, String, String)> = sqlx::query_as(concat!(
            "SELECT s.id, s.label, s.vehicle_type FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0
               AND NOT EXISTS (SELECT 1 FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL)
               AND NOT EXISTS (SELECT 1 FROM reservations r
                               WHERE r.spot_id = s.id AND ",
            holding!("r"),
            " AND r.start_at < $3 AND r.end_at > $2 AND r.id <> $4)
             ORDER BY s.id"
        ))
        .bind(lot.0)
        .bind(now.timestamp_millis())
        .bind(until.timestamp_millis())
        .bind(mine.map(|r| r.0.to_string()).unwrap_or_default())
        .fetch_all(conn)
        .await?;
        let chosen = free
            .iter()
            .filter_map(|(id, label, vt)| {
                let rank = policy.rank(vehicle, vt.parse().ok()?)?;
                Some((rank, *id, label))
            })
            .min();
        match chosen {
            Some((_, id, label)) => Ok((id, label.clone())),
            None => {
                self.metrics.lot_full.inc();
                Err(Error::conflict(
                    "lot_full",
                    format!("lot {lot} has no free spot for a {vehicle}"),
                ))
            }
        }
    }

    /// A vehicle leaves. A drive-up stay is charged by the tariff engine over the whole stay
    /// (each increment at the rate in force then, with the configured grace, free minutes and
    /// daily cap); a reserved stay pays its quote plus any time past the reserved end by the
    /// same engine, and its reservation is completed (the rest of its window is free again).
    pub async fn check_out(&self, lot: LotId, session: SessionId) -> Result<ExitReceipt> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let info = self.lot_row(&mut tx, lot).await?;
        let row = sqlx::query(
            "SELECT p.vehicle_type, p.entered_at, p.exited_at, p.reservation_id, p.user_id, r.quote_cents, r.end_at
             FROM parking_sessions p LEFT JOIN reservations r ON r.id = p.reservation_id
             WHERE p.id = $1 AND p.lot_id = $2",
        )
        .bind(session.0.to_string())
        .bind(lot.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("parking session {session} in lot {lot}")))?;
        if row.get::<Option<i64>, _>("exited_at").is_some() {
            return Err(Error::conflict(
                "session_closed",
                format!("parking session {session} has already exited"),
            ));
        }
        let vt: VehicleType = row
            .get::<String, _>("vehicle_type")
            .parse()
            .map_err(Error::Invalid)?;
        let entered_at: i64 = row.get("entered_at");
        let duration_s = ((now.timestamp_millis() - entered_at) / 1000).max(0);
        let band = TimeBand::at(now, info.tz);
        let cents_per_hour = rate_in_force_conn(&mut tx, lot, vt, info.tz, now)
            .await?
            .unwrap_or(info.default_cents_per_hour);
        let reservation: Option<ReservationId> = row
            .get::<Option<String>, _>("reservation_id")
            .and_then(|r| r.parse().ok())
            .map(ReservationId);
        let tariff = scheduled_rates(&mut tx, lot, vt, now).await?;
        let entered = DateTime::from_timestamp_millis(entered_at).unwrap_or(now);
        let amount = match reservation {
            // The quote covers the reserved window; time past its end is charged by the tariff,
            // with no grace or free minutes of its own.
            Some(_) => {
                let quote: i64 = row.get::<Option<i64>, _>("quote_cents").unwrap_or(0);
                let end = row
                    .get::<Option<i64>, _>("end_at")
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now);
                let overstay = Tariff::new(
                    TariffRules {
                        grace_minutes: 0,
                        free_minutes: 0,
                        ..self.tariff
                    },
                    info.tz,
                    info.default_cents_per_hour,
                    tariff,
                );
                quote
                    + if now > end {
                        overstay.charge(end, now).cents
                    } else {
                        0
                    }
            }
            None => {
                Tariff::new(self.tariff, info.tz, info.default_cents_per_hour, tariff)
                    .charge(entered, now)
                    .cents
            }
        };
        let closed = sqlx::query(
            "UPDATE parking_sessions SET exited_at = $1, amount_cents = $2, currency = $3
             WHERE id = $4 AND exited_at IS NULL",
        )
        .bind(now.timestamp_millis())
        .bind(amount)
        .bind(&info.currency)
        .bind(session.0.to_string())
        .execute(&mut *tx)
        .await?;
        if closed.rows_affected() != 1 {
            return Err(Error::conflict(
                "session_closed",
                format!("parking session {session} has already exited"),
            ));
        }
        if reservation.is_none()
            && let Some(user) = row.get::<Option<String>, _>("user_id")
        {
            self.pay_stay_from_balance(&mut tx, lot, session, &user, amount, &info.currency, now)
                .await?;
        }
        if let Some(r) = reservation {
            sqlx::query("UPDATE reservations SET status = 'completed' WHERE id = $1 AND status = 'checked_in'")
                .bind(r.0.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let event = Event::new(
            now,
            lot,
            EventPayload::Exit(Exit {
                session_id: session,
                duration_s,
                amount_cents: Cents(amount),
                currency: info.currency.clone(),
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        if let Some(r) = reservation {
            // The rest of the reserved window is free again.
            self.released(lot, r).await;
        }
        self.metrics.exits.inc();
        Ok(ExitReceipt {
            session_id: session,
            duration_s,
            amount_cents: amount,
            currency: info.currency,
            cents_per_hour,
            band,
            reservation_id: reservation,
        })
    }

    /// Pricing publishes rates for a lot; each new or changed one becomes a schedule row and a
    /// `rate_published` event. A rate identical to the one already scheduled for the same band,
    /// day kind, vehicle type and start is a no-op, so the same rates arriving twice (over HTTP
    /// and over the rates topic, or a retry) change nothing. Returns how many rows changed.
    pub async fn publish_rates(&self, lot: LotId, rates: Vec<Rate>) -> Result<usize> {
        if rates.is_empty() {
            return Err(Error::Invalid("no rates given".into()));
        }
        for r in &rates {
            check_rate(r.cents_per_hour)?;
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        self.lot_row(&mut tx, lot).await?;
        let mut changed = 0;
        for r in &rates {
            let from = r.effective_from.unwrap_or(now);
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT cents_per_hour FROM rates
                 WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from = $5",
            )
            .bind(lot.0)
            .bind(r.band.as_str())
            .bind(r.day_kind.as_str())
            .bind(r.vehicle_type.as_str())
            .bind(from.timestamp_millis())
            .fetch_optional(&mut *tx)
            .await?;
            if existing == Some(r.cents_per_hour) {
                continue;
            }
            changed += 1;
            sqlx::query(
                "INSERT INTO rates (lot_id, band, day_kind, vehicle_type, effective_from, cents_per_hour, published_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (lot_id, band, day_kind, vehicle_type, effective_from)
                 DO UPDATE SET cents_per_hour = excluded.cents_per_hour, published_at = excluded.published_at",
            )
            .bind(lot.0)
            .bind(r.band.as_str())
            .bind(r.day_kind.as_str())
            .bind(r.vehicle_type.as_str())
            .bind(from.timestamp_millis())
            .bind(r.cents_per_hour)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::RatePublished(RatePublished {
                    band: r.band,
                    day_kind: r.day_kind,
                    vehicle_type: r.vehicle_type,
                    cents_per_hour: Cents(r.cents_per_hour),
                    effective_from: from,
                }),
            );
            append_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.metrics.rates_published.inc_by(changed as u64);
        Ok(changed)
    }

    /// The rates in force now and those announced for later.
    pub async fn rate_schedule(&self, lot: LotId) -> Result<RateSchedule> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        let now = self.now().timestamp_millis();
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT r.band, r.day_kind, r.vehicle_type, r.cents_per_hour, r.effective_from FROM rates r
             WHERE r.lot_id = $1 AND (r.effective_from > $2 OR r.effective_from = (
                 SELECT MAX(x.effective_from) FROM rates x
                 WHERE x.lot_id = r.lot_id AND x.band = r.band AND x.day_kind = r.day_kind
                   AND x.vehicle_type = r.vehicle_type AND x.effective_from <= $2))
             ORDER BY r.effective_from, r.band, r.day_kind, r.vehicle_type",
        )
        .bind(lot.0)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let (mut current, mut upcoming) = (Vec::new(), Vec::new());
        for (band, day_kind, vt, cents, from) in rows {
            let rate = Rate {
                band: band.parse().map_err(Error::Invalid)?,
                day_kind: day_kind.parse().map_err(Error::Invalid)?,
                vehicle_type: vt.parse().map_err(Error::Invalid)?,
                cents_per_hour: cents,
                effective_from: DateTime::from_timestamp_millis(from),
            };
            if from > now {
                upcoming.push(rate)
            } else {
                current.push(rate)
            }
        }
        Ok(RateSchedule {
            lot_id: lot,
            currency: info.currency,
            default_cents_per_hour: info.default_cents_per_hour,
            current,
            upcoming,
        })
    }

    /// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot default if none was
    /// published).
    pub async fn rate_at(&self, lot: LotId, vt: VehicleType, at: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        Ok(rate_in_force_conn(&mut conn, lot, vt, info.tz, at)
            .await?
            .unwrap_or(info.default_cents_per_hour))
    }

    async fn rate_in_force(
        &self,
        lot: LotId,
        vt: VehicleType,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut conn = self.store.pool().acquire().await?;
        rate_in_force_conn(&mut conn, lot, vt, tz, at).await
    }
}

/// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot's time zone `tz` picks
/// band and day kind), if one was published; callers fall back to the lot default.
/// The published rates of `lot` for `vt` that can apply up to `until`, for the tariff engine.
pub(crate) async fn scheduled_rates(
    conn: &mut sqlx::AnyConnection,
    lot: LotId,
    vt: VehicleType,
    until: DateTime<Utc>,
) -> Result<Vec<ScheduledRate>> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT band, day_kind, effective_from, cents_per_hour FROM rates
         WHERE lot_id = $1 AND vehicle_type = $2 AND effective_from <= $3",
    )
    .bind(lot.0)
    .bind(vt.as_str())
    .bind(until.timestamp_millis())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(band, day_kind, from, cents)| {
            Ok(ScheduledRate {
                band: band.parse().map_err(Error::Invalid)?,
                day_kind: day_kind.parse().map_err(Error::Invalid)?,
                effective_from: DateTime::from_timestamp_millis(from)
                    .ok_or_else(|| Error::Invalid("rate start out of range".into()))?,
                cents_per_hour: cents,
            })
        })
        .collect()
}

pub(crate) async fn rate_in_force_conn(
    conn: &mut sqlx::AnyConnection,
    lot: LotId,
    vt: VehicleType,
    tz: Tz,
    at: DateTime<Utc>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT cents_per_hour FROM rates
         WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from <= $5
         ORDER BY effective_from DESC LIMIT 1",
    )
    .bind(lot.0)
    .bind(TimeBand::at(at, tz).as_str())
    .bind(DayKind::at(at, tz).as_str())
    .bind(vt.as_str())
    .bind(at.timestamp_millis())
    .fetch_optional(conn)
    .await?)
}

/// The charge for a stay: the hourly rate pro rata to the second, rounded up to the cent.
pub fn charge(duration_s: i64, cents_per_hour: i64) -> i64 {
    (duration_s.max(0) * cents_per_hour + 3599) / 3600
}

pub(crate) fn check_rate(cents: i64) -> Result<()> {
    if (0..=MAX_CENTS_PER_HOUR).contains(&cents) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "cents per hour must be 0 to {MAX_CENTS_PER_HOUR}, got {cents}"
        )))
    }
}

fn spot_prefix(vt: VehicleType) -> &'static str {
    match vt {
        VehicleType::Car => "C",
        VehicleType::Ev => "E",
        VehicleType::Motorcycle => "M",
        VehicleType::Van => "V",
    }
}

#[cfg(test)]
mod tests {
    use super::charge;

    #[test]
    fn charge_rounds_up_to_the_cent() {
        assert_eq!(charge(0, 300), 0);
        assert_eq!(charge(1, 300), 1);
        assert_eq!(charge(3600, 300), 300);
        assert_eq!(charge(5400, 250), 375);
        assert_eq!(charge(-5, 250), 0);
    }
}

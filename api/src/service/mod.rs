//! The business rules of lots, spots, stays and rates. HTTP handlers and the in-process
//! simulator both call this layer; every state change and its event commit together.

mod lots;
mod rates;
mod stays;

pub use lots::lot_capacity;
pub use rates::charge;
pub(crate) use rates::{check_rate, rate_in_force_conn, scheduled_rates};

use crate::clock::Clock;
use crate::config::PaymentsConfig;
use crate::domain::availability::{AvailabilityIndex, SpotPolicy};
use crate::error::{Error, Result};
use crate::gateway::{PaymentGateway, SandboxGateway};
use crate::metrics::ApiMetrics;
use crate::passes::PassSigner;
use crate::store::Store;
use crate::tariff::TariffRules;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use warehouse_schema::event::RatePublished;
use warehouse_schema::{
    DayKind, EntryMethod, LotId, ReservationId, SessionId, SpotId, TimeBand, UserId, VehicleType,
};

pub use crate::domain::{MAX_CENTS_PER_HOUR, MAX_SPOTS_PER_LOT};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLot {
    #[schema(schema_with = crate::domain::schema::line_200)]
    pub name: String,
    #[schema(schema_with = crate::domain::schema::time_zone)]
    pub time_zone: String,
    #[schema(schema_with = crate::domain::schema::latitude)]
    pub latitude: f64,
    #[schema(schema_with = crate::domain::schema::longitude)]
    pub longitude: f64,
    #[serde(default = "default_currency")]
    #[schema(schema_with = crate::domain::schema::currency, default = "USD")]
    pub currency: String,
    #[schema(schema_with = crate::domain::schema::cents)]
    pub default_cents_per_hour: i64,
    /// Number of spots to create per spot type.
    #[schema(schema_with = crate::domain::schema::spot_counts)]
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

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lot {
    #[schema(value_type = i64)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckInReceipt {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    #[schema(value_type = i64)]
    pub spot_id: SpotId,
    pub spot_label: String,
    pub entered_at: DateTime<Utc>,
    /// The reservation this stay belongs to (entry by pass or by a reserved plate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reservation_id: Option<ReservationId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitRequest {
    pub session_id: SessionId,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitReceipt {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    pub duration_s: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub cents_per_hour: i64,
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    /// A reserved stay pays its quote, plus any time past the reserved end at the rate above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reservation_id: Option<ReservationId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    #[schema(schema_with = crate::domain::schema::day_kind)]
    pub day_kind: DayKind,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    #[schema(schema_with = crate::domain::schema::cents)]
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRates {
    #[schema(min_items = 1, max_items = 1000)]
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateSchedule {
    #[schema(value_type = i64)]
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

/// How an entry chooses among the spots equally good for its vehicle: the first (lowest id),
/// or, after losing one to a concurrent entry, one at random so the losers spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    First,
    Spread(u64),
}

impl Pick {
    /// The spot of `free` (id, label, spot type; listed by id) a `vehicle` takes under
    /// `policy`: one of the best rank it may use, or none.
    pub(crate) fn choose(
        self,
        free: &[(i64, String, String)],
        policy: SpotPolicy,
        vehicle: VehicleType,
    ) -> Option<(i64, &str)> {
        let ranked: Vec<(usize, i64, &str)> = free
            .iter()
            .filter_map(|(id, label, spot_type)| {
                let rank = policy.rank(vehicle, spot_type.parse().ok()?)?;
                Some((rank, *id, label.as_str()))
            })
            .collect();
        let best = ranked.iter().map(|(rank, ..)| *rank).min()?;
        let equal: Vec<_> = ranked.iter().filter(|(rank, ..)| *rank == best).collect();
        let chosen = match self {
            Self::First => equal.first(),
            Self::Spread(r) => {
                let n = u64::try_from(equal.len()).unwrap_or(u64::MAX);
                usize::try_from(r % n).ok().and_then(|i| equal.get(i))
            }
        };
        chosen.map(|(_, id, label)| (*id, *label))
    }
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

fn spot_prefix(vt: VehicleType) -> &'static str {
    match vt {
        VehicleType::Car => "C",
        VehicleType::Ev => "E",
        VehicleType::Motorcycle => "M",
        VehicleType::Van => "V",
    }
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
}

#[cfg(test)]
mod tests {
    use super::{Pick, SpotPolicy, VehicleType, charge};

    fn spots(types: &[&str]) -> Vec<(i64, String, String)> {
        (1..)
            .zip(types)
            .map(|(id, t)| (id, format!("A{id}"), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn an_entry_takes_the_best_spot_and_losers_spread_over_the_equally_good() {
        let free = spots(&["ev", "car", "car", "car", "motorcycle"]);
        let policy = SpotPolicy {
            ev_spots_open_to_cars: true,
        };
        // A car prefers car spots to the EV spot; the first attempt takes the lowest id.
        assert_eq!(
            Pick::First.choose(&free, policy, VehicleType::Car),
            Some((2, "A2"))
        );
        // After a loss, every car spot is offered by some draw, never the EV spot.
        let drawn: std::collections::BTreeSet<i64> = (0..12)
            .filter_map(|r| Pick::Spread(r).choose(&free, policy, VehicleType::Car))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(drawn, [2, 3, 4].into());
        // A draw at the end of u64 still lands on a spot.
        assert!(
            Pick::Spread(u64::MAX)
                .choose(&free, policy, VehicleType::Car)
                .is_some()
        );
        // Nothing the vehicle may use: no spot.
        let evs = spots(&["ev"]);
        let closed = SpotPolicy {
            ev_spots_open_to_cars: false,
        };
        assert_eq!(Pick::First.choose(&evs, closed, VehicleType::Car), None);
        assert_eq!(Pick::Spread(7).choose(&evs, closed, VehicleType::Car), None);
        assert_eq!(Pick::First.choose(&[], policy, VehicleType::Car), None);
    }

    #[test]
    fn charge_rounds_up_to_the_cent() {
        assert_eq!(charge(0, 300), 0);
        assert_eq!(charge(1, 300), 1);
        assert_eq!(charge(3600, 300), 300);
        assert_eq!(charge(5400, 250), 375);
        assert_eq!(charge(-5, 250), 0);
    }
}

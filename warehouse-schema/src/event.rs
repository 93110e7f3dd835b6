//! The event contract of topic `parkflow.events.v1`: one JSON object per event.
//!
//! Every event carries `event_id` (UUIDv7, the de-duplication key), `schema_version`, `type`,
//! `occurred_at` (UTC, RFC 3339) and `lot_id`, plus the fields of its type. [`Event::from_json`]
//! is the only way bytes become an [`Event`]: it checks the envelope, the type and version, and
//! the values, and says why when it refuses (that reason is what a dead letter carries).

use crate::band::{DayKind, TimeBand};
use crate::ids::{
    EventId, LotId, MonthlyPassId, PaymentId, ReservationId, SessionId, SpotId, UserId,
};
use crate::vehicle::{EntryMethod, VehicleType};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

mod rate_reason;
use rate_reason::reason_text_or_object;
pub use rate_reason::{RateBound, RateReason};

/// The version written by this build; readers accept every version in [`SUPPORTED_VERSIONS`].
pub const SCHEMA_VERSION: u16 = 1;
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;

/// Money in the smallest unit of its currency. Never negative in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, (self.0 % 100).abs())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: EventId,
    pub schema_version: u16,
    pub occurred_at: DateTime<Utc>,
    pub lot_id: LotId,
    #[serde(flatten)]
    pub payload: EventPayload,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    /// A lot joined the platform (carries what the `dim_lot` row needs).
    LotRegistered(LotRegistered),
    LotCapacityChanged(LotCapacityChanged),
    CheckIn(CheckIn),
    Exit(Exit),
    ReservationCreated(ReservationWindow),
    ReservationModified(ReservationWindow),
    ReservationCancelled(ReservationRef),
    ReservationNoShow(ReservationRef),
    PaymentCaptured(Payment),
    PaymentFailed(Payment),
    PaymentRefunded(Payment),
    RatePublished(RatePublished),
    /// A driver bought a monthly pass: its first period, paid.
    MonthlyPassPurchased(MonthlyPassPeriod),
    /// A monthly pass renewed for another period, paid.
    MonthlyPassRenewed(MonthlyPassPeriod),
    /// A monthly pass ended: cancelled at its period's end, a renewal refused, its first
    /// payment refused, or its holder's account erased (the `reason`).
    MonthlyPassEnded(MonthlyPassEnd),
}

/// Every value of the `type` field, in contract order.
pub const EVENT_TYPES: [&str; 15] = [
    "lot_registered",
    "lot_capacity_changed",
    "check_in",
    "exit",
    "reservation_created",
    "reservation_modified",
    "reservation_cancelled",
    "reservation_no_show",
    "payment_captured",
    "payment_failed",
    "payment_refunded",
    "rate_published",
    "monthly_pass_purchased",
    "monthly_pass_renewed",
    "monthly_pass_ended",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotRegistered {
    pub name: String,
    /// IANA zone, used only for local-time features and reports.
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub capacity: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotCapacityChanged {
    pub capacity: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckIn {
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_id: Option<SpotId>,
    pub vehicle_type: VehicleType,
    pub method: EntryMethod,
    /// The monthly pass the car entered on (its holder parks free inside the pass's rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_pass_id: Option<MonthlyPassId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    pub session_id: SessionId,
    pub duration_s: i64,
    pub amount_cents: Cents,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationWindow {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub spot_id: SpotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub vehicle_type: VehicleType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationRef {
    pub reservation_id: ReservationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: PaymentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    pub amount_cents: Cents,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How it was paid: `card`, `wallet` or `balance` (in the `method` column, which holds the
    /// entry method for check-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// One paid period of a monthly pass (its purchase or a renewal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyPassPeriod {
    pub monthly_pass_id: MonthlyPassId,
    pub user_id: UserId,
    pub vehicle_type: VehicleType,
    /// The period the payment covers, `[start_at, end_at)`.
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub amount_cents: Cents,
    pub currency: String,
    /// The spot kept for the holder in this period, when the pass keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_id: Option<SpotId>,
}

/// Why a monthly pass ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyPassEnd {
    pub monthly_pass_id: MonthlyPassId,
    /// `cancelled`, `lapsed`, `payment_failed`, `payment_reversed` or `account_deleted`.
    pub reason: String,
}

/// The reasons a `monthly_pass_ended` event may give.
pub const PASS_END_REASONS: [&str; 5] = [
    "cancelled",
    "lapsed",
    "payment_failed",
    "payment_reversed",
    "account_deleted",
];

/// The payment methods a `method` of a payment event may name.
pub const PAYMENT_METHODS: [&str; 3] = ["card", "wallet", "balance"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatePublished {
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub vehicle_type: VehicleType,
    pub cents_per_hour: Cents,
    pub effective_from: DateTime<Utc>,
    /// Why pricing set this rate (none for a rate an admin set by hand). In the lake's flat
    /// table it is the `reason` column, as JSON text; either form reads back.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reason_text_or_object"
    )]
    pub reason: Option<RateReason>,
}

/// A rate schedule update on the rates topic (`parkflow.rates.v1`, key = lot id): what the
/// pricing service publishes, and what the API applies exactly as it would the same rates sent
/// over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesMessage {
    pub lot_id: LotId,
    pub rates: Vec<RatePublished>,
    pub published_at: DateTime<Utc>,
}

impl EventPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::LotRegistered(_) => "lot_registered",
            Self::LotCapacityChanged(_) => "lot_capacity_changed",
            Self::CheckIn(_) => "check_in",
            Self::Exit(_) => "exit",
            Self::ReservationCreated(_) => "reservation_created",
            Self::ReservationModified(_) => "reservation_modified",
            Self::ReservationCancelled(_) => "reservation_cancelled",
            Self::ReservationNoShow(_) => "reservation_no_show",
            Self::PaymentCaptured(_) => "payment_captured",
            Self::PaymentFailed(_) => "payment_failed",
            Self::PaymentRefunded(_) => "payment_refunded",
            Self::RatePublished(_) => "rate_published",
            Self::MonthlyPassPurchased(_) => "monthly_pass_purchased",
            Self::MonthlyPassRenewed(_) => "monthly_pass_renewed",
            Self::MonthlyPassEnded(_) => "monthly_pass_ended",
        }
    }
}

/// Why an event was refused. The `code` is stable (dashboards count by it); the detail is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    MalformedJson,
    MissingField,
    UnknownType,
    UnsupportedVersion,
    BadTime,
    InvalidValue,
    UnknownLot,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::MissingField => "missing_field",
            Self::UnknownType => "unknown_type",
            Self::UnsupportedVersion => "unsupported_version",
            Self::BadTime => "bad_time",
            Self::InvalidValue => "invalid_value",
            Self::UnknownLot => "unknown_lot",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Which lots exist, as far as a validator knows. `lot_registered` events define lots; any other
/// event for a lot not in the directory is refused.
pub trait LotDirectory {
    fn contains(&self, lot: LotId) -> bool;
}

impl LotDirectory for std::collections::HashSet<LotId> {
    fn contains(&self, lot: LotId) -> bool {
        std::collections::HashSet::contains(self, &lot)
    }
}

impl Event {
    /// A new event of the current schema version. Times are kept to the millisecond, the
    /// precision of the warehouse, so that an event survives every storage round trip unchanged.
    pub fn new(occurred_at: DateTime<Utc>, lot_id: LotId, payload: EventPayload) -> Self {
        Self {
            event_id: EventId::new(),
            schema_version: SCHEMA_VERSION,
            occurred_at: occurred_at.trunc_subsecs(3),
            lot_id,
            payload,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Decode and validate one event. The envelope is checked field by field first so that the
    /// rejection names the actual problem rather than serde's first complaint.
    pub fn from_json(bytes: &[u8], lots: &dyn LotDirectory) -> Result<Event, Rejection> {
        use RejectReason::*;
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::new(MalformedJson, e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Rejection::new(MalformedJson, "an event must be a JSON object"))?;
        for field in [
            "event_id",
            "schema_version",
            "type",
            "occurred_at",
            "lot_id",
        ] {
            if obj.get(field).is_none_or(|v| v.is_null()) {
                return Err(Rejection::new(
                    MissingField,
                    format!("missing field `{field}`"),
                ));
            }
        }
        let ty = obj["type"]
            .as_str()
            .ok_or_else(|| Rejection::new(InvalidValue, "`type` must be a string"))?;
        if !EVENT_TYPES.contains(&ty) {
            return Err(Rejection::new(
                UnknownType,
                format!("unknown event type `{ty}`"),
            ));
        }
        let version = obj["schema_version"]
            .as_u64()
            .ok_or_else(|| Rejection::new(InvalidValue, "`schema_version` must be an integer"))?;
        if !u16::try_from(version).is_ok_and(|v| SUPPORTED_VERSIONS.contains(&v)) {
            return Err(Rejection::new(
                UnsupportedVersion,
                format!(
                    "schema_version {version} is not supported (supported: {SUPPORTED_VERSIONS:?})"
                ),
            ));
        }
        for field in ["occurred_at", "start_at", "end_at", "effective_from"] {
            if let Some(v) = obj.get(field) {
                check_time(field, v)?;
            }
        }
        let typed = |e: serde_json::Error| {
            let msg = e.to_string();
            let reason = if msg.starts_with("missing field") {
                MissingField
            } else {
                InvalidValue
            };
            Rejection::new(reason, msg)
        };
        // The envelope field by field and the payload from the same map (its `type` tag picks
        // the variant, the envelope's keys are ignored): what `#[serde(flatten)]` would do,
        // without buffering every field of the payload twice.
        let field = |name: &str| obj.get(name).unwrap_or(&serde_json::Value::Null);
        let mut event = Event {
            event_id: EventId::deserialize(field("event_id")).map_err(typed)?,
            schema_version: u16::try_from(version)
                .map_err(|_| Rejection::new(InvalidValue, "`schema_version` out of range"))?,
            occurred_at: DateTime::<Utc>::deserialize(field("occurred_at")).map_err(typed)?,
            lot_id: LotId::deserialize(field("lot_id")).map_err(typed)?,
            payload: EventPayload::deserialize(&value).map_err(typed)?,
        };
        event.occurred_at = event.occurred_at.trunc_subsecs(3);
        event.validate(lots)?;
        Ok(event)
    }

    /// The value rules that types alone cannot carry.
    pub fn validate(&self, lots: &dyn LotDirectory) -> Result<(), Rejection> {
        use RejectReason::*;
        let invalid = |detail: String| Err(Rejection::new(InvalidValue, detail));
        if self.lot_id.0 <= 0 {
            return invalid(format!("lot_id must be positive, got {}", self.lot_id));
        }
        if !matches!(self.payload, EventPayload::LotRegistered(_)) && !lots.contains(self.lot_id) {
            return Err(Rejection::new(
                UnknownLot,
                format!("lot {} is not registered", self.lot_id),
            ));
        }
        match &self.payload {
            EventPayload::LotRegistered(l) => {
                if l.capacity <= 0 {
                    return invalid(format!("capacity must be positive, got {}", l.capacity));
                }
                if l.time_zone.parse::<chrono_tz::Tz>().is_err() {
                    return invalid(format!("unknown time zone `{}`", l.time_zone));
                }
                if !(-90.0..=90.0).contains(&l.latitude) || !(-180.0..=180.0).contains(&l.longitude)
                {
                    return invalid("latitude/longitude out of range".into());
                }
            }
            EventPayload::LotCapacityChanged(c) if c.capacity < 0 => {
                return invalid(format!("capacity must not be negative, got {}", c.capacity));
            }
            EventPayload::Exit(x) => {
                if x.duration_s < 0 {
                    return invalid(format!(
                        "duration_s must not be negative, got {}",
                        x.duration_s
                    ));
                }
                check_amount(x.amount_cents, &x.currency)?;
            }
            EventPayload::ReservationCreated(r) | EventPayload::ReservationModified(r)
                if r.start_at >= r.end_at =>
            {
                return invalid("reservation start_at must be before end_at".into());
            }
            EventPayload::PaymentCaptured(p)
            | EventPayload::PaymentFailed(p)
            | EventPayload::PaymentRefunded(p) => {
                check_amount(p.amount_cents, &p.currency)?;
                if let Some(m) = &p.method
                    && !PAYMENT_METHODS.contains(&m.as_str())
                {
                    return invalid(format!("unknown payment method {m:?}"));
                }
            }
            EventPayload::MonthlyPassPurchased(m) | EventPayload::MonthlyPassRenewed(m) => {
                if m.start_at >= m.end_at {
                    return invalid("a pass period's start_at must be before its end_at".into());
                }
                check_amount(m.amount_cents, &m.currency)?;
            }
            EventPayload::MonthlyPassEnded(m) if !PASS_END_REASONS.contains(&m.reason.as_str()) => {
                return invalid(format!("unknown reason {:?} for a pass's end", m.reason));
            }
            EventPayload::RatePublished(r) if r.cents_per_hour.0 < 0 => {
                return invalid(format!(
                    "cents_per_hour must not be negative, got {}",
                    r.cents_per_hour.0
                ));
            }
            EventPayload::RatePublished(RatePublished {
                reason: Some(reason),
                cents_per_hour,
                ..
            }) => reason.check(cents_per_hour.0).or_else(invalid)?,
            _ => {}
        }
        Ok(())
    }
}

fn check_time(field: &str, v: &serde_json::Value) -> Result<(), Rejection> {
    let s = v.as_str().ok_or_else(|| {
        Rejection::new(
            RejectReason::BadTime,
            format!("`{field}` must be an RFC 3339 string"),
        )
    })?;
    DateTime::parse_from_rfc3339(s).map(|_| ()).map_err(|e| {
        Rejection::new(
            RejectReason::BadTime,
            format!("`{field}` = {s:?} is not RFC 3339 with an offset: {e}"),
        )
    })
}

fn check_amount(amount: Cents, currency: &str) -> Result<(), Rejection> {
    if amount.0 < 0 {
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("amount_cents must not be negative, got {}", amount.0),
        ));
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            format!("currency must be an ISO 4217 code, got {currency:?}"),
        ));
    }
    Ok(())
}

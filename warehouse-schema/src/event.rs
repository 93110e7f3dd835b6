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

mod decode;
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

/// Each variant of [`EventPayload`], its payload type and its `type` tag, once: the list that
/// [`EVENT_TYPES`], [`EventPayload::type_name`] and the decoder's dispatch by tag come from
/// (serde's `rename_all` derives the same tags; `json_round_trip` checks they agree).
macro_rules! payload_types {
    ($($variant:ident($payload:ty) = $tag:literal,)*) => {
        /// Every value of the `type` field, in contract order.
        pub const EVENT_TYPES: [&str; { let tags: &[&str] = &[$($tag),*]; tags.len() }] =
            [$($tag),*];

        impl EventPayload {
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $tag,)*
                }
            }

            /// The payload of the type tagged `tag`, from its fields; `None` for an unknown tag.
            fn of_type<'de, D: serde::Deserializer<'de>>(
                tag: &str,
                fields: D,
            ) -> Option<Result<Self, D::Error>> {
                match tag {
                    $($tag => Some(<$payload>::deserialize(fields).map(Self::$variant)),)*
                    _ => None,
                }
            }
        }
    };
}

payload_types! {
    LotRegistered(LotRegistered) = "lot_registered",
    LotCapacityChanged(LotCapacityChanged) = "lot_capacity_changed",
    CheckIn(CheckIn) = "check_in",
    Exit(Exit) = "exit",
    ReservationCreated(ReservationWindow) = "reservation_created",
    ReservationModified(ReservationWindow) = "reservation_modified",
    ReservationCancelled(ReservationRef) = "reservation_cancelled",
    ReservationNoShow(ReservationRef) = "reservation_no_show",
    PaymentCaptured(Payment) = "payment_captured",
    PaymentFailed(Payment) = "payment_failed",
    PaymentRefunded(Payment) = "payment_refunded",
    RatePublished(RatePublished) = "rate_published",
    MonthlyPassPurchased(MonthlyPassPeriod) = "monthly_pass_purchased",
    MonthlyPassRenewed(MonthlyPassPeriod) = "monthly_pass_renewed",
    MonthlyPassEnded(MonthlyPassEnd) = "monthly_pass_ended",
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

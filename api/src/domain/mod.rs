//! The rules of parking, with no IO: nothing here touches the database, the network or axum.
//! Services (`reservations`, `payments`, `waitlist`, …) apply them; the store keeps their
//! records; the HTTP edge turns them into answers.

pub mod availability;
pub mod error;
pub mod money;
pub mod monthly;
pub mod notification;
pub mod passes;
pub mod rate_reason;
pub mod refund;
pub mod schema;
pub mod spot_choice;
mod status;
pub mod tariff;
mod time;

pub use money::Money;
pub use status::{DeliveryStatus, PassStatus, PaymentStatus, ReservationStatus, WaitlistStatus};
pub use time::TimeRange;

/// The largest lot one request may create; keeps a typo from creating a million spots.
pub const MAX_SPOTS_PER_LOT: u32 = 5_000;

/// An hourly rate above this is refused as a likely unit mistake (cents, not dollars).
pub const MAX_CENTS_PER_HOUR: i64 = 100_000;

/// What one top-up of the prepaid balance may be, in cents.
pub const TOP_UP_CENTS: std::ops::RangeInclusive<i64> = 100..=100_000;

use warehouse_schema::UserId;

/// Who did an admin action: an admin account, or a holder of the static admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn account(user: UserId) -> Self {
        Self(format!("account:{}", user.0))
    }

    pub fn admin_token() -> Self {
        Self("admin-token".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

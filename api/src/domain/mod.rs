//! The rules of parking, with no IO: nothing here touches the database, the network or axum.
//! Services (`reservations`, `payments`, `waitlist`, …) apply them; the store keeps their
//! records; the HTTP edge turns them into answers.

pub mod availability;
mod status;
mod time;

pub use status::{DeliveryStatus, PaymentStatus, ReservationStatus, WaitlistStatus};
pub use time::TimeRange;

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

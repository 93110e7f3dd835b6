//! The rules of parking, with no IO: nothing here touches the database, the network or axum.
//! Services (`reservations`, `payments`, `waitlist`, …) apply them; the store keeps their
//! records; the HTTP edge turns them into answers.

mod status;

pub use status::{DeliveryStatus, PaymentStatus, ReservationStatus, WaitlistStatus};

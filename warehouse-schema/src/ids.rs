//! Typed identifiers shared by the operational API and the warehouse.
//!
//! Lots and spots are small integers allocated by the operational database; sessions, users,
//! reservations and payments are UUIDs so that they can be created anywhere without coordination.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// A parking lot (also the Kafka partition key).
    LotId
);
int_id!(
    /// One marked spot inside a lot.
    SpotId
);
uuid_id!(
    /// The de-duplication key of an event (UUIDv7).
    EventId
);
uuid_id!(
    /// One stay of a vehicle in a lot, from entry to exit.
    SessionId
);
uuid_id!(
    /// An account; pseudonymous in the warehouse (never joined with e-mail there).
    UserId
);
uuid_id!(
    /// A reservation of a spot for a time window.
    ReservationId
);
uuid_id!(
    /// One payment attempt at the gateway.
    PaymentId
);
uuid_id!(
    /// A driver's monthly pass of a lot: rights to park on given days and hours, renewed each
    /// month.
    MonthlyPassId
);

//! Gate passes: what a driver's app shows as a QR code or hands over by NFC to open the gate for
//! a reservation.
//!
//! A pass is `pf1.<claims>.<signature>`: base64url JSON claims (reservation, user, lot, plate,
//! expiry) and an HMAC-SHA256 over `pf1.<claims>` with a key derived from the token secret for
//! this purpose only, so a pass can never pass for an access token or the other way round. It
//! carries 256 bits of MAC: not guessable, not forgeable, not editable. The gate still checks the
//! reservation in the store (a cancelled reservation's pass opens nothing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warehouse_schema::{LotId, MonthlyPassId, ReservationId, UserId};

/// What a pass says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    #[serde(rename = "r")]
    pub reservation_id: ReservationId,
    #[serde(rename = "u")]
    pub user_id: UserId,
    #[serde(rename = "l")]
    pub lot_id: LotId,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Epoch seconds after which the pass is void (the end of the reservation).
    #[serde(rename = "exp")]
    pub expires_at: i64,
}

/// Why a presented pass was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    #[error("this is not a valid parkflow pass")]
    Invalid,
    #[error("this pass has expired")]
    Expired,
}

impl PassClaims {
    /// A pass is good until its expiry (the end of its entry window), not at or after it.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now.timestamp()
    }
}

/// What a monthly pass's code says: the pass and its lot, void after the current period. The
/// gate still reads the pass (a cancelled or lapsed pass opens nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyPassClaims {
    #[serde(rename = "m")]
    pub pass_id: MonthlyPassId,
    #[serde(rename = "l")]
    pub lot_id: LotId,
    #[serde(rename = "exp")]
    pub expires_at: i64,
}

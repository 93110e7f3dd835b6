//! Gate passes: what a driver's app shows as a QR code or hands over by NFC to open the gate for
//! a reservation.
//!
//! A pass is `pf1.<claims>.<signature>`: base64url JSON claims (reservation, user, lot, plate,
//! expiry) and an HMAC-SHA256 over `pf1.<claims>` with a key derived from the token secret for
//! this purpose only, so a pass can never pass for an access token or the other way round. It
//! carries 256 bits of MAC: not guessable, not forgeable, not editable. The gate still checks the
//! reservation in the store (a cancelled reservation's pass opens nothing).

use crate::auth::TokenSigner;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warehouse_schema::{LotId, ReservationId, UserId};

const PREFIX: &str = "pf1";

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

/// Issues and checks passes with its own key.
#[derive(Debug, Clone)]
pub struct PassSigner {
    signer: TokenSigner,
}

impl PassSigner {
    /// A signer whose key is derived from `secret` for gate passes only.
    pub fn new(secret: &str) -> Self {
        let derived = TokenSigner::new(secret).signature(b"parkflow gate pass key v1");
        Self {
            signer: TokenSigner::new(&derived),
        }
    }

    pub fn issue(&self, claims: &PassClaims) -> String {
        let body = format!(
            "{PREFIX}.{}",
            B64.encode(serde_json::to_vec(claims).expect("pass claims serialize"))
        );
        let sig = self.signer.signature(body.as_bytes());
        format!("{body}.{sig}")
    }

    /// The claims of an authentic pass that has not expired at `now`.
    pub fn verify(&self, pass: &str, now: DateTime<Utc>) -> Result<PassClaims, PassError> {
        let pass = pass.trim();
        let (body, sig) = pass.rsplit_once('.').ok_or(PassError::Invalid)?;
        let (prefix, claims) = body.split_once('.').ok_or(PassError::Invalid)?;
        if prefix != PREFIX || !self.signer.verify_signature(body.as_bytes(), sig) {
            return Err(PassError::Invalid);
        }
        let claims: PassClaims = B64
            .decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .ok_or(PassError::Invalid)?;
        if claims.expires_at <= now.timestamp() {
            return Err(PassError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> PassClaims {
        PassClaims {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            lot_id: LotId(7),
            plate: Some("B-PF-1".into()),
            expires_at: 2_000_000_000,
        }
    }

    #[test]
    fn a_pass_round_trips_and_expires() {
        let s = PassSigner::new("secret");
        let c = claims();
        let pass = s.issue(&c);
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        assert_eq!(s.verify(&pass, now), Ok(c));
        let later = DateTime::from_timestamp(2_000_000_000, 0).unwrap();
        assert_eq!(s.verify(&pass, later), Err(PassError::Expired));
    }

    #[test]
    fn forged_edited_or_foreign_passes_are_invalid() {
        let s = PassSigner::new("secret");
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let pass = s.issue(&claims());
        // Another key.
        assert_eq!(
            PassSigner::new("other").verify(&pass, now),
            Err(PassError::Invalid)
        );
        // Edited claims under the old signature.
        let mut other = claims();
        other.lot_id = LotId(8);
        let forged_body = s.issue(&other);
        let (body, _) = forged_body.rsplit_once('.').unwrap();
        let (_, sig) = pass.rsplit_once('.').unwrap();
        assert_eq!(
            s.verify(&format!("{body}.{sig}"), now),
            Err(PassError::Invalid)
        );
        // Garbage and an access token signed with the same secret.
        for junk in ["", "pf1", "pf1..", "x.y.z", "pf1.e30.AAAA"] {
            assert_eq!(s.verify(junk, now), Err(PassError::Invalid), "{junk}");
        }
        let jwt = TokenSigner::new("secret").sign(&crate::auth::Claims {
            sub: "u".into(),
            role: "driver".into(),
            iat: 0,
            exp: 2_000_000_000,
        });
        assert_eq!(s.verify(&jwt, now), Err(PassError::Invalid));
    }
}

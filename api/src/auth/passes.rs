//! Signing and checking gate passes ([`PassClaims`] are the domain's): `pf1.<claims>.<sig>`
//! under a key derived from the token secret for passes only.

use super::TokenSigner;
use crate::domain::passes::{MonthlyPassClaims, PassClaims, PassError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};

const PREFIX: &str = "pf1";
const MONTHLY_PREFIX: &str = "pm1";

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
        self.sign(PREFIX, claims)
    }

    /// The code of a monthly pass: the same key, its own prefix, so neither kind passes for the
    /// other.
    pub fn issue_monthly(&self, claims: &MonthlyPassClaims) -> String {
        self.sign(MONTHLY_PREFIX, claims)
    }

    fn sign(&self, prefix: &str, claims: &impl serde::Serialize) -> String {
        let body = format!(
            "{prefix}.{}",
            B64.encode(serde_json::to_vec(claims).expect("pass claims serialize"))
        );
        let sig = self.signer.signature(body.as_bytes());
        format!("{body}.{sig}")
    }

    /// The claims of an authentic pass that has not expired at `now`.
    pub fn verify(&self, pass: &str, now: DateTime<Utc>) -> Result<PassClaims, PassError> {
        let claims: PassClaims = self.open(PREFIX, pass)?;
        if claims.expired_at(now) {
            return Err(PassError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a monthly pass's code; none when `pass` is not one (a reservation's pass).
    pub fn verify_monthly(
        &self,
        pass: &str,
        now: DateTime<Utc>,
    ) -> Option<Result<MonthlyPassClaims, PassError>> {
        if !self.is_monthly(pass) {
            return None;
        }
        Some(
            self.open::<MonthlyPassClaims>(MONTHLY_PREFIX, pass)
                .and_then(|c| {
                    if c.expires_at <= now.timestamp() {
                        Err(PassError::Expired)
                    } else {
                        Ok(c)
                    }
                }),
        )
    }

    /// Whether `pass` is of the monthly kind (by its prefix; not whether it is authentic).
    pub fn is_monthly(&self, pass: &str) -> bool {
        pass.trim()
            .strip_prefix(MONTHLY_PREFIX)
            .is_some_and(|rest| rest.starts_with('.'))
    }

    fn open<C: serde::de::DeserializeOwned>(&self, want: &str, pass: &str) -> Result<C, PassError> {
        let pass = pass.trim();
        let (body, sig) = pass.rsplit_once('.').ok_or(PassError::Invalid)?;
        let (prefix, claims) = body.split_once('.').ok_or(PassError::Invalid)?;
        if prefix != want || !self.signer.verify_signature(body.as_bytes(), sig) {
            return Err(PassError::Invalid);
        }
        B64.decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .ok_or(PassError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warehouse_schema::{LotId, ReservationId, UserId};

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

//! Authentication: argon2id password hashes, short-lived HS256 access tokens (JWT), opaque
//! refresh tokens stored only as hashes, and a limiter for failed logins per account and per IP.

use crate::error::{Error, Result};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

type HmacSha256 = hmac::Hmac<Sha256>;

/// What an access token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// `driver` or `admin`.
    pub role: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and verifies HS256 tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// HMAC-SHA256 of `data`, base64url: also signs gate passes.
    pub fn signature(&self, data: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(data);
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is the signature of `data` (constant time).
    pub fn verify_signature(&self, data: &[u8], signature: &str) -> bool {
        let Ok(sig) = B64.decode(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(data);
        mac.verify_slice(&sig).is_ok()
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = format!(
            "{}.{}",
            B64.encode(HEADER),
            B64.encode(serde_json::to_vec(claims).expect("claims serialize"))
        );
        let sig = self.signature(body.as_bytes());
        format!("{body}.{sig}")
    }

    /// The claims of a valid, unexpired token; anything else is `Unauthorized`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Unauthorized);
        };
        // Only our exact header is accepted: no algorithm confusion ("none", RS256, …).
        if B64.decode(header).ok().as_deref() != Some(HEADER.as_bytes()) {
            return Err(Error::Unauthorized);
        }
        if !self.verify_signature(format!("{header}.{payload}").as_bytes(), sig) {
            return Err(Error::Unauthorized);
        }
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(Error::Unauthorized)?;
        if claims.exp <= now.timestamp() {
            return Err(Error::Unauthorized);
        }
        Ok(claims)
    }
}

pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("password cannot be hashed: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = B64.encode(bytes);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

pub fn refresh_token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// Failed logins allowed per window before further attempts are refused.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_account: usize,
    pub per_ip: usize,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_ip: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Counts recent failed logins per account and per client address.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            failures: Mutex::default(),
        }
    }

    fn keys(account: &str, ip: &str) -> [(String, usize); 2] {
        [(format!("account:{account}"), 0), (format!("ip:{ip}"), 1)]
    }

    /// Refuse (with the seconds to wait) when either key has used up its failures.
    pub fn check(&self, account: &str, ip: &str, now: DateTime<Utc>) -> Result<()> {
        let window = chrono::Duration::from_std(self.limits.window).expect("window fits");
        let mut failures = self.failures.lock().expect("limiter lock");
        for (key, which) in Self::keys(account, ip) {
            let limit = if which == 0 {
                self.limits.per_account
            } else {
                self.limits.per_ip
            };
            if let Some(q) = failures.get_mut(&key) {
                while q.front().is_some_and(|t| *t <= now - window) {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let retry = (*q.front().expect("non-empty") + window - now)
                        .num_seconds()
                        .max(1);
                    return Err(Error::TooManyRequests {
                        retry_after_s: retry as u64,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, account: &str, ip: &str, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().expect("limiter lock");
        for (key, _) in Self::keys(account, ip) {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        self.failures
            .lock()
            .expect("limiter lock")
            .remove(&format!("account:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            role: "driver".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn tokens_verify_and_expire() {
        let s = TokenSigner::new("secret");
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let token = s.sign(&claims(1_060));
        assert_eq!(s.verify(&token, now).unwrap(), claims(1_060));
        assert!(
            s.verify(&token, DateTime::from_timestamp(1_060, 0).unwrap())
                .is_err(),
            "expired"
        );
        assert!(
            TokenSigner::new("other").verify(&token, now).is_err(),
            "wrong key"
        );
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 3.., "AAA");
        assert!(s.verify(&forged, now).is_err());
        // A token claiming another algorithm is refused even if well formed.
        let none_header = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert!(s.verify(&none_header, now).is_err());
        assert!(s.verify("garbage", now).is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
    }

    #[test]
    fn limiter_refuses_after_repeated_failures_and_forgets_with_time() {
        let l = LoginLimiter::new(LoginLimits {
            per_account: 3,
            per_ip: 5,
            window: Duration::from_secs(60),
        });
        let t0 = DateTime::from_timestamp(0, 0).unwrap();
        for _ in 0..3 {
            l.check("a@x", "1.1.1.1", t0).unwrap();
            l.record_failure("a@x", "1.1.1.1", t0);
        }
        assert!(matches!(
            l.check("a@x", "1.1.1.1", t0),
            Err(Error::TooManyRequests { retry_after_s: 60 })
        ));
        // Another account from the same address still has room, until the address is used up.
        l.check("b@x", "1.1.1.1", t0).unwrap();
        l.record_failure("b@x", "1.1.1.1", t0);
        l.record_failure("b@x", "1.1.1.1", t0);
        assert!(l.check("c@x", "1.1.1.1", t0).is_err(), "per-IP limit");
        assert!(
            l.check("a@x", "2.2.2.2", t0).is_err(),
            "per-account limit from anywhere"
        );
        let later = t0 + chrono::Duration::seconds(61);
        l.check("a@x", "1.1.1.1", later).unwrap();
    }
}

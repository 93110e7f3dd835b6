//! Authentication: argon2id password hashes, short-lived HS256 access tokens (JWT), opaque
//! refresh tokens stored only as hashes, and a limiter that throttles failed logins per account
//! and client address with a growing delay.

use crate::domain::error::{Error, Result};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

mod passes;

pub use passes::PassSigner;

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

/// How failed logins are throttled (OWASP Authentication Cheat Sheet: throttle, don't lock
/// out). Every failure is counted for the (account, client address) pair; past
/// `free_attempts` each further try from that pair must wait a delay that doubles with every
/// failure, up to `max_delay`. Two wider counts stop an attack spread out the other way, and
/// neither applies to a client the account has logged in from before, so its owner keeps
/// getting in: failures on one account from addresses it was never used from
/// (`per_account_unknown`), and failures from one address across accounts (`per_ip`, high, so
/// one NAT or proxy does not shut out everyone behind it). Counts are forgotten `window` after
/// their last failure.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub free_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub per_account_unknown: u32,
    pub per_ip: u32,
    pub window: Duration,
    /// How long a client address stays known to an account after a successful login.
    pub known_for: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15 * 60),
            per_account_unknown: 20,
            per_ip: 100,
            window: Duration::from_secs(15 * 60),
            known_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct LimiterState {
    failures: HashMap<String, Failures>,
    /// (account, address) pairs that logged in, with the time of their last success.
    known: HashMap<String, DateTime<Utc>>,
}

/// Throttles failed logins as [`LoginLimits`] says, in memory (per API process).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    limits: LoginLimits,
    state: Mutex<LimiterState>,
}

/// Entries a limiter keeps before it drops the forgotten ones.
const LIMITER_PRUNE_AT: usize = 100_000;

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            state: Mutex::default(),
        }
    }

    fn pair(account: &str, ip: &str) -> String {
        format!("pair:{account}\n{ip}")
    }

    fn chrono(d: Duration) -> chrono::Duration {
        chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    }

    fn is_known(&self, state: &LimiterState, account: &str, ip: &str, now: DateTime<Utc>) -> bool {
        state
            .known
            .get(&Self::pair(account, ip))
            .is_some_and(|t| *t + Self::chrono(self.limits.known_for) > now)
    }

    /// The keys a failure of `account` from `ip` counts against, each with its free attempts.
    fn keys(&self, account: &str, ip: &str, known: bool) -> Vec<(String, u32)> {
        let mut keys = vec![(Self::pair(account, ip), self.limits.free_attempts)];
        if !known {
            keys.push((
                format!("account:{account}"),
                self.limits.per_account_unknown,
            ));
            keys.push((format!("ip:{ip}"), self.limits.per_ip));
        }
        keys
    }

    /// The wait after `count` failures where `free` come without one: none below `free`, then
    /// `first_delay`, doubling with each further failure up to `max_delay`.
    fn delay(&self, count: u32, free: u32) -> Option<chrono::Duration> {
        let over = count.checked_sub(free)?;
        let factor = 2u32.checked_pow(over.min(31)).unwrap_or(u32::MAX);
        let delay = self
            .limits
            .first_delay
            .checked_mul(factor)
            .unwrap_or(self.limits.max_delay)
            .min(self.limits.max_delay);
        Some(Self::chrono(delay))
    }

    /// Refuse (with the seconds to wait) while a count of this attempt is in its delay.
    pub fn check(&self, account: &str, ip: &str, now: DateTime<Utc>) -> Result<()> {
        let window = Self::chrono(self.limits.window);
        let state = self.state.lock().expect("limiter lock");
        let known = self.is_known(&state, account, ip, now);
        let mut wait = chrono::Duration::zero();
        for (key, free) in self.keys(account, ip, known) {
            let Some(f) = state.failures.get(&key) else {
                continue;
            };
            if f.last + window <= now {
                continue;
            }
            if let Some(delay) = self.delay(f.count, free) {
                wait = wait.max(f.last + delay - now);
            }
        }
        if wait > chrono::Duration::zero() {
            let seconds = (wait.num_milliseconds() + 999) / 1000;
            return Err(Error::TooManyRequests {
                retry_after_s: seconds.max(1) as u64,
            });
        }
        Ok(())
    }

    pub fn record_failure(&self, account: &str, ip: &str, now: DateTime<Utc>) {
        let window = Self::chrono(self.limits.window);
        let mut state = self.state.lock().expect("limiter lock");
        let known = self.is_known(&state, account, ip, now);
        for (key, _) in self.keys(account, ip, known) {
            let f = state.failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if f.last + window <= now {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
        if state.failures.len() > LIMITER_PRUNE_AT {
            state.failures.retain(|_, f| f.last + window > now);
        }
    }

    /// A successful login clears its pair's failures and makes the address known to the
    /// account.
    pub fn record_success(&self, account: &str, ip: &str, now: DateTime<Utc>) {
        let known_for = Self::chrono(self.limits.known_for);
        let mut state = self.state.lock().expect("limiter lock");
        state.failures.remove(&Self::pair(account, ip));
        state.known.insert(Self::pair(account, ip), now);
        if state.known.len() > LIMITER_PRUNE_AT {
            state.known.retain(|_, t| *t + known_for > now);
        }
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
    fn the_limiter_throttles_the_guessing_client_not_the_owner() {
        let l = LoginLimiter::new(LoginLimits {
            free_attempts: 3,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            per_account_unknown: 6,
            per_ip: 10,
            window: Duration::from_secs(600),
            known_for: Duration::from_secs(3600),
        });
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let s = chrono::Duration::seconds;
        // The owner has logged in from 1.1.1.1 before.
        l.record_success("a@x", "1.1.1.1", t0);
        for _ in 0..3 {
            l.check("a@x", "6.6.6.6", t0).unwrap();
            l.record_failure("a@x", "6.6.6.6", t0);
        }
        // Past three failures the pair waits 2 s, after the next 4 s, then 8 s: growing, capped.
        assert!(matches!(
            l.check("a@x", "6.6.6.6", t0),
            Err(Error::TooManyRequests { retry_after_s: 2 })
        ));
        l.check("a@x", "6.6.6.6", t0 + s(2)).unwrap();
        l.record_failure("a@x", "6.6.6.6", t0 + s(2));
        assert!(matches!(
            l.check("a@x", "6.6.6.6", t0 + s(2)),
            Err(Error::TooManyRequests { retry_after_s: 4 })
        ));
        // The owner's own client is not slowed by the attacker.
        l.check("a@x", "1.1.1.1", t0 + s(2)).unwrap();
        // Guesses spread over many addresses: past six, unknown addresses wait, the owner's
        // known one does not.
        for i in 0..6 {
            l.record_failure("a@x", &format!("10.0.0.{i}"), t0 + s(3));
        }
        assert!(l.check("a@x", "10.0.0.99", t0 + s(3)).is_err());
        l.check("a@x", "1.1.1.1", t0 + s(3)).unwrap();
        // One address (a NAT) with failures on several accounts keeps working well past the
        // old 20, for the accounts that logged in from it before too.
        for i in 0..9 {
            l.record_failure(&format!("u{i}@x"), "2.2.2.2", t0);
        }
        l.check("new@x", "2.2.2.2", t0).unwrap();
        l.record_failure("u9@x", "2.2.2.2", t0);
        assert!(l.check("new@x", "2.2.2.2", t0).is_err(), "per-IP count");
        l.record_success("b@x", "2.2.2.2", t0 - s(10));
        l.check("b@x", "2.2.2.2", t0).unwrap();
        // Counts are forgotten a window after their last failure.
        l.check("new@x", "2.2.2.2", t0 + s(601)).unwrap();
    }
}

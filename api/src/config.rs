//! Configuration of the operational API.

use crate::domain::refund::RefundPolicy;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret that never prints itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so a token cannot be guessed byte by byte from response times.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `sqlite://path/to/parkflow.db`; empty means `parkflow.db` in the data directory.
    pub database_url: String,
    /// PostgreSQL: connections in the store's pool for changes, and as many readers, 1 to 1,000
    /// (default `store::POSTGRES_CONNECTIONS`, 5); the booking writer has one more of its own.
    /// SQLite has its one writer and its readers.
    pub database_connections: u32,
    /// Address `parkflow serve` listens on.
    pub listen: String,
    /// Bearer token of lot administrators.
    pub admin_token: Secret,
    /// Bearer token of gate scanners (entries and exits).
    pub gate_token: Secret,
    /// Bearer token of the pricing service (rate publishing).
    pub pricing_token: Secret,
    /// HMAC key of drivers' access tokens and gate passes.
    pub token_secret: Secret,
    /// Lifetime of an access token, seconds.
    pub access_token_ttl_s: i64,
    /// Lifetime of a refresh token, seconds.
    pub refresh_token_ttl_s: i64,
    /// How stays are charged: grace period, free minutes, billing increment, daily cap.
    pub tariff: crate::domain::tariff::TariffRules,
    /// Minimum prepaid balance for entry, the refund policy and the gateway's webhook secret.
    pub payments: PaymentsConfig,
    /// Reverse proxies whose `X-Forwarded-For` names the client (per-client login limits);
    /// a header from any other peer is ignored, so a client cannot pick its own address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The live streams of lots' free spots and rates (`/v1/lots/{id}/live`).
    #[serde(default)]
    pub live: LiveConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            database_connections: crate::store::POSTGRES_CONNECTIONS,
            listen: "127.0.0.1:8080".into(),
            admin_token: Secret("dev-admin-token".into()),
            gate_token: Secret("dev-gate-token".into()),
            pricing_token: Secret("dev-pricing-token".into()),
            token_secret: Secret("dev-token-secret-change-me".into()),
            access_token_ttl_s: 15 * 60,
            refresh_token_ttl_s: 30 * 24 * 3600,
            tariff: crate::domain::tariff::TariffRules::default(),
            payments: PaymentsConfig::default(),
            trusted_proxies: Vec::new(),
            live: LiveConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// A driver with a prepaid account needs at least this balance to enter without a
    /// reservation.
    pub min_balance_cents: i64,
    /// Refunds on cancellation, by notice (`domain::refund`).
    pub refund_policy: RefundPolicy,
    /// Shared secret of the gateway's webhook signatures (HMAC-SHA256, base64url).
    pub webhook_secret: Secret,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            min_balance_cents: 0,
            refund_policy: RefundPolicy::default(),
            webhook_secret: Secret("dev-webhook-secret".into()),
        }
    }
}

/// Limits and timing of the live streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Seconds between heartbeats (an SSE comment) on an idle stream, so proxies and clients
    /// can tell a quiet lot from a dead connection.
    pub heartbeat_s: u64,
    /// Milliseconds between reads of the outbox for other processes' changes (this process's
    /// own changes are pushed as they commit).
    pub poll_ms: u64,
    /// Lots watched at most by all the streams one process keeps open (a stream of three
    /// lots counts three); a stream that would exceed it is refused with 429.
    pub max_watches: usize,
    /// Lots one stream may watch at most.
    pub max_lots_per_stream: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            heartbeat_s: 15,
            poll_ms: 250,
            max_watches: 100_000,
            max_lots_per_stream: 1_000,
        }
    }
}

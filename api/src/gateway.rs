//! The payment gateway: the `PaymentGateway` trait parkflow charges and refunds through, and
//! its deterministic sandbox (`tok_ok`, `tok_decline`, `tok_retry`, `tok_reverse`, `wal_…`).

use crate::domain::error::Result;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// One charge at the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub token: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutcome {
    Captured { reference: String },
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth retrying with the same idempotency key (timeout, 5xx).
    #[error("gateway unavailable: {0}")]
    Retryable(String),
    #[error("gateway error: {0}")]
    Fatal(String),
}

pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A payment service provider.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> GatewayFuture<'a, GatewayOutcome>;
    /// Refund part or all of a captured charge; returns the refund's reference.
    fn refund<'a>(
        &'a self,
        reference: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> GatewayFuture<'a, String>;
}

/// A gateway that behaves like real ones, with deterministic test tokens:
/// `tok_ok`/`wal_ok` are captured, `tok_decline`/`wal_decline` declined, `tok_retry` times out
/// on the first attempt of each idempotency key and is captured on the next, `tok_reverse` is
/// captured (and reversed later by a webhook the test sends). Idempotent on the key, like real
/// gateways: a repeated key returns the first outcome.
#[derive(Debug, Default)]
pub struct SandboxGateway {
    state: Mutex<SandboxState>,
}

#[derive(Debug, Default)]
pub(super) struct SandboxState {
    outcomes: HashMap<String, GatewayOutcome>,
    attempts: HashMap<String, u32>,
    refunds: HashMap<String, String>,
    captured: u64,
}

impl SandboxGateway {
    /// Charges captured so far (each idempotency key at most once).
    pub fn captured(&self) -> u64 {
        self.state.lock().expect("sandbox lock").captured
    }
}

impl PaymentGateway for SandboxGateway {
    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> GatewayFuture<'a, GatewayOutcome> {
        Box::pin(async move {
            let mut s = self.state.lock().expect("sandbox lock");
            if let Some(o) = s.outcomes.get(&req.idempotency_key) {
                return Ok(o.clone());
            }
            let attempt = {
                let a = s.attempts.entry(req.idempotency_key.clone()).or_default();
                *a += 1;
                *a
            };
            let captured = || GatewayOutcome::Captured {
                reference: format!("ch_{}", uuid::Uuid::now_v7().simple()),
            };
            let outcome = match req.token.as_str() {
                "tok_ok" | "wal_ok" | "tok_reverse" => captured(),
                "tok_retry" if attempt == 1 => {
                    return Err(GatewayError::Retryable("timeout".into()));
                }
                "tok_retry" => captured(),
                "tok_decline" => GatewayOutcome::Declined {
                    reason: "card_declined".into(),
                },
                "wal_decline" => GatewayOutcome::Declined {
                    reason: "insufficient_funds".into(),
                },
                _ => GatewayOutcome::Declined {
                    reason: "unknown_token".into(),
                },
            };
            if matches!(outcome, GatewayOutcome::Captured { .. }) {
                s.captured += 1;
            }
            s.outcomes
                .insert(req.idempotency_key.clone(), outcome.clone());
            Ok(outcome)
        })
    }

    fn refund<'a>(
        &'a self,
        reference: &'a str,
        _amount_cents: i64,
        idempotency_key: &'a str,
    ) -> GatewayFuture<'a, String> {
        Box::pin(async move {
            let mut s = self.state.lock().expect("sandbox lock");
            let r = s
                .refunds
                .entry(idempotency_key.to_owned())
                .or_insert_with(|| format!("re_{reference}"));
            Ok(r.clone())
        })
    }
}

//! The payment gateway: the `PaymentGateway` trait parkflow charges and refunds through, and
//! its deterministic sandbox (`tok_ok`, `tok_decline`, `tok_retry`, `tok_reverse`, `wal_…`).

use crate::auth::TokenSigner;
use crate::config::{PaymentsConfig, Secret};
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

    /// The sandbox behind this gateway, for simulations that play the bank (reversals).
    fn sandbox(&self) -> Option<&SandboxGateway> {
        None
    }
}

/// A webhook the gateway posts: the body, and the `X-Gateway-Signature` header it signs it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayWebhook {
    pub body: String,
    pub signature: String,
}

/// A gateway that behaves like real ones, with deterministic test tokens:
/// `tok_ok`/`wal_ok` are captured, `tok_decline`/`wal_decline` declined, `tok_retry` times out
/// on the first attempt of each idempotency key and is captured on the next, `tok_reverse` is
/// captured (and reversed later by a webhook the test sends). Idempotent on the key, like real
/// gateways: a repeated key returns the first outcome. Its webhooks are signed with
/// `payments.webhook_secret`, as the API verifies them.
#[derive(Debug)]
pub struct SandboxGateway {
    state: Mutex<SandboxState>,
    webhook_secret: Secret,
}

impl Default for SandboxGateway {
    fn default() -> Self {
        Self::new(&PaymentsConfig::default().webhook_secret)
    }
}

#[derive(Debug, Default)]
pub(super) struct SandboxState {
    outcomes: HashMap<String, GatewayOutcome>,
    attempts: HashMap<String, u32>,
    refunds: HashMap<String, String>,
    captured: u64,
    /// `tok_reverse` charges whose reversal was not taken yet, oldest first.
    to_reverse: Vec<String>,
}

impl SandboxGateway {
    /// A sandbox signing its webhooks with `webhook_secret`.
    pub fn new(webhook_secret: &Secret) -> Self {
        Self {
            state: Mutex::default(),
            webhook_secret: webhook_secret.clone(),
        }
    }

    /// The references of the `tok_reverse` charges captured since the last call, oldest first:
    /// the charges a bank will claw back.
    pub fn take_reversals(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().expect("sandbox lock").to_reverse)
    }

    /// The signed `payment.reversed` webhook the gateway posts for charge `reference`; its
    /// event id is derived from the reference, so a redelivery is the same event.
    pub fn reversal_webhook(&self, reference: &str) -> GatewayWebhook {
        let body = serde_json::json!({
            "eventId": format!("evt_reversed_{reference}"),
            "type": "payment.reversed",
            "reference": reference,
        })
        .to_string();
        let signature = TokenSigner::new(self.webhook_secret.expose()).signature(body.as_bytes());
        GatewayWebhook { body, signature }
    }

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
            if let GatewayOutcome::Captured { reference } = &outcome {
                s.captured += 1;
                if req.token == "tok_reverse" {
                    s.to_reverse.push(reference.clone());
                }
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

    fn sandbox(&self) -> Option<&SandboxGateway> {
        Some(self)
    }
}

//! Payments: reservations paid by card token, wallet token or prepaid balance; balance top-ups;
//! refunds on cancellation; gateway webhooks.
//!
//! - Only gateway tokens and the last four digits reach storage. A request carrying anything else
//!   (a card number, a CVV) is refused by the strict JSON shape before it is read, and error
//!   messages never echo the values.
//! - Every request carries an idempotency key: the same key returns the first result and never
//!   charges twice. The key is passed on to the gateway, which is idempotent on it too, so a
//!   retry after a timeout (or after a crash between the call and the write) cannot charge twice.
//! - A declined, failed or (later, by webhook) reversed payment cancels the reservation, frees
//!   its spot and tells the driver. Webhook events are handled once per event id.

mod balance;
mod pay;
mod refunds;

pub use refunds::RefundPreview;

use crate::domain::error::{Error, Result};
pub use crate::gateway::{
    ChargeRequest, GatewayError, GatewayFuture, GatewayOutcome, GatewayWebhook, PaymentGateway,
    SandboxGateway,
};
use crate::store::payments::PaymentRow;
use serde::{Deserialize, Serialize};
use warehouse_schema::{PaymentId, UserId};

/// How the driver pays. Tokens come from the gateway's client-side SDK; parkflow never sees the
/// card itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "method", rename_all = "camelCase", deny_unknown_fields)]
pub enum PaymentMethod {
    Card {
        #[schema(schema_with = crate::domain::schema::card_token)]
        token: String,
        #[schema(schema_with = crate::domain::schema::last4)]
        last4: String,
    },
    Wallet {
        #[schema(schema_with = crate::domain::schema::wallet_token)]
        token: String,
    },
    Balance,
}

impl PaymentMethod {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Card { .. } => "card",
            Self::Wallet { .. } => "wallet",
            Self::Balance => "balance",
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let token_ok = |t: &str, prefix: &str| {
            t.starts_with(prefix)
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match self {
            Self::Card { token, last4 } => {
                if !token_ok(token, "tok_") {
                    return Err(Error::Invalid(
                        "a card is paid with a gateway token (tok_…), never with card details"
                            .into(),
                    ));
                }
                if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Invalid("last4 is the last four digits".into()));
                }
            }
            Self::Wallet { token } if !token_ok(token, "wal_") => {
                return Err(Error::Invalid(
                    "a wallet is paid with a wallet token (wal_…)".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn token(&self) -> Option<&str> {
        match self {
            Self::Card { token, .. } | Self::Wallet { token } => Some(token),
            Self::Balance => None,
        }
    }

    pub(crate) fn last4(&self) -> Option<&str> {
        match self {
            Self::Card { last4, .. } => Some(last4),
            _ => None,
        }
    }

    /// The method as a record kept it (a monthly pass pays its renewals the way it was bought).
    pub(crate) fn from_stored(
        method: &str,
        token: Option<&str>,
        last4: Option<&str>,
    ) -> Option<Self> {
        Some(match method {
            "card" => Self::Card {
                token: token?.to_owned(),
                last4: last4?.to_owned(),
            },
            "wallet" => Self::Wallet {
                token: token?.to_owned(),
            },
            "balance" => Self::Balance,
            _ => return None,
        })
    }
}

pub use crate::config::PaymentsConfig;
pub use crate::domain::refund::{RefundPolicy, RefundTier};

/// A stored payment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub struct PaymentRecord {
    pub id: String,
    pub purpose: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub status: PaymentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub refunded_cents: i64,
}

/// The payment as the API shows it.
pub use crate::domain::PaymentStatus;

fn record(row: &PaymentRow) -> Result<PaymentRecord> {
    Ok(PaymentRecord {
        id: row.id.clone(),
        purpose: row.purpose.clone(),
        reservation_id: row.reservation_id.clone(),
        method: row.method.clone(),
        last4: row.last4.clone(),
        amount_cents: row.amount_cents,
        currency: row.currency.clone(),
        status: row
            .status
            .parse()
            .map_err(|e| Error::Invalid(format!("stored payment: {e}")))?,
        reason: row.reason.clone(),
        refunded_cents: row.refunded_cents,
    })
}

/// The user a stored payment belongs to.
fn owner(row: &PaymentRow) -> Result<UserId> {
    row.user_id
        .parse()
        .map(UserId)
        .map_err(|_| Error::Invalid(format!("stored payment {}: user id", row.id)))
}

/// A gateway webhook event (the body the gateway posts, signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = GatewayEvent)]
pub struct WebhookEvent {
    #[schema(schema_with = crate::domain::schema::non_empty)]
    pub event_id: String,
    /// `payment.reversed` (a chargeback or a late failure).
    #[serde(rename = "type")]
    #[schema(schema_with = crate::domain::schema::webhook_kind)]
    pub kind: String,
    /// The gateway's reference of the charge.
    #[schema(schema_with = crate::domain::schema::non_empty)]
    pub reference: String,
}

/// What happens to a payment that did not go through.
const RETRIES: u32 = 3;

fn payment_id(id: &str) -> Result<PaymentId> {
    Ok(PaymentId(id.parse().map_err(|_| {
        Error::Invalid(format!("stored payment id {id}"))
    })?))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 {
        return Err(Error::Invalid(
            "an Idempotency-Key of 1 to 200 characters is required".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_details_are_refused_and_never_echoed() {
        let pan = "4242424242424242";
        let body = format!(r#"{{"method":"card","cardNumber":"{pan}","cvv":"123"}}"#);
        let e = serde_json::from_str::<PaymentMethod>(&body)
            .unwrap_err()
            .to_string();
        assert!(!e.contains(pan) && !e.contains("123\""), "{e}");
        let as_token = PaymentMethod::Card {
            token: pan.into(),
            last4: "4242".into(),
        };
        let e = as_token.validate().unwrap_err().to_string();
        assert!(!e.contains(pan), "{e}");
        assert!(
            PaymentMethod::Card {
                token: "tok_ok".into(),
                last4: "42x2".into()
            }
            .validate()
            .is_err()
        );
    }

    #[tokio::test]
    async fn the_sandbox_is_idempotent_and_retries_once() {
        let g = SandboxGateway::default();
        let req = |key: &str, token: &str| ChargeRequest {
            idempotency_key: key.into(),
            token: token.into(),
            amount_cents: 500,
            currency: "EUR".into(),
        };
        let a = g.charge(&req("k1", "tok_ok")).await.unwrap();
        assert_eq!(g.charge(&req("k1", "tok_ok")).await.unwrap(), a);
        assert_eq!(g.captured(), 1);
        assert!(matches!(
            g.charge(&req("k2", "tok_retry")).await,
            Err(GatewayError::Retryable(_))
        ));
        assert!(matches!(
            g.charge(&req("k2", "tok_retry")).await,
            Ok(GatewayOutcome::Captured { .. })
        ));
        assert!(matches!(
            g.charge(&req("k3", "tok_decline")).await,
            Ok(GatewayOutcome::Declined { .. })
        ));
        assert_eq!(g.captured(), 2);
    }
}

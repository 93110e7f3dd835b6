//! The notification service: delivers the notification outbox to each driver's channels.
//!
//! - in-app: the inbox (`GET /v1/notifications`) — delivered as soon as the message exists;
//! - e-mail over SMTP (lettre), to the account's address;
//! - push: a signed webhook to the push provider (`X-Parkflow-Signature`: HMAC-SHA256 of the
//!   body, base64url).
//!
//! Per-user preferences switch e-mail and push on or off (in-app is always on). Each (message,
//! channel) is one delivery row — so a message is never sent twice on a channel — attempted
//! until it succeeds, with exponential backoff, at most `max_attempts` times. A message is
//! marked sent once every delivery is final.

use crate::auth::TokenSigner;
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use warehouse_schema::UserId;

/// Where and how messages go out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `host:port` of the SMTP relay (plain SMTP, e.g. the local MTA); e-mail is off when empty.
    pub smtp: String,
    pub from: String,
    /// The push provider's webhook (http://); push is off when empty.
    pub push_url: String,
    pub push_secret: Secret,
    pub max_attempts: u32,
    pub first_backoff_s: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            smtp: String::new(),
            from: "parkflow <noreply@parkflow.local>".into(),
            push_url: String::new(),
            push_secret: Secret("dev-push-secret".into()),
            max_attempts: 5,
            first_backoff_s: 30,
        }
    }
}

/// A driver's channel choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    pub email: bool,
    pub push: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email: true,
            push: true,
        }
    }
}

pub async fn preferences(store: &Store, user: UserId) -> Result<Preferences> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT email, push FROM notification_preferences WHERE user_id = $1")
            .bind(user.0.to_string())
            .fetch_optional(store.pool())
            .await?;
    Ok(
        row.map_or_else(Preferences::default, |(email, push)| Preferences {
            email: email != 0,
            push: push != 0,
        }),
    )
}

pub async fn set_preferences(store: &Store, user: UserId, p: Preferences) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, email, push) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET email = $2, push = $3",
    )
    .bind(user.0.to_string())
    .bind(i64::from(p.email))
    .bind(i64::from(p.push))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

pub struct Deliverer {
    store: Store,
    config: DeliveryConfig,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    http: Client<HttpConnector, Full<bytes::Bytes>>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("smtp", &self.config.smtp)
            .field("push_url", &self.config.push_url)
            .finish()
    }
}

const BATCH: i64 = 200;

impl Deliverer {
    pub fn new(store: Store, config: DeliveryConfig) -> Result<Self> {
        let smtp = if config.smtp.is_empty() {
            None
        } else {
            let (host, port) = config
                .smtp
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| Error::Config(format!("smtp `{}` is not host:port", config.smtp)))?;
            Some(
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(port)
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build(),
            )
        };
        config
            .from
            .parse::<Mailbox>()
            .map_err(|e| Error::Config(format!("from: {e}")))?;
        Ok(Self {
            store,
            config,
            smtp,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Fan new messages out to their channels, attempt what is due, mark finished messages sent.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<DeliveryReport> {
        self.fan_out(now).await?;
        let due: Vec<Due> = sqlx::query_as(
            "SELECT d.notification_id, d.channel, d.attempts, n.user_id, n.title, n.body, n.kind, n.created_at,
                    u.email
             FROM notification_deliveries d
             JOIN notification_outbox n ON n.id = d.notification_id
             LEFT JOIN users u ON u.id = n.user_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1
             ORDER BY d.next_attempt_at, d.notification_id LIMIT $2",
        )
        .bind(now.timestamp_millis())
        .bind(BATCH)
        .fetch_all(self.store.pool())
        .await?;
        let mut report = DeliveryReport::default();
        for d in due {
            let result = match d.1.as_str() {
                "email" => self.send_email(&d).await,
                "push" => self.send_push(&d).await,
                other => Err(format!("unknown channel {other}")),
            };
            let attempts = d.2 + 1;
            match result {
                Ok(()) => {
                    self.finish(d.0, &d.1, "delivered", attempts, None, now)
                        .await?;
                    report.delivered += 1;
                }
                Err(e) if attempts >= i64::from(self.config.max_attempts) => {
                    tracing::warn!(notification = d.0, channel = %d.1, error = %e, "delivery failed for good");
                    self.finish(d.0, &d.1, "failed", attempts, Some(&e), now)
                        .await?;
                    report.failed += 1;
                }
                Err(e) => {
                    let wait = self.config.first_backoff_s.max(1) << (attempts - 1).min(16);
                    sqlx::query(
                        "UPDATE notification_deliveries SET attempts = $1, last_error = $2, next_attempt_at = $3
                         WHERE notification_id = $4 AND channel = $5",
                    )
                    .bind(attempts)
                    .bind(&e)
                    .bind((now + Duration::seconds(wait)).timestamp_millis())
                    .bind(d.0)
                    .bind(&d.1)
                    .execute(self.store.pool())
                    .await?;
                    report.retrying += 1;
                }
            }
        }
        sqlx::query(
            "UPDATE notification_outbox SET sent_at = $1
             WHERE sent_at IS NULL
               AND EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = notification_outbox.id)
               AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                               WHERE d.notification_id = notification_outbox.id AND d.status = 'pending')",
        )
        .bind(now.timestamp_millis())
        .execute(self.store.pool())
        .await?;
        Ok(report)
    }

    /// One delivery row per channel of each message not fanned out yet.
    async fn fan_out(&self, now: DateTime<Utc>) -> Result<()> {
        // Each message with its driver's channel choices (the defaults where none are saved).
        let defaults = Preferences::default();
        let fresh: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT n.id, COALESCE(p.email, $2), COALESCE(p.push, $3) FROM notification_outbox n
             LEFT JOIN notification_preferences p ON p.user_id = n.user_id
             WHERE n.sent_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.id)
             ORDER BY n.id LIMIT $1",
        )
        .bind(BATCH)
        .bind(i64::from(defaults.email))
        .bind(i64::from(defaults.push))
        .fetch_all(self.store.pool())
        .await?;
        for (id, email, push) in fresh {
            let prefs = Preferences {
                email: email != 0,
                push: push != 0,
            };
            let channels = [
                ("in_app", "delivered"),
                (
                    "email",
                    if prefs.email && self.smtp.is_some() {
                        "pending"
                    } else {
                        "skipped"
                    },
                ),
                (
                    "push",
                    if prefs.push && !self.config.push_url.is_empty() {
                        "pending"
                    } else {
                        "skipped"
                    },
                ),
            ];
            for (channel, status) in channels {
                sqlx::query(
                    "INSERT INTO notification_deliveries (notification_id, channel, status, attempts, next_attempt_at, delivered_at)
                     VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (notification_id, channel) DO NOTHING",
                )
                .bind(id)
                .bind(channel)
                .bind(status)
                .bind(now.timestamp_millis())
                .bind((status == "delivered").then_some(now.timestamp_millis()))
                .execute(self.store.pool())
                .await?;
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        id: i64,
        channel: &str,
        status: &str,
        attempts: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notification_deliveries SET status = $1, attempts = $2, last_error = $3, delivered_at = $4
             WHERE notification_id = $5 AND channel = $6",
        )
        .bind(status)
        .bind(attempts)
        .bind(error)
        .bind((status == "delivered").then_some(now.timestamp_millis()))
        .bind(id)
        .bind(channel)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn send_email(&self, d: &Due) -> std::result::Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("e-mail is not configured")?;
        let to = d.8.as_deref().ok_or("the account has no e-mail address")?;
        let message = Message::builder()
            .from(self.config.from.parse().map_err(|e| format!("from: {e}"))?)
            .to(to.parse().map_err(|e| format!("to: {e}"))?)
            .subject(&d.4)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(d.5.clone())
            .map_err(|e| e.to_string())?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn send_push(&self, d: &Due) -> std::result::Result<(), String> {
        let body = serde_json::json!({
            "notificationId": d.0, "userId": d.3, "kind": d.6, "title": d.4, "body": d.5,
            "createdAt": DateTime::from_timestamp_millis(d.7),
        })
        .to_string();
        let signature =
            TokenSigner::new(self.config.push_secret.expose()).signature(body.as_bytes());
        let req = hyper::Request::post(&self.config.push_url)
            .header("content-type", "application/json")
            .header("x-parkflow-signature", signature)
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), self.http.request(req))
            .await
            .map_err(|_| "push provider timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("push provider answered {status}"))
        }
    }
}

/// notification_id, channel, attempts, user_id, title, body, kind, created_at, email
type Due = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
);

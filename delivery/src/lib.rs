//! The notification service: delivers the notification outbox to each driver's channels. A
//! crate of its own so that the API core builds no TLS stack and no mail client.
//!
//! - in-app: the inbox (`GET /v1/notifications`) — delivered as soon as the message exists;
//! - e-mail over SMTP (lettre), to the account's address, with STARTTLS (or implicit TLS) by
//!   default;
//! - push: a signed webhook to the push provider (`X-Parkflow-Signature`: HMAC-SHA256 of the
//!   body, base64url), over HTTPS.
//!
//! TLS is rustls; server certificates are always verified, against Mozilla's roots and the
//! operator's own CA file (`ca_file`).
//!
//! Per-user preferences (`parkflow_api::notifications::Preferences`) switch e-mail and push on
//! or off (in-app is always on). Each (message,
//! channel) is one delivery row — so a message is never sent twice on a channel — attempted
//! until it succeeds, with exponential backoff, at most `max_attempts` times. A message is
//! marked sent once every delivery is final.

use chrono::{DateTime, Duration, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials as SmtpCredentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parkflow_api::auth::TokenSigner;
use parkflow_api::config::Secret;
use parkflow_api::domain::DeliveryStatus;
use parkflow_api::domain::error::{Error, Result};
use parkflow_api::notifications::Preferences;
use parkflow_api::store::Store;
use parkflow_api::store::notifications::{self as rows, DueDelivery};
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where and how messages go out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `host:port` of the SMTP server; e-mail is off when empty.
    pub smtp: String,
    /// How the SMTP connection is protected (default: STARTTLS, required).
    pub smtp_tls: SmtpTls,
    /// SMTP login, when the server wants one (only over TLS: a password never goes in clear).
    pub smtp_user: String,
    pub smtp_password: Secret,
    pub from: String,
    /// The push provider's webhook (`https://`, or `http://` inside a private network); push
    /// is off when empty.
    pub push_url: String,
    pub push_secret: Secret,
    /// A PEM file of CA certificates trusted for SMTP and push besides Mozilla's roots (an
    /// operator's private CA). Certificates are always verified.
    pub ca_file: String,
    pub max_attempts: u32,
    pub first_backoff_s: i64,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP upgraded with STARTTLS before anything is sent (port 587); a server that
    /// does not offer it is refused.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a private network.
    None,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            smtp: String::new(),
            smtp_tls: SmtpTls::default(),
            smtp_user: String::new(),
            smtp_password: Secret(String::new()),
            from: "parkflow <noreply@parkflow.local>".into(),
            push_url: String::new(),
            push_secret: Secret("dev-push-secret".into()),
            ca_file: String::new(),
            max_attempts: 5,
            first_backoff_s: 30,
        }
    }
}

/// The certificates of a PEM file, one PEM block each.
fn pem_certificates(path: &str) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Config(format!("ca_file {path}: {e}")))?;
    const END: &str = "-----END CERTIFICATE-----";
    let blocks: Vec<String> = text
        .split_inclusive(END)
        .filter_map(|chunk| {
            let start = chunk.find("-----BEGIN CERTIFICATE-----")?;
            chunk.ends_with(END).then(|| chunk[start..].to_owned())
        })
        .collect();
    if blocks.is_empty() {
        return Err(Error::Config(format!(
            "ca_file {path} holds no PEM certificate"
        )));
    }
    Ok(blocks)
}

fn smtp_transport(
    config: &DeliveryConfig,
    ca: &[String],
) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let (host, port) = config
        .smtp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| Error::Config(format!("smtp `{}` is not host:port", config.smtp)))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .timeout(Some(std::time::Duration::from_secs(10)));
    if config.smtp_tls != SmtpTls::None {
        let mut params = TlsParameters::builder(host);
        for pem in ca {
            let cert = Certificate::from_pem(pem.as_bytes())
                .map_err(|e| Error::Config(format!("ca_file: {e}")))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| Error::Config(format!("smtp TLS: {e}")))?;
        builder = builder.tls(match config.smtp_tls {
            SmtpTls::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if !config.smtp_user.is_empty() {
        if config.smtp_tls == SmtpTls::None {
            return Err(Error::Config(
                "smtp_user needs smtp_tls = \"starttls\" or \"tls\": a password is never sent in clear"
                    .into(),
            ));
        }
        builder = builder.credentials(SmtpCredentials::new(
            config.smtp_user.clone(),
            config.smtp_password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// An HTTP(S) client that trusts Mozilla's roots and the operator's CA file.
fn push_client(ca: &[String]) -> Result<PushClient> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in ca {
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::Config(format!("ca_file: {e}")))?;
        roots
            .add(der)
            .map_err(|e| Error::Config(format!("ca_file: {e}")))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

type PushClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<bytes::Bytes>>;

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
    http: PushClient,
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
        let ca = if config.ca_file.is_empty() {
            Vec::new()
        } else {
            pem_certificates(&config.ca_file)?
        };
        let smtp = if config.smtp.is_empty() {
            None
        } else {
            Some(smtp_transport(&config, &ca)?)
        };
        config
            .from
            .parse::<Mailbox>()
            .map_err(|e| Error::Config(format!("from: {e}")))?;
        if !config.push_url.is_empty()
            && !["https://", "http://"]
                .iter()
                .any(|scheme| config.push_url.starts_with(scheme))
        {
            return Err(Error::Config(format!(
                "push_url `{}` is not an http(s):// URL",
                config.push_url
            )));
        }
        Ok(Self {
            store,
            http: push_client(&ca)?,
            config,
            smtp,
        })
    }

    /// Fan new messages out to their channels, attempt what is due, mark finished messages sent.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<DeliveryReport> {
        self.fan_out(now).await?;
        let at = now.timestamp_millis();
        let due = rows::due(self.store.pool(), at, BATCH).await?;
        let mut report = DeliveryReport::default();
        for d in due {
            let result = match d.channel.as_str() {
                "email" => self.send_email(&d).await,
                "push" => self.send_push(&d).await,
                other => Err(format!("unknown channel {other}")),
            };
            let (id, channel) = (d.notification_id, d.channel.as_str());
            let attempts = d.attempts.saturating_add(1);
            let writer = self.store.writer();
            match result {
                Ok(()) => {
                    let delivered = DeliveryStatus::Delivered;
                    rows::finish_delivery(writer, id, channel, delivered, attempts, None, at)
                        .await?;
                    report.delivered += 1;
                }
                Err(e) if attempts >= i64::from(self.config.max_attempts) => {
                    tracing::warn!(notification = id, channel, error = %e, "delivery failed for good");
                    let failed = DeliveryStatus::Failed;
                    rows::finish_delivery(writer, id, channel, failed, attempts, Some(&e), at)
                        .await?;
                    report.failed += 1;
                }
                Err(e) => {
                    let wait = self.config.first_backoff_s.max(1) << (attempts - 1).min(16);
                    let next = (now + Duration::seconds(wait)).timestamp_millis();
                    rows::retry_later(writer, id, channel, attempts, &e, next).await?;
                    report.retrying += 1;
                }
            }
        }
        rows::mark_finished_sent(self.store.writer(), at).await?;
        Ok(report)
    }

    /// One delivery row per channel of each message not fanned out yet.
    async fn fan_out(&self, now: DateTime<Utc>) -> Result<()> {
        // Each message with its driver's channel choices (the defaults where none are saved).
        let defaults = Preferences::default();
        let fresh =
            rows::not_fanned_out(self.store.pool(), (defaults.email, defaults.push), BATCH).await?;
        let at = now.timestamp_millis();
        for (id, email, push) in fresh {
            let chosen = |wanted: bool, possible: bool| {
                if wanted && possible {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Skipped
                }
            };
            let channels = [
                ("in_app", DeliveryStatus::Delivered),
                ("email", chosen(email, self.smtp.is_some())),
                ("push", chosen(push, !self.config.push_url.is_empty())),
            ];
            for (channel, status) in channels {
                rows::insert_delivery(self.store.writer(), id, channel, status, at).await?;
            }
        }
        Ok(())
    }

    async fn send_email(&self, d: &DueDelivery) -> std::result::Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("e-mail is not configured")?;
        let to = d
            .email
            .as_deref()
            .ok_or("the account has no e-mail address")?;
        let message = Message::builder()
            .from(self.config.from.parse().map_err(|e| format!("from: {e}"))?)
            .to(to.parse().map_err(|e| format!("to: {e}"))?)
            .subject(&d.title)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(d.body.clone())
            .map_err(|e| e.to_string())?;
        smtp.send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn send_push(&self, d: &DueDelivery) -> std::result::Result<(), String> {
        let body = serde_json::json!({
            "notificationId": d.notification_id, "userId": d.user_id, "kind": d.kind,
            "title": d.title, "body": d.body,
            "createdAt": DateTime::from_timestamp_millis(d.created_at),
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
            .map_err(|e| with_causes(&e))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("push provider answered {status}"))
        }
    }
}

/// An error with the errors that caused it ("client error (Connect): invalid peer
/// certificate: UnknownIssuer"), for the delivery's `last_error`.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

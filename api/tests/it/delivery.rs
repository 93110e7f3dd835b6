//! The notification service: e-mail to a real local SMTP server (started by scripts/services),
//! push to a signed webhook served on a loopback port, per-user preferences, one delivery per
//! channel, retries with backoff until success or the last attempt.

use super::TestApp;
use axum::http::StatusCode;
use chrono::Duration;
use parkflow_api::auth::TokenSigner;
use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue};
use parkflow_delivery::{Deliverer, DeliveryConfig, DeliveryReport, SmtpTls};
use serde_json::json;
use std::sync::{Arc, Mutex};
use warehouse_schema::UserId;

/// The SMTP server and its Maildir, or None (with a note) outside CI.
fn smtp() -> Option<(String, std::path::PathBuf)> {
    match (
        std::env::var("PARKFLOW_TEST_SMTP"),
        std::env::var("PARKFLOW_TEST_SMTP_MAILDIR"),
    ) {
        (Ok(addr), Ok(dir)) => Some((addr, dir.into())),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PARKFLOW_TEST_SMTP must be set in CI"
            );
            eprintln!("SKIPPED: PARKFLOW_TEST_SMTP is not set (run ./scripts/test)");
            None
        }
    }
}

/// Mails in the Maildir addressed to `to`.
fn mails_to(maildir: &std::path::Path, to: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|m| m.contains(&format!("To: {to}")))
        .collect()
}

/// A push provider on a loopback port: answers 503 to the first call, then 200; keeps bodies
/// and signatures.
async fn push_provider() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (s, c) = (seen.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (s, c) = (s.clone(), c.clone());
            async move {
                if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers
                    .get("x-parkflow-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                s.lock().unwrap().push((body, sig));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/push"), seen)
}

pub async fn messages_reach_email_and_push_once_with_retries(app: TestApp) {
    let Some((smtp, maildir)) = smtp() else {
        return;
    };
    let lot = app.with_lot(json!({"car": 1})).await;
    let email = format!("notify-{}@example.com", uuid::Uuid::now_v7().simple());
    app.with_driver(&email).await;
    let quiet_email = format!("quiet-{}@example.com", uuid::Uuid::now_v7().simple());
    let quiet = app.with_driver(&quiet_email).await;
    let off = json!({"email": false, "push": false}).to_string();
    let r = app
        .call(
            "PUT",
            "/v1/me/notification-preferences",
            Some(&quiet),
            Some(&off),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = app
        .call("GET", "/v1/me/notification-preferences", Some(&quiet), None)
        .await;
    assert_eq!(got.body, json!({"email": false, "push": false}));

    let pool = app.state.services.store().pool().clone();
    let user_of = |email: String| {
        let pool = pool.clone();
        async move {
            let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap();
            UserId(id.parse().unwrap())
        }
    };
    let (driver, silent) = (
        user_of(email.clone()).await,
        user_of(quiet_email.clone()).await,
    );
    let store = app.state.services.store();
    let now = app.state.services.now();
    for (user, key) in [(driver, "m1"), (silent, "m2")] {
        let n = NewNotification {
            user_id: user,
            kind: NotificationKind::ReservationReminder,
            dedup_key: format!("{key}-{lot}"),
            lot_id: Some(warehouse_schema::LotId(lot)),
            title: "Lot A".into(),
            body: format!("Lot A: your reservation starts at 11:00 ({key})"),
        };
        assert!(enqueue(store, &n, now).await.unwrap());
    }
    let (push_url, pushed) = push_provider().await;
    let config = DeliveryConfig {
        smtp,
        // The test relay speaks plain SMTP, like an MTA on the same host.
        smtp_tls: SmtpTls::None,
        push_url,
        first_backoff_s: 10,
        ..DeliveryConfig::default()
    };
    let deliverer = Deliverer::new(store.clone(), config.clone()).unwrap();

    // First run: the mail goes out; the push provider is down (503), so push waits 10 s.
    let first = deliverer.run_once(now).await.unwrap();
    assert_eq!(
        first,
        DeliveryReport {
            delivered: 1,
            retrying: 1,
            failed: 0
        }
    );
    let mails = mails_to(&maildir, &email);
    assert_eq!(mails.len(), 1, "one e-mail");
    assert!(
        mails[0].contains("your reservation starts at 11:00 (m1)"),
        "{}",
        mails[0]
    );
    assert!(
        mails_to(&maildir, &quiet_email).is_empty(),
        "e-mail is off for them"
    );
    // Not due yet; then due: delivered, signed.
    assert_eq!(
        deliverer
            .run_once(now + Duration::seconds(5))
            .await
            .unwrap(),
        DeliveryReport::default()
    );
    let second = deliverer
        .run_once(now + Duration::seconds(11))
        .await
        .unwrap();
    assert_eq!(second.delivered, 1);
    let pushed = pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 1);
    let (body, signature) = &pushed[0];
    assert!(
        TokenSigner::new("dev-push-secret").verify_signature(body.as_bytes(), signature),
        "signed"
    );
    assert!(body.contains("(m1)"));
    // Everything final: both messages are sent, and nothing goes out twice.
    assert_eq!(
        deliverer.run_once(now + Duration::hours(1)).await.unwrap(),
        DeliveryReport::default()
    );
    assert_eq!(mails_to(&maildir, &email).len(), 1);
    let unsent = parkflow_api::notifications::unsent(store, 10)
        .await
        .unwrap();
    assert!(unsent.is_empty(), "{unsent:?}");

    // An SMTP server that is not there: retried with growing waits, then given up.
    let down = Deliverer::new(
        store.clone(),
        DeliveryConfig {
            smtp: "127.0.0.1:9".into(),
            push_url: String::new(),
            max_attempts: 3,
            first_backoff_s: 1,
            ..config
        },
    )
    .unwrap();
    let n = NewNotification {
        user_id: driver,
        kind: NotificationKind::ReservationReminder,
        dedup_key: format!("m3-{lot}"),
        lot_id: None,
        title: "Lot A".into(),
        body: "later".into(),
    };
    enqueue(store, &n, now).await.unwrap();
    let mut t = now;
    let mut reports = Vec::new();
    for _ in 0..4 {
        reports.push(down.run_once(t).await.unwrap());
        t += Duration::seconds(10);
    }
    assert_eq!(reports[0].retrying, 1);
    assert_eq!(reports[1].retrying, 1);
    assert_eq!(reports[2].failed, 1, "{reports:?}");
    assert_eq!(reports[3], DeliveryReport::default());
    let (status, attempts): (String, i64) = sqlx::query_as(
        "SELECT d.status, d.attempts FROM notification_deliveries d JOIN notification_outbox n
         ON n.id = d.notification_id WHERE n.dedup_key = $1 AND d.channel = 'email'",
    )
    .bind(format!("m3-{lot}"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 3));
}

/// The TLS test servers (SMTP requiring STARTTLS, and the CA, certificate and key), or None (with
/// a note) outside CI.
struct TlsServers {
    smtp: String,
    maildir: std::path::PathBuf,
    ca: String,
    cert: String,
    key: String,
}

fn tls_servers() -> Option<TlsServers> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("PARKFLOW_TEST_SMTP_TLS"),
        var("PARKFLOW_TEST_SMTP_TLS_MAILDIR"),
        var("PARKFLOW_TEST_TLS_CA"),
        var("PARKFLOW_TEST_TLS_CERT"),
        var("PARKFLOW_TEST_TLS_KEY"),
    ) {
        (Some(smtp), Some(maildir), Some(ca), Some(cert), Some(key)) => Some(TlsServers {
            smtp,
            maildir: maildir.into(),
            ca,
            cert,
            key,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PARKFLOW_TEST_SMTP_TLS and PARKFLOW_TEST_TLS_* must be set in CI"
            );
            eprintln!("SKIPPED: PARKFLOW_TEST_SMTP_TLS is not set (run ./scripts/test)");
            None
        }
    }
}

/// A push provider behind HTTPS with the test CA's certificate; keeps the bodies it accepts.
async fn https_push_provider(cert: &str, key: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            s.lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}/push"), seen)
}

/// The last error of each outgoing delivery (e-mail, push) of a message.
async fn delivery_errors(store: &parkflow_api::Store, key: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT d.channel, COALESCE(d.last_error, '') FROM notification_deliveries d
         JOIN notification_outbox n ON n.id = d.notification_id
         WHERE n.dedup_key = $1 AND d.channel <> 'in_app' ORDER BY d.channel",
    )
    .bind(key)
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// E-mail with STARTTLS and push over HTTPS: a certificate from an unknown CA is refused on both
/// channels (and retried); with the operator's CA file both go out; plain SMTP to a server that
/// requires STARTTLS is refused by it; a password is never configured without TLS.
pub async fn e_mail_and_push_go_out_over_verified_tls(app: TestApp) {
    let Some(tls) = tls_servers() else {
        return;
    };
    let email = format!("tls-{}@example.com", uuid::Uuid::now_v7().simple());
    app.with_driver(&email).await;
    let id: String = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(app.state.services.store().pool())
        .await
        .unwrap();
    let driver = UserId(id.parse().unwrap());
    let store = app.state.services.store();
    let now = app.state.services.now();
    let message = |key: &str| NewNotification {
        user_id: driver,
        kind: NotificationKind::ReservationReminder,
        dedup_key: key.to_owned(),
        lot_id: None,
        title: "Lot A".into(),
        body: format!("Lot A: your reservation starts at 11:00 ({key})"),
    };
    // Keys stay short: a long line would be folded in the mail's body. The address is unique.
    let key = "tls-1".to_owned();
    assert!(enqueue(store, &message(&key), now).await.unwrap());
    let (push_url, pushed) = https_push_provider(&tls.cert, &tls.key).await;
    let untrusting = DeliveryConfig {
        smtp: tls.smtp.clone(),
        smtp_tls: SmtpTls::Starttls,
        push_url,
        first_backoff_s: 1,
        ..DeliveryConfig::default()
    };

    // Mozilla's roots only: the test CA is unknown, nothing goes out.
    let refused = Deliverer::new(store.clone(), untrusting.clone())
        .unwrap()
        .run_once(now)
        .await
        .unwrap();
    assert_eq!(refused.retrying, 2, "{refused:?}");
    let errors = delivery_errors(store, &key).await;
    assert_eq!(errors.len(), 2);
    for (channel, error) in &errors {
        assert!(
            error.to_lowercase().contains("certificate"),
            "{channel}: {error}"
        );
    }
    assert!(mails_to(&tls.maildir, &email).is_empty());
    assert!(pushed.lock().unwrap().is_empty());

    // With the operator's CA file: both delivered, encrypted.
    let trusting = DeliveryConfig {
        ca_file: tls.ca.clone(),
        ..untrusting
    };
    let sent = Deliverer::new(store.clone(), trusting.clone())
        .unwrap()
        .run_once(now + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(
        sent.delivered,
        2,
        "{sent:?}: {:?}",
        delivery_errors(store, &key).await
    );
    let mails = mails_to(&tls.maildir, &email);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains(&format!("({key})")));
    let pushed = pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].contains(&format!("({key})")));

    // Plain SMTP to this server is refused by it: it requires STARTTLS.
    let plain_key = "plain-1".to_owned();
    assert!(enqueue(store, &message(&plain_key), now).await.unwrap());
    let plain = Deliverer::new(
        store.clone(),
        DeliveryConfig {
            smtp_tls: SmtpTls::None,
            push_url: String::new(),
            ..trusting.clone()
        },
    )
    .unwrap()
    .run_once(now + Duration::seconds(10))
    .await
    .unwrap();
    assert_eq!(plain.retrying, 1, "{plain:?}");
    let errors = delivery_errors(store, &plain_key).await;
    assert!(errors[0].1.contains("STARTTLS"), "{errors:?}");

    // Settings that would weaken this are refused at start.
    let refuse = |c: DeliveryConfig| Deliverer::new(store.clone(), c).unwrap_err().to_string();
    let clear_password = refuse(DeliveryConfig {
        smtp_tls: SmtpTls::None,
        smtp_user: "parkflow".into(),
        ..trusting.clone()
    });
    assert!(
        clear_password.contains("never sent in clear"),
        "{clear_password}"
    );
    let no_ca = refuse(DeliveryConfig {
        ca_file: "/nonexistent/ca.pem".into(),
        ..trusting.clone()
    });
    assert!(no_ca.contains("ca_file"), "{no_ca}");
    let bad_url = refuse(DeliveryConfig {
        push_url: "ftp://push.example".into(),
        ..trusting
    });
    assert!(bad_url.contains("push_url"), "{bad_url}");
}

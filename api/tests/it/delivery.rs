//! The notification service: e-mail to a real local SMTP server (started by scripts/services),
//! push to a signed webhook served on a loopback port, per-user preferences, one delivery per
//! channel, retries with backoff until success or the last attempt.

use super::TestApp;
use axum::http::StatusCode;
use chrono::Duration;
use parkflow_api::auth::TokenSigner;
use parkflow_api::delivery::{Deliverer, DeliveryConfig, DeliveryReport};
use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue};
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

    let pool = app.state.service.store().pool().clone();
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
    let store = app.state.service.store();
    let now = app.state.service.now();
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

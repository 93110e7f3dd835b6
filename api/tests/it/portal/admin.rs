//! What admins do in the portal, each action audited, and every text shown escaped.

use crate::{ADMIN, GATE, TestApp, assert_envelope};
use axum::http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

pub async fn admins_manage_lots_spots_and_inquiries_and_each_action_is_audited(app: TestApp) {
    let session = app.admin_session("ops@example.com").await;

    // A new lot from the form.
    let created = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "Harbour"),
                ("time_zone", "Europe/Berlin"),
                ("latitude", "53.54"),
                ("longitude", "9.99"),
                ("currency", "eur"),
                ("default_cents_per_hour", "250"),
                ("spots_car", "2"),
                ("spots_ev", "0"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let lot_page = created.location.unwrap();
    let lot: i64 = lot_page.rsplit('/').next().unwrap().parse().unwrap();
    let lot_json = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(lot_json.body["capacity"], 2);
    assert_eq!(lot_json.body["currency"], "EUR");

    // Bad input is a page with a 4xx, never a 500.
    let bad = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "X"),
                ("time_zone", "Mars/Base"),
                ("default_cents_per_hour", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("unknown time zone"), "{}", bad.text);
    let nan = app
        .submit(
            "/admin/lots",
            &session,
            &[
                ("name", "X"),
                ("time_zone", "UTC"),
                ("default_cents_per_hour", "lots"),
            ],
        )
        .await;
    assert_eq!(nan.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        nan.text.contains("`lots` is not a whole number"),
        "{}",
        nan.text
    );
    // A body that is not a form is refused as such, with the envelope's code.
    let json_post = parkflow_api::router(app.state.clone())
        .oneshot(
            axum::http::Request::builder()
                .method("POST")
                .uri("/admin/lots")
                .header("host", "portal.test")
                .header("origin", "http://portal.test")
                .header("cookie", &session)
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"name\": \"X\"}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(json_post.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Rename the lot and change its default rate.
    let edit = app
        .submit(
            &lot_page,
            &session,
            &[("name", "Harbour North"), ("default_cents_per_hour", "300")],
        )
        .await;
    assert_eq!(edit.status, StatusCode::SEE_OTHER, "{}", edit.text);
    let page = app.page("GET", &lot_page, &session, None).await;
    assert!(
        page.text.contains("Harbour North") && page.text.contains("3.00 EUR"),
        "{}",
        page.text
    );

    // Close a spot: the lot's capacity drops, and a drive-up finds the lot full after one car.
    let spots = app
        .state
        .services
        .admin()
        .spots(warehouse_schema::LotId(lot))
        .await
        .unwrap();
    let (first, second) = (spots[0].id.0, spots[1].id.0);
    let close = app
        .submit(&format!("{lot_page}/spots/{first}/close"), &session, &[])
        .await;
    assert_eq!(close.status, StatusCode::SEE_OTHER, "{}", close.text);
    let lot_json = app
        .call("GET", &format!("/v1/lots/{lot}"), None, None)
        .await;
    assert_eq!(lot_json.body["capacity"], 1);
    let car = json!({"vehicleType": "car", "method": "qr"}).to_string();
    let entry = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(&car),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    assert_eq!(entry.body["spotId"], second, "the closed spot is not given");
    let full = app
        .call(
            "POST",
            &format!("/v1/gates/{lot}/entries"),
            Some(GATE),
            Some(&car),
        )
        .await;
    assert_envelope(&full, StatusCode::CONFLICT, "lot_full");
    assert!(
        app.outbox_types()
            .await
            .contains(&"lot_capacity_changed".to_owned())
    );

    // Reopen it; a driver reserves it; now closing it is refused (the reservation holds it).
    let reopen = app
        .submit(&format!("{lot_page}/spots/{first}/reopen"), &session, &[])
        .await;
    assert_eq!(reopen.status, StatusCode::SEE_OTHER);
    let driver = app.with_driver("driver@example.com").await;
    let start = app.state.services.now() + chrono::Duration::hours(2);
    let booking = json!({"lotId": lot, "spotId": first, "startAt": start, "endAt": start + chrono::Duration::hours(1), "vehicleType": "car"});
    let booked = app
        .call_with(
            "POST",
            "/v1/reservations",
            Some(&driver),
            Some(&booking.to_string()),
            Some(("idempotency-key", "portal-1")),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let refused = app
        .submit(&format!("{lot_page}/spots/{first}/close"), &session, &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("held by 1 reservation"),
        "{}",
        refused.text
    );

    // The reservation search finds it by the driver's e-mail, and by lot and status.
    let hits = app
        .page(
            "GET",
            "/admin/reservations?email=DRIVER%40example.com",
            &session,
            None,
        )
        .await;
    assert!(hits.text.contains("1 reservation(s)"), "{}", hits.text);
    assert!(hits.text.contains(booked.body["id"].as_str().unwrap()));
    let none = app
        .page(
            "GET",
            &format!("/admin/reservations?lot={lot}&status=cancelled"),
            &session,
            None,
        )
        .await;
    assert!(none.text.contains("0 reservation(s)"), "{}", none.text);
    let bad_status = app
        .page("GET", "/admin/reservations?status=lost", &session, None)
        .await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A driver asks; the admin answers once; the answer reaches the driver's inbox.
    let ask = json!({"subject": "Receipt", "message": "Can I get a receipt for my booking?", "reservationId": booked.body["id"]});
    let asked = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(&ask.to_string()),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.body);
    let id = asked.body["id"].as_str().unwrap().to_owned();
    let empty = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(r#"{"subject":" ","message":"x"}"#),
        )
        .await;
    assert_envelope(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let staff = app
        .call("POST", "/v1/inquiries", Some(ADMIN), Some(&ask.to_string()))
        .await;
    assert_envelope(&staff, StatusCode::FORBIDDEN, "forbidden");
    let list = app.page("GET", "/admin/inquiries", &session, None).await;
    assert!(
        list.text.contains("Can I get a receipt") && list.text.contains("driver@example.com"),
        "{}",
        list.text
    );
    let answered = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "It is in your e-mail.")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.text);
    let twice = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "Again")],
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let mine = app.call("GET", "/v1/inquiries", Some(&driver), None).await;
    assert_eq!(mine.body["inquiries"][0]["answer"], "It is in your e-mail.");
    assert!(
        app.inbox_kinds(&driver)
            .await
            .contains(&"inquiry_answered".to_owned())
    );

    // Every change above is in the audit log, newest first, with the admin's e-mail.
    let log = app.state.services.admin().audit_log(50).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "inquiry.answer",
            "spot.reopen",
            "spot.close",
            "lot.update",
            "lot.create"
        ]
    );
    assert!(
        log.iter()
            .all(|e| e.actor_email.as_deref() == Some("ops@example.com"))
    );
    let audit = app.page("GET", "/admin/audit", &session, None).await;
    assert!(
        audit.text.contains("spot.close") && audit.text.contains("ops@example.com"),
        "{}",
        audit.text
    );

    // Without a lake this process has no report to show, and says so.
    let report = app.page("GET", "/admin/reports", &session, None).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(report.text.contains("no warehouse to report from"));
}

/// Every text an admin or a driver can set (lot name, e-mail, region, inquiry subject and
/// message, answer) is shown escaped on every portal page that shows it: markup typed into a
/// form or an API call never runs in an admin's browser.
pub async fn every_text_a_user_sets_is_escaped_on_every_page(app: TestApp) {
    let session = app.admin_session("xss.ops@example.com").await;
    let lot_name = "<script>alert('lot')</script>";
    let body = json!({
        "name": lot_name, "timeZone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.40,
        "currency": "EUR", "defaultCentsPerHour": 200, "spots": {"car": 2}
    });
    let lot = app.admin().post("/v1/lots", body.clone()).await;
    assert_eq!(lot.status, StatusCode::CREATED, "{}", lot.body);
    let lot = lot.body["id"].as_i64().unwrap();
    let renamed = app
        .submit(
            &format!("/admin/lots/{lot}"),
            &session,
            &[
                ("name", "<b onmouseover=alert(2)>lot</b>"),
                ("default_cents_per_hour", "250"),
            ],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.text);
    let email = "x<script>y@example.com";
    let driver = app.with_driver(email).await;
    let vehicle = app
        .call(
            "POST",
            "/v1/vehicles",
            Some(&driver),
            Some(
                &json!({"plate": "B XS 1", "region": "<script>", "vehicleType": "car"}).to_string(),
            ),
        )
        .await;
    assert_eq!(vehicle.status, StatusCode::CREATED, "{}", vehicle.body);
    let start = app.state.services.now() + chrono::Duration::hours(2);
    let booked = app
        .call_with(
            "POST",
            "/v1/reservations",
            Some(&driver),
            Some(&json!({"lotId": lot, "startAt": start, "endAt": start + chrono::Duration::hours(1),
                         "vehicleId": vehicle.body["id"]}).to_string()),
            Some(("idempotency-key", "xss")),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let ask = json!({"subject": "<script>alert('subject')</script>",
                     "message": "<img src=x onerror=alert('message')>"});
    let inquiry = app
        .call(
            "POST",
            "/v1/inquiries",
            Some(&driver),
            Some(&ask.to_string()),
        )
        .await;
    assert_eq!(inquiry.status, StatusCode::CREATED, "{}", inquiry.body);
    let id = inquiry.body["id"].as_str().unwrap().to_owned();
    let answered = app
        .submit(
            &format!("/admin/inquiries/{id}/answer"),
            &session,
            &[("answer", "<script>alert('answer')</script>")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.text);

    let pages = [
        "/admin".to_owned(),
        format!("/admin/lots/{lot}"),
        format!("/admin/reservations?lot={lot}"),
        "/admin/reservations?email=x%3Cscript%3Ey%40example.com".to_owned(),
        "/admin/inquiries".to_owned(),
        "/admin/audit".to_owned(),
    ];
    let mut shown = 0;
    for uri in &pages {
        let page = app.page("GET", uri, &session, None).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.text);
        for raw in [
            "<script>alert",
            "<script>y@",
            "<b onmouseover",
            "<img src=x",
            "<SCRIPT>",
        ] {
            assert!(
                !page.text.contains(raw),
                "{uri} shows {raw} unescaped: {}",
                page.text
            );
        }
        shown += page.text.matches("&lt;").count() + page.text.matches("&#60;").count();
    }
    // The texts are there, escaped: the checks above are not passing on empty pages.
    assert!(shown >= 8, "only {shown} escaped texts on the pages");
    let inquiries = app.page("GET", "/admin/inquiries", &session, None).await;
    // Named or numeric character references: either is escaped.
    let decoded = inquiries
        .text
        .replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;");
    for escaped in [
        "&lt;script&gt;alert(",
        "&lt;img src=x onerror=alert(",
        "x&lt;script&gt;y@example.com",
    ] {
        assert!(decoded.contains(escaped), "{escaped}: {}", inquiries.text);
    }
}

//! Lots seen by drivers: nearest first, EV spots, time offsets and DST days, and the API's own
//! document.

use super::*;
use crate::{Reply, TestApp, assert_envelope};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub async fn lots_and_spots_nearest_to_the_workplace_first(app: TestApp) {
    let admin_lot = |name: &str, lat: f64, lng: f64, spots: u32| {
        json!({"name": name, "timeZone": "Europe/Berlin", "latitude": lat, "longitude": lng, "currency": "EUR",
               "defaultCentsPerHour": 200, "spots": {"car": spots}})
        .to_string()
    };
    let mut ids = Vec::new();
    for (name, lng) in [("West", 13.30), ("East", 13.50), ("Centre", 13.40)] {
        let r = app
            .call(
                "POST",
                "/v1/lots",
                Some("dev-admin-token"),
                Some(&admin_lot(name, 52.52, lng, 40)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_i64().unwrap());
    }
    let names = |r: &Reply| {
        r.body["lots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let near_east = app
        .call("GET", "/v1/lots?near=52.52,13.49", None, None)
        .await;
    assert_eq!(names(&near_east), ["East", "Centre", "West"]);
    let d = near_east.body["lots"][0]["distanceM"].as_f64().unwrap();
    assert!((600.0..800.0).contains(&d), "{d}");
    assert_envelope(
        &app.call("GET", "/v1/lots?near=north", None, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_envelope(
        &app.call("GET", "/v1/lots?near=95,13", None, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // A driver's saved workplace is used when no point is given.
    let token = app.with_driver("w@example.com").await;
    let save_workplace = |body: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            let w = app
                .call("PUT", "/v1/me/workplace", Some(token), Some(body))
                .await;
            assert_eq!(w.status, StatusCode::OK, "{}", w.body);
        }
    };
    save_workplace(r#"{"latitude": 52.52, "longitude": 13.31}"#).await;
    assert_eq!(
        names(&app.call("GET", "/v1/lots", Some(&token), None).await),
        ["West", "Centre", "East"]
    );
    assert!(
        app.call("GET", "/v1/lots", None, None).await.body["lots"][0]
            .get("distanceM")
            .is_none()
    );

    // Within the centre lot (two rows of 20 spots, 2.5 m apart), the spots at its east end come
    // first for someone working just east of it, and a reservation takes the nearest.
    let centre = ids[2];
    let spots = |near: &str| {
        let app = &app;
        let uri = format!(
            "/v1/parkingspots?lot-id={centre}&start-at=2026-06-02T08:00:00Z&end-at=2026-06-02T09:00:00Z&vehicle-type=car{near}"
        );
        async move { app.call("GET", &uri, None, None).await }
    };
    let plain = spots("").await;
    let east = spots("&near=52.52,13.402").await;
    assert_eq!(plain.body["spots"].as_array().unwrap().len(), 40);
    let first_plain = plain.body["spots"][0]["label"].as_str().unwrap().to_owned();
    let first_east = east.body["spots"][0]["label"].as_str().unwrap().to_owned();
    assert_eq!(first_plain, "C-001");
    assert!(
        ["C-020", "C-040"].contains(&first_east.as_str()),
        "{first_east}"
    );
    let distances: Vec<f64> = east.body["spots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["distanceM"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    let r = app
        .book(&token, "near", json!({"lotId": centre, "startAt": tomorrow(8, 0), "endAt": tomorrow(9, 0), "vehicleType": "car", "near": {"latitude": 52.52, "longitude": 13.402}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["spotLabel"], json!(first_east));

    // A booking that gives no point takes the spot nearest to the saved workplace (read when
    // the request's token is checked).
    save_workplace(r#"{"latitude": 52.52, "longitude": 13.402}"#).await;
    let r = app
        .book(&token, "workplace", json!({"lotId": centre, "startAt": tomorrow(10, 0), "endAt": tomorrow(11, 0), "vehicleType": "car"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["spotLabel"], json!(first_east));
}

pub async fn openapi_describes_every_route_and_the_docs_page_shows_it(app: TestApp) {
    let doc = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let docs = app.call("GET", "/docs", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    let page = docs.body.as_str().unwrap();
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 19, "{}", paths.len());
    for (path, item) in paths {
        assert!(page.contains(path.as_str()), "{path} missing from /docs");
        for method in item.as_object().unwrap().keys() {
            // Every described operation is routed: not the fallback's 404, not a 405.
            let uri = path
                .replace("{lot_id}", "1")
                .replace("{reservation_id}", &uuid::Uuid::now_v7().to_string());
            let r = app.call(&method.to_uppercase(), &uri, None, None).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                r.body["error"]["message"], "route not found",
                "{method} {path}"
            );
        }
    }
}

/// Wire times need an offset; booking windows count local days, also across a DST change.
pub async fn times_need_an_offset_and_windows_count_local_days_across_dst(app: TestApp) {
    let lot = app.with_lot(json!({"car": 2})).await;
    let token = app.with_driver("dst@example.com").await;
    // No offset: refused with the envelope, never guessed.
    let naive = app
        .book(&token, "naive", json!({"lotId": lot, "startAt": "2026-06-02T08:00:00", "endAt": "2026-06-02T09:00:00", "vehicleType": "car"}))
        .await;
    assert_envelope(
        &naive,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let spots_naive = app
        .call("GET", &format!("/v1/parkingspots?lot-id={lot}&start-at=2026-06-02T08:00:00&end-at=2026-06-02T09:00:00Z&vehicle-type=car"), None, None)
        .await;
    assert_envelope(
        &spots_naive,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Any offset is accepted and means the same instant.
    let offset = app
        .book(&token, "offset", json!({"lotId": lot, "startAt": "2026-06-02T10:00:00+02:00", "endAt": "2026-06-02T11:00:00+02:00", "vehicleType": "car"}))
        .await;
    assert_eq!(offset.status, StatusCode::CREATED, "{}", offset.body);
    assert_eq!(offset.body["startAt"], json!(tomorrow(8, 0)));

    // Sunday 22 March 2026 in Berlin; clocks spring forward on Sunday 29 March (UTC+1 → UTC+2).
    // Seven days ahead ends at local midnight starting Monday 30 March = 2026-03-29T22:00Z
    // (a fixed +1 h offset would wrongly say 23:00Z).
    app.set_now("2026-03-22T10:00:00Z".parse().unwrap());
    let token = app.login("dst@example.com").await;
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let last_ok = app
        .book(&token, "in", json!({"lotId": lot, "startAt": at("2026-03-29T21:30:00Z"), "endAt": at("2026-03-29T22:30:00Z"), "vehicleType": "car"}))
        .await;
    assert_eq!(last_ok.status, StatusCode::CREATED, "{}", last_ok.body);
    let too_far = app
        .book(&token, "out", json!({"lotId": lot, "startAt": at("2026-03-29T22:00:00Z"), "endAt": at("2026-03-29T23:00:00Z"), "vehicleType": "car"}))
        .await;
    assert_envelope(
        &too_far,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // Local midnight to 06:00 on the short day is five real hours, quoted as such (200/h).
    let night = app
        .book(&token, "night", json!({"lotId": lot, "startAt": "2026-03-29T00:00:00+01:00", "endAt": "2026-03-29T06:00:00+02:00", "vehicleType": "car"}))
        .await;
    assert_eq!(night.status, StatusCode::CREATED, "{}", night.body);
    assert_eq!(night.body["quoteCents"], 1000);
}

/// An EV spot takes only EVs, unless the lot lets cars use it (then as their last choice).
pub async fn ev_spots_take_cars_only_where_the_lot_says_so(app: TestApp) {
    let lot = |open: bool, spots: Value| {
        json!({"name": "EV", "timeZone": "Europe/Berlin", "latitude": 52.5, "longitude": 13.4,
               "currency": "EUR", "defaultCentsPerHour": 200, "spots": spots, "evSpotsOpenToCars": open})
        .to_string()
    };
    let create = |body: String| {
        let app = &app;
        async move {
            let r = app
                .call("POST", "/v1/lots", Some("dev-admin-token"), Some(&body))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].as_i64().unwrap()
        }
    };
    let closed = create(lot(false, json!({"ev": 1}))).await;
    let open = create(lot(true, json!({"ev": 1, "car": 1}))).await;
    let token = app.with_driver("ev@example.com").await;
    let spots = |lot: i64, vt: &str| {
        let app = &app;
        let uri = format!(
            "/v1/parkingspots?lot-id={lot}&start-at=2026-06-02T08:00:00Z&end-at=2026-06-02T09:00:00Z&vehicle-type={vt}"
        );
        async move {
            app.call("GET", &uri, None, None).await.body["spots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["vehicleType"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(spots(closed, "car").await.is_empty());
    assert_eq!(spots(closed, "ev").await, ["ev"]);
    assert_eq!(spots(open, "car").await, ["car", "ev"]);
    assert_eq!(spots(open, "ev").await, ["ev", "car"]);
    let book = |lot: i64, key: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.book(&token, key, json!({"lotId": lot, "startAt": tomorrow(8, 0), "endAt": tomorrow(9, 0), "vehicleType": "car"}))
                .await
        }
    };
    assert_envelope(
        &book(closed, "c1").await,
        StatusCode::CONFLICT,
        "no_spot_available",
    );
    let first = book(open, "o1").await;
    let second = book(open, "o2").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let labels = [
        first.body["spotLabel"].clone(),
        second.body["spotLabel"].clone(),
    ];
    assert_eq!(
        labels,
        [json!("C-001"), json!("E-001")],
        "the car spot first, then the EV spot"
    );
    // Drive-ups follow the same rule.
    assert_envelope(
        &app.gate(closed)
            .enter(json!({"method": "staff", "vehicleType": "car"}))
            .await,
        StatusCode::CONFLICT,
        "lot_full",
    );
    let third = create(lot(true, json!({"ev": 1}))).await;
    let r = app
        .gate(third)
        .enter(json!({"method": "staff", "vehicleType": "car"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["spotLabel"], "E-001");
}

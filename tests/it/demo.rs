//! `parkflow demo` end to end on a small world.

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int32Type, Int64Type};
use http_body_util::BodyExt;
use parkflow::Config;
use parkflow::demo::{DemoOptions, run};
use parkflow_pricing::StepPolicy;
use std::collections::HashSet;
use std::sync::Arc;
use tower::ServiceExt;
use warehouse_schema::lake::Lake;
use warehouse_schema::{Table, VehicleType};

/// Every kind of booking, payment and entry happened in the simulation.
fn all_of_parkflow_ran(r: &parkflow_simulator::SimReport) {
    for (what, n) in [
        ("reservations", r.reservations),
        ("card payments", r.paid_card),
        ("wallet payments", r.paid_wallet),
        ("balance payments", r.paid_balance),
        ("declined payments", r.payments_declined),
        ("reversed payments", r.payments_reversed),
        ("changes", r.changed),
        ("cancellations", r.cancelled),
        ("no-shows", r.no_shows),
        ("entries by pass", r.pass_entries),
        ("entries by plate", r.plate_entries),
        ("drive-ups", r.drive_ups),
        ("monthly passes bought", r.passes_bought),
        ("entries on a monthly pass", r.holder_entries),
    ] {
        assert!(n > 0, "no {what}: {r:?}");
    }
}

fn options(dir: &std::path::Path) -> DemoOptions {
    DemoOptions {
        lots: 3,
        days: 3,
        seed: 11,
        data_dir: dir.to_owned(),
        progress: false,
        end: Some("2026-06-08T17:00:00Z".parse().unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_loop_is_complete_consistent_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    // The step rule, whose every published change can be checked against the occupancy below
    // (the forecast policy, the default, is checked in the pricing crate).
    let mut cfg = Config::default();
    cfg.pricing.policy = parkflow_pricing::PolicyName::Step;
    let (o, timings) = run(cfg.clone(), &opts).await.unwrap();
    assert_eq!(o.pricing.policy, parkflow_pricing::PolicyName::Step);
    assert!(
        o.pricing.in_band_before.is_some() && o.pricing.in_band_after.is_some(),
        "time in band before and after"
    );

    // Every event the API recorded is in the lake, exactly once.
    assert!(
        o.outbox_events > 1_000,
        "a real amount of traffic: {}",
        o.outbox_events
    );
    assert_eq!(o.lake_events as i64, o.outbox_events);
    assert_eq!(o.dead_letters, 0);
    let lake = Lake::new(dir.path().join("lake"));
    let (rows, ids) = crate::support::lake_event_ids(&lake);
    assert_eq!(rows as i64, o.outbox_events);
    assert_eq!(ids.len(), rows, "no duplicate event ids");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("parkflow.db").display()
    ))
    .await
    .unwrap();
    let outbox_ids: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT event_id FROM outbox")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(outbox_ids, ids, "the lake holds exactly the API's events");

    // The simulation is visible in the warehouse.
    assert_eq!(o.summary.stays, o.sim.checked_in);
    assert_eq!(o.refresh.open_stays, o.sim.still_parked);
    assert!(o.sim.turned_away > 0 || o.sim.checked_in > 0);
    let revenue: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(amount_cents), 0) FROM parking_sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(o.summary.revenue_cents, revenue);
    assert_eq!(o.sim.revenue_cents, revenue);

    // Occupancy never exceeds capacity.
    let occupancy = lake.read_table(Table::Occupancy15m).unwrap();
    let mut buckets = 0;
    for b in &occupancy {
        let cap = b
            .column_by_name("capacity")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        let present = b
            .column_by_name("cars_present")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let avg = b
            .column_by_name("avg_occupied")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        for i in 0..b.num_rows() {
            assert!(present.value(i) <= i64::from(cap.value(i)));
            assert!(avg.value(i) <= f64::from(cap.value(i)) + 1e-9);
            buckets += 1;
        }
    }
    // 3 whole days, then the last day up to the end (10:00 in Los Angeles).
    let (start, end) = o.period;
    assert_eq!(
        start,
        "2026-06-05T07:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    assert_eq!(end, o.refresh.as_of);
    assert_eq!(buckets, 3 * (3 * 96 + 40), "every lot, every 15 minutes");

    // Later, `parkflow report` with its defaults reports the world as it ended (June), not up to
    // today: the cars still parked then are not parked for months, and the default period is
    // the 30 days up to the data's end.
    let as_of = parkflow::steps::report_as_of(&lake, None).await.unwrap();
    assert!(
        as_of <= end + chrono::Duration::milliseconds(1)
            && end - as_of < chrono::Duration::hours(1),
        "{as_of} is the data's end, {end}"
    );
    let again = parkflow_pipeline::refresh(&lake, as_of).await.unwrap();
    assert_eq!(again.open_stays, o.sim.still_parked);
    assert!(
        (3 * (3 * 96 + 36)..=buckets).contains(&again.occupancy_rows),
        "{} rows as of the data's end",
        again.occupancy_rows
    );
    let (from, to) = parkflow::steps::report_days(as_of, None, None);
    assert!(from <= start.date_naive() && to > as_of.date_naive());
    let given = "2026-06-07T00:00:00Z".parse().unwrap();
    assert_eq!(
        parkflow::steps::report_as_of(&lake, Some(given))
            .await
            .unwrap(),
        given
    );
    let ahead = chrono::Utc::now() + chrono::Duration::days(365 * 100);
    let refused = parkflow::steps::report_as_of(&lake, Some(ahead))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("in the future"), "{refused}");
    assert!(
        o.summary.lots.iter().any(|l| l.peak_occupancy > 0.5),
        "some lot gets busy"
    );

    // Car rates changed exactly where occupancy left the 60–80 % band (unless at floor or cap).
    let policy = StepPolicy::default();
    let observed = parkflow_pipeline::band_occupancy(&lake, start, end)
        .await
        .unwrap();
    assert!(!observed.is_empty());
    for obs in &observed {
        let change = o.pricing.changes.iter().find(|c| {
            c.lot_id == obs.lot_id
                && c.band == obs.band
                && c.day_kind == obs.day_kind
                && c.vehicle_type == VehicleType::Car
        });
        let inside = (policy.target_low..=policy.target_high).contains(&obs.mean_occupancy);
        match change {
            Some(c) => {
                assert!(!inside, "changed inside the band: {c:?}");
                assert_eq!(
                    c.new_cents > c.old_cents,
                    obs.mean_occupancy > policy.target_high,
                    "{c:?}"
                );
            }
            None => assert!(
                inside || obs.buckets < policy.min_buckets,
                "no change outside the band for {obs:?}"
            ),
        }
    }
    assert!(
        o.pricing
            .changes
            .iter()
            .any(|c| c.vehicle_type == VehicleType::Car)
    );
    // They were published through the API: one rate_published event and one schedule row each.
    let published: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = 'rate_published'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(published as usize, o.pricing.changes.len());
    let scheduled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(scheduled as usize, o.pricing.changes.len());
    // Each carries its reason, announced ahead by the notice.
    let unexplained: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rates WHERE reason IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unexplained, 0);
    // Three days are too few for the free-spot chances' error distribution (nine needed): none
    // published, and the four-week test below has them.
    assert_eq!(o.arrival_forecast, (0, 0));
    assert_eq!(
        o.pricing.effective_from,
        parkflow_pricing::PricingConfig::default().effective_from(end)
    );
    pool.close().await;

    // All of parkflow ran, through the service layer.
    all_of_parkflow_ran(&o.sim);

    assert!(o.backtest.is_ok(), "{:?}", o.backtest);
    let text = parkflow::demo::render(&o, &timings, dir.path());
    for heading in [
        "Traffic", "Bookings", "Payments", "Gates", "Events", "Revenue", "Peaks", "Forecast",
        "Pricing", "Timing",
    ] {
        assert!(text.contains(heading), "{text}");
    }

    // Same seed, same world: a second run (over the same directory) gives the same outcome.
    let (again, _) = run(cfg, &opts).await.unwrap();
    assert_eq!(again, o);
}

/// Four weeks of a small world ending now: everything the system does happens, the lake holds
/// exactly the API's events, the forecast beats its baseline, and `parkflow report` with its
/// defaults (the last 30 days) finds every section filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_weeks_ending_now_fill_every_section_of_the_default_report() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        lots: 2,
        days: 28,
        seed: 5,
        data_dir: dir.path().to_owned(),
        progress: false,
        end: None,
    };
    let (o, _) = run(Config::default(), &opts).await.unwrap();
    let now = chrono::Utc::now();
    assert!(
        now - o.period.1 < chrono::Duration::hours(2),
        "the world ends now: {:?}",
        o.period
    );
    assert_eq!(o.lake_events as i64, o.outbox_events);
    all_of_parkflow_ran(&o.sim);
    let backtest = o.backtest.as_ref().unwrap();
    // A week held out, every weekday scored: the ratio does not hang on the day the world ends
    // (one held-out day was 48 forecasts here, and lost on some weekdays).
    assert_eq!(backtest.test_days, 7);
    let hour = backtest.at_minutes(60).unwrap();
    assert!(hour.ratio_to_best_baseline() < 1.0, "{}", backtest.table());
    // Production pricing (the forecast policy) priced on the linfa model's next day.
    assert_eq!(o.pricing.policy, parkflow_pricing::PolicyName::Forecast);
    assert_eq!(
        o.pricing.model_lots,
        (2, 2),
        "every lot's next day forecast"
    );
    // The next day's free-spot chances were published for both lots, a day of hours each.
    assert_eq!(o.arrival_forecast, (48, 2));

    // What `parkflow report` does with its defaults on this data directory.
    let lake = Lake::new(dir.path().join("lake"));
    parkflow_pipeline::refresh(&lake, now).await.unwrap();
    let (from, to) = parkflow::steps::report_days(now, None, None);
    let at = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let report = parkflow_pipeline::usage_report(&lake, at(from), at(to), None)
        .await
        .unwrap();
    assert!(!report.occupancy_by_hour.is_empty());
    assert!(!report.peaks.is_empty());
    assert_eq!(report.lots.len(), 2);
    assert!(
        report
            .lots
            .iter()
            .all(|l| l.stays > 0 && l.revenue_cents > 0)
    );
    assert!(!report.by_vehicle_type.is_empty());
    assert!(
        report.by_method.len() >= 3,
        "pass, plate and drive-up entries"
    );
    assert!(
        report.by_payment_method.len() >= 3,
        "{:?}",
        report.by_payment_method
    );
    assert!(!report.dwell.is_empty());
    assert!(report.reservations.created > 0);
    assert!(report.reservations.cancelled > 0);
    assert!(report.reservations.no_shows > 0);
    assert!(!report.lead_times.is_empty());
    // Commuters' monthly passes: bought through the API, their holders' entries in the lake.
    let passes = &report.monthly_passes;
    assert!(passes.purchased > 0 && passes.entries > 0, "{passes:?}");
    assert_eq!(report.currencies, ["USD"], "the demo's lots charge dollars");

    // The report file as `parkflow report` writes it, read in headless Chromium: every section
    // there and filled, nothing wider than the page; a screenshot is kept.
    let out = dir.path().join("reports").join(format!("{from}_{to}"));
    let html = parkflow::steps::usage_report(&lake, from, to, None, &out)
        .await
        .unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Revenue by lot (USD)") && page.contains("<td>$"),
        "money carries its currency on the chart and in the cells"
    );
    if let Some(browser) = crate::support::Browser::available() {
        let html = html.display().to_string();
        let (_, shots) = browser
            .run("report.mjs", "report-e2e", &[("REPORT_HTML", &html)])
            .await;
        assert!(shots.join("report.png").is_file());
    }

    // `parkflow serve` on this data directory: the portal shows the demo's lots and, live, the
    // cars parked now.
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let (state, _) = parkflow::steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock))
        .await
        .unwrap();
    state
        .accounts
        .register_admin(parkflow_api::accounts::Credentials {
            email: "ops@lots.example".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    let send = |req: axum::http::Request<axum::body::Body>| {
        let app = parkflow_api::router(state.clone());
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let cookies: Vec<String> = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
                .collect();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, cookies, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let login = axum::http::Request::post("/admin/login")
        .header("host", "portal.test")
        .header("origin", "http://portal.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(
            "email=ops%40lots.example&password=correct+horse+battery&next=%2Fadmin",
        ))
        .unwrap();
    let (status, cookies, _) = send(login).await;
    assert!(status.is_redirection(), "{status}");
    let get = |uri: &str| {
        axum::http::Request::get(uri)
            .header("host", "portal.test")
            .header("accept", "text/html")
            .header("cookie", cookies.join("; "))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let (status, _, page) = send(get("/admin")).await;
    assert_eq!(status, axum::http::StatusCode::OK);
    for lot in &o.summary.lots {
        assert!(
            page.contains(&lot.lot_name.replace('\'', "&#x27;")),
            "{} not on the dashboard",
            lot.lot_name
        );
    }
    // The dashboard's live figures: the stream's JSON form (a client that asks for no event
    // stream gets the state now).
    let ids: Vec<String> = o
        .summary
        .lots
        .iter()
        .map(|l| l.lot_id.0.to_string())
        .collect();
    let (status, _, live) = send(get(&format!("/v1/live?lots={}", ids.join(",")))).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{live}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    let occupied: i64 = live["lots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["occupied"].as_i64().unwrap())
        .sum();
    assert_eq!(live["lots"].as_array().unwrap().len(), 2);
    assert!(
        occupied as u64 >= o.sim.still_parked,
        "{live}: {} still parked",
        o.sim.still_parked
    );
}

/// `parkflow price replay` on a demo's history: replaying the policy that ran (no rate moved in
/// the period: static) reproduces the lake's own figures — time in band from the occupancy
/// job, revenue from the stays' charges, no changes — and another policy moves rates and
/// demand with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_policy_that_ran_reproduces_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        lots: 2,
        days: 21,
        seed: 8,
        data_dir: dir.path().to_owned(),
        progress: false,
        end: Some("2026-06-22T00:00:00Z".parse().unwrap()),
    };
    let (o, _) = run(Config::default(), &opts).await.unwrap();
    let cfg = Config::default().with_data_dir(dir.path().to_owned());
    let (state, _) = parkflow::steps::open_api(&cfg, Arc::new(parkflow_api::SystemClock))
        .await
        .unwrap();
    let lake = Lake::new(dir.path().join("lake"));
    let period = o.period;
    let replay = |policy: &'static dyn parkflow_pricing::PricingPolicy| {
        let (state, lake) = (&state, &lake);
        async move {
            parkflow::replay::replay(state, lake, period, None, policy)
                .await
                .unwrap()
        }
    };
    let same = replay(&parkflow_pricing::StaticPricing).await;
    let (replayed, recorded) = same.overall();
    assert!(recorded.lot_hours > 2 * 20 * 17, "{}", same.render());
    assert_eq!(replayed, recorded, "{}", same.render());
    for (lot, r, a) in &same.lots {
        assert_eq!(r, a, "lot {lot}: {}", same.render());
    }
    assert_eq!(recorded.revenue_cents, o.sim.revenue_cents);
    assert_eq!(
        recorded.changes, 0,
        "the demo's rates take effect after its end"
    );

    // The step rule moves rates where occupancy left the band, and demand responds.
    static STEP: std::sync::LazyLock<StepPolicy> = std::sync::LazyLock::new(StepPolicy::default);
    let moved = replay(&*STEP).await;
    let (r, a) = moved.overall();
    assert!(r.changes > 0, "{}", moved.render());
    assert_ne!(r.revenue_cents, a.revenue_cents, "{}", moved.render());
    assert!(moved.render().contains("replay of SFpark step pricing"));
}

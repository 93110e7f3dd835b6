//! The forecast's backtests end to end: on weeks of simulated demand (the goal), and on a dirty
//! occupancy CSV through the importer, as `parkflow forecast backtest` runs them.

use chrono::{Datelike, Duration, NaiveDate};
use parkflow::forecasting::{Source, backtest_source};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write;

#[tokio::test]
async fn on_simulated_weeks_the_model_beats_the_best_baseline_by_a_fifth_an_hour_ahead() {
    let source = Source::Simulated {
        weeks: 8,
        lots: 10,
        seed: 7,
    };
    // No days asked for: the last week is held out.
    let report = backtest_source(&source, None).await.unwrap();
    let table = report.render();
    let [arrivals, occupancy] = &report.backtests[..] else {
        panic!("{table}")
    };
    assert_eq!((arrivals.test_days, occupancy.test_days), (7, 7));
    let hour = arrivals.at_minutes(60).unwrap();
    assert_eq!(arrivals.lots, 10);
    assert!(hour.model.n > 1000, "{table}");
    assert!(hour.ratio_to_best_baseline() <= 0.8, "{table}");
    assert!(
        occupancy.at_minutes(60).unwrap().ratio_to_best_baseline() <= 0.8,
        "{table}"
    );
    // A day ahead the model still does no worse than last week's figure.
    assert!(
        arrivals.at_minutes(1440).unwrap().ratio_to_best_baseline() <= 1.0,
        "{table}"
    );

    // Driver level: the commuters' habits are learnt from their own history.
    let drivers = report
        .drivers
        .as_ref()
        .expect("simulated drivers are known");
    assert_eq!(drivers.test_days.len(), 7);
    assert!(drivers.arrivals > 1000, "{table}");
    assert!(
        drivers.model.precision() >= 0.6 && drivers.model.recall() >= 0.6,
        "{table}"
    );
    assert!(
        drivers.model.f1() > drivers.same_hour_last_week.f1(),
        "{table}"
    );
    assert!(table.contains("precision"), "{table}");
}

/// Six weeks of readings from three car parks, every half hour from 08:00 to 16:30 with jitter,
/// plus the dirt real feeds have.
fn dirty_feed() -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut csv = String::from("SystemCodeNumber,Capacity,Occupancy,LastUpdated\n");
    let first = NaiveDate::from_ymd_opt(2016, 10, 3).unwrap();
    for day in 0..42 {
        let date = first + Duration::days(day);
        if day == 20 {
            continue; // a missing day for every car park
        }
        let weekend = date.weekday().num_days_from_monday() >= 5;
        for (code, capacity) in [
            ("Broad Street", 690),
            ("Bull Ring", 1010),
            ("Shopping", 500),
        ] {
            for half_hour in 16..=33 {
                let minute = half_hour * 30 + rng.random_range(-7..=7);
                let peak = if weekend { 0.5 } else { 0.85 };
                let shape = 1.0 - ((minute as f64 - 780.0) / 400.0).powi(2);
                let occupancy = (f64::from(capacity) * peak * shape.max(0.1)
                    + rng.random_range(-25.0..25.0))
                .round() as i64;
                let at = format!(
                    "{date} {:02}:{:02}:{:02}",
                    minute / 60,
                    minute % 60,
                    rng.random_range(0..60)
                );
                let _ = writeln!(csv, "{code},{capacity},{occupancy},{at}");
                if rng.random_range(0..50) == 0 {
                    let _ = writeln!(csv, "{code},{capacity},{occupancy},{at}"); // duplicate
                }
            }
        }
        if day % 9 == 0 {
            let _ = writeln!(csv, "Bull Ring,1010,1250,{date} 12:00:00"); // above capacity
            let _ = writeln!(csv, "Shopping,500,-12,{date} 12:00:00"); // negative
            let _ = writeln!(csv, "Shopping,five hundred,12,{date} 12:00:00"); // unreadable
        }
    }
    csv += "Rarely,200,50,2016-10-05 10:00:00\nRarely,200,60,2016-11-01 10:00:00\n";
    csv
}

#[tokio::test]
async fn a_dirty_occupancy_csv_is_cleaned_and_backtested() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("occupancy.csv");
    std::fs::write(&path, dirty_feed()).unwrap();
    let report = backtest_source(&Source::Csv(path), Some(7)).await.unwrap();
    let text = report.render();
    let import = report.import.as_deref().unwrap();
    for expected in [
        "duplicates dropped",
        "5 clipped to capacity",
        "5 negative dropped",
        "5 unreadable",
        "3 car parks kept",
        "Rarely (2 readings)",
        "line ",
    ] {
        assert!(import.contains(expected), "{expected}: {import}");
    }
    assert!(!import.contains(" 0 duplicates"), "{import}");
    let [b] = &report.backtests[..] else {
        panic!("{text}")
    };
    assert_eq!(b.lots, 3);
    assert_eq!(b.slot_minutes, 30);
    let hour = b.at_minutes(60).unwrap();
    assert!(hour.model.n > 300, "{text}");
    assert!(hour.model.mae < hour.persistence.mae, "{text}");
    assert!(
        text.contains("same slot last week") && text.contains("1 h"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_or_foreign_csv_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = backtest_source(&Source::Csv(dir.path().join("none.csv")), Some(7))
        .await
        .err()
        .unwrap();
    assert!(
        format!("{missing:#}").contains("cannot open"),
        "{missing:#}"
    );
    let foreign = dir.path().join("foreign.csv");
    std::fs::write(&foreign, "id,name\n1,x\n").unwrap();
    let err = backtest_source(&Source::Csv(foreign), Some(7))
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("SystemCodeNumber"), "{err:#}");
}

/// Six weeks of one car park of 100 spaces that fills at midday on most weekdays (readings
/// every half hour from 08:00 to 17:00).
fn filling_feed() -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut csv = String::from("SystemCodeNumber,Capacity,Occupancy,LastUpdated\n");
    let first = NaiveDate::from_ymd_opt(2016, 10, 3).unwrap();
    for day in 0..42 {
        let date = first + Duration::days(day);
        let weekend = date.weekday().num_days_from_monday() >= 5;
        let peak = if weekend {
            0.6
        } else if rng.random_range(0..4) == 0 {
            0.9
        } else {
            1.15
        };
        for half_hour in 16..=34 {
            let minute = half_hour * 30;
            let shape = 1.0 - ((minute as f64 - 780.0) / 300.0).powi(2);
            let occupancy =
                (100.0 * peak * shape.max(0.1) + rng.random_range(-4.0..4.0)).round() as i64;
            let at = format!("{date} {:02}:{:02}:00", minute / 60, minute % 60);
            let _ = writeln!(csv, "Midtown,100,{},{at}", occupancy.max(0));
        }
    }
    csv
}

#[tokio::test]
async fn free_spot_chances_have_a_reliability_table_on_a_csv_and_on_simulated_weeks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filling.csv");
    std::fs::write(&path, filling_feed()).unwrap();
    let (r, import) = parkflow::forecasting::reliability_source(&Source::Csv(path), 7)
        .await
        .unwrap();
    let table = r.table();
    assert!(import.unwrap().contains("1 car parks kept"), "{table}");
    assert_eq!((r.lots, r.slot_minutes, r.test_days), (1, 30, 7));
    assert_eq!(r.bins.iter().map(|b| b.n).sum::<usize>(), r.n);
    // The car park is full at some midday hours: chances below one half are given, and the
    // spots were free less often where the chances were low than where they were high.
    assert!(r.base_rate < 0.95, "{table}");
    let low: Vec<_> = r.bins[..5].iter().filter(|b| b.n > 0).collect();
    assert!(!low.is_empty(), "{table}");
    let low_free = low.iter().map(|b| b.free_share * b.n as f64).sum::<f64>()
        / low.iter().map(|b| b.n as f64).sum::<f64>();
    assert!(low_free < r.bins[9].free_share, "{table}");
    assert!(
        r.brier < r.base_rate * (1.0 - r.base_rate),
        "better than a coin of the base rate: {table}"
    );
    assert!(table.contains("Brier score") && table.contains("climatology"));

    let (sim, _) = parkflow::forecasting::reliability_source(
        &Source::Simulated {
            weeks: 4,
            lots: 3,
            seed: 42,
        },
        7,
    )
    .await
    .unwrap();
    assert_eq!(sim.lots, 3);
    assert!(sim.n > 3 * 7 * 24 * 20, "{}", sim.table());
}

/// `parkflow price replay --csv`: on an imported occupancy feed the constant rate is the policy
/// that ran, and replaying it gives the feed's own figures; the forecast policy moves rates.
#[tokio::test]
async fn a_replay_over_an_occupancy_csv_reproduces_it_under_the_policy_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filling.csv");
    std::fs::write(&path, filling_feed()).unwrap();
    let (series, _) = parkflow::forecasting::occupancy_series(&Source::Csv(path))
        .await
        .unwrap();
    let same =
        parkflow::replay::replay_series(&series, 200, &parkflow_pricing::StaticPricing).unwrap();
    let (replayed, recorded) = same.overall();
    assert_eq!(replayed, recorded, "{}", same.render());
    assert!(recorded.lot_hours > 6 * 7 * 10 && recorded.revenue_cents > 0);
    let moved = parkflow::replay::replay_series(
        &series,
        200,
        &parkflow_pricing::PricingConfig::default().forecast_policy(),
    )
    .unwrap();
    let (r, a) = moved.overall();
    assert!(r.changes > 0, "{}", moved.render());
    assert_ne!(r.in_band, a.in_band, "{}", moved.render());
    assert!(moved.render().contains("over an occupancy CSV"));
    assert!(parkflow::replay::replay_series(&series, 0, &parkflow_pricing::StaticPricing).is_err());
}

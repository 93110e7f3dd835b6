//! Incremental occupancy: runs that recompute only the days a change can reach end with exactly
//! the tables a full recompute gives, whatever order and lateness the events arrive with.

use super::*;
use chrono::Days;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::BTreeMap;

/// Every row of a derived table as text, sorted: equal lists mean equal tables.
fn rows_of(lake: &Lake, table: Table) -> Vec<String> {
    let mut out = Vec::new();
    for b in lake.read_table(table).unwrap() {
        let opts = FormatOptions::default();
        let cols: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| c.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}

/// A small deterministic generator (no external randomness in tests).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Six days of stays at two lots (one in Berlin time), of three vehicle types: some cross
/// midnight, some last more than a day, some are still open at the end.
fn history(seed: u64) -> Vec<Event> {
    let day0 = t("2026-06-01T00:00:00Z");
    let mut rng = Lcg(seed);
    let mut events = vec![
        register(1, "UTC", 20, day0),
        register(2, "Europe/Berlin", 12, day0),
    ];
    let types = [VehicleType::Car, VehicleType::Ev, VehicleType::Van];
    for day in 0..6 {
        for lot in [1, 2] {
            for _ in 0..25 {
                let entry = day0
                    + Duration::days(day)
                    + Duration::minutes(1 + rng.next(24 * 60 - 1) as i64)
                    + Duration::seconds(rng.next(60) as i64);
                let minutes = match rng.next(10) {
                    0 => 20 * 60 + rng.next(20 * 60) as i64,
                    _ => 10 + rng.next(300) as i64,
                };
                let exit = (rng.next(20) != 0).then(|| entry + Duration::minutes(minutes));
                let vt = types[rng.next(3) as usize];
                events.extend(stay_of(lot, vt, entry, exit));
            }
        }
    }
    events
}

#[tokio::test]
async fn incremental_runs_under_late_and_out_of_order_events_equal_a_full_recompute() {
    let events = history(7);
    let end = t("2026-06-08T00:00:00Z");
    // Delivery: every 6 hours, what happened by then, except that one event in eight is held
    // back 1 to 50 hours (and so lands in an earlier day's partition, sometimes before the
    // check-in of its own exit, sometimes in a batch of its own).
    let mut rng = Lcg(99);
    let mut deliver_at: BTreeMap<DateTime<Utc>, Vec<Event>> = BTreeMap::new();
    for e in &events {
        let mut at = e.occurred_at;
        if rng.next(8) == 0 {
            at += Duration::hours(1 + rng.next(50) as i64);
        }
        let slot = t("2026-06-01T00:00:00Z")
            + Duration::hours(6 * ((at - t("2026-06-01T00:00:00Z")).num_hours() / 6 + 1));
        deliver_at.entry(slot.min(end)).or_default().push(e.clone());
    }
    let (_d, lake) = lake_with(&[]);
    let mut incremental_runs = 0;
    let mut kept = 0;
    for (as_of, batch) in &deliver_at {
        let mut batch = batch.clone();
        batch.reverse();
        append(&lake, &batch);
        let r = refresh(&lake, *as_of).await.unwrap();
        if !r.occupancy.full {
            incremental_runs += 1;
            kept += r.occupancy.days_kept;
            assert!(
                r.occupancy.days.len() <= 3,
                "a run at {as_of} recomputed {:?}",
                r.occupancy.days
            );
        }
    }
    refresh(&lake, end).await.unwrap();
    assert!(incremental_runs > 20, "{incremental_runs} incremental runs");
    assert!(kept > 0, "some runs kept days a late event did not reach");

    let (_d2, full) = lake_with(&[events]);
    let r = refresh(&full, end).await.unwrap();
    assert!(r.occupancy.full);
    for table in [Table::Occupancy15m, Table::Occupancy15mVehicle] {
        let (a, b) = (rows_of(&lake, table), rows_of(&full, table));
        assert_eq!(a.len(), b.len(), "{}", table.name());
        assert!(a == b, "{} differs", table.name());
        let m = lake.manifest(Section::Derived).unwrap();
        assert_eq!(m.rows_of(table), a.len() as u64, "manifest row count");
    }
    assert_eq!(
        rows_of(&lake, Table::Occupancy15m).len(),
        7 * 96 * 2,
        "every bucket of both lots"
    );
}

#[tokio::test]
async fn vehicle_rows_add_up_to_the_lot_rows() {
    let (_d, lake) = lake_with(&[history(3)]);
    refresh(&lake, t("2026-06-08T00:00:00Z")).await.unwrap();
    let lots = occupancy(&lake);
    let mut sums: BTreeMap<(i64, i64), (i64, f64, i64, i64)> = BTreeMap::new();
    let mut types = std::collections::BTreeSet::new();
    for b in lake.read_table(Table::Occupancy15mVehicle).unwrap() {
        let c = |n: &str| b.column_by_name(n).unwrap().clone();
        for i in 0..b.num_rows() {
            let key = (
                c("lot_id").as_primitive::<Int64Type>().value(i),
                c("bucket_start")
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i),
            );
            types.insert(c("vehicle_type").as_string::<i32>().value(i).to_owned());
            let s = sums.entry(key).or_default();
            s.0 += c("cars_present").as_primitive::<Int64Type>().value(i);
            s.1 += c("avg_occupied").as_primitive::<Float64Type>().value(i);
            s.2 += c("arrivals").as_primitive::<Int64Type>().value(i);
            s.3 += c("departures").as_primitive::<Int64Type>().value(i);
        }
    }
    assert_eq!(types.len(), 3, "{types:?}");
    let mut busy = 0;
    for lot_row in &lots {
        // Lot ids are 1 and 2; the lot's capacity tells them apart here.
        let lot = if lot_row.capacity == 20 { 1 } else { 2 };
        let s = sums
            .get(&(lot, lot_row.start.timestamp_millis()))
            .copied()
            .unwrap_or_default();
        assert_eq!(
            (lot_row.present, lot_row.arrivals, lot_row.departures),
            (s.0, s.2, s.3)
        );
        assert!((lot_row.avg - s.1).abs() < 1e-9);
        busy += usize::from(s.0 > 0);
    }
    assert!(busy > 100, "the history keeps the lots busy");
}

#[tokio::test]
async fn a_late_event_recomputes_its_day_and_only_the_days_it_reaches() {
    let day = |n: u64| NaiveDate::from_ymd_opt(2026, 6, 1).unwrap() + Days::new(n);
    let at = |n: u64, hm: &str| t(&format!("{}T{hm}:00Z", day(n)));
    let mut events = vec![register(1, "UTC", 10, at(0, "00:00"))];
    for n in 0..10 {
        events.extend(stay(1, at(n, "08:00"), Some(at(n, "17:00"))));
    }
    // A stay open since day 7 whose exit on day 9 arrives late.
    let long = stay(1, at(7, "09:00"), Some(at(9, "10:00")));
    events.push(long[0].clone());
    let (_d, lake) = lake_with(&[events.clone()]);
    let as_of = t("2026-06-11T00:00:00Z");
    let first = refresh(&lake, as_of).await.unwrap();
    assert!(first.occupancy.full);
    assert_eq!(first.occupancy.days.len(), 10);
    let files_before = lake.manifest(Section::Derived).unwrap();

    // A whole stay of day 3 arrives late: day 3 changes, and nothing carried out of it does.
    let late = stay(1, at(3, "10:00"), Some(at(3, "11:00")));
    append(&lake, &late);
    let r = refresh(&lake, as_of).await.unwrap();
    assert!(!r.occupancy.full);
    assert_eq!(r.occupancy.days, vec![day(3)]);
    assert_eq!(r.occupancy.days_kept, 6, "days 4 to 9 kept");
    assert_eq!(r.occupancy_rows, 10 * 96);
    let files_after = lake.manifest(Section::Derived).unwrap();
    let in_day = |m: &warehouse_schema::lake::Manifest, d: NaiveDate| -> Vec<String> {
        m.files_of(Table::Occupancy15m)
            .iter()
            .filter(|f| Lake::file_date(f) == Some(d))
            .cloned()
            .collect()
    };
    assert_eq!(in_day(&files_before, day(2)), in_day(&files_after, day(2)));
    assert_ne!(in_day(&files_before, day(3)), in_day(&files_after, day(3)));

    // A stay from day 2 to day 5 arrives late: days 3 and 4 gained no files, but the stays
    // carried into them differ, so they are recomputed too; day 6 on are kept.
    let spanning = stay(1, at(2, "10:00"), Some(at(5, "12:00")));
    append(&lake, &spanning);
    let r = refresh(&lake, as_of).await.unwrap();
    assert_eq!(r.occupancy.days, vec![day(2), day(3), day(4), day(5)]);
    assert_eq!(r.occupancy.days_kept, 4, "days 6 to 9 kept");

    // The late exit of the long stay: it was open on days 7 and 8 either way, so only day 9
    // changes.
    append(&lake, &long[1..]);
    let r = refresh(&lake, as_of).await.unwrap();
    assert_eq!(r.occupancy.days, vec![day(9)]);
    events.extend(late);
    events.extend(spanning);
    events.push(long[1].clone());
    let (_d2, full) = lake_with(&[events]);
    refresh(&full, as_of).await.unwrap();
    assert_eq!(
        rows_of(&lake, Table::Occupancy15m),
        rows_of(&full, Table::Occupancy15m)
    );

    // Time moves on: only the new day is computed.
    let r = refresh(&lake, t("2026-06-12T00:00:00Z")).await.unwrap();
    assert_eq!(r.occupancy.days, vec![day(10)]);
    assert_eq!(r.occupancy_rows, 11 * 96);
}

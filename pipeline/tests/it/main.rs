//! Occupancy on hand-made stays: bucket spans, midnight, open stays, DST days, and events that
//! arrive out of order.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    Date32Type, Float64Type, Int32Type, Int64Type, TimestampMillisecondType,
};
use parkflow_pipeline::refresh;
use warehouse_schema::convert::events_to_batch;
use warehouse_schema::event::{CheckIn, Exit, LotRegistered};
use warehouse_schema::lake::Lake;
use warehouse_schema::tables::Section;
use warehouse_schema::*;

mod incremental;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Bucket {
    start: DateTime<Utc>,
    local_date: NaiveDate,
    time_key: i32,
    capacity: i32,
    present: i64,
    avg: f64,
    ratio: f64,
    arrivals: i64,
    departures: i64,
}

/// A lake written the way ingest writes it: each group of events is one commit, split into one
/// file per UTC event date.
fn lake_with(files: &[Vec<Event>]) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    for events in files {
        append(&lake, events);
    }
    (dir, lake)
}

/// Commit `events` to the ingested section as ingest would: a new version, a file per date.
fn append(lake: &Lake, events: &[Event]) {
    let mut m = lake.manifest(Section::Ingested).unwrap();
    m.version += 1;
    let mut by_date: std::collections::BTreeMap<NaiveDate, Vec<Event>> = Default::default();
    for e in events {
        by_date
            .entry(e.occurred_at.date_naive())
            .or_default()
            .push(e.clone());
    }
    for (part, (date, day)) in by_date.iter().enumerate() {
        let rel = Lake::data_file(Table::FactParkingEvent, Some(*date), m.version, part);
        lake.write_parquet(&rel, &[events_to_batch(day).unwrap()])
            .unwrap();
        m.files
            .entry("fact_parking_event".into())
            .or_default()
            .push(rel);
    }
    lake.commit(Section::Ingested, &m).unwrap();
}

fn register(lot: i64, tz: &str, capacity: i32, at: DateTime<Utc>) -> Event {
    Event::new(
        at,
        LotId(lot),
        EventPayload::LotRegistered(LotRegistered {
            name: format!("Lot {lot}"),
            time_zone: tz.into(),
            latitude: 0.0,
            longitude: 0.0,
            capacity,
        }),
    )
}

/// A car's check-in and (unless `exit` is None) its exit.
fn stay(lot: i64, entry: DateTime<Utc>, exit: Option<DateTime<Utc>>) -> Vec<Event> {
    stay_of(lot, VehicleType::Car, entry, exit)
}

fn stay_of(
    lot: i64,
    vehicle_type: VehicleType,
    entry: DateTime<Utc>,
    exit: Option<DateTime<Utc>>,
) -> Vec<Event> {
    let session = SessionId::new();
    let mut v = vec![Event::new(
        entry,
        LotId(lot),
        EventPayload::CheckIn(CheckIn {
            session_id: session,
            user_id: None,
            reservation_id: None,
            spot_id: Some(SpotId(1)),
            vehicle_type,
            method: EntryMethod::Nfc,
            monthly_pass_id: None,
        }),
    )];
    if let Some(x) = exit {
        v.push(Event::new(
            x,
            LotId(lot),
            EventPayload::Exit(Exit {
                session_id: session,
                duration_s: (x - entry).num_seconds(),
                amount_cents: Cents(100),
                currency: "EUR".into(),
            }),
        ));
    }
    v
}

fn occupancy(lake: &Lake) -> Vec<Bucket> {
    let batches: Vec<RecordBatch> = lake.read_table(Table::Occupancy15m).unwrap();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let mut out = Vec::new();
    for b in batches {
        let c = |n: &str| b.column_by_name(n).unwrap().clone();
        for i in 0..b.num_rows() {
            out.push(Bucket {
                start: DateTime::from_timestamp_millis(
                    c("bucket_start")
                        .as_primitive::<TimestampMillisecondType>()
                        .value(i),
                )
                .unwrap(),
                local_date: epoch
                    + Duration::days(c("local_date").as_primitive::<Date32Type>().value(i) as i64),
                time_key: c("local_time_key").as_primitive::<Int32Type>().value(i),
                capacity: c("capacity").as_primitive::<Int32Type>().value(i),
                present: c("cars_present").as_primitive::<Int64Type>().value(i),
                avg: c("avg_occupied").as_primitive::<Float64Type>().value(i),
                ratio: c("occupancy_ratio").as_primitive::<Float64Type>().value(i),
                arrivals: c("arrivals").as_primitive::<Int64Type>().value(i),
                departures: c("departures").as_primitive::<Int64Type>().value(i),
            });
        }
    }
    out
}

fn at<'a>(buckets: &'a [Bucket], start: &str) -> &'a Bucket {
    let s = t(start);
    buckets
        .iter()
        .find(|b| b.start == s)
        .unwrap_or_else(|| panic!("no bucket {start}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn a_stay_spanning_buckets_is_split_by_time() {
    let mut events = vec![register(1, "UTC", 10, t("2026-06-01T00:00:00Z"))];
    events.extend(stay(
        1,
        t("2026-06-01T08:05:00Z"),
        Some(t("2026-06-01T08:50:00Z")),
    ));
    let (_d, lake) = lake_with(&[events]);
    let r = refresh(&lake, t("2026-06-02T00:00:00Z")).await.unwrap();
    assert_eq!((r.stays, r.open_stays, r.lots), (1, 0, 1));
    let o = occupancy(&lake);
    assert_eq!(o.len(), 96, "one full day of buckets");
    let b = at(&o, "2026-06-01T08:00:00Z");
    assert!(close(b.avg, 10.0 / 15.0) && b.present == 0 && b.arrivals == 1 && b.departures == 0);
    assert!(close(b.ratio, 10.0 / 15.0 / 10.0));
    for s in ["2026-06-01T08:15:00Z", "2026-06-01T08:30:00Z"] {
        let b = at(&o, s);
        assert!(close(b.avg, 1.0) && b.present == 1 && b.arrivals == 0);
    }
    let b = at(&o, "2026-06-01T08:45:00Z");
    assert!(close(b.avg, 5.0 / 15.0) && b.present == 1 && b.departures == 1);
    assert!(
        close(o.iter().map(|b| b.avg).sum::<f64>(), 45.0 / 15.0),
        "car-time is conserved"
    );
    assert!(o.iter().all(|b| b.capacity == 10));
    assert_eq!(at(&o, "2026-06-01T08:45:00Z").time_key, 35);
}

#[tokio::test]
async fn a_stay_over_midnight_lands_on_both_days() {
    let mut events = vec![register(1, "UTC", 5, t("2026-06-01T00:00:00Z"))];
    events.extend(stay(
        1,
        t("2026-06-01T23:50:00Z"),
        Some(t("2026-06-02T00:20:00Z")),
    ));
    let (_d, lake) = lake_with(&[events]);
    refresh(&lake, t("2026-06-03T00:00:00Z")).await.unwrap();
    let o = occupancy(&lake);
    let late = at(&o, "2026-06-01T23:45:00Z");
    assert!(
        close(late.avg, 10.0 / 15.0)
            && late.local_date == NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    );
    let midnight = at(&o, "2026-06-02T00:00:00Z");
    assert!(close(midnight.avg, 1.0) && midnight.present == 1 && midnight.time_key == 0);
    assert_eq!(
        midnight.local_date,
        NaiveDate::from_ymd_opt(2026, 6, 2).unwrap()
    );
    let b = at(&o, "2026-06-02T00:15:00Z");
    assert!(close(b.avg, 5.0 / 15.0) && b.departures == 1);
}

#[tokio::test]
async fn an_open_stay_occupies_until_as_of() {
    let mut events = vec![register(1, "UTC", 2, t("2026-06-01T00:00:00Z"))];
    events.extend(stay(1, t("2026-06-01T10:00:00Z"), None));
    // An exit after as_of is not yet known at as_of.
    events.extend(stay(
        1,
        t("2026-06-01T10:30:00Z"),
        Some(t("2026-06-01T12:00:00Z")),
    ));
    let (_d, lake) = lake_with(&[events]);
    let r = refresh(&lake, t("2026-06-01T11:00:00Z")).await.unwrap();
    assert_eq!((r.stays, r.open_stays), (2, 2));
    let o = occupancy(&lake);
    assert_eq!(
        o.last().unwrap().start,
        t("2026-06-01T10:45:00Z"),
        "only complete buckets"
    );
    assert!(close(at(&o, "2026-06-01T10:00:00Z").avg, 1.0));
    assert!(close(at(&o, "2026-06-01T10:45:00Z").avg, 2.0));
    assert!(close(at(&o, "2026-06-01T10:45:00Z").ratio, 1.0));
    assert_eq!(o.iter().map(|b| b.departures).sum::<i64>(), 0);
}

#[tokio::test]
async fn dst_days_have_23_and_25_local_hours() {
    // Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls back on 2026-10-25.
    let mut events = vec![register(1, "Europe/Berlin", 3, t("2026-03-28T00:00:00Z"))];
    // 00:30 → 04:30 local on the spring day is three hours, not four.
    events.extend(stay(
        1,
        t("2026-03-28T23:30:00Z"),
        Some(t("2026-03-29T02:30:00Z")),
    ));
    let (_d, lake) = lake_with(&[events.clone()]);
    refresh(&lake, t("2026-03-31T00:00:00Z")).await.unwrap();
    let o = occupancy(&lake);
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    let spring: Vec<&Bucket> = o.iter().filter(|b| b.local_date == day).collect();
    assert_eq!(spring.len(), 92);
    assert!(
        close(spring.iter().map(|b| b.avg).sum::<f64>(), 12.0),
        "three hours of one car"
    );
    // Local time keys skip 02:00–03:00.
    assert!(!spring.iter().any(|b| (8..12).contains(&b.time_key)));
    assert_eq!(
        at(&o, "2026-03-29T01:00:00Z").time_key,
        12,
        "01:00Z is 03:00 CEST"
    );

    let autumn = vec![register(1, "Europe/Berlin", 3, t("2026-10-24T00:00:00Z"))];
    let (_d2, lake2) = lake_with(&[autumn]);
    refresh(&lake2, t("2026-10-27T00:00:00Z")).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let o2 = occupancy(&lake2);
    assert_eq!(o2.iter().filter(|b| b.local_date == day).count(), 100);
    // 02:00–03:00 local happens twice.
    assert_eq!(
        o2.iter()
            .filter(|b| b.local_date == day && b.time_key == 8)
            .count(),
        2
    );
}

#[tokio::test]
async fn event_order_across_files_does_not_matter() {
    let reg = register(1, "UTC", 4, t("2026-06-01T00:00:00Z"));
    let a = stay(
        1,
        t("2026-06-01T09:00:00Z"),
        Some(t("2026-06-01T11:10:00Z")),
    );
    let b = stay(
        1,
        t("2026-06-01T09:20:00Z"),
        Some(t("2026-06-01T09:40:00Z")),
    );
    let in_order = vec![
        reg.clone(),
        a[0].clone(),
        b[0].clone(),
        b[1].clone(),
        a[1].clone(),
    ];
    // Exits land in an earlier file than their check-ins; the registration comes last.
    let shuffled = [
        vec![a[1].clone(), b[1].clone()],
        vec![b[0].clone(), a[0].clone()],
        vec![reg],
    ];
    let (_d1, l1) = lake_with(&[in_order]);
    let (_d2, l2) = lake_with(&shuffled);
    let as_of = t("2026-06-02T00:00:00Z");
    refresh(&l1, as_of).await.unwrap();
    refresh(&l2, as_of).await.unwrap();
    let (o1, o2) = (occupancy(&l1), occupancy(&l2));
    assert_eq!(o1.len(), o2.len());
    for (x, y) in o1.iter().zip(&o2) {
        assert_eq!(
            (x.start, x.present, x.arrivals, x.departures),
            (y.start, y.present, y.arrivals, y.departures)
        );
        assert!(close(x.avg, y.avg));
    }
    assert_eq!(at(&o1, "2026-06-01T09:30:00Z").present, 2);
}

#[tokio::test]
async fn refresh_replaces_derived_tables_and_feeds_queries() {
    let mut events = vec![register(1, "UTC", 2, t("2026-06-01T00:00:00Z"))];
    events.extend(stay(
        1,
        t("2026-06-01T08:00:00Z"),
        Some(t("2026-06-01T10:00:00Z")),
    ));
    let (_d, lake) = lake_with(&[events]);
    refresh(&lake, t("2026-06-02T00:00:00Z")).await.unwrap();
    refresh(&lake, t("2026-06-02T00:00:00Z")).await.unwrap();
    let m = lake.manifest(Section::Derived).unwrap();
    assert_eq!(
        m.files_of(Table::Occupancy15m).len(),
        1,
        "the second run replaced the first"
    );
    assert_eq!(m.rows_of(Table::DimTime), 96);
    let files = std::fs::read_dir(lake.table_dir(Table::Occupancy15m))
        .unwrap()
        .count();
    assert_eq!(files, 1, "replaced files are deleted");

    let bands = parkflow_pipeline::band_occupancy(
        &lake,
        t("2026-06-01T00:00:00Z"),
        t("2026-06-02T00:00:00Z"),
    )
    .await
    .unwrap();
    let morning = bands.iter().find(|b| b.band == TimeBand::Morning).unwrap();
    // One of two spots for 2 of the 4 morning hours (07–11): mean 0.25, peak 0.5.
    assert!(close(morning.mean_occupancy, 0.25), "{morning:?}");
    assert!(close(morning.peak_occupancy, 0.5));
    assert_eq!(morning.day_kind, DayKind::Weekday, "2026-06-01 is a Monday");

    let hours = parkflow_pipeline::lot_hours(&lake).await.unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[8].arrivals, 1.0);
    assert_eq!(hours[8].local_weekday, 0);
    // The most cars present at the hour's quarter-hour marks: the car, from 08:00 to 10:00.
    let peaks: Vec<f64> = hours[7..=10].iter().map(|h| h.peak_present).collect();
    assert_eq!(peaks, [0.0, 1.0, 1.0, 0.0]);

    let s = parkflow_pipeline::usage_summary(&lake).await.unwrap();
    assert_eq!((s.stays, s.revenue_cents), (1, 100));
    assert_eq!(s.lots[0].peak_local, "2026-06-01 08:00");
    assert!(close(s.lots[0].peak_occupancy, 0.5));
}

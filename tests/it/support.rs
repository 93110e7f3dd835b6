//! Helpers shared by the integration tests.

use arrow::array::{AsArray, RecordBatch};
use std::collections::HashSet;
use warehouse_schema::Table;
use warehouse_schema::convert::batch_to_events;
use warehouse_schema::lake::Lake;

/// Every event id in the committed lake, and how many rows there were.
pub fn lake_event_ids(lake: &Lake) -> (usize, HashSet<String>) {
    let batches: Vec<RecordBatch> = lake.read_table(Table::FactParkingEvent).unwrap();
    let mut rows = 0;
    let mut ids = HashSet::new();
    for b in &batches {
        for e in batch_to_events(b).unwrap() {
            rows += 1;
            ids.insert(e.event_id.to_string());
        }
    }
    (rows, ids)
}

/// The `reason` column of every committed dead letter.
pub fn dead_letter_reasons(lake: &Lake) -> Vec<String> {
    lake.read_table(Table::DeadLetters)
        .unwrap()
        .iter()
        .flat_map(|b| {
            let reasons = b
                .column_by_name("reason")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..b.num_rows())
                .map(move |i| reasons.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A lot in UTC with `cars` car spots at $1.00 an hour.
pub fn test_lot(name: &str, cars: u32) -> parkflow_api::services::NewLot {
    parkflow_api::services::NewLot {
        ev_spots_open_to_cars: false,
        name: name.into(),
        time_zone: "UTC".into(),
        latitude: 0.0,
        longitude: 0.0,
        currency: "USD".into(),
        default_cents_per_hour: 100,
        spots: std::collections::BTreeMap::from([(warehouse_schema::VehicleType::Car, cars)]),
    }
}

/// The address of a real server `scripts/test` started, from `var`. In CI a missing one fails
/// the test; elsewhere the test says what it skipped.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set in CI: scripts/test must start the services")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (run ./scripts/test to start the real servers)");
            None
        }
    }
}

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

/// Headless Chromium and the browser scripts of `tests/e2e/` (playwright-core), as
/// `scripts/test` installs them.
pub struct Browser {
    chromium: String,
    scripts: String,
}

impl Browser {
    /// The browser, or None outside CI when it is not installed (in CI: the test fails).
    pub fn available() -> Option<Self> {
        Some(Self {
            chromium: service("PARKFLOW_TEST_CHROMIUM")?,
            scripts: service("PARKFLOW_TEST_E2E_DIR")?,
        })
    }

    /// Run `tests/e2e/<script>` with `env` (and `CHROMIUM`, and `SCREENSHOT_DIR` = the
    /// test's `shots` folder under the target's tmp dir), within three minutes; the test fails
    /// if the script does. What the script printed last (its JSON line), and the shots' folder.
    pub async fn run(
        &self,
        script: &str,
        shots: &str,
        env: &[(&str, &str)],
    ) -> (serde_json::Value, std::path::PathBuf) {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(shots);
        std::fs::create_dir_all(&dir).unwrap();
        let mut node = tokio::process::Command::new("node");
        node.arg(script)
            .current_dir(&self.scripts)
            .env("CHROMIUM", &self.chromium)
            .env("SCREENSHOT_DIR", &dir)
            .kill_on_drop(true);
        for (name, value) in env {
            node.env(name, value);
        }
        let run = tokio::time::timeout(std::time::Duration::from_secs(180), node.output())
            .await
            .expect("the browser run finished within 3 minutes")
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{script} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let last = stdout.lines().rfind(|l| !l.is_empty()).unwrap_or("null");
        (serde_json::from_str(last).unwrap_or_default(), dir)
    }
}

/// `state`'s API, portal and pages on a loopback port, as `parkflow serve` runs them (with the
/// client's address): the base URL, and the server's task (abort it when done).
pub async fn serve_on_loopback(
    state: parkflow_api::AppState,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = parkflow_api::router(state)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), server)
}

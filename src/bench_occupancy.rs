//! `parkflow bench occupancy`: a year-scale lake, the occupancy job timed on it, and DuckDB
//! timed on the same Parquet files with the same SQL semantics; the two results are compared
//! row by row.
//!
//! The job and DuckDB each run in a process of their own, so each one's peak memory is its own
//! (read from `/proc/self/status` and `getrusage`).

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use warehouse_schema::convert::events_to_batch;
use warehouse_schema::event::{CheckIn, Exit, LotRegistered};
use warehouse_schema::lake::Lake;
use warehouse_schema::tables::Section;
use warehouse_schema::{
    Cents, EntryMethod, Event, EventPayload, LotId, SessionId, SpotId, Table, VehicleType,
};

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccupancyBench {
    pub events: u64,
    pub lots: i64,
    pub spots: i64,
    pub days: u32,
    /// The lake's directory; kept between runs and reused when it holds this same lake.
    pub dir: PathBuf,
    /// A Python with the `duckdb` package.
    pub python: String,
}

/// The DuckDB side of the benchmark, run by `python`.
const DUCKDB_SCRIPT: &str = include_str!("../scripts/bench/occupancy_duckdb.py");

const START: &str = "2025-01-01T00:00:00Z";

/// The job's own figures, printed as one JSON line by `bench occupancy-job`.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobFigures {
    pub seconds: f64,
    pub peak_rss_kb: u64,
    pub days: usize,
    pub lot_rows: u64,
    pub vehicle_rows: u64,
}

#[derive(Debug, Deserialize)]
struct DuckFigures {
    seconds: f64,
    peak_rss_kb: u64,
    duckdb: String,
    vehicle_rows: [u64; 2],
    vehicle_mismatches: u64,
    lot_rows: [u64; 2],
    lot_mismatches: u64,
}

pub async fn occupancy(opts: OccupancyBench) -> anyhow::Result<String> {
    let lake = Lake::new(opts.dir.join("lake"));
    let as_of = start() + Duration::days(i64::from(opts.days));
    let mut out = String::new();
    let marker = opts.dir.join("bench.json");
    let reuse = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<OccupancyBench>(&b).ok())
        .is_some_and(|m| m == opts);
    if reuse {
        out += &format!("lake: reused {}\n", lake.root().display());
    } else {
        let _ = std::fs::remove_dir_all(&opts.dir);
        std::fs::create_dir_all(&opts.dir).context("bench directory")?;
        let t = Instant::now();
        let written = generate(&lake, &opts)?;
        out += &format!(
            "lake: generated {written} events ({} lots × {} spots, {} days) in {:.1} s\n",
            opts.lots,
            opts.spots,
            opts.days,
            t.elapsed().as_secs_f64()
        );
        std::fs::write(&marker, serde_json::to_vec(&opts)?)?;
    }
    let size = dir_size(&lake.table_dir(Table::FactParkingEvent));
    out += &format!(
        "fact_parking_event: {} rows, {:.2} GB of Parquet\n",
        lake.manifest(Section::Ingested)?
            .rows_of(Table::FactParkingEvent),
        size as f64 / 1e9
    );

    // A clean derived section: the job runs in full, as on a new lake.
    clear_derived(&lake)?;
    let exe = std::env::current_exe().context("own executable")?;
    let t = Instant::now();
    let child = Command::new(exe)
        .args(["bench", "occupancy-job", "--lake"])
        .arg(lake.root())
        .args(["--as-of", &as_of.to_rfc3339()])
        .output()
        .context("run the occupancy job")?;
    anyhow::ensure!(
        child.status.success(),
        "the occupancy job failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let ours: JobFigures =
        serde_json::from_slice(last_line(&child.stdout)).context("the occupancy job's figures")?;
    let wall = t.elapsed().as_secs_f64();

    let script = opts.dir.join("occupancy_duckdb.py");
    std::fs::write(&script, DUCKDB_SCRIPT)?;
    let duck_out = opts.dir.join("duckdb");
    let _ = std::fs::remove_dir_all(&duck_out);
    let child = Command::new(&opts.python)
        .arg(&script)
        .arg(lake.root())
        .arg(as_of.timestamp_millis().to_string())
        .arg(&duck_out)
        .output()
        .with_context(|| format!("run {} (is the duckdb package installed?)", opts.python))?;
    anyhow::ensure!(
        child.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let duck: DuckFigures =
        serde_json::from_slice(last_line(&child.stdout)).context("DuckDB's figures")?;

    out += &format!(
        "parkflow occupancy job (DataFusion, a day at a time): {:.1} s ({wall:.1} s with start-up), \
         peak RSS {:.0} MB, {} days, {} lot rows, {} vehicle rows\n",
        ours.seconds,
        ours.peak_rss_kb as f64 / 1024.0,
        ours.days,
        ours.lot_rows,
        ours.vehicle_rows
    );
    out += &format!(
        "DuckDB {} (same SQL semantics, 2 threads): {:.1} s, peak RSS {:.0} MB\n",
        duck.duckdb,
        duck.seconds,
        duck.peak_rss_kb as f64 / 1024.0
    );
    out += &format!(
        "ratio parkflow / DuckDB: {:.2}× (goal ≤ 1.5×)\n",
        ours.seconds / duck.seconds
    );
    out += &format!(
        "agreement: vehicle rows {} vs {}, {} differ; lot rows {} vs {}, {} differ\n",
        duck.vehicle_rows[0],
        duck.vehicle_rows[1],
        duck.vehicle_mismatches,
        duck.lot_rows[0],
        duck.lot_rows[1],
        duck.lot_mismatches
    );
    anyhow::ensure!(
        duck.vehicle_mismatches == 0
            && duck.lot_mismatches == 0
            && duck.vehicle_rows[0] == duck.vehicle_rows[1]
            && duck.lot_rows[0] == duck.lot_rows[1]
            && duck.vehicle_rows[0] == ours.vehicle_rows,
        "parkflow and DuckDB disagree:\n{out}"
    );
    Ok(out)
}

/// `bench occupancy-job`: the occupancy job alone on `lake`, its figures as one JSON line.
pub async fn job(lake: &Path, as_of: DateTime<Utc>) -> anyhow::Result<String> {
    let lake = Lake::new(lake);
    let t = Instant::now();
    let run = parkflow_pipeline::refresh_occupancy(&lake, as_of).await?;
    let figures = JobFigures {
        seconds: t.elapsed().as_secs_f64(),
        peak_rss_kb: peak_rss_kb(),
        days: run.days.len(),
        lot_rows: run.lot_rows,
        vehicle_rows: run.vehicle_rows,
    };
    Ok(serde_json::to_string(&figures)?)
}

fn start() -> DateTime<Utc> {
    START.parse().expect("valid time")
}

/// Write the lake the way ingest does: lot registrations, then each day's check-ins and exits
/// in that day's `event_date` partition, one commit at the end. Returns the events written.
///
/// Stays: commuters arrive around 08:30 and stay about 8.5 h; visitors arrive from 06:00 to
/// 22:00 and stay 15 min to 4 h; one in thirty stays overnight. 80 % cars, 10 % EVs, 7 % vans,
/// 3 % motorcycles. Stays still open at the end have no exit.
fn generate(lake: &Lake, opts: &OccupancyBench) -> anyhow::Result<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2025);
    let day0 = start();
    let stays_per_day =
        (opts.events.saturating_sub(opts.lots as u64) / 2 / u64::from(opts.days)).max(1) as usize;
    let mut manifest = lake.manifest(Section::Ingested)?;
    manifest.version += 1;
    let mut written = 0u64;
    let mut pending: std::collections::BTreeMap<NaiveDate, Vec<Event>> = Default::default();
    let mut registrations: Vec<Event> = (1..=opts.lots)
        .map(|lot| {
            Event::new(
                day0,
                LotId(lot),
                EventPayload::LotRegistered(LotRegistered {
                    name: format!("Lot {lot}"),
                    time_zone: "UTC".into(),
                    latitude: 0.0,
                    longitude: 0.0,
                    capacity: opts.spots as i32,
                }),
            )
        })
        .collect();
    for d in 0..opts.days {
        let day = day0 + Duration::days(i64::from(d));
        let date = day.date_naive();
        let mut events = std::mem::take(&mut registrations);
        events.extend(pending.remove(&date).unwrap_or_default());
        for _ in 0..stays_per_day {
            let (entry, stay_s) = draw_stay(&mut rng, day);
            let lot = LotId(rng.random_range(1..=opts.lots));
            let session = SessionId::new();
            let vehicle_type = match rng.random_range(0..100) {
                0..80 => VehicleType::Car,
                80..90 => VehicleType::Ev,
                90..97 => VehicleType::Van,
                _ => VehicleType::Motorcycle,
            };
            events.push(Event::new(
                entry,
                lot,
                EventPayload::CheckIn(CheckIn {
                    session_id: session,
                    user_id: None,
                    reservation_id: None,
                    spot_id: Some(SpotId(lot.0 * 1_000 + rng.random_range(1..=opts.spots))),
                    vehicle_type,
                    method: EntryMethod::Qr,
                    monthly_pass_id: None,
                }),
            ));
            let exit_at = entry + Duration::seconds(stay_s);
            let exit = Event::new(
                exit_at,
                lot,
                EventPayload::Exit(Exit {
                    session_id: session,
                    duration_s: stay_s,
                    amount_cents: Cents(stay_s / 12),
                    currency: "USD".into(),
                }),
            );
            if exit_at.date_naive() == date {
                events.push(exit);
            } else {
                pending.entry(exit_at.date_naive()).or_default().push(exit);
            }
        }
        let rel = Lake::data_file(Table::FactParkingEvent, Some(date), manifest.version, 0);
        let rows = lake.write_parquet(&rel, &[events_to_batch(&events)?])?;
        written += rows;
        manifest
            .files
            .entry(Table::FactParkingEvent.name().to_owned())
            .or_default()
            .push(rel);
        *manifest
            .rows
            .entry(Table::FactParkingEvent.name().to_owned())
            .or_default() += rows;
    }
    manifest.lots.extend(1..=opts.lots);
    lake.commit(Section::Ingested, &manifest)?;
    Ok(written)
}

/// One stay starting on `day`: its entry and its length in seconds.
fn draw_stay(rng: &mut ChaCha8Rng, day: DateTime<Utc>) -> (DateTime<Utc>, i64) {
    let (entry_min, stay_min) = match rng.random_range(0..30) {
        0 => (
            rng.random_range(17 * 60..23 * 60),
            rng.random_range(10 * 60..36 * 60),
        ),
        1..=12 => {
            let around = 8 * 60 + 30 + rng.random_range(-75..=75) + rng.random_range(-30..=30);
            (around, rng.random_range(7 * 60..10 * 60))
        }
        _ => (
            rng.random_range(6 * 60..22 * 60),
            rng.random_range(15..4 * 60),
        ),
    };
    let entry = day + Duration::minutes(entry_min) + Duration::seconds(rng.random_range(0..60));
    (entry, stay_min * 60 + rng.random_range(0..60))
}

fn clear_derived(lake: &Lake) -> anyhow::Result<()> {
    for table in Section::Derived.tables() {
        let _ = std::fs::remove_dir_all(lake.table_dir(table));
    }
    let _ = std::fs::remove_file(lake.root().join(Section::Derived.manifest_file()));
    Ok(())
}

fn last_line(bytes: &[u8]) -> &[u8] {
    let trimmed = bytes.trim_ascii_end();
    match trimmed.iter().rposition(|b| *b == b'\n') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// This process's peak resident memory (`VmHWM`), in kB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

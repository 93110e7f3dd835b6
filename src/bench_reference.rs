//! The yardsticks `parkflow bench api` prints its booking rate against, measured in the same run
//! on the same machine: the same work — check that a spot is free for a window, insert the
//! reservation, append an outbox row, commit — done as plainly as the database allows.
//!
//! - SQLite: Python's `sqlite3` module (the C library with nothing between), on a fresh file
//!   with the store's settings (WAL, `synchronous = NORMAL`), one transaction after another.
//!   Its rate is that of the transactions that booked, each timed: a transaction that finds
//!   the spot taken only reads and commits nothing (about 4 in 10 of them, as its random spot
//!   fills), and counting those made its rate about 1.5 times its booking rate.
//! - PostgreSQL: `pgbench` with a script of the same statements (the insert under an exclusion
//!   constraint like the store's), 32 clients, against the server the bench used. Its
//!   transactions run the same statements whether the window was free or not (a taken window's
//!   insert meets the constraint and inserts nothing; the outbox row is written either way),
//!   so its rate is every transaction's.
//!
//! Only the transactions are timed: Python times its loop and each transaction, and pgbench's
//! rate is the one "without initial connection time". The references keep to tables of their
//! own (`event_log` has the outbox's shape; parkflow's outbox table is named by
//! `parkflow-outbox` alone).

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// The same work as one booking, in Python's sqlite3. Arguments: file, transactions, spots.
/// Prints "transactions created seconds booking-seconds": the whole loop's time, and the time
/// of the transactions that booked.
const SQLITE_SCRIPT: &str = r#"
import json, random, sqlite3, sys, time, uuid
path, n, spots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = NORMAL")
db.executescript("""
CREATE TABLE reservations (id TEXT PRIMARY KEY, spot_id INTEGER NOT NULL, start_at INTEGER NOT NULL,
                           end_at INTEGER NOT NULL, status TEXT NOT NULL);
CREATE INDEX holding ON reservations(spot_id, start_at, end_at) WHERE status IN ('active', 'checked_in');
CREATE TABLE event_log (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
                     payload TEXT NOT NULL, published_at INTEGER);
""")
rng = random.Random(7)
hour = 3_600_000
created = 0
booking = 0.0
started = time.perf_counter()
for i in range(n):
    spot = rng.randrange(1, spots + 1)
    start = rng.randrange(0, 144) * hour
    end = start + rng.randrange(1, 5) * hour
    began = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    taken = db.execute(
        "SELECT 1 FROM reservations WHERE spot_id = ? AND status IN ('active', 'checked_in')"
        " AND start_at < ? AND end_at > ? LIMIT 1", (spot, end, start)).fetchone()
    if taken is None:
        rid = str(uuid.uuid4())
        db.execute("INSERT INTO reservations VALUES (?, ?, ?, ?, 'active')", (rid, spot, start, end))
        event = {"type": "reservation_created", "reservation_id": rid, "spot_id": spot,
                 "start_at": start, "end_at": end}
        db.execute("INSERT INTO event_log (event_id, payload) VALUES (?, ?)",
                   (str(uuid.uuid4()), json.dumps(event)))
    db.execute("COMMIT")
    if taken is None:
        created += 1
        booking += time.perf_counter() - began
print(n, created, time.perf_counter() - started, booking)
"#;

/// The same work in pgbench's language: a random spot and window, check, insert under the
/// exclusion constraint (a taken window inserts nothing), outbox row.
const PGBENCH_SCRIPT: &str = r#"\set spot random(1, 200)
\set start random(0, 143) * 3600000
\set len random(1, 4) * 3600000
BEGIN;
SELECT 1 FROM bench_ref_reservations WHERE spot_id = :spot AND during && int8range(:start, :start + :len) LIMIT 1;
INSERT INTO bench_ref_reservations (spot_id, during) VALUES (:spot, int8range(:start, :start + :len)) ON CONFLICT DO NOTHING;
INSERT INTO bench_ref_event_log (payload) VALUES ('{"type":"reservation_created"}');
END;
"#;

/// The tables pgbench books into, made afresh in the bench's database (by psql).
const PG_SCHEMA: &str = "CREATE EXTENSION IF NOT EXISTS btree_gist;
DROP TABLE IF EXISTS bench_ref_reservations, bench_ref_event_log;
CREATE TABLE bench_ref_reservations (id BIGSERIAL PRIMARY KEY, spot_id INT NOT NULL,
    during INT8RANGE NOT NULL, EXCLUDE USING gist (spot_id WITH =, during WITH &&));
CREATE TABLE bench_ref_event_log (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL);";

/// What the SQLite reference measured.
#[derive(Debug, Clone, Copy)]
pub struct SqliteRate {
    /// Every transaction, booked or refused, per second of the whole loop.
    pub transactions_per_s: f64,
    /// Bookings (check, insert, outbox row, commit) per second of their own time.
    pub bookings_per_s: f64,
}

/// The same work in Python's sqlite3 on a fresh file in `dir`.
pub fn sqlite(dir: &Path, transactions: usize, spots: u32) -> anyhow::Result<SqliteRate> {
    let line = run(
        Command::new("python3")
            .arg("-c")
            .arg(SQLITE_SCRIPT)
            .arg(dir.join("reference.db"))
            .arg(transactions.to_string())
            .arg(spots.to_string()),
        "the SQLite reference (python3)",
    )?;
    sqlite_rate(&line).with_context(|| format!("the SQLite reference printed {line:?}"))
}

/// "transactions created seconds booking-seconds" as rates.
fn sqlite_rate(line: &str) -> anyhow::Result<SqliteRate> {
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match fields[..] {
        [n, created, seconds, booking] if seconds > 0.0 && booking > 0.0 && created > 0.0 => {
            Ok(SqliteRate {
                transactions_per_s: n / seconds,
                bookings_per_s: created / booking,
            })
        }
        _ => bail!("not four positive figures"),
    }
}

/// Transactions per second of the same work by pgbench, `clients` at once for `seconds`, on
/// fresh tables of its own (`bench_ref_*`) in the database at `url`.
pub fn postgres(dir: &Path, url: &str, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    run(
        Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", "-c", PG_SCHEMA, url]),
        "the PostgreSQL reference's tables (psql)",
    )?;
    let script = dir.join("reference.pgbench");
    std::fs::write(&script, PGBENCH_SCRIPT)?;
    let text = run(
        Command::new(pgbench()?)
            .args(["-n", "-c", &clients.to_string(), "-j", "2"])
            .args(["-T", &seconds.to_string(), "-f"])
            .arg(&script)
            .arg(url),
        "the PostgreSQL reference (pgbench)",
    )?;
    tps_without_connections(&text).with_context(|| format!("pgbench printed {text}"))
}

/// Run `command` to its end: what it printed, or an error naming `what` with its output.
fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{what} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// pgbench's `tps = N (without initial connection time)`.
fn tps_without_connections(report: &str) -> anyhow::Result<f64> {
    let line = report
        .lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection time"))
        .context("no tps line")?;
    let number = line["tps = ".len()..]
        .split_whitespace()
        .next()
        .context("no number")?;
    Ok(number.parse()?)
}

/// pgbench on PATH, else beside the newest installed PostgreSQL server.
fn pgbench() -> anyhow::Result<std::path::PathBuf> {
    if Command::new("pgbench").arg("--version").output().is_ok() {
        return Ok("pgbench".into());
    }
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .context("pgbench is not on PATH and no PostgreSQL is installed")?
        .filter_map(|e| Some(e.ok()?.path().join("bin/pgbench")))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().context("no pgbench found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_rate_is_the_one_without_connection_time() {
        let report = "number of transactions actually processed: 38720\n\
                      latency average = 8.263 ms\n\
                      initial connection time = 30.517 ms\n\
                      tps = 3872.512345 (without initial connection time)\n";
        assert_eq!(tps_without_connections(report).unwrap(), 3872.512345);
        assert!(tps_without_connections("tps = 12 (including connections)\n").is_err());
    }

    #[test]
    fn the_sqlite_reference_books_and_reports_a_rate() {
        let dir = tempfile::tempdir().unwrap();
        let rate = sqlite(dir.path(), 200, 20).unwrap();
        assert!(rate.transactions_per_s > 0.0, "{rate:?}");
        assert!(rate.bookings_per_s > 0.0, "{rate:?}");
    }

    /// The booking rate is the booked transactions over their own time, not over the loop's.
    #[test]
    fn the_sqlite_booking_rate_leaves_the_refused_transactions_out() {
        let rate = sqlite_rate("1000 600 0.5 0.4").unwrap();
        assert_eq!(rate.transactions_per_s, 2000.0);
        assert_eq!(rate.bookings_per_s, 1500.0);
        assert!(sqlite_rate("1000 0 0.5 0.0").is_err());
        assert!(sqlite_rate("1000 600 0.5").is_err());
    }
}

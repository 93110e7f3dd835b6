//! The scheduler of periodic jobs (ingest, refresh, pricing, …). It only starts jobs: each job
//! is a closure owned by its crate's wiring, on a [`Schedule`] (a fixed interval or a cron
//! expression). A job runs in its own loop, so it never overlaps itself in one process; with a
//! state directory it holds a lock file while it runs, so it does not overlap itself across
//! processes either (a run that finds the lock taken is recorded as skipped). A failed run is
//! retried with exponential backoff; every attempt is recorded, in memory and, with a state
//! directory, appended to `runs.jsonl` there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// When a job runs: every fixed interval, or at the times a cron expression names (UTC).
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron {
        expression: String,
        schedule: Box<cron::Schedule>,
    },
}

impl Schedule {
    /// The first run time strictly after `t` (for an interval: `t` + the interval).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| t + d),
            Self::Cron { schedule, .. } => schedule.after(&t).next(),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Every(d) => write!(f, "every {} s", d.as_secs_f64()),
            Self::Cron { expression, .. } => write!(f, "cron {expression}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `every 30s` (`s`, `m`, `h`, `d`), or a cron expression: five fields (minute hour
    /// day-of-month month day-of-week), or six with seconds first.
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let bad = |why: String| Error::BadSchedule {
            schedule: s.to_owned(),
            why,
        };
        if let Some(every) = s.strip_prefix("every ") {
            let every = every.trim();
            let split = every
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| bad("the interval needs a unit: s, m, h or d".into()))?;
            let (n, unit) = every.split_at(split);
            let n: u64 = n
                .parse()
                .map_err(|_| bad("the interval must start with a number".into()))?;
            let secs = match unit.trim() {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86_400,
                other => return Err(bad(format!("unknown unit `{other}`; use s, m, h or d"))),
            };
            if secs == 0 {
                return Err(bad("the interval must be positive".into()));
            }
            return Ok(Self::Every(Duration::from_secs(secs)));
        }
        let fields = s.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {s}"),
            6 => s.to_owned(),
            _ => {
                return Err(bad(format!(
                    "a cron expression has 5 fields (minute hour day month weekday), this has {fields}"
                )));
            }
        };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| bad(e.to_string()))?;
        Ok(Self::Cron {
            expression: s.to_owned(),
            schedule: Box::new(schedule),
        })
    }
}

/// What a successful run did (rows written, events ingested, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOutcome {
    pub rows: u64,
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome, String>> + Send>>;
type JobFn = Arc<dyn Fn() -> JobFuture + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// Not run: the same job was running in another process.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job: String,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    pub rows: u64,
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no job named `{0}`")]
    UnknownJob(String),
    #[error("schedule `{schedule}`: {why}")]
    BadSchedule { schedule: String, why: String },
}

#[derive(Clone)]
struct Spec {
    name: String,
    schedule: Schedule,
    run: JobFn,
}

/// How failed runs are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// Keep this many run records in memory.
const HISTORY: usize = 1_000;

#[derive(Clone, Default)]
pub struct Scheduler {
    specs: Vec<Spec>,
    retry: RetryPolicy,
    history: Arc<Mutex<VecDeque<RunRecord>>>,
    /// Where run records are appended and lock files kept.
    state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "jobs",
                &self
                    .specs
                    .iter()
                    .map(|s| (&s.name, s.schedule.to_string()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Scheduler {
    pub fn new(retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..Self::default()
        }
    }

    /// Record runs in `dir/runs.jsonl` and hold `dir/<job>.lock` while a job runs.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Result<Self, std::io::Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        self.state_dir = Some(dir);
        Ok(self)
    }

    /// Register `run` to start on `schedule`.
    pub fn add<F, Fut>(&mut self, name: &str, schedule: Schedule, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<JobOutcome, String>> + Send + 'static,
    {
        self.specs.push(Spec {
            name: name.to_owned(),
            schedule,
            run: Arc::new(move || Box::pin(run())),
        });
    }

    pub fn jobs(&self) -> impl Iterator<Item = (&str, &Schedule)> {
        self.specs.iter().map(|s| (s.name.as_str(), &s.schedule))
    }

    /// Run one job now (with retries) and return its last attempt.
    pub async fn run_now(&self, name: &str) -> Result<RunRecord, Error> {
        let spec = self
            .specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownJob(name.to_owned()))?;
        Ok(self.run_with_retries(spec).await)
    }

    async fn run_with_retries(&self, spec: &Spec) -> RunRecord {
        // Held until this function returns: the run and its retries.
        let _lock = match self.lock(&spec.name) {
            Ok(lock) => lock,
            Err(why) => {
                let now = Utc::now();
                let record = RunRecord {
                    job: spec.name.clone(),
                    attempt: 0,
                    started_at: now,
                    finished_at: now,
                    status: RunStatus::Skipped,
                    rows: 0,
                    message: Some(why),
                };
                tracing::info!(job = %spec.name, "job skipped: running in another process");
                self.record(record.clone());
                return record;
            }
        };
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            let started_at = Utc::now();
            let result = (spec.run)().await;
            let record = RunRecord {
                job: spec.name.clone(),
                attempt,
                started_at,
                finished_at: Utc::now(),
                status: if result.is_ok() {
                    RunStatus::Succeeded
                } else {
                    RunStatus::Failed
                },
                rows: result.as_ref().map_or(0, |o| o.rows),
                message: result.as_ref().err().cloned(),
            };
            self.record(record.clone());
            match &result {
                Ok(_) => {
                    tracing::debug!(job = %spec.name, rows = record.rows, "job succeeded");
                    return record;
                }
                Err(e) if attempt >= self.retry.attempts => {
                    tracing::error!(job = %spec.name, attempt, error = %e, "job failed, giving up until next period");
                    return record;
                }
                Err(e) => {
                    tracing::warn!(job = %spec.name, attempt, error = %e, backoff_ms = backoff.as_millis() as u64, "job failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// The job's lock file, locked; None without a state directory. Err when another process
    /// holds it.
    fn lock(&self, job: &str) -> Result<Option<File>, String> {
        let Some(dir) = &self.state_dir else {
            return Ok(None);
        };
        let path = dir.join(format!("{job}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "running in another process (lock {})",
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    fn record(&self, r: RunRecord) {
        if let Some(dir) = &self.state_dir
            && let Err(e) = append_run(&dir.join(RUNS_FILE), &r)
        {
            tracing::warn!(job = %r.job, error = %e, "could not persist the run record");
        }
        let mut h = self.history.lock().expect("history lock");
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(r);
    }

    /// Every recorded attempt, oldest first.
    pub fn history(&self) -> Vec<RunRecord> {
        self.history
            .lock()
            .expect("history lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Start every job's loop; they stop when `shutdown` turns true.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.specs
            .iter()
            .cloned()
            .map(|spec| {
                let me = self.clone();
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move {
                    match &spec.schedule {
                        Schedule::Every(every) => {
                            let mut tick = tokio::time::interval(*every);
                            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                            loop {
                                tokio::select! {
                                    _ = tick.tick() => { me.run_with_retries(&spec).await; }
                                    _ = shutdown.changed() => break,
                                }
                                if *shutdown.borrow() {
                                    break;
                                }
                            }
                        }
                        Schedule::Cron { .. } => loop {
                            let Some(next) = spec.schedule.next_after(Utc::now()) else {
                                tracing::warn!(job = %spec.name, "the schedule names no future time");
                                break;
                            };
                            let wait = (next - Utc::now()).to_std().unwrap_or_default();
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => { me.run_with_retries(&spec).await; }
                                _ = shutdown.changed() => break,
                            }
                            if *shutdown.borrow() {
                                break;
                            }
                        },
                    }
                })
            })
            .collect()
    }
}

const RUNS_FILE: &str = "runs.jsonl";

fn append_run(path: &Path, r: &RunRecord) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)
}

/// The last `last` run records persisted in `state_dir` (oldest first); unreadable lines (a
/// torn last write) are left out.
pub fn persisted_runs(state_dir: &Path, last: usize) -> std::io::Result<Vec<RunRecord>> {
    let text = match std::fs::read_to_string(state_dir.join(RUNS_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let runs: Vec<RunRecord> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(runs[runs.len().saturating_sub(last)..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn failed_runs_are_retried_and_recorded() {
        let calls = Arc::new(AtomicU32::new(0));
        let mut s = Scheduler::new(quick());
        let c = calls.clone();
        s.add(
            "flaky",
            Schedule::Every(Duration::from_secs(60)),
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(format!("boom {n}"))
                    } else {
                        Ok(JobOutcome { rows: 7 })
                    }
                }
            },
        );
        let last = s.run_now("flaky").await.unwrap();
        assert_eq!(
            (last.attempt, last.status, last.rows),
            (3, RunStatus::Succeeded, 7)
        );
        let h = s.history();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].message.as_deref(), Some("boom 0"));
        assert!(matches!(s.run_now("nope").await, Err(Error::UnknownJob(_))));
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let mut s = Scheduler::new(quick());
        s.add(
            "broken",
            Schedule::Every(Duration::from_secs(60)),
            || async { Err("always".to_owned()) },
        );
        let last = s.run_now("broken").await.unwrap();
        assert_eq!((last.attempt, last.status), (3, RunStatus::Failed));
    }

    #[tokio::test]
    async fn a_job_never_overlaps_itself() {
        let running = Arc::new(AtomicU32::new(0));
        let max_seen = Arc::new(AtomicU32::new(0));
        let mut s = Scheduler::new(quick());
        let (r, m) = (running.clone(), max_seen.clone());
        s.add(
            "slow",
            Schedule::Every(Duration::from_millis(5)),
            move || {
                let (r, m) = (r.clone(), m.clone());
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                    Ok(JobOutcome::default())
                }
            },
        );
        let (tx, rx) = watch::channel(false);
        let handles = s.spawn(rx);
        tokio::time::sleep(Duration::from_millis(120)).await;
        tx.send(true).unwrap();
        for h in handles {
            h.await.unwrap();
        }
        assert!(s.history().len() >= 3);
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn schedules_parse_from_intervals_and_cron_expressions() {
        let t: DateTime<Utc> = "2026-06-01T10:07:30Z".parse().unwrap();
        let every: Schedule = "every 5m".parse().unwrap();
        assert_eq!(every.next_after(t), Some(t + chrono::Duration::minutes(5)));
        let quarter: Schedule = "*/15 * * * *".parse().unwrap();
        assert_eq!(
            quarter.next_after(t),
            Some("2026-06-01T10:15:00Z".parse().unwrap())
        );
        let nightly: Schedule = "30 2 * * *".parse().unwrap();
        assert_eq!(
            nightly.next_after(t),
            Some("2026-06-02T02:30:00Z".parse().unwrap())
        );
        let monthly: Schedule = "0 3 1 * *".parse().unwrap();
        assert_eq!(
            monthly.next_after(t),
            Some("2026-07-01T03:00:00Z".parse().unwrap())
        );
        for bad in [
            "every",
            "every 5",
            "every 0s",
            "every 5w",
            "* * *",
            "61 * * * *",
            "",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(matches!(e, Error::BadSchedule { .. }), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn runs_are_persisted_and_a_job_running_elsewhere_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let mut a = Scheduler::new(quick()).with_state_dir(dir.path()).unwrap();
        a.add(
            "report",
            Schedule::Every(Duration::from_secs(60)),
            move || {
                let rx = rx.clone();
                async move {
                    if let Some(rx) = rx.lock().await.take() {
                        rx.await.ok();
                    }
                    Ok(JobOutcome { rows: 5 })
                }
            },
        );
        // A second process (its own scheduler, same state directory) tries the same job while
        // the first one runs it.
        let mut b = Scheduler::new(quick()).with_state_dir(dir.path()).unwrap();
        b.add(
            "report",
            Schedule::Every(Duration::from_secs(60)),
            || async { Ok(JobOutcome { rows: 1 }) },
        );
        let running = tokio::spawn({
            let a = a.clone();
            async move { a.run_now("report").await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let skipped = b.run_now("report").await.unwrap();
        assert_eq!(skipped.status, RunStatus::Skipped);
        tx.send(()).unwrap();
        let done = running.await.unwrap();
        assert_eq!((done.status, done.rows), (RunStatus::Succeeded, 5));
        // Now free: the second process runs it.
        assert_eq!(
            b.run_now("report").await.unwrap().status,
            RunStatus::Succeeded
        );

        let runs = persisted_runs(dir.path(), 10).unwrap();
        let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                RunStatus::Skipped,
                RunStatus::Succeeded,
                RunStatus::Succeeded
            ]
        );
        assert_eq!(runs[1].rows, 5);
        assert!(runs[1].finished_at >= runs[1].started_at);
        assert_eq!(persisted_runs(dir.path(), 1).unwrap().len(), 1);
    }
}

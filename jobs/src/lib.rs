//! The scheduler of periodic jobs (ingest, refresh, pricing, …). It only starts jobs: each job
//! is a closure owned by its crate's wiring. A job runs in its own loop, so it never overlaps
//! itself; a failed run is retried with exponential backoff; every attempt is recorded.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a successful run did (rows written, events ingested, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOutcome {
    pub rows: u64,
}

pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome, String>> + Send>>;
type JobFn = Arc<dyn Fn() -> JobFuture + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
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
}

#[derive(Clone)]
struct Spec {
    name: String,
    every: Duration,
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
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field(
                "jobs",
                &self
                    .specs
                    .iter()
                    .map(|s| (&s.name, s.every))
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

    /// Register `run` to start every `every`.
    pub fn add<F, Fut>(&mut self, name: &str, every: Duration, run: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<JobOutcome, String>> + Send + 'static,
    {
        self.specs.push(Spec {
            name: name.to_owned(),
            every,
            run: Arc::new(move || Box::pin(run())),
        });
    }

    pub fn jobs(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.specs.iter().map(|s| (s.name.as_str(), s.every))
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

    fn record(&self, r: RunRecord) {
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
                    let mut tick = tokio::time::interval(spec.every);
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
                })
            })
            .collect()
    }
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
        s.add("flaky", Duration::from_secs(60), move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(format!("boom {n}"))
                } else {
                    Ok(JobOutcome { rows: 7 })
                }
            }
        });
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
        s.add("broken", Duration::from_secs(60), || async {
            Err("always".to_owned())
        });
        let last = s.run_now("broken").await.unwrap();
        assert_eq!((last.attempt, last.status), (3, RunStatus::Failed));
    }

    #[tokio::test]
    async fn a_job_never_overlaps_itself() {
        let running = Arc::new(AtomicU32::new(0));
        let max_seen = Arc::new(AtomicU32::new(0));
        let mut s = Scheduler::new(quick());
        let (r, m) = (running.clone(), max_seen.clone());
        s.add("slow", Duration::from_millis(5), move || {
            let (r, m) = (r.clone(), m.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(JobOutcome::default())
            }
        });
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
}

//! `parkflow serve`: the API and the scheduled jobs in one process. Ingest is embedded (outbox →
//! lake) by default, or the Kafka relay and warehouse consumer when `kafka.brokers` is set.

use crate::config::Config;
use crate::steps;
use anyhow::Context;
use chrono::Duration;
use parkflow_api::SystemClock;
use parkflow_jobs::{JobOutcome, RetryPolicy, Schedule, Scheduler};
use std::sync::Arc;
use tokio::sync::{Mutex, watch};
use warehouse_schema::lake::Lake;

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let (state, metrics) = steps::open_api(&cfg, Arc::new(SystemClock)).await?;
    let state = state.with_reports(Arc::new(crate::report::LakeReports {
        lake: Lake::new(cfg.lake_dir()),
    }));
    let scheduler = schedule(&cfg, &state, &metrics).await?;
    let (stop, stopped) = watch::channel(false);
    let jobs = scheduler.spawn(stopped);

    let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.api.listen))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %cfg.data_dir.display(), "parkflow serving");
    let app =
        parkflow_api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await?;
    stop.send(true).ok();
    for j in jobs {
        j.await.ok();
    }
    Ok(())
}

/// `parkflow jobs list`: the jobs `serve` schedules with this configuration, and how often.
pub async fn list_jobs(cfg: &Config) -> anyhow::Result<String> {
    let (state, metrics) = steps::open_api(cfg, Arc::new(SystemClock)).await?;
    let scheduler = schedule(cfg, &state, &metrics).await?;
    Ok(scheduler
        .jobs()
        .map(|(name, schedule)| format!("{name:<18} {schedule}\n"))
        .collect())
}

/// `parkflow jobs run NAME`: run one job now, with the scheduler's retries, and report the run.
/// A run that failed after its retries is an error.
pub async fn run_job(cfg: &Config, name: &str) -> anyhow::Result<String> {
    let (state, metrics) = steps::open_api(cfg, Arc::new(SystemClock)).await?;
    let scheduler = schedule(cfg, &state, &metrics).await?;
    let names: Vec<&str> = scheduler.jobs().map(|(n, _)| n).collect();
    let run = scheduler
        .run_now(name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; the jobs are: {}", names.join(", ")))?;
    let took = (run.finished_at - run.started_at).num_milliseconds();
    match run.status {
        parkflow_jobs::RunStatus::Succeeded => Ok(format!(
            "{}: succeeded on attempt {} in {took} ms, {} rows (started {})\n",
            run.job, run.attempt, run.rows, run.started_at
        )),
        parkflow_jobs::RunStatus::Failed => anyhow::bail!(
            "{}: failed on attempt {} after {took} ms: {}",
            run.job,
            run.attempt,
            run.message.unwrap_or_default()
        ),
        parkflow_jobs::RunStatus::Skipped => {
            anyhow::bail!("{}: not run: {}", run.job, run.message.unwrap_or_default())
        }
    }
}

/// `parkflow jobs runs`: the last `last` recorded runs, oldest first.
pub fn recorded_runs(cfg: &Config, last: usize) -> anyhow::Result<String> {
    let runs = parkflow_jobs::persisted_runs(&state_dir(cfg), last)?;
    if runs.is_empty() {
        return Ok("no runs recorded yet\n".into());
    }
    Ok(runs
        .iter()
        .map(|r| {
            format!(
                "{} {:<18} {:<9} attempt {} {:>6} ms {:>8} rows{}\n",
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.job,
                format!("{:?}", r.status).to_lowercase(),
                r.attempt,
                (r.finished_at - r.started_at).num_milliseconds(),
                r.rows,
                r.message
                    .as_deref()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default()
            )
        })
        .collect())
}

fn state_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join("jobs")
}

fn every(seconds: u64) -> Schedule {
    Schedule::Every(std::time::Duration::from_secs(seconds.max(1)))
}

/// The configured schedule of `job` (its default unless `jobs.schedule` names it).
fn scheduled(cfg: &Config, job: &str) -> anyhow::Result<Schedule> {
    let text = cfg
        .jobs
        .schedule
        .get(job)
        .map(String::as_str)
        .or_else(|| {
            crate::config::DEFAULT_SCHEDULES
                .iter()
                .find(|(name, _)| *name == job)
                .map(|(_, s)| *s)
        })
        .with_context(|| format!("no schedule for the job `{job}`"))?;
    text.parse().with_context(|| format!("jobs.schedule.{job}"))
}

/// The periodic jobs of a running service.
pub async fn schedule(
    cfg: &Config,
    state: &parkflow_api::AppState,
    metrics: &steps::Metrics,
) -> anyhow::Result<Scheduler> {
    let mut scheduler = Scheduler::new(RetryPolicy::default()).with_state_dir(state_dir(cfg))?;
    if cfg.kafka.is_enabled() {
        let relay = Arc::new(steps::relay(cfg, state, metrics).await?);
        scheduler.add("relay", every(cfg.jobs.ingest_every_s), move || {
            let relay = relay.clone();
            async move {
                let published = relay.drain().await.map_err(|e| e.to_string())?;
                Ok(JobOutcome {
                    rows: published as u64,
                })
            }
        });
        // Rates published to the rates topic reach this process's API through the same intake
        // as `PUT /v1/lots/{id}/rates`.
        let rates = Arc::new(parkflow_ingest::kafka::rates::RatesConsumer::new(
            &cfg.kafka,
            &format!("{}-rates-api", cfg.kafka.group_id),
        )?);
        let api = state.clone();
        scheduler.add(
            "rates-intake",
            Schedule::Every(std::time::Duration::from_secs(1)),
            move || {
                let (rates, api) = (rates.clone(), api.clone());
                async move {
                    let applied = rates
                        .step(std::time::Duration::from_millis(200), |m| {
                            let api = api.clone();
                            async move { steps::apply_rates_message(&api, m).await }
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(JobOutcome {
                        rows: applied as u64,
                    })
                }
            },
        );
        if let Some(sink) = steps::clickhouse_sink(cfg)? {
            sink.migrate().await?;
            scheduler.add(
                "warehouse-refresh",
                scheduled(cfg, "warehouse-refresh")?,
                move || {
                    let sink = sink.clone();
                    async move {
                        sink.refresh_derived().await.map_err(|e| e.to_string())?;
                        let stays = sink
                            .rows(warehouse_schema::Table::FactStay)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok(JobOutcome { rows: stays })
                    }
                },
            );
        }
        let consumer = Arc::new(Mutex::new(steps::warehouse_consumer(cfg, metrics).await?));
        scheduler.add("consume", every(cfg.jobs.ingest_every_s), move || {
            let consumer = consumer.clone();
            async move {
                let report = consumer
                    .lock()
                    .await
                    .drain(std::time::Duration::from_millis(500))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome {
                    rows: report.events + report.dead_letters,
                })
            }
        });
    } else {
        let ingest = Arc::new(Mutex::new(steps::embedded_ingest(cfg, state, metrics)?));
        scheduler.add("ingest", every(cfg.jobs.ingest_every_s), move || {
            let ingest = ingest.clone();
            async move {
                let report = ingest
                    .lock()
                    .await
                    .drain()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome {
                    rows: report.events + report.dead_letters,
                })
            }
        });
    }
    // Reminders before a reservation starts, the no-show warning, the no-show cancellation, the
    // waitlists, and the monthly passes' renewals.
    let (service, timers) = (state.services.clone(), cfg.jobs.reservation_timers.clone());
    timers
        .validate()
        .map_err(|e| anyhow::anyhow!("jobs.reservation_timers: {e}"))?;
    scheduler.add("reservations", scheduled(cfg, "reservations")?, move || {
        let (service, timers) = (service.clone(), timers.clone());
        async move {
            let r = service
                .reservations()
                .run_reservations_job(service.now(), &timers)
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome {
                rows: r.acted_on() as u64,
            })
        }
    });
    // The notification service: the outbox to in-app, e-mail and push.
    let deliverer = Arc::new(parkflow_delivery::Deliverer::new(
        state.services.store().clone(),
        cfg.notifications.clone(),
    )?);
    let service = state.services.clone();
    scheduler.add(
        "notifications",
        scheduled(cfg, "notifications")?,
        move || {
            let (deliverer, now) = (deliverer.clone(), service.now());
            async move {
                let r = deliverer.run_once(now).await.map_err(|e| e.to_string())?;
                Ok(JobOutcome {
                    rows: (r.delivered + r.failed) as u64,
                })
            }
        },
    );
    // Other API processes on the same database change reservations too: their new bookings
    // are held in this process's availability index, and a lot where a spot may have been freed
    // is dropped from it, to load again.
    let service = state.services.clone();
    scheduler.add(
        "availability",
        Schedule::Every(std::time::Duration::from_secs(1)),
        move || {
            let service = service.clone();
            async move {
                let synced = service
                    .lots()
                    .sync_availability()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome {
                    rows: (synced.dropped + synced.held) as u64,
                })
            }
        },
    );
    // The jobs read the time from the API's clock: the system clock in service, a manual one
    // in tests and simulations.
    let lake = Lake::new(cfg.lake_dir());
    let (l, service) = (lake.clone(), state.services.clone());
    scheduler.add("occupancy", scheduled(cfg, "occupancy")?, move || {
        let (lake, now) = (l.clone(), service.now());
        async move {
            let r = parkflow_pipeline::refresh(&lake, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome {
                rows: r.occupancy_rows,
            })
        }
    });
    let sink: Arc<dyn parkflow_pricing::RatesSink> = steps::rates_sink(cfg, state)?.into();
    let c = cfg.clone();
    let (l, api) = (lake.clone(), state.clone());
    scheduler.add("pricing", scheduled(cfg, "pricing")?, move || {
        let (cfg, sink, lake, api) = (c.clone(), sink.clone(), l.clone(), api.clone());
        async move {
            let now = api.services.now();
            let from = now - Duration::days(cfg.jobs.pricing_window_days);
            let priced =
                steps::price_and_publish(&cfg, &api, sink.as_ref(), &lake, (from, now), now)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            Ok(JobOutcome {
                rows: priced.changes.len() as u64,
            })
        }
    });
    let (l, data_dir, threshold) = (lake.clone(), cfg.data_dir.clone(), cfg.jobs.push_threshold);
    let service = state.services.clone();
    scheduler.add(
        "forecast-training",
        scheduled(cfg, "forecast-training")?,
        move || {
            let (lake, data_dir, now) = (l.clone(), data_dir.clone(), service.now());
            let service = service.clone();
            async move {
                let f = parkflow_push::train(&lake, now, threshold)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                f.save(&data_dir).map_err(|e| format!("{e:#}"))?;
                parkflow_push::publish_arrival(&service, &f)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                Ok(JobOutcome {
                    rows: (f.lots.len() + f.drivers.len()) as u64,
                })
            }
        },
    );
    let (service, data_dir) = (state.services.clone(), cfg.data_dir.clone());
    scheduler.add(
        "push-candidates",
        scheduled(cfg, "push-candidates")?,
        move || {
            let (service, data_dir) = (service.clone(), data_dir.clone());
            async move {
                let Some(f) =
                    parkflow_push::ForecastFile::load(&data_dir).map_err(|e| format!("{e:#}"))?
                else {
                    // A fresh server has no forecast until the nightly training: nothing to
                    // push yet, which is not a failure.
                    tracing::info!(
                        "push-candidates: no forecast yet (the forecast-training job writes it)"
                    );
                    return Ok(JobOutcome { rows: 0 });
                };
                let r = parkflow_push::push_candidates(&service, &f, service.now())
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                Ok(JobOutcome {
                    rows: r.enqueued as u64,
                })
            }
        },
    );
    let (data_dir, service) = (cfg.data_dir.clone(), state.services.clone());
    scheduler.add("report", scheduled(cfg, "report")?, move || {
        let (lake, data_dir, now) = (lake.clone(), data_dir.clone(), service.now());
        async move {
            let path = steps::monthly_report(&lake, &data_dir, now)
                .await
                .map_err(|e| format!("{e:#}"))?;
            tracing::info!(report = %path.display(), "usage report written");
            Ok(JobOutcome { rows: 1 })
        }
    });
    let names: Vec<&str> = scheduler.jobs().map(|(n, _)| n).collect();
    for job in cfg.jobs.schedule.keys() {
        let known = names.contains(&job.as_str())
            || crate::config::DEFAULT_SCHEDULES
                .iter()
                .any(|(name, _)| name == job);
        anyhow::ensure!(
            known,
            "jobs.schedule names `{job}`, which is not a job; the jobs are: {}",
            names.join(", ")
        );
    }
    Ok(scheduler)
}

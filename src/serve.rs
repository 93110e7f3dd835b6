//! `parkflow serve`: the API and the scheduled jobs in one process. Ingest is embedded (outbox →
//! lake) by default, or the Kafka relay and warehouse consumer when `kafka.brokers` is set.

use crate::config::Config;
use crate::steps;
use anyhow::Context;
use chrono::{Duration, Utc};
use parkflow_api::SystemClock;
use parkflow_jobs::{JobOutcome, RetryPolicy, Scheduler};
use std::sync::Arc;
use tokio::sync::{Mutex, watch};
use warehouse_schema::lake::Lake;

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let (state, metrics) = steps::open_api(&cfg, Arc::new(SystemClock)).await?;
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
        .map(|(name, every)| format!("{name:<14} every {} s\n", every.as_secs()))
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
    }
}

fn every(seconds: u64) -> std::time::Duration {
    std::time::Duration::from_secs(seconds.max(1))
}

/// The periodic jobs of a running service.
pub async fn schedule(
    cfg: &Config,
    state: &parkflow_api::AppState,
    metrics: &steps::Metrics,
) -> anyhow::Result<Scheduler> {
    let mut scheduler = Scheduler::new(RetryPolicy::default());
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
            std::time::Duration::from_secs(1),
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
                every(cfg.jobs.refresh_every_s),
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
    // Other API processes on the same database change reservations too: drop the lots they
    // touched from this process's availability index, so they load again.
    let service = state.service.clone();
    scheduler.add(
        "availability",
        std::time::Duration::from_secs(1),
        move || {
            let service = service.clone();
            async move {
                let lots = service
                    .sync_availability()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(JobOutcome { rows: lots as u64 })
            }
        },
    );
    let lake = Lake::new(cfg.lake_dir());
    let l = lake.clone();
    scheduler.add("occupancy", every(cfg.jobs.refresh_every_s), move || {
        let lake = l.clone();
        async move {
            let r = parkflow_pipeline::refresh(&lake, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome {
                rows: r.occupancy_rows,
            })
        }
    });
    let client = steps::pricing(cfg, state);
    let c = cfg.clone();
    scheduler.add("pricing", every(cfg.jobs.pricing_every_s), move || {
        let (cfg, client, lake) = (c.clone(), client.clone(), lake.clone());
        async move {
            let now = Utc::now();
            let from = now - Duration::days(cfg.jobs.pricing_window_days);
            let changes = steps::price_and_publish(&cfg, &client, &lake, from, now, now)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(JobOutcome {
                rows: changes.len() as u64,
            })
        }
    });
    Ok(scheduler)
}

//! The steps of the data loop, shared by `demo`, `serve` and the one-shot commands.

use crate::config::Config;
use crate::forecasting::{band_forecast, band_key};
use anyhow::Context;
use chrono::{DateTime, Utc};
use parkflow_api::services::admin::Actor;
use parkflow_api::{AppState, Clock};
use parkflow_ingest::kafka::consume::WarehouseConsumer;
use parkflow_ingest::kafka::rates::{ApplyError, RatesPublisher};
use parkflow_ingest::kafka::relay::Relay;
use parkflow_ingest::sink::clickhouse::ClickHouseSink;
use parkflow_ingest::{EmbeddedIngest, IngestMetrics};
use parkflow_pricing::publish::PublishFuture;
use parkflow_pricing::{
    BandKey, CurrentRates, PolicyName, PublishError, RateChange, RatesSink, in_band_share, propose,
    publish_changes,
};
use parkflow_simulator::LotPlan;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use warehouse_schema::event::{RatePublished, RatesMessage};
use warehouse_schema::lake::Lake;
use warehouse_schema::{LotId, Table, VehicleType};

/// Metrics of the non-API components, registered before the API takes the registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub ingest: IngestMetrics,
}

/// Open the operational store and the API state; the registry carries every component's metrics.
pub async fn open_api(cfg: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<(AppState, Metrics)> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let mut registry = Registry::default();
    let metrics = Metrics {
        ingest: IngestMetrics::register(&mut registry),
    };
    let state = AppState::open(&cfg.api_config(), clock, registry)
        .await
        .with_context(|| {
            format!(
                "cannot open the operational database {}",
                cfg.database_url()
            )
        })?;
    Ok((state, metrics))
}

/// Create the scenario's lots in the operational API, as an administrator would (each in the
/// audit log under the admin token).
pub async fn create_lots(
    state: &AppState,
    plans: Vec<LotPlan>,
) -> anyhow::Result<Vec<(LotId, LotPlan)>> {
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let lot = state
            .services
            .lots()
            .create_lot_by(Some(&Actor::admin_token()), plan.new_lot())
            .await
            .with_context(|| format!("creating lot {}", plan.name))?;
        out.push((lot.id, plan));
    }
    Ok(out)
}

pub fn embedded_ingest(
    cfg: &Config,
    state: &AppState,
    metrics: &Metrics,
) -> anyhow::Result<EmbeddedIngest> {
    Ok(EmbeddedIngest::new(
        state.services.store().outbox(),
        Lake::new(cfg.lake_dir()),
        cfg.ingest.batch_size,
        metrics.ingest.clone(),
    )?)
}

/// Moving what the API recorded into the warehouse: embedded (outbox → lake), or with
/// `kafka.brokers` set the distributed path (outbox → relay → Kafka → consumer group → lake and
/// ClickHouse).
pub enum Ingest {
    Embedded(EmbeddedIngest),
    Distributed {
        relay: Relay,
        consumer: Box<WarehouseConsumer>,
        lake: Lake,
        outbox: parkflow_outbox::Outbox,
    },
}

impl Ingest {
    /// The path `cfg` names (ClickHouse's tables created where it is configured).
    pub async fn open(cfg: &Config, state: &AppState, metrics: &Metrics) -> anyhow::Result<Self> {
        if !cfg.kafka.is_enabled() {
            return Ok(Self::Embedded(embedded_ingest(cfg, state, metrics)?));
        }
        if let Some(clickhouse) = clickhouse_sink(cfg)? {
            clickhouse.migrate().await?;
        }
        Ok(Self::Distributed {
            relay: relay(cfg, state, metrics).await?,
            consumer: Box::new(warehouse_consumer(cfg, metrics).await?),
            lake: Lake::new(cfg.lake_dir()),
            outbox: state.services.store().outbox(),
        })
    }

    /// Move everything recorded so far; `progress` gets the events in the lake after each
    /// batch. The distributed path waits until the lake holds every event the API recorded
    /// (at most `DISTRIBUTED_WAIT` without progress).
    pub async fn drain_with(&mut self, mut progress: impl FnMut(u64)) -> anyhow::Result<()> {
        const DISTRIBUTED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
        match self {
            Self::Embedded(ingest) => {
                ingest.drain_with(|r| progress(r.position as u64)).await?;
            }
            Self::Distributed {
                relay,
                consumer,
                lake,
                outbox,
            } => {
                relay.drain().await?;
                let recorded = outbox.len().await? as u64;
                let in_lake = |lake: &Lake| -> anyhow::Result<u64> {
                    let m = lake.manifest(warehouse_schema::tables::Section::Ingested)?;
                    Ok(m.rows_of(Table::FactParkingEvent) + m.rows_of(Table::DeadLetters))
                };
                let mut last_progress = tokio::time::Instant::now();
                loop {
                    let have = in_lake(lake)?;
                    progress(have);
                    if have >= recorded {
                        return Ok(());
                    }
                    if last_progress.elapsed() > DISTRIBUTED_WAIT {
                        anyhow::bail!(
                            "the consumer group wrote {have} of the {recorded} events the API recorded"
                        );
                    }
                    if consumer
                        .step(std::time::Duration::from_secs(5))
                        .await?
                        .messages
                        > 0
                    {
                        last_progress = tokio::time::Instant::now();
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn drain(&mut self) -> anyhow::Result<()> {
        self.drain_with(|_| {}).await
    }

    /// Ingest on the runtime's workers while the caller goes on recording (the demo's
    /// simulation runs on the calling thread): embedded, every whole batch as soon as it is
    /// committed ([`EmbeddedIngest::catch_up`]), so the lake's files are those of one drain at
    /// the end; through Kafka nothing until [`Beside::finish`] (the consumer group runs at the
    /// broker's pace, after the simulation as before).
    pub fn beside(self) -> Beside {
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        let task = tokio::spawn(async move {
            let mut ingest = self;
            loop {
                if let Self::Embedded(embedded) = &mut ingest {
                    embedded.catch_up().await?;
                }
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                    // Told to stop, or the caller gave up (its sender dropped).
                    _ = stopped.changed() => return Ok(ingest),
                }
            }
        });
        Beside { stop, task }
    }
}

/// An [`Ingest`] running beside its caller ([`Ingest::beside`]).
pub struct Beside {
    stop: tokio::sync::watch::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Ingest>>,
}

impl Beside {
    /// Stop after the batch in hand and give the ingest back, to drain the rest.
    pub async fn finish(self) -> anyhow::Result<Ingest> {
        self.stop.send_replace(());
        self.task.await?
    }
}

/// With Kafka, pricing's changes go out on the rates topic: apply the `messages` published
/// there to this API, as every API process's rates consumer does (`group` names this reader).
pub async fn apply_published_rates(
    cfg: &Config,
    state: &AppState,
    group: &str,
    messages: usize,
) -> anyhow::Result<usize> {
    if !cfg.kafka.is_enabled() || messages == 0 {
        return Ok(0);
    }
    let consumer = parkflow_ingest::kafka::rates::RatesConsumer::new(&cfg.kafka, group)?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut applied = 0;
    while applied < messages {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{applied} of the {messages} rates messages came back from Kafka"
        );
        applied += consumer
            .step(std::time::Duration::from_secs(2), |m| {
                apply_rates_message(state, m)
            })
            .await?;
    }
    Ok(applied)
}

/// The ClickHouse sink, for commands that need one: an error naming the setting when it is
/// not configured.
pub fn required_clickhouse_sink(cfg: &Config) -> anyhow::Result<ClickHouseSink> {
    clickhouse_sink(cfg)?.context("clickhouse.url is not set (PARKFLOW__CLICKHOUSE__URL)")
}

pub fn clickhouse_sink(cfg: &Config) -> anyhow::Result<Option<ClickHouseSink>> {
    if cfg.clickhouse.is_enabled() {
        Ok(Some(ClickHouseSink::new(&cfg.clickhouse)?))
    } else {
        Ok(None)
    }
}

/// The outbox → Kafka relay (topics created where missing).
pub async fn relay(cfg: &Config, state: &AppState, metrics: &Metrics) -> anyhow::Result<Relay> {
    cfg.kafka
        .ensure_topics()
        .await
        .context("cannot create the Kafka topics")?;
    Ok(Relay::new(
        state.services.store().outbox(),
        &cfg.kafka,
        metrics.ingest.clone(),
    )?)
}

/// The Kafka → warehouse consumer (Parquet lake, and ClickHouse when configured).
pub async fn warehouse_consumer(
    cfg: &Config,
    metrics: &Metrics,
) -> anyhow::Result<WarehouseConsumer> {
    cfg.kafka
        .ensure_topics()
        .await
        .context("cannot create the Kafka topics")?;
    Ok(WarehouseConsumer::new(
        &cfg.kafka,
        Lake::new(cfg.lake_dir()),
        clickhouse_sink(cfg)?,
        metrics.ingest.clone(),
    )?)
}

/// The rates in force now, from the API's typed rate schedules.
pub async fn current_rates(state: &AppState) -> anyhow::Result<CurrentRates> {
    let mut current = CurrentRates::default();
    for lot in state.services.lots().list().await? {
        let schedule = state.services.lots().rate_schedule(lot.id).await?;
        current
            .defaults
            .insert(lot.id, schedule.default_cents_per_hour);
        for r in schedule.current {
            current.rates.insert(
                (lot.id, r.band, r.day_kind, r.vehicle_type),
                r.cents_per_hour,
            );
        }
    }
    Ok(current)
}

/// Pricing's changes into this process's own rate intake (what `PUT /v1/lots/{id}/rates` does).
pub struct ApiRates(pub AppState);

impl RatesSink for ApiRates {
    fn publish(&self, lot: LotId, rates: Vec<RatePublished>) -> PublishFuture<'_> {
        Box::pin(async move {
            let rates = rates.into_iter().map(Into::into).collect();
            self.0
                .services
                .lots()
                .publish_rates(lot, rates)
                .await
                .map(|_| ())
                .map_err(|e| PublishError {
                    lot,
                    reason: e.to_string(),
                })
        })
    }
}

/// Pricing's changes on the rates topic, one message per lot, for the API processes that take
/// their rates from Kafka (`parkflow serve` applies them through the same intake).
pub struct KafkaRates(RatesPublisher);

impl RatesSink for KafkaRates {
    fn publish(&self, lot: LotId, rates: Vec<RatePublished>) -> PublishFuture<'_> {
        Box::pin(async move {
            let message = RatesMessage {
                lot_id: lot,
                rates,
                published_at: Utc::now(),
            };
            self.0.publish(&message).await.map_err(|e| PublishError {
                lot,
                reason: e.to_string(),
            })
        })
    }
}

/// The one sink of pricing's changes: the rates topic when Kafka is configured (every API
/// process applies them from there), else this process's rate intake.
pub fn rates_sink(cfg: &Config, state: &AppState) -> anyhow::Result<Box<dyn RatesSink>> {
    Ok(if cfg.kafka.is_enabled() {
        Box::new(KafkaRates(RatesPublisher::new(&cfg.kafka)?))
    } else {
        Box::new(ApiRates(state.clone()))
    })
}

/// What one pricing run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub policy: PolicyName,
    /// Lots whose next day the linfa model forecast, of all lots priced.
    pub model_lots: (usize, usize),
    pub changes: Vec<RateChange>,
    /// When the published rates take effect.
    pub effective_from: DateTime<Utc>,
    /// The share of the period's lot-hours (07:00–midnight, the priced bands) whose occupancy
    /// was inside the target band.
    pub in_band_before: Option<f64>,
    /// The same hours moved to the new rates by the forecast policy's elasticity: the share
    /// expected inside the band under the published rates.
    pub in_band_after: Option<f64>,
}

/// Price every lot on its occupancy in `[from, to)` with the policy of `pricing.policy`, and
/// publish the changes, announced at `announced_at` and effective `pricing.notice_days` later,
/// to `sink`. The forecast policy gets each
/// band's hours from [`band_forecast`]: the linfa model's next day, the recent weeks for the
/// rest.
pub async fn price_and_publish(
    cfg: &Config,
    state: &AppState,
    sink: &dyn RatesSink,
    lake: &Lake,
    window: (DateTime<Utc>, DateTime<Utc>),
    announced_at: DateTime<Utc>,
) -> anyhow::Result<Priced> {
    let effective_from = cfg.pricing.effective_from(announced_at);
    let observed = parkflow_pipeline::band_occupancy(lake, window.0, window.1).await?;
    let current = current_rates(state).await?;
    let hours = parkflow_pipeline::lot_hours(lake).await?;
    let forecast = band_forecast(&hours, window.1);
    let key =
        |h: &warehouse_schema::outputs::LotHour| band_key(h.lot_id, h.local_hour, h.local_weekday);
    let policy = cfg.pricing.policy();
    let changes = propose(
        policy.as_ref(),
        &observed,
        &forecast.hourly,
        &current,
        window,
    );
    publish_changes(sink, &changes, effective_from).await?;

    // Time in band before and (as forecast) after, over the period's priced hours.
    let band = (cfg.pricing.step.target_low, cfg.pricing.step.target_high);
    let elasticity = cfg.pricing.forecast_policy().elasticity;
    let priced: Vec<_> = hours
        .iter()
        .filter(|h| h.hour_start >= window.0 && h.hour_start < window.1 && h.local_hour >= 7)
        .collect();
    // Each band's demand at its new car rate, relative to the old one.
    let moved: std::collections::BTreeMap<BandKey, f64> = changes
        .iter()
        .filter(|c| c.vehicle_type == VehicleType::Car)
        .map(|c| {
            let factor = (c.new_cents as f64 / c.old_cents.max(1) as f64).powf(elasticity);
            ((c.lot_id, c.band, c.day_kind), factor)
        })
        .collect();
    let factor =
        |h: &warehouse_schema::outputs::LotHour| moved.get(&key(h)).copied().unwrap_or(1.0);
    Ok(Priced {
        policy: cfg.pricing.policy,
        model_lots: (forecast.model_lots, forecast.lots),
        effective_from,
        in_band_before: in_band_share(priced.iter().map(|h| h.mean_occupancy), band),
        in_band_after: in_band_share(
            priced
                .iter()
                .map(|h| (h.mean_occupancy * factor(h)).min(1.0)),
            band,
        ),
        changes,
    })
}

/// Apply a rates message from Kafka through the API's rate intake (what `PUT …/rates` does).
pub async fn apply_rates_message(
    state: &AppState,
    message: RatesMessage,
) -> Result<(), ApplyError> {
    let rates = message.rates.into_iter().map(Into::into).collect();
    match state
        .services
        .lots()
        .publish_rates(message.lot_id, rates)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_client_error() => Err(ApplyError::Refused(e.to_string())),
        Err(e) => Err(ApplyError::Retry(e.to_string())),
    }
}

/// The instant `parkflow report` builds the derived tables as of: `given`, else the end of the
/// data (so a world that ended in the past is reported as it ended, its still-parked cars
/// parked up to then and not up to today), else now.
pub async fn report_as_of(
    lake: &Lake,
    given: Option<DateTime<Utc>>,
) -> anyhow::Result<DateTime<Utc>> {
    let now = Utc::now();
    match given {
        // Open stays are counted up to `as_of`, so an instant years ahead would fill the
        // occupancy grid with empty future; the tables describe what has happened.
        Some(at) => {
            anyhow::ensure!(
                at <= now,
                "--as-of {at} is in the future: the report is built as of an instant that has passed"
            );
            Ok(at)
        }
        None => Ok(parkflow_pipeline::data_end(lake)
            .await?
            .map_or(now, |end| end.min(now))),
    }
}

/// The UTC days `parkflow report` covers: `[from, to)`, by default the 30 days up to and
/// including the day of `now` (the report's as-of instant).
pub fn report_days(
    now: DateTime<Utc>,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let to = to.unwrap_or_else(|| now.date_naive() + chrono::Duration::days(1));
    (from.unwrap_or(to - chrono::Duration::days(30)), to)
}

/// The usage report of the UTC days `[from, to)` (and one lot, if given) as HTML and CSV in
/// `out`; returns the HTML's path. An unknown lot is refused.
pub async fn usage_report(
    lake: &Lake,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    lot: Option<warehouse_schema::LotId>,
    out: &std::path::Path,
) -> anyhow::Result<std::path::PathBuf> {
    let at = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let report = parkflow_pipeline::usage_report(lake, at(from), at(to), lot).await?;
    if let Some(l) = lot {
        anyhow::ensure!(
            !report.lots.is_empty(),
            "lot {} is not in the warehouse",
            l.0
        );
    }
    parkflow_report::write_report(&report, out)
}

/// The monthly job: refresh the derived tables, then write the usage report of the previous
/// calendar month (UTC) to `<data_dir>/reports/<YYYY-MM>/` (a re-run replaces it).
pub async fn monthly_report(
    lake: &Lake,
    data_dir: &std::path::Path,
    now: DateTime<Utc>,
) -> anyhow::Result<std::path::PathBuf> {
    use chrono::Datelike;
    parkflow_pipeline::refresh(lake, now).await?;
    let this_month = now
        .date_naive()
        .with_day(1)
        .expect("the first of a month exists");
    let last_month = (this_month - chrono::Duration::days(1))
        .with_day(1)
        .expect("the first of a month exists");
    let dir = data_dir
        .join("reports")
        .join(last_month.format("%Y-%m").to_string());
    usage_report(lake, last_month, this_month, None, &dir).await
}

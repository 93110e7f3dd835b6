//! The steps of the data loop, shared by `demo`, `serve` and the one-shot commands.

use crate::client::ApiClient;
use crate::config::Config;
use anyhow::Context;
use chrono::{DateTime, Utc};
use parkflow_api::{AppState, Clock};
use parkflow_ingest::kafka::consume::WarehouseConsumer;
use parkflow_ingest::kafka::rates::{ApplyError, RatesPublisher};
use parkflow_ingest::kafka::relay::Relay;
use parkflow_ingest::sink::clickhouse::ClickHouseSink;
use parkflow_ingest::{EmbeddedIngest, IngestMetrics, Outbox};
use parkflow_pricing::{CurrentRates, RateChange, propose};
use parkflow_simulator::LotPlan;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use warehouse_schema::event::{RatePublished, RatesMessage};
use warehouse_schema::lake::Lake;
use warehouse_schema::{Cents, DayKind, LotId, TimeBand, VehicleType};

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

pub fn admin(cfg: &Config, state: &AppState) -> ApiClient {
    ApiClient::new(
        parkflow_api::router(state.clone()),
        cfg.api.admin_token.expose(),
    )
}

pub fn pricing(cfg: &Config, state: &AppState) -> ApiClient {
    ApiClient::new(
        parkflow_api::router(state.clone()),
        cfg.api.pricing_token.expose(),
    )
}

/// Create the scenario's lots through the API (as an administrator would).
pub async fn create_lots(
    admin: &ApiClient,
    plans: Vec<LotPlan>,
) -> anyhow::Result<Vec<(LotId, LotPlan)>> {
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let n = plan.new_lot();
        let body = json!({
            "name": n.name, "timeZone": n.time_zone, "latitude": n.latitude, "longitude": n.longitude,
            "currency": n.currency, "defaultCentsPerHour": n.default_cents_per_hour, "spots": n.spots,
        });
        let lot: Value = admin.post("/v1/lots", &body).await?;
        let id = lot["id"].as_i64().context("lot creation returned no id")?;
        out.push((LotId(id), plan));
    }
    Ok(out)
}

pub fn embedded_ingest(
    cfg: &Config,
    state: &AppState,
    metrics: &Metrics,
) -> anyhow::Result<EmbeddedIngest> {
    Ok(EmbeddedIngest::new(
        Outbox::new(state.service.store().pool().clone()),
        Lake::new(cfg.lake_dir()),
        cfg.ingest.batch_size,
        metrics.ingest.clone(),
    )?)
}

/// The ClickHouse sink, when `clickhouse.url` is set.
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
        state.service.store().pool().clone(),
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

/// The rates in force now, as the API reports them.
pub async fn current_rates(client: &ApiClient) -> anyhow::Result<CurrentRates> {
    let lots: Value = client.get("/v1/lots").await?;
    let mut current = CurrentRates::default();
    for lot in lots["lots"].as_array().context("lot list")? {
        let id = LotId(lot["id"].as_i64().context("lot id")?);
        let schedule: Value = client.get(&format!("/v1/lots/{id}/rates")).await?;
        current.defaults.insert(
            id,
            schedule["defaultCentsPerHour"]
                .as_i64()
                .context("default rate")?,
        );
        for r in schedule["current"].as_array().context("current rates")? {
            let parse = |k: &str| r[k].as_str().map(str::to_owned).context("rate field");
            let key = (
                id,
                parse("band")?
                    .parse::<TimeBand>()
                    .map_err(anyhow::Error::msg)?,
                parse("dayKind")?
                    .parse::<DayKind>()
                    .map_err(anyhow::Error::msg)?,
                parse("vehicleType")?
                    .parse::<VehicleType>()
                    .map_err(anyhow::Error::msg)?,
            );
            current
                .rates
                .insert(key, r["centsPerHour"].as_i64().context("cents")?);
        }
    }
    Ok(current)
}

/// Price every lot on its occupancy in `[from, to)` and publish the changes, effective at
/// `effective_from`, through the API's authenticated rate endpoint.
pub async fn price_and_publish(
    cfg: &Config,
    client: &ApiClient,
    lake: &Lake,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    effective_from: DateTime<Utc>,
) -> anyhow::Result<Vec<RateChange>> {
    let observed = parkflow_pipeline::band_occupancy(lake, from, to).await?;
    let current = current_rates(client).await?;
    let changes = propose(&cfg.pricing, &observed, &|_, _, _| None, &current);
    let mut by_lot: BTreeMap<LotId, Vec<Value>> = BTreeMap::new();
    for c in &changes {
        by_lot.entry(c.lot_id).or_default().push(json!({
            "band": c.band, "dayKind": c.day_kind, "vehicleType": c.vehicle_type,
            "centsPerHour": c.new_cents, "effectiveFrom": effective_from,
        }));
    }
    for (lot, rates) in by_lot {
        let _: Value = client
            .put(&format!("/v1/lots/{lot}/rates"), &json!({ "rates": rates }))
            .await?;
    }
    if cfg.kafka.is_enabled() {
        publish_rates_to_kafka(cfg, &changes, effective_from).await?;
    }
    Ok(changes)
}

/// The same changes on the rates topic, one message per lot, for API processes that take their
/// rates from Kafka.
async fn publish_rates_to_kafka(
    cfg: &Config,
    changes: &[RateChange],
    effective_from: DateTime<Utc>,
) -> anyhow::Result<()> {
    let publisher = RatesPublisher::new(&cfg.kafka)?;
    let mut by_lot: BTreeMap<LotId, Vec<RatePublished>> = BTreeMap::new();
    for c in changes {
        by_lot.entry(c.lot_id).or_default().push(RatePublished {
            band: c.band,
            day_kind: c.day_kind,
            vehicle_type: c.vehicle_type,
            cents_per_hour: Cents(c.new_cents),
            effective_from,
        });
    }
    for (lot_id, rates) in by_lot {
        publisher
            .publish(&RatesMessage {
                lot_id,
                rates,
                published_at: Utc::now(),
            })
            .await?;
    }
    Ok(())
}

/// Apply a rates message from Kafka through the API's rate intake (what `PUT …/rates` does).
pub async fn apply_rates_message(
    state: &AppState,
    message: RatesMessage,
) -> Result<(), ApplyError> {
    let rates = message.rates.into_iter().map(Into::into).collect();
    match state.service.publish_rates(message.lot_id, rates).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_client_error() => Err(ApplyError::Refused(e.to_string())),
        Err(e) => Err(ApplyError::Retry(e.to_string())),
    }
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
    crate::report::write_report(&report, out)
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

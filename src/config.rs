//! The binary's typed configuration: defaults, then an optional TOML file, then `PARKFLOW__*`
//! environment variables (`PARKFLOW__API__LISTEN=0.0.0.0:8080`). Unknown keys are errors.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use parkflow_api::ApiConfig;
use parkflow_ingest::kafka::KafkaConfig;
use parkflow_ingest::sink::clickhouse::ClickHouseConfig;
use parkflow_pricing::PricingConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the operational database (embedded) and the lake live.
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub ingest: IngestConfig,
    /// The distributed path; `brokers` empty (the default) means embedded mode.
    pub kafka: KafkaConfig,
    /// The ClickHouse warehouse; `url` empty (the default) means Parquet only.
    pub clickhouse: ClickHouseConfig,
    pub jobs: JobsConfig,
    /// `policy` (`forecast`, the default, or `step`) and the step rule parameters.
    pub pricing: PricingConfig,
    /// Where notifications go: SMTP relay, push webhook, retries.
    pub notifications: parkflow_delivery::DeliveryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Outbox rows per lake commit.
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// How often ingest (or the relay and the consumer) drains what is new.
    pub ingest_every_s: u64,
    /// Days of occupancy the pricing job looks back on.
    pub pricing_window_days: i64,
    /// Per job: `every 30s` or a cron expression in UTC (`*/15 * * * *`). Jobs not named keep
    /// their default; naming a job that does not exist is an error.
    pub schedule: std::collections::BTreeMap<String, String>,
    /// Push a driver when their probability of arriving in the next hour is at least this.
    pub push_threshold: f64,
    /// Reminders before a reservation, the no-show warning and the no-show cancellation.
    pub reservation_timers: parkflow_api::services::reservations::lifecycle::ReservationTimers,
}

/// The default schedules of the periodic jobs.
pub const DEFAULT_SCHEDULES: [(&str, &str); 8] = [
    ("reservations", "every 60s"),
    ("notifications", "every 10s"),
    ("occupancy", "*/15 * * * *"),
    ("warehouse-refresh", "*/15 * * * *"),
    ("pricing", "30 0 * * *"),
    ("forecast-training", "30 2 * * *"),
    ("push-candidates", "*/5 * * * *"),
    ("report", "0 3 1 * *"),
];

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("parkflow-data"),
            api: ApiConfig::default(),
            ingest: IngestConfig { batch_size: 50_000 },
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            jobs: JobsConfig {
                ingest_every_s: 5,
                pricing_window_days: 7,
                schedule: DEFAULT_SCHEDULES
                    .iter()
                    .map(|(job, s)| ((*job).to_owned(), (*s).to_owned()))
                    .collect(),
                push_threshold: 0.5,
                reservation_timers: Default::default(),
            },
            pricing: PricingConfig::default(),
            notifications: Default::default(),
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        Self::from_layers(figment.merge(Env::prefixed("PARKFLOW__").split("__")))
    }

    /// Defaults overlaid with `layers` (file and environment in [`Config::load`]).
    pub fn from_layers(layers: Figment) -> anyhow::Result<Self> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(layers)
            .extract()
            .context("invalid configuration")
    }

    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = dir;
        self
    }

    /// The operational database URL (embedded SQLite in the data directory unless set).
    pub fn database_url(&self) -> String {
        if self.api.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("parkflow.db").display())
        } else {
            self.api.database_url.clone()
        }
    }

    pub fn lake_dir(&self) -> PathBuf {
        self.data_dir.join("lake")
    }

    /// The API configuration with the database URL resolved.
    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            database_url: self.database_url(),
            ..self.api.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults() {
        let cfg = Config::from_layers(Figment::from(Toml::string(
            "data_dir = \"/srv/pf\"\n[api]\nlisten = \"0.0.0.0:9000\"\n[pricing]\ncap = 600",
        )))
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/pf"));
        assert_eq!(cfg.api.listen, "0.0.0.0:9000");
        assert_eq!(cfg.pricing.step.cap, 600);
        assert_eq!(
            cfg.pricing.step.floor,
            parkflow_pricing::StepPolicy::default().floor
        );
        assert_eq!(cfg.database_url(), "sqlite:///srv/pf/parkflow.db");
    }

    #[test]
    fn unknown_keys_are_errors() {
        for toml in ["colour = 1", "[api]\nlistn = \"x\"", "[pricing]\nstep = 5"] {
            let err = Config::from_layers(Figment::from(Toml::string(toml))).unwrap_err();
            assert!(
                format!("{err:#}").contains("unknown field"),
                "{toml}: {err:#}"
            );
        }
    }

    #[test]
    fn secrets_are_masked_when_printed() {
        let printed = format!("{:?}", Config::default());
        assert!(!printed.contains("dev-admin-token"), "{printed}");
        assert!(printed.contains("***"));
    }
}

//! The operational API: accounts, lots and spots, reservations with gate passes, entries and
//! exits, and the rate schedule that pricing publishes. Every state change writes its event into the `outbox` table in the same
//! transaction; the API never reads the warehouse.

pub mod accounts;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod http;
pub use http::portal;
pub mod metrics;
pub mod notifications;
pub mod services;
pub mod store;
pub mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ApiConfig, LiveConfig, Secret};
pub use domain::error::{Error, Result};
pub use http::{AppState, Role, Tokens, router};
pub use metrics::ApiMetrics;
pub use services::Services;
pub use store::{Store, StoreOptions};

use prometheus_client::registry::Registry;
use std::sync::Arc;

impl AppState {
    /// Let the admin portal show management's usage report.
    pub fn with_reports(mut self, reports: Arc<dyn portal::ReportPages>) -> Self {
        self.edit().reports = Some(reports);
        self
    }

    /// Open the store and assemble the state; `registry` receives the API's metrics and is what
    /// `/metrics` serves, so register other components' metrics in it before calling this.
    pub async fn open(
        config: &ApiConfig,
        clock: Arc<dyn Clock>,
        registry: Registry,
    ) -> Result<Self> {
        config.tariff.validate().map_err(Error::Config)?;
        if !(1..=1_000).contains(&config.database_connections) {
            return Err(Error::Config(format!(
                "api.database_connections must be 1 to 1000, not {}",
                config.database_connections
            )));
        }
        let options = StoreOptions {
            postgres_connections: config.database_connections,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&config.database_url, options).await?;
        Self::on_store(store, config, clock, registry)
    }

    /// [`open`](Self::open) on a store opened by the caller (`config.database_url` is not read).
    pub fn on_store(
        store: Store,
        config: &ApiConfig,
        clock: Arc<dyn Clock>,
        mut registry: Registry,
    ) -> Result<Self> {
        config.tariff.validate().map_err(Error::Config)?;
        let metrics = ApiMetrics::register(&mut registry);
        let accounts = accounts::Accounts::new(
            store.clone(),
            clock.clone(),
            auth::TokenSigner::new(config.token_secret.expose()),
            auth::LoginLimiter::new(auth::LoginLimits::default()),
            accounts::TokenLifetimes {
                access_s: config.access_token_ttl_s,
                refresh_s: config.refresh_token_ttl_s,
            },
        );
        Ok(Self::new(http::Shared {
            services: Services::new(
                store,
                clock,
                metrics.clone(),
                auth::PassSigner::new(config.token_secret.expose()),
            )
            .with_tariff(config.tariff)
            .with_live(config.live)
            .with_payments(
                config.payments.clone(),
                Arc::new(services::payments::SandboxGateway::new(
                    &config.payments.webhook_secret,
                )),
            ),
            accounts,
            tokens: Arc::new(Tokens {
                admin: config.admin_token.clone(),
                gate: config.gate_token.clone(),
                pricing: config.pricing_token.clone(),
            }),
            registry: Arc::new(registry),
            metrics,
            reports: None,
            trusted_proxies: config.trusted_proxies.clone().into(),
        }))
    }
}

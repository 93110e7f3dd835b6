//! Metrics of the operational API, declared once and registered into the process registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    pub check_ins: Counter,
    pub exits: Counter,
    pub lot_full: Counter,
    pub rates_published: Counter,
    pub live_streams: Gauge,
    pub http_requests: Family<HttpLabels, Counter>,
}

impl ApiMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("parkflow_api");
        r.register("check_ins", "Vehicles checked in", m.check_ins.clone());
        r.register("exits", "Vehicles checked out", m.exits.clone());
        r.register(
            "lot_full",
            "Check-ins refused because no compatible spot was free",
            m.lot_full.clone(),
        );
        r.register(
            "rates_published",
            "Rate schedule rows published",
            m.rates_published.clone(),
        );
        r.register(
            "live_streams",
            "Live availability streams open",
            m.live_streams.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        m
    }
}

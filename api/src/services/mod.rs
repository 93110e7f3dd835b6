//! The use cases of parking, one service per aggregate over one shared context.
//!
//! [`Services`] is the context every service shares (store, clock, signers, the availability
//! index, tariff and payment settings); it is cheap to clone. Each aggregate is a view of it,
//! reached through an accessor, and owns the use cases of its records:
//!
//! | service | use cases | module |
//! |---|---|---|
//! | [`Lots`] (`services.lots()`) | lots and spots, rates, live availability | `lots/` |
//! | [`Reservations`] | book, change, cancel, passes, the no-show/expiry sweep | `reservations/` |
//! | [`Gates`] | entries by pass, plate or drive-up; exits and their charge | `gates/` |
//! | [`Payments`] | pay a reservation, prepaid balance, refunds, gateway webhooks | `payments/` |
//! | [`MonthlyPasses`] | pass products, buying, renewal and reminders, cancellation | `monthly/` |
//! | [`Waitlist`] | join, withdraw, serve waiters as spots free up | `waitlist.rs` |
//! | [`Admin`] | lot edits, spot closing, reservation search, inquiries, audit log | `admin.rs` |
//! | [`Privacy`] | a driver's data export and erasure | `privacy.rs` |
//!
//! A service applies `domain` rules and keeps its records through `store`; it may call another
//! service through the context (`self.lots().lot(id)`), never the HTTP edge. Every state change
//! and its event commit together (see [`crate::store::Change`]).

pub mod admin;
pub mod gates;
pub mod live;
pub mod lots;
pub mod monthly;
pub mod payments;
pub mod privacy;
pub mod reservations;
pub mod waitlist;

pub use gates::{CheckInReceipt, CheckInRequest, ExitReceipt, ExitRequest};
pub use lots::{
    DEFAULT_CURRENCY, Lot, NewLot, PublishRates, Rate, RateSchedule, currency_code, lot_capacity,
};
pub(crate) use lots::{as_scheduled, check_rate, scheduled_rates};

use crate::auth::PassSigner;
use crate::clock::Clock;
use crate::config::PaymentsConfig;
use crate::domain::availability::AvailabilityIndex;
use crate::domain::tariff::TariffRules;
use crate::gateway::{PaymentGateway, SandboxGateway};
use crate::metrics::ApiMetrics;
use crate::store::{Store, Watched};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use crate::domain::{MAX_CENTS_PER_HOUR, MAX_SPOTS_PER_LOT};

/// The context every service shares. Cloning it is cheap: clones share the store's pools, the
/// availability index and the payment gateway.
#[derive(Debug, Clone)]
pub struct Services {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: ApiMetrics,
    passes: PassSigner,
    availability: Arc<AvailabilityIndex>,
    /// The outbox position up to which other processes' changes were applied to `availability`.
    availability_position: Arc<AtomicI64>,
    /// Other connections' commits found by the SQLite writer (`store::WriterWatch`) that a
    /// sync has applied to `availability`.
    availability_synced: Arc<AtomicU64>,
    /// Whether `availability` is the index that claimed the store's writer watch (the first
    /// one on the store): another may not rely on it.
    watches_writer: bool,
    tariff: TariffRules,
    payments: Arc<PaymentsConfig>,
    gateway: Arc<dyn PaymentGateway>,
    live: Arc<live::LiveHub>,
}

/// Declares a service: a view of the shared context whose methods are one aggregate's use
/// cases. Through `Deref` it reads the context (`self.store()`, `self.now()`) and reaches the
/// other services (`self.reservations()`).
macro_rules! service {
    ($(#[$doc:meta])* $name:ident, $accessor:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'a> {
            cx: &'a Services,
        }

        impl std::ops::Deref for $name<'_> {
            type Target = Services;

            fn deref(&self) -> &Services {
                self.cx
            }
        }

        impl Services {
            $(#[$doc])*
            pub fn $accessor(&self) -> $name<'_> {
                $name { cx: self }
            }
        }
    };
}

service!(
    /// Lots and their spots, the rates in force and announced, live availability.
    Lots, lots
);
service!(
    /// Reservations: booking, changes, cancellation, gate passes, the lifecycle sweep.
    Reservations, reservations
);
service!(
    /// The gates: entries (pass, plate, drive-up) and exits with their charge.
    Gates, gates
);
service!(
    /// Payments: paying reservations, the prepaid balance, refunds, gateway webhooks.
    Payments, payments
);
service!(
    /// Live availability: lots' free spots and rates pushed to watchers as they change.
    Live, live
);
service!(
    /// Monthly passes: products per lot, purchases, renewals and cancellations, the holders a
    /// gate recognises.
    MonthlyPasses, monthly_passes
);
service!(
    /// The waitlist of full windows.
    Waitlist, waitlist
);
service!(
    /// What lot admins do: lot edits, spots, reservation search, inquiries, the audit log.
    Admin, admin
);
service!(
    /// A driver's data: export and erasure.
    Privacy, privacy
);

impl Services {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: ApiMetrics,
        passes: PassSigner,
    ) -> Self {
        let watches_writer = store.writer_watch().is_some_and(|w| w.claim());
        Self {
            store,
            clock,
            metrics,
            passes,
            availability: Arc::new(AvailabilityIndex::new()),
            availability_position: Arc::new(AtomicI64::new(0)),
            availability_synced: Arc::new(AtomicU64::new(0)),
            watches_writer,
            tariff: TariffRules::default(),
            payments: Arc::new(PaymentsConfig::default()),
            gateway: Arc::new(SandboxGateway::default()),
            live: Arc::new(live::LiveHub::new(crate::config::LiveConfig::default())),
        }
    }

    /// The same services reading the time from `clock`; the store, the availability index, the
    /// gateway and the live streams stay shared with the others. The simulator runs each lot on
    /// a clock of its own.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keep live streams under `config` (heartbeat, polling, limits).
    pub fn with_live(mut self, config: crate::config::LiveConfig) -> Self {
        self.live = Arc::new(live::LiveHub::new(config));
        self
    }

    /// The live streams' limits and timing.
    pub fn live_config(&self) -> crate::config::LiveConfig {
        self.live.config()
    }

    pub(crate) fn live_hub(&self) -> &live::LiveHub {
        &self.live
    }

    /// Take payments under `config` through `gateway`.
    pub fn with_payments(
        mut self,
        config: PaymentsConfig,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        self.payments = Arc::new(config);
        self.gateway = gateway;
        self
    }

    pub fn gateway(&self) -> &dyn PaymentGateway {
        self.gateway.as_ref()
    }

    /// The tariff rules a reservation's quote is priced by: the stay's rules without grace
    /// period or free minutes (those are for drive-ups).
    pub(crate) fn quote_rules(&self) -> TariffRules {
        TariffRules {
            grace_minutes: 0,
            free_minutes: 0,
            ..self.tariff
        }
    }

    /// What payments are taken under (methods, refund policy, the webhook secret).
    pub fn payments_config(&self) -> &PaymentsConfig {
        &self.payments
    }

    /// Charge stays under `rules` (grace, free minutes, increment, daily cap).
    pub fn with_tariff(mut self, rules: TariffRules) -> Self {
        self.tariff = rules;
        self
    }

    pub(crate) fn metrics(&self) -> &ApiMetrics {
        &self.metrics
    }

    pub(crate) fn passes(&self) -> &PassSigner {
        &self.passes
    }

    pub(crate) fn availability(&self) -> &AvailabilityIndex {
        &self.availability
    }

    pub(crate) fn availability_position(&self) -> i64 {
        self.availability_position.load(Ordering::Acquire)
    }

    pub(crate) fn set_availability_position(&self, position: i64) {
        self.availability_position
            .fetch_max(position, Ordering::AcqRel);
    }

    /// A sync applied every other connection's commit up to the outbox head it read after
    /// `foreign_commits` ([`WriterWatch::foreign_commits`](crate::store::WriterWatch)).
    pub(crate) fn set_availability_synced(&self, foreign_commits: u64) {
        self.availability_synced
            .fetch_max(foreign_commits, Ordering::SeqCst);
    }

    /// Whether the availability index held every commit of the store when it was asked, given
    /// the writer's open transaction `watched` read before asking: that transaction is still
    /// open (so no other connection has committed since it began), and the other connections'
    /// commits the writer had found by then are synced. Only SQLite's single writer can tell;
    /// elsewhere, never. (The index also holds this process's own commits, each applied once
    /// its change has committed, before its request is answered.)
    pub(crate) fn index_held_every_commit(&self, watched: Option<Watched>) -> bool {
        let (Some(watch), Some(watched), true) =
            (self.store.writer_watch(), watched, self.watches_writer)
        else {
            return false;
        };
        watched.foreign_commits <= self.availability_synced.load(Ordering::SeqCst)
            && watch.still_open(watched)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

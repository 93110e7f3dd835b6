//! Synthetic lots and drivers for the demo, benchmarks and pricing evaluation.
//!
//! Demand has the shapes operators see: weekday commuters with personal habits (their own
//! arrival time ± noise and stay length), midday and weekend visitors, and evening events with
//! surges. Visitors respond to price with a constant elasticity (≈ −0.4, SFpark's measured
//! average); commuters much less. Everything is seeded and reproducible. The simulator drives the
//! real API service layer with manual clocks (one per lot, see [`shard`]); it never writes events
//! itself.

pub mod history;
mod passes;
pub mod scenario;
mod shard;
pub mod world;

pub use scenario::{Arrival, ArrivalKind, LotPlan, SimConfig, scenario};

use chrono::{DateTime, Duration, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::services::gates::GateEntry;
use parkflow_api::services::payments::{PaymentMethod, PaymentStatus};
use parkflow_api::services::reservations::lifecycle::ReservationTimers;
use parkflow_api::services::reservations::{BookingRequest, ChangeRequest, Near, VehicleChoice};
use parkflow_api::services::waitlist::JoinWaitlist;
use parkflow_api::{Clock, Error as ApiError, ManualClock, Services};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::Arc;
use warehouse_schema::{EntryMethod, LotId, SessionId, UserId};
use world::{Booked, Intent, Pay, Then};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api: {0}")]
    Api(#[from] ApiError),
}

/// What happened during a simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Drivers who wanted to come before looking at the price.
    pub demand: u64,
    /// Drivers who stayed away because of the price.
    pub priced_out: u64,
    /// Drivers who came and found no free compatible spot.
    pub turned_away: u64,
    pub checked_in: u64,
    pub exits: u64,
    /// Vehicles still parked when the simulation ended (open stays).
    pub still_parked: u64,
    pub revenue_cents: i64,
    /// Reservations made (directly or by the waitlist).
    pub reservations: u64,
    /// Bookings the lot could not take (the window was full): the driver joined the waitlist.
    pub waitlisted: u64,
    /// Waiters the waitlist booked when a spot freed up.
    pub waitlist_booked: u64,
    /// Bookings the rules refused (e.g. a window past the booking horizon): the driver drove up.
    pub booking_refused: u64,
    /// Payments captured by method, and declined.
    pub paid_card: u64,
    pub paid_wallet: u64,
    pub paid_balance: u64,
    pub payments_declined: u64,
    /// Captured card payments the bank reversed later (the gateway's signed webhook), which
    /// cancels their reservations.
    pub payments_reversed: u64,
    pub top_ups: u64,
    pub cancelled: u64,
    pub changed: u64,
    /// Reservations the `reservations` sweep cancelled because nobody came.
    pub no_shows: u64,
    /// Entries by gate pass, by plate (commuters), and drive-ups with nothing to present.
    pub pass_entries: u64,
    pub plate_entries: u64,
    pub drive_ups: u64,
    /// Monthly passes commuters bought as the world began, and their holders' entries (by
    /// plate, free inside the pass's hours).
    pub passes_bought: u64,
    pub holder_entries: u64,
}

impl SimReport {
    /// Add `other`'s counts to these (one lot's to the world's).
    fn add(&mut self, other: &SimReport) {
        let SimReport {
            demand,
            priced_out,
            turned_away,
            checked_in,
            exits,
            still_parked,
            revenue_cents,
            reservations,
            waitlisted,
            waitlist_booked,
            booking_refused,
            paid_card,
            paid_wallet,
            paid_balance,
            payments_declined,
            payments_reversed,
            top_ups,
            cancelled,
            changed,
            no_shows,
            pass_entries,
            plate_entries,
            drive_ups,
            passes_bought,
            holder_entries,
        } = other;
        self.demand += demand;
        self.priced_out += priced_out;
        self.turned_away += turned_away;
        self.checked_in += checked_in;
        self.exits += exits;
        self.still_parked += still_parked;
        self.revenue_cents += revenue_cents;
        self.reservations += reservations;
        self.waitlisted += waitlisted;
        self.waitlist_booked += waitlist_booked;
        self.booking_refused += booking_refused;
        self.paid_card += paid_card;
        self.paid_wallet += paid_wallet;
        self.paid_balance += paid_balance;
        self.payments_declined += payments_declined;
        self.payments_reversed += payments_reversed;
        self.top_ups += top_ups;
        self.cancelled += cancelled;
        self.changed += changed;
        self.no_shows += no_shows;
        self.pass_entries += pass_entries;
        self.plate_entries += plate_entries;
        self.drive_ups += drive_ups;
        self.passes_bought += passes_bought;
        self.holder_entries += holder_entries;
    }
}

/// What a driver tops a prepaid balance up by, and below what balance they do.
const TOP_UP_CENTS: i64 = 10_000;
const TOP_UP_BELOW: i64 = 3_000;

/// How often the simulated `reservations` job runs: the time slice the lots run side by side in.
const SWEEP_EVERY: i64 = 15;

/// Slices between two commits of the replay's batch: a simulated hour. Once a slice, the
/// commits took 2.42 s of the 10.9 s spent in SQLite in `demo --lots 100 --days 2`; once an
/// hour, 1.05 s of 10.0 s (the pages a slice changes are mostly those the next slices change
/// again; BENCHMARKS.md "Stop 34").
const COMMIT_EVERY: u32 = 4;

/// One driver: who they are, what they intend and what they hold.
struct Driver {
    arrival: Arrival,
    intent: Intent,
    user: Option<UserId>,
    booked: Option<Booked>,
    /// Went to the waitlist: at the gate, look for the booking it may have made.
    waiting: bool,
    /// Cancelled, or booked and never comes (a no-show).
    stays_home: bool,
}

impl Driver {
    fn new(seed: u64, arrival: Arrival) -> Self {
        let intent = world::intent(seed, &arrival);
        let user = match (intent, arrival.user_id) {
            (_, Some(u)) => Some(u),
            (Intent::Reserve { .. }, None) => Some(world::visitor_account(seed, &arrival)),
            (Intent::DriveUp, None) => None,
        };
        Self {
            arrival,
            intent,
            user,
            booked: None,
            waiting: false,
            stays_home: false,
        }
    }
}

/// Replay `arrivals` (already priced and thinned, any order) through the API until `end`:
/// bookings, payments, changes, cancellations, entries, exits and the `reservations` job's
/// sweeps. Each driver's choices come from [`world::intent`] under `seed`.
///
/// Lots are independent, so each lot's drivers run in a [`shard::Shard`] on a clock of its own,
/// in time order. The shards of all lots run side by side (their changes share the store's
/// commits) for one slice of [`SWEEP_EVERY`] minutes; then `clock`, the services' own, is set to
/// the slice's end and the `reservations` job runs for every lot, as `serve` schedules it. What
/// is due exactly at a slice's end happens after its sweep.
///
/// The replay is the store's one client, so its changes run in a batch (`Store::begin_batch`):
/// each is answered at once, and the batch commits after every [`COMMIT_EVERY`] slices'
/// sweeps (one commit per simulated hour instead of one per group of changes). An error ends
/// the run and discards what was not committed.
///
/// The shards are tasks of the calling thread (a `LocalSet`), not of the runtime's workers: a
/// change does nearly all its work holding the store's one writer, so two workers took turns
/// and each turn woke a task on the other thread (futexes, an eventfd, epoll). On one thread
/// `demo --lots 20 --days 3` used 17 % less CPU and as much wall time or less; the same shards
/// split over two single-threaded runtimes were slower (12.3 s against 9.6 s).
pub async fn run(
    services: (&Services, &parkflow_api::accounts::Accounts),
    clock: &ManualClock,
    arrivals: Vec<Arrival>,
    world: (u64, DateTime<Utc>),
    progress: impl FnMut(u64),
) -> Result<SimReport, Error> {
    tokio::task::LocalSet::new()
        .run_until(replay(services, clock, arrivals, world, progress))
        .await
}

async fn replay(
    (service, accounts): (&Services, &parkflow_api::accounts::Accounts),
    clock: &ManualClock,
    arrivals: Vec<Arrival>,
    (seed, end): (u64, DateTime<Utc>),
    mut progress: impl FnMut(u64),
) -> Result<SimReport, Error> {
    let start = clock.now();
    let batch = service.store().begin_batch().await?;
    let mut arrivals = arrivals;
    arrivals.sort_by_key(|a| (a.at, a.lot_id, a.seq));
    let drivers: Vec<Driver> = arrivals
        .into_iter()
        .filter(|a| a.at < end)
        .map(|a| Driver::new(seed, a))
        .collect();
    let (holders, bought) = passes::sell(service, accounts, seed, &drivers).await?;
    let holders = Arc::new(holders);
    let mut by_lot: BTreeMap<LotId, Vec<Driver>> = BTreeMap::new();
    for d in drivers {
        by_lot.entry(d.arrival.lot_id).or_default().push(d);
    }
    let mut shards: Vec<shard::Shard> = by_lot
        .into_values()
        .map(|drivers| shard::Shard::new(service, (start, seed), holders.clone(), drivers))
        .collect();
    let timers = ReservationTimers::default();
    let mut report = SimReport {
        passes_bought: bought,
        ..SimReport::default()
    };
    let mut from = start;
    let mut slices = 0;
    while from < end {
        let until = (from + Duration::minutes(SWEEP_EVERY)).min(end);
        // Each shard is a task of this thread: while one waits for the store, another queues
        // its change behind it or joins its commit.
        let running: Vec<_> = shards
            .drain(..)
            .map(|mut shard| {
                tokio::task::spawn_local(async move {
                    let arrived = shard.run_until(until).await;
                    (shard, arrived)
                })
            })
            .collect();
        let mut failed = None;
        for task in running {
            let (shard, arrived) = match task.await {
                Ok(done) => done,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            match arrived {
                Ok(n) => progress(n),
                Err(e) => failed = failed.or(Some(e)),
            }
            shards.push(shard);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if until < end {
            clock.set(until);
            let job = service
                .reservations()
                .run_reservations_job(until, &timers)
                .await?;
            report.no_shows += job.reservations.no_shows as u64;
        }
        slices += 1;
        if slices % COMMIT_EVERY == 0 {
            batch.commit().await?;
        }
        from = until;
    }
    batch.finish().await?;
    clock.set(end);
    for shard in shards {
        report.add(&shard.finish());
    }
    Ok(report)
}

/// Whether `e` is the refusal an expected situation gets (a full lot, a taken spot, a closed
/// window, a declined card), as opposed to a fault.
fn refused(e: &ApiError) -> bool {
    e.is_client_error()
}

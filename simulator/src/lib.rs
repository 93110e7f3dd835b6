//! Synthetic lots and drivers for the demo, benchmarks and pricing evaluation.
//!
//! Demand has the shapes operators see: weekday commuters with personal habits (their own
//! arrival time ± noise and stay length), midday and weekend visitors, and evening events with
//! surges. Visitors respond to price with a constant elasticity (≈ −0.4, SFpark's measured
//! average); commuters much less. Everything is seeded and reproducible. The simulator drives the
//! real API service layer with a manual clock; it never writes events itself.

pub mod history;
mod passes;
pub mod scenario;
pub mod world;

pub use scenario::{Arrival, ArrivalKind, LotPlan, SimConfig, scenario};

use chrono::{DateTime, Duration, Utc};
use parkflow_api::services::CheckInRequest;
use parkflow_api::services::gates::GateEntry;
use parkflow_api::services::payments::{PaymentMethod, PaymentStatus};
use parkflow_api::services::reservations::lifecycle::ReservationTimers;
use parkflow_api::services::reservations::{BookingRequest, ChangeRequest, VehicleChoice};
use parkflow_api::services::waitlist::JoinWaitlist;
use parkflow_api::{Clock, Error as ApiError, ManualClock, Services};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
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

/// Something that happens at an instant: the heap orders them by time, then by `seq`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// Driver `i` books.
    Book(usize),
    /// Driver `i` cancels or changes their booking.
    Rethink(usize),
    /// Driver `i` reaches the gate.
    Arrive(usize),
    /// A stay ends.
    Depart(LotId, SessionId),
    /// The bank reverses the captured charge with this gateway reference.
    Reverse(String),
    /// The `reservations` job: reminders, no-shows, the waitlist.
    Sweep,
}

type Scheduled = Reverse<(DateTime<Utc>, u64, Action)>;

/// What a driver tops a prepaid balance up by, and below what balance they do.
const TOP_UP_CENTS: i64 = 10_000;
const TOP_UP_BELOW: i64 = 3_000;

/// How often the simulated `reservations` job runs.
const SWEEP_EVERY: i64 = 15;

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

/// Replay `arrivals` (already priced and thinned, any order) through the API until `end`:
/// bookings, payments, changes, cancellations, entries, exits and the `reservations` job's
/// sweeps in global time order, with the clock set to each instant. Each driver's choices come
/// from [`world::intent`] under `seed`.
pub async fn run(
    (service, accounts): (&Services, &parkflow_api::accounts::Accounts),
    clock: &ManualClock,
    arrivals: Vec<Arrival>,
    (seed, end): (u64, DateTime<Utc>),
    mut progress: impl FnMut(u64),
) -> Result<SimReport, Error> {
    let start = clock.now();
    let mut world = World {
        service,
        clock,
        report: SimReport::default(),
        queue: BinaryHeap::new(),
        seq: 0,
        drivers: Vec::new(),
        topped_up: HashSet::new(),
        timers: ReservationTimers::default(),
        seed,
        holders: passes::Holders::new(),
    };
    let mut arrivals = arrivals;
    arrivals.sort_by_key(|a| (a.at, a.lot_id, a.seq));
    for a in arrivals.into_iter().filter(|a| a.at < end) {
        let i = world.drivers.len();
        let intent = world::intent(seed, &a);
        let user = match (intent, a.user_id) {
            (_, Some(u)) => Some(u),
            (Intent::Reserve { .. }, None) => Some(world::visitor_account(seed, &a)),
            (Intent::DriveUp, None) => None,
        };
        if let Intent::Reserve { lead, .. } = intent {
            // Booking before the world began is booking as it begins (if still ahead).
            let at = (a.at - lead).max(start);
            if a.at - at >= Duration::minutes(30) {
                world.schedule(at, Action::Book(i));
            }
        }
        world.schedule(a.at, Action::Arrive(i));
        world.drivers.push(Driver {
            arrival: a,
            intent,
            user,
            booked: None,
            waiting: false,
            stays_home: false,
        });
    }
    let (holders, bought) = passes::sell(service, accounts, seed, &world.drivers).await?;
    world.holders = holders;
    world.report.passes_bought = bought;
    let mut sweep = start + Duration::minutes(SWEEP_EVERY);
    while sweep < end {
        world.schedule(sweep, Action::Sweep);
        sweep += Duration::minutes(SWEEP_EVERY);
    }
    while let Some(Reverse((at, _, action))) = world.queue.pop() {
        if at >= end {
            if matches!(action, Action::Depart(..)) {
                world.report.still_parked += 1;
            }
            continue;
        }
        clock.set(at);
        match action {
            Action::Book(i) => world.book(i).await?,
            Action::Rethink(i) => world.rethink(i).await?,
            Action::Arrive(i) => {
                world.arrive(i).await?;
                progress(1);
            }
            Action::Depart(lot, session) => world.depart(lot, session).await?,
            Action::Reverse(reference) => world.reverse(&reference).await?,
            Action::Sweep => world.sweep().await?,
        }
    }
    clock.set(end);
    Ok(world.report)
}

struct World<'a> {
    service: &'a Services,
    clock: &'a ManualClock,
    report: SimReport,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    drivers: Vec<Driver>,
    /// Drivers whose prepaid balance was opened.
    topped_up: HashSet<UserId>,
    timers: ReservationTimers,
    seed: u64,
    /// Commuters holding a monthly pass, and the account that holds it.
    holders: passes::Holders,
}

/// Whether `e` is the refusal an expected situation gets (a full lot, a taken spot, a closed
/// window, a declined card), as opposed to a fault.
fn refused(e: &ApiError) -> bool {
    e.is_client_error()
}

impl World<'_> {
    fn schedule(&mut self, at: DateTime<Utc>, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, action)));
    }

    async fn book(&mut self, i: usize) -> Result<(), Error> {
        let Intent::Reserve { pay, then, .. } = self.drivers[i].intent else {
            return Ok(());
        };
        let Some(user) = self.drivers[i].user else {
            return Ok(());
        };
        let a = self.drivers[i].arrival.clone();
        let (start_at, end_at) = world::window(a.at, a.stay);
        let request = BookingRequest {
            lot_id: a.lot_id,
            spot_id: None,
            start_at,
            end_at,
            vehicle: VehicleChoice::Type(a.vehicle_type),
            near: None,
        };
        let key = format!("sim-{}-{}", self.seed, a.seq);
        let reservations = self.service.reservations();
        let (reservation, pass) = match reservations.book(user, request, &key).await {
            Ok(booked) => booked,
            Err(ApiError::Conflict {
                code: "no_spot_available",
                ..
            }) => {
                let join = JoinWaitlist {
                    lot_id: a.lot_id,
                    start_at,
                    end_at,
                    vehicle_type: a.vehicle_type,
                    auto_book: true,
                };
                match self.service.waitlist().join_waitlist(user, join).await {
                    Ok(_) => {
                        self.report.waitlisted += 1;
                        self.drivers[i].waiting = true;
                    }
                    Err(e) if refused(&e) => self.report.booking_refused += 1,
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
            Err(e) if refused(&e) => {
                self.report.booking_refused += 1;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.report.reservations += 1;
        if self.pay(user, reservation.id, pay, &key).await? {
            self.drivers[i].booked = Some(Booked {
                id: reservation.id,
                pass: pass.map(|p| p.pass),
            });
            let now = self.clock.now();
            // The bank claws a reversed charge back halfway to the start.
            if let Some(sandbox) = self.service.gateway().sandbox() {
                let halfway = now + (start_at - now) / 2;
                for reference in sandbox.take_reversals() {
                    self.schedule(halfway, Action::Reverse(reference));
                }
            }
            match then {
                Then::NoShow => self.drivers[i].stays_home = true,
                Then::Cancel(share) | Then::Change(share) => {
                    let wait = (start_at - now).num_seconds().max(0) as f64;
                    let at = now + Duration::seconds((wait * share) as i64);
                    self.schedule(at, Action::Rethink(i));
                }
                Then::Show => {}
            }
        }
        Ok(())
    }

    /// Pay for a reservation; whether it was captured (a declined payment cancels the
    /// reservation, and the driver will drive up instead).
    async fn pay(
        &mut self,
        user: UserId,
        reservation: warehouse_schema::ReservationId,
        pay: Pay,
        key: &str,
    ) -> Result<bool, Error> {
        let payments = self.service.payments();
        let method = match pay {
            Pay::Card { declined, reversed } => PaymentMethod::Card {
                token: match (declined, reversed) {
                    (true, _) => "tok_decline",
                    (false, true) => "tok_reverse",
                    (false, false) => "tok_ok",
                }
                .into(),
                last4: "4242".into(),
            },
            Pay::Wallet { declined } => PaymentMethod::Wallet {
                token: if declined { "wal_decline" } else { "wal_ok" }.into(),
            },
            Pay::Balance => {
                // A driver paying from a prepaid balance tops it up when it runs low (the
                // first time, to open it), as the app suggests.
                if self.topped_up.insert(user) || payments.balance(user).await? < TOP_UP_BELOW {
                    let card = PaymentMethod::Card {
                        token: "tok_ok".into(),
                        last4: "1881".into(),
                    };
                    let top_up = format!("{key}-top-up");
                    payments
                        .top_up(user, TOP_UP_CENTS, None, card, &top_up)
                        .await?;
                    self.report.top_ups += 1;
                }
                PaymentMethod::Balance
            }
        };
        match payments
            .pay_reservation(user, reservation, method, &format!("{key}-pay"))
            .await
        {
            Ok(p) if p.status == PaymentStatus::Captured => {
                match pay {
                    Pay::Card { .. } => self.report.paid_card += 1,
                    Pay::Wallet { .. } => self.report.paid_wallet += 1,
                    Pay::Balance => self.report.paid_balance += 1,
                }
                Ok(true)
            }
            Ok(_) => {
                self.report.payments_declined += 1;
                Ok(false)
            }
            Err(e) if refused(&e) => {
                self.report.payments_declined += 1;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn rethink(&mut self, i: usize) -> Result<(), Error> {
        let (Some(user), Some(booked)) = (self.drivers[i].user, self.drivers[i].booked.clone())
        else {
            return Ok(());
        };
        let reservations = self.service.reservations();
        match self.drivers[i].intent {
            Intent::Reserve {
                then: Then::Cancel(_),
                ..
            } => match reservations.cancel_reservation(user, booked.id).await {
                Ok(_) => {
                    self.report.cancelled += 1;
                    self.drivers[i].booked = None;
                    self.drivers[i].stays_home = true;
                }
                Err(e) if refused(&e) => {}
                Err(e) => return Err(e.into()),
            },
            Intent::Reserve {
                then: Then::Change(_),
                ..
            } => {
                let later = Duration::minutes(30);
                let a = &self.drivers[i].arrival;
                let (start_at, end_at) = world::window(a.at + later, a.stay);
                let change = ChangeRequest {
                    start_at: Some(start_at),
                    end_at: Some(end_at),
                    ..ChangeRequest::default()
                };
                match reservations.change(user, booked.id, change).await {
                    Ok(_) => {
                        self.report.changed += 1;
                        // The driver now comes half an hour later (the first arrival is void).
                        let arrive_at = a.at + later;
                        self.drivers[i].arrival.at = arrive_at;
                        self.schedule(arrive_at, Action::Arrive(i));
                    }
                    Err(e) if refused(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn arrive(&mut self, i: usize) -> Result<(), Error> {
        let now = self.clock.now();
        let d = &self.drivers[i];
        // A driver whose window moved comes at the new time only; one who cancelled, or who
        // booked and forgot, does not come.
        if d.arrival.at != now || d.stays_home {
            return Ok(());
        }
        let mut pass = d.booked.as_ref().and_then(|b| b.pass.clone());
        let a = d.arrival.clone();
        if pass.is_none()
            && d.waiting
            && let Some(user) = d.user
        {
            pass = self.waitlist_pass(user, &a).await?;
        }
        let gates = self.service.gates();
        if let Some(pass) = pass {
            let entry = GateEntry {
                method: if a.seq.is_multiple_of(3) {
                    EntryMethod::Nfc
                } else {
                    EntryMethod::Qr
                },
                pass: Some(pass),
                plate: None,
                vehicle_type: None,
                user_id: None,
            };
            match gates.enter(a.lot_id, entry).await {
                Ok(receipt) => {
                    self.report.checked_in += 1;
                    self.report.pass_entries += 1;
                    self.schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
                    return Ok(());
                }
                // Too early, too late or cancelled meanwhile: drive up like anyone else.
                Err(e) if refused(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // A pass holder's plate opens the gate on the pass.
        if a.user_id.is_some_and(|u| self.holders.contains_key(&u)) {
            let entry = GateEntry {
                method: EntryMethod::Plate,
                pass: None,
                plate: a.plate.clone(),
                vehicle_type: Some(a.vehicle_type),
                user_id: None,
            };
            match gates.enter(a.lot_id, entry).await {
                Ok(receipt) => {
                    self.report.checked_in += 1;
                    if receipt.monthly_pass_id.is_some() {
                        self.report.holder_entries += 1;
                    } else {
                        self.report.plate_entries += 1;
                    }
                    self.schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
                }
                Err(e) if refused(&e) => self.report.turned_away += 1,
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        let request = CheckInRequest {
            vehicle_type: a.vehicle_type,
            method: a.method,
            plate: a.plate.clone(),
            user_id: a.user_id,
        };
        match gates.check_in(a.lot_id, request).await {
            Ok(receipt) => {
                self.report.checked_in += 1;
                if a.method == EntryMethod::Plate {
                    self.report.plate_entries += 1;
                } else {
                    self.report.drive_ups += 1;
                }
                self.schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
            }
            // The lot is full for this vehicle (or refuses it otherwise): turned away.
            Err(e) if refused(&e) => self.report.turned_away += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The pass of the booking the waitlist made for `user` covering `a`'s arrival, if any.
    async fn waitlist_pass(&mut self, user: UserId, a: &Arrival) -> Result<Option<String>, Error> {
        let reservations = self.service.reservations();
        let (mine, _) = reservations.reservations_of(user, 1, 50).await?;
        let Some(r) = mine.into_iter().find(|r| {
            r.lot_id == a.lot_id && r.start_at <= a.at + Duration::minutes(15) && a.at < r.end_at
        }) else {
            return Ok(None);
        };
        self.report.waitlist_booked += 1;
        match reservations.gate_pass(user, r.id).await {
            Ok(p) => Ok(Some(p.pass)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn depart(&mut self, lot: LotId, session: SessionId) -> Result<(), Error> {
        let receipt = self.service.gates().check_out(lot, session).await?;
        self.report.exits += 1;
        self.report.revenue_cents += receipt.amount_cents;
        Ok(())
    }

    /// The gateway posts its signed `payment.reversed` webhook: the reservation is cancelled
    /// and its driver told (at the gate, their pass is refused and they drive up).
    async fn reverse(&mut self, reference: &str) -> Result<(), Error> {
        let Some(sandbox) = self.service.gateway().sandbox() else {
            return Ok(());
        };
        let hook = sandbox.reversal_webhook(reference);
        match self
            .service
            .payments()
            .gateway_webhook(hook.body.as_bytes(), &hook.signature)
            .await
        {
            Ok(true) => self.report.payments_reversed += 1,
            Ok(false) => {}
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    async fn sweep(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        let swept = self
            .service
            .reservations()
            .sweep_reservations(now, &self.timers)
            .await?;
        self.report.no_shows += swept.no_shows as u64;
        // Monthly passes: reminders and renewals at their periods' end.
        self.service.monthly_passes().sweep_passes(now).await?;
        let waiting: BTreeSet<LotId> = self
            .service
            .waitlist()
            .lots_with_waiters()
            .await?
            .into_iter()
            .collect();
        for lot in waiting {
            self.service.waitlist().serve_waitlist(lot).await?;
        }
        Ok(())
    }
}

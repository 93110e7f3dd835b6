//! One lot's drivers on a clock of their own.
//!
//! Lots are independent: a driver books, pays, waits and parks at one lot, and a commuter keeps
//! to theirs. So each lot's drivers are replayed by a [`Shard`] with its own clock and its own
//! view of the services, and the shards of all lots run side by side, one time slice at a time
//! (see [`crate::run`]). Inside a shard everything happens in time order, as it would at that
//! lot.

use super::*;
use parkflow_api::gateway::SandboxGateway;
use std::sync::Arc;

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
}

type Scheduled = Reverse<(DateTime<Utc>, u64, Action)>;

/// What is due, in time order (then in the order it was scheduled).
#[derive(Default)]
struct Agenda {
    queue: BinaryHeap<Scheduled>,
    seq: u64,
}

impl Agenda {
    fn schedule(&mut self, at: DateTime<Utc>, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, action)));
    }
}

/// One lot's drivers, what they hold, and what is due next.
pub(crate) struct Shard {
    /// The services on this shard's clock (and, with the sandbox, its own sandbox: the charges
    /// the bank will reverse are this lot's).
    service: Services,
    clock: ManualClock,
    report: SimReport,
    agenda: Agenda,
    drivers: Vec<Driver>,
    /// Drivers whose prepaid balance was opened.
    topped_up: HashSet<UserId>,
    seed: u64,
    /// Commuters holding a monthly pass, and the account that holds it.
    holders: Arc<passes::Holders>,
}

impl Shard {
    /// A shard replaying `drivers` (of one lot, in arrival order) from `start`.
    pub(crate) fn new(
        service: &Services,
        (start, seed): (DateTime<Utc>, u64),
        holders: Arc<passes::Holders>,
        drivers: Vec<Driver>,
    ) -> Self {
        let clock = ManualClock::new(start);
        let mut own = service.clone().with_clock(Arc::new(clock.clone()));
        if service.gateway().sandbox().is_some() {
            let config = service.payments_config().clone();
            let sandbox = SandboxGateway::new(&config.webhook_secret);
            own = own.with_payments(config, Arc::new(sandbox));
        }
        let mut shard = Self {
            service: own,
            clock,
            report: SimReport::default(),
            agenda: Agenda::default(),
            drivers: Vec::new(),
            topped_up: HashSet::new(),
            seed,
            holders,
        };
        for (i, d) in drivers.iter().enumerate() {
            if let Intent::Reserve { lead, .. } = d.intent {
                // Booking before the world began is booking as it begins (if still ahead).
                let at = (d.arrival.at - lead).max(start);
                if d.arrival.at - at >= Duration::minutes(30) {
                    shard.agenda.schedule(at, Action::Book(i));
                }
            }
            shard.agenda.schedule(d.arrival.at, Action::Arrive(i));
        }
        shard.drivers = drivers;
        shard
    }

    /// Everything due before `until`, in time order; how many drivers reached the gate.
    pub(crate) async fn run_until(&mut self, until: DateTime<Utc>) -> Result<u64, Error> {
        let mut arrived = 0;
        while let Some(Reverse((at, _, _))) = self.agenda.queue.peek() {
            if *at >= until {
                break;
            }
            let Some(Reverse((at, _, action))) = self.agenda.queue.pop() else {
                break;
            };
            self.clock.set(at);
            match action {
                Action::Book(i) => self.book(i).await?,
                Action::Rethink(i) => self.rethink(i).await?,
                Action::Arrive(i) => {
                    self.arrive(i).await?;
                    arrived += 1;
                }
                Action::Depart(lot, session) => self.depart(lot, session).await?,
                Action::Reverse(reference) => self.reverse(&reference).await?,
            }
        }
        Ok(arrived)
    }

    /// What happened at this lot, with the stays still open (their exits are due after the end).
    pub(crate) fn finish(mut self) -> SimReport {
        self.report.still_parked = self
            .agenda
            .queue
            .iter()
            .filter(|Reverse((_, _, action))| matches!(action, Action::Depart(..)))
            .count() as u64;
        self.report
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
            near: Near::Workplace,
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
                    self.agenda.schedule(halfway, Action::Reverse(reference));
                }
            }
            match then {
                Then::NoShow => self.drivers[i].stays_home = true,
                Then::Cancel(share) | Then::Change(share) => {
                    let wait = (start_at - now).num_seconds().max(0) as f64;
                    let at = now + Duration::seconds((wait * share) as i64);
                    self.agenda.schedule(at, Action::Rethink(i));
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
                        self.agenda.schedule(arrive_at, Action::Arrive(i));
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
                    self.agenda
                        .schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
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
                    self.agenda
                        .schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
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
                self.agenda
                    .schedule(a.at + a.stay, Action::Depart(a.lot_id, receipt.session_id));
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
}

//! Booking: the window checked against the lot's rules, the spot chosen, the reservation, its
//! confirmation and its event written in one transaction.

use super::*;
use crate::domain::availability::{Hold, Offer};
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::{Choice, best_spot};
use crate::notifications::{NotificationKind, about_reservation};
use crate::services::Reservations;
use crate::store::group::Booking;
use crate::store::reservations as rows;
use crate::store::{Backend, Conn, LostRace, Watched, idempotency as keys, lost_race};
use chrono::{DateTime, Utc};
use warehouse_schema::event::ReservationWindow;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SpotId, UserId};

/// A booking request's `Idempotency-Key` claimed in the booking's own change and its answer
/// kept there (`crate::http::idempotency`, `Change::keep_answer`): the request's fingerprint,
/// and the answer (status, JSON body) the request gives for the booking made.
pub struct KeepAnswer<'a> {
    pub fingerprint: &'a str,
    pub render: &'a RenderAnswer<'a>,
}

impl Reservations<'_> {
    /// The window `start..end` checked against `lot`'s booking rules (in the future, within the
    /// booking horizon, duration in bounds): the one validation behind booking, availability
    /// and the waitlist, so none of them offers or accepts a window another would refuse.
    pub async fn bookable_window(
        &self,
        lot: LotId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<TimeRange> {
        self.booking_rules(lot)
            .await?
            .window(start, end, self.now())
    }

    /// `lot`'s booking rules, for checking several windows against one read.
    pub(crate) async fn booking_rules(&self, lot: LotId) -> Result<LotRules> {
        let mut conn = self.store().pool().acquire().await?;
        LotRules::load(&mut conn, lot).await
    }

    /// Reserve a spot for `user`. The same `idempotency_key` with the same request returns the
    /// first reservation again; with a different request it is refused.
    pub async fn reserve(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
    ) -> Result<Reservation> {
        Ok(self.reserve_with_pass(user, req, idempotency_key).await?.0)
    }

    /// [`reserve`](Self::reserve), with the gate pass of a reservation that can still open a
    /// gate (a retry may find it checked in already: then no pass). A new booking's pass is
    /// issued from what the booking read, without reading it back.
    pub async fn reserve_with_pass(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
    ) -> Result<(Reservation, Option<GatePass>)> {
        self.reserve_keeping(user, req, idempotency_key, None).await
    }

    /// [`reserve_with_pass`](Self::reserve_with_pass); with `keep`, the booking's change also
    /// claims the key and keeps the request's answer under it when it commits, and a key taken
    /// already (by this booking's earlier request, or another's) is refused
    /// (`request_in_progress`) for the caller's scheme to answer, not looked up here.
    pub(super) async fn reserve_keeping(
        &self,
        user: UserId,
        req: NewReservation,
        idempotency_key: &str,
        keep: Option<&KeepAnswer<'_>>,
    ) -> Result<(Reservation, Option<GatePass>)> {
        if idempotency_key.is_empty() || idempotency_key.len() > 200 {
            return Err(Error::Invalid(
                "an Idempotency-Key of 1 to 200 characters is required".into(),
            ));
        }
        let window = TimeRange::new(req.start_at, req.end_at)?;
        // A key that booked before is not looked up first: a retry's insert meets the key's
        // unique index (nothing it did is kept), and a retry refused for any other reason
        // (the lot full now, the window begun) looks its key up before answering — so a first
        // booking reads nothing for its key and a retry still gets the first answer.
        // Spots the index offered that the store then refused (another process took them).
        let mut tried = Vec::new();
        for attempt in 1..=PLACING_ATTEMPTS {
            let outcome = self
                .try_reserve(user, &req, window, (idempotency_key, keep), &mut tried)
                .await;
            let Placing::Done(outcome) = placing(outcome, req.spot_id.is_some(), attempt) else {
                continue;
            };
            return match outcome {
                // With `keep`, the key booked before or won a concurrent race: the caller
                // answers from the key's row, which was written with that booking (a booking
                // under the key with no row for it is a process that died between the two,
                // before they were written in one change: the caller's scheme then asks
                // again without `keep`).
                Err(e) if keep.is_some() && lost_race(&e) == Some(LostRace::Unique) => {
                    Err(Error::key_in_progress())
                }
                // Without `keep`, the key booked before, or won a concurrent race, or the
                // retry is refused for another reason: answer with the key's booking if any.
                Err(e)
                    if keep.is_none()
                        && (lost_race(&e) == Some(LostRace::Unique) || e.is_client_error()) =>
                {
                    match self.reservation_by_key(user, idempotency_key).await? {
                        Some(r) => self.with_pass(user, same_request(r, &req)?).await,
                        None => Err(e),
                    }
                }
                Err(e) => Err(e),
                Ok((r, pass)) => Ok((r, Some(pass))),
            };
        }
        unreachable!("the last attempt returns")
    }

    /// `r` with its pass when it can still open a gate.
    pub(super) async fn with_pass(
        &self,
        user: UserId,
        r: Reservation,
    ) -> Result<(Reservation, Option<GatePass>)> {
        let pass = match require_active(&r) {
            Ok(()) => Some(self.gate_pass(user, r.id).await?),
            Err(_) => None,
        };
        Ok((r, pass))
    }

    /// A reservation this process moved (or extended) now holds its window in the index.
    pub(super) fn hold_in_index(&self, r: &Reservation) {
        self.availability().hold(r.lot_id, hold_of(r));
    }

    /// One attempt at a booking: on SQLite one transaction of the single writer, on PostgreSQL
    /// planned on a reader and committed with the bookings waiting beside it
    /// (`store::group`). A request for any spot takes its candidate from the availability
    /// index instead of asking the store which of the lot's spots are free (a probe per spot),
    /// claimed there until the booking holds it or fails, so this process's concurrent
    /// bookings are offered other spots instead of racing for one in the store:
    /// on PostgreSQL the exclusion constraint refuses a spot the index wrongly believed free, and
    /// the spot is added to `tried` so the next attempt skips it; SQLite has no such constraint,
    /// so its single writer checks that one spot in the transaction that inserts. When the index
    /// offers nothing, the store is asked on a reader ([`Self::free_on_a_reader`]), so a stale
    /// index never turns a booking away and a full window is refused without the writer; when
    /// the reader's offer was stale too, the transaction asks again. The reader is not asked
    /// when the index's "no spot" is the store's ([`Self::rules_if_no_spot`]: on SQLite the
    /// index held every commit of the store, on PostgreSQL no change that frees a spot of the
    /// lot was recorded since the index read it).
    pub(super) async fn try_reserve(
        &self,
        user: UserId,
        req: &NewReservation,
        window: TimeRange,
        (key, keep): (&str, Option<&KeepAnswer<'_>>),
        tried: &mut Vec<SpotId>,
    ) -> Result<(Reservation, GatePass)> {
        let now = self.now();
        let backend = self.store().backend();
        let choice = Choice {
            vehicle: req.vehicle_type,
            near: req.near,
            spread: spread_of(key),
        };
        let mut offered = None;
        // The index's offer stays claimed until the booking holds it or fails.
        let mut _claim = None;
        if req.spot_id.is_none() {
            // The writer's open transaction, read before the index is asked.
            let watched = self.store().writer_watch().and_then(|w| w.open());
            let offer = self
                .lots()
                .best_unreserved_spot(req.lot_id, window, choice, tried)
                .await?;
            let mut none_free = None;
            match offer {
                Offer::Spot(spot, claim) => {
                    offered = Some(spot);
                    _claim = Some(claim);
                }
                Offer::None { as_of } if tried.is_empty() => none_free = Some(as_of),
                Offer::None { .. } | Offer::AllClaimed => {}
            }
            if let Some(as_of) = none_free
                && let Some(rules) = self.rules_if_no_spot(req.lot_id, as_of, watched).await?
            {
                // The index's "no spot" is the store's: refused without reading every spot,
                // once the window is checked against the lot's rules as they are now.
                rules.check(window, now)?;
                if self.availability().policy(req.lot_id) == Some(rules.policy) {
                    return Err(no_spot(req.vehicle_type));
                }
            }
            if offered.is_none() {
                offered = self
                    .free_on_a_reader(req, window, now, choice, tried)
                    .await?;
            }
        }
        let (user_key, render) = ((user, key), keep.map(|k| k.render));
        let attempt = (window, now, choice);
        match backend {
            // SQLite has no exclusion constraint: the spot is checked in the single writer's
            // transaction that inserts it.
            Backend::Sqlite => {
                let mut tx = self.store().begin_change(now).await?;
                let planned = self
                    .plan_booking(&mut tx, user, req, attempt, (offered, tried), render)
                    .await;
                match planned {
                    Ok(p) => {
                        rows::insert(&mut *tx, backend, &p.row(user, key, now)).await?;
                        tx.notify(p.message).event(p.event);
                        if let (Some(k), Some((status, body))) = (keep, p.answer) {
                            tx.keep_answer((user, key, k.fingerprint), status, body);
                        }
                        tx.commit().await?;
                        self.availability()
                            .hold_new(req.lot_id, hold_of(&p.reservation));
                        Ok((p.reservation, p.pass))
                    }
                    Err(e) => Err(refused_under_key(&mut tx, e, user_key, keep).await?),
                }
            }
            // PostgreSQL's exclusion constraint settles the spot: what the booking writes is
            // planned on a reader and committed with the other bookings waiting (`group.rs`).
            Backend::Postgres => {
                let mut conn = self.store().pool().acquire().await?;
                let planned = self
                    .plan_booking(&mut conn, user, req, attempt, (offered, tried), render)
                    .await;
                match planned {
                    Ok(p) => {
                        drop(conn);
                        let mut booking = Booking::new(&p.row(user, key, now));
                        booking.notify(&p.message).event(p.event);
                        if let (Some(k), Some((status, body))) = (keep, p.answer) {
                            booking.keep_answer(k.fingerprint, status, body);
                        }
                        self.store().book(booking).await?;
                        self.availability()
                            .hold_new(req.lot_id, hold_of(&p.reservation));
                        Ok((p.reservation, p.pass))
                    }
                    Err(e) => Err(refused_under_key(&mut conn, e, user_key, keep).await?),
                }
            }
        }
    }

    /// `lot`'s booking rules when the availability index's "no spot" for it ([`Offer::None`],
    /// the lot read at outbox position `as_of`) is the store's now; `None` when it may not be.
    /// On SQLite, when the index held every commit of the store when it was asked (`watched`,
    /// see [`Services::index_held_every_commit`]). On PostgreSQL, when no change that frees a
    /// spot of the lot ([`RELEASING_EVENTS`]) was recorded after `as_of`, read with the rules:
    /// positions commit in order (`parkflow_outbox`), so a spot the index holds that the store
    /// has let go was let go by a change recorded after it; a hold the index lacks can only
    /// make the store fuller.
    ///
    /// [`Services::index_held_every_commit`]: crate::services::Services::index_held_every_commit
    /// [`RELEASING_EVENTS`]: crate::services::lots::RELEASING_EVENTS
    async fn rules_if_no_spot(
        &self,
        lot: LotId,
        as_of: i64,
        watched: Option<Watched>,
    ) -> Result<Option<LotRules>> {
        match self.store().backend() {
            Backend::Sqlite if self.index_held_every_commit(watched) => {
                Ok(Some(self.booking_rules(lot).await?))
            }
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let mut conn = self.store().pool().acquire().await?;
                let (rules, freed) = LotRules::load_unless_freed(&mut conn, lot, as_of).await?;
                Ok((!freed).then_some(rules))
            }
        }
    }

    /// What a booking writes, planned on `conn` (the SQLite writer's transaction, or a
    /// PostgreSQL reader): the lot's rules checked, the spot chosen (the index's `offered` one,
    /// added to `tried`, or one read from the store), the quote, the reservation, its message,
    /// its event and, with `render`, the request's answer; `attempt` is the window, the time and
    /// the spot choice of this attempt.
    async fn plan_booking(
        &self,
        conn: &mut Conn,
        user: UserId,
        req: &NewReservation,
        attempt: (TimeRange, DateTime<Utc>, Choice),
        (offered, tried): (Option<SpotRow>, &mut Vec<SpotId>),
        render: Option<&RenderAnswer<'_>>,
    ) -> Result<Planned> {
        let (window, now, choice) = attempt;
        let backend = self.store().backend();
        let (rules, rates) =
            LotRules::load_with_rates(conn, req.lot_id, req.vehicle_type, window.end()).await?;
        rules.check(window, now)?;
        // An offer made under a spot policy the lot no longer has is no offer.
        let offered = offered.filter(|s| {
            rules
                .policy
                .rank(req.vehicle_type, s.vehicle_type)
                .is_some()
        });
        let hint = match offered {
            Some(hint) => {
                tried.push(SpotId(hint.id));
                let only = Some(SpotId(hint.id));
                let free = backend == Backend::Postgres
                    || !free_spot_rows(conn, backend, req.lot_id, window, only, None)
                        .await?
                        .is_empty();
                free.then_some(hint)
            }
            None => None,
        };
        let chosen = match (req.spot_id, hint) {
            (None, Some(hint)) => hint,
            (None, None) => {
                let free = free_spot_rows(conn, backend, req.lot_id, window, None, None).await?;
                best_spot(&free, rules.policy, choice)
                    .cloned()
                    .ok_or_else(|| no_spot(req.vehicle_type))?
            }
            (Some(spot), _) => {
                let free =
                    free_spot_rows(conn, backend, req.lot_id, window, Some(spot), None).await?;
                named_spot(conn, req.lot_id, spot, rules.policy, req.vehicle_type, free).await?
            }
        };
        let quote = rules.priced(rates, window, self.quote_rules())?;

        let id = ReservationId::new();
        let message = about_reservation(
            NotificationKind::ReservationConfirmed,
            user,
            req.lot_id,
            id,
            rules.tz,
            (window.start(), window.end()),
            &chosen.label,
            (quote, &rules.currency),
        );
        let event = Event::new(
            now,
            req.lot_id,
            EventPayload::ReservationCreated(ReservationWindow {
                reservation_id: id,
                user_id: user,
                spot_id: SpotId(chosen.id),
                start_at: window.start(),
                end_at: window.end(),
                vehicle_type: req.vehicle_type,
            }),
        );
        let reservation = Reservation {
            id,
            lot_id: req.lot_id,
            spot_id: SpotId(chosen.id),
            spot_label: chosen.label,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type: req.vehicle_type,
            vehicle_id: req.vehicle.as_ref().map(|v| v.id),
            plate: req.vehicle.as_ref().map(|v| v.plate.clone()),
            status: ReservationStatus::Active,
            quote_cents: quote,
            currency: rules.currency,
            cancellation_id: None,
            session_id: None,
        };
        let pass = self.pass_of(user, &reservation, rules.entry_grace_minutes);
        let answer = render.map(|render| render(&reservation, &pass));
        Ok(Planned {
            reservation,
            pass,
            message,
            event,
            answer,
        })
    }

    /// The best free spot for a request the availability index offered nothing for, read on
    /// one of the store's readers: no spot that suits the vehicle is a refusal as of the
    /// reader's snapshot, given without taking the writer (a full window is the commonest
    /// refusal, and asking it of every spot is the dearest read of a booking). Spots already
    /// `tried` are left out; when only those remain, the reader's snapshot is older than what
    /// the store refused, and the booking's transaction asks again (`None`).
    async fn free_on_a_reader(
        &self,
        req: &NewReservation,
        window: TimeRange,
        now: DateTime<Utc>,
        choice: Choice,
        tried: &[SpotId],
    ) -> Result<Option<SpotRow>> {
        let backend = self.store().backend();
        let mut conn = self.store().pool().acquire().await?;
        let rules = LotRules::load(&mut conn, req.lot_id).await?;
        rules.check(window, now)?;
        let free = free_spot_rows(&mut conn, backend, req.lot_id, window, None, None).await?;
        drop(conn);
        if best_spot(&free, rules.policy, choice).is_none() {
            return Err(no_spot(req.vehicle_type));
        }
        let untried = free.iter().filter(|s| !tried.contains(&SpotId(s.id)));
        Ok(best_spot(untried, rules.policy, choice).cloned())
    }
}

/// The window `r` holds, as the availability index keeps it.
fn hold_of(r: &Reservation) -> Hold {
    Hold {
        reservation: r.id,
        spot: r.spot_id,
        start_ms: r.start_at.timestamp_millis(),
        end_ms: r.end_at.timestamp_millis(),
    }
}

/// How a keyed booking's answer is rendered ([`KeepAnswer::render`]).
type RenderAnswer<'a> = dyn Fn(&Reservation, &GatePass) -> (u16, String) + Send + Sync + 'a;

/// What a booking writes, planned before it is written.
struct Planned {
    reservation: Reservation,
    pass: GatePass,
    message: crate::domain::notification::NewNotification,
    event: Event,
    /// The request's answer (status, JSON body), when the booking keeps it under its key.
    answer: Option<(u16, String)>,
}

impl Planned {
    /// The reservation's row, booked by `user` under `key` at `now`.
    fn row<'a>(
        &'a self,
        user: UserId,
        key: &'a str,
        now: DateTime<Utc>,
    ) -> rows::NewReservationRow<'a> {
        let r = &self.reservation;
        rows::NewReservationRow {
            id: r.id,
            lot: r.lot_id,
            spot: r.spot_id.0,
            user,
            vehicle_type: r.vehicle_type.as_str(),
            vehicle_id: r.vehicle_id.map(|v| v.to_string()),
            plate: r.plate.clone(),
            start_at: r.start_at.timestamp_millis(),
            end_at: r.end_at.timestamp_millis(),
            quote_cents: r.quote_cents,
            currency: &r.currency,
            idempotency_key: key,
            created_at: now.timestamp_millis(),
            monthly_pass: None,
        }
    }
}

/// `refusal` of a keyed booking, unless its key holds a booking: a retry of a booking that
/// is not seen where it was refused yet (on SQLite, waiting in the writer's group commit) is
/// answered from its key once it is kept, not refused (the key is claimed only at the commit).
async fn refused_under_key(
    conn: &mut Conn,
    refusal: Error,
    (user, key): (UserId, &str),
    keep: Option<&KeepAnswer<'_>>,
) -> Result<Error> {
    if refusal.is_client_error() && keep.is_some() && keys::find(conn, user, key).await?.is_some() {
        return Ok(Error::key_in_progress());
    }
    Ok(refusal)
}

//! The availability index: per lot, every spot with the windows reserved on it, in memory, so
//! "which spots are free from A to B" is answered without touching the database. Loading it
//! from the store and keeping it fresh is `crate::availability`'s.
//!
//! The store stays the authority: a reservation is only ever granted by its transaction (SQLite's
//! single writer, PostgreSQL's exclusion constraint), so a stale index can at worst offer a spot
//! that the booking then refuses — never cause a double booking.
//!
//! Freshness: a lot is loaded from the store on its first query; every change this process
//! commits is applied right after its commit (`hold`, `release`); changes made by other processes
//! sharing the database are picked up by `Lots::sync_availability`, which reads the outbox:
//! new bookings are held in place, and a lot where a spot may have been freed is dropped to
//! load again. Applying is idempotent per reservation id, so a change seen twice does no harm.
//!
//! Claims: a spot offered to a booking in flight is claimed for its window
//! ([`AvailabilityIndex::best_unreserved`] gives a [`Claim`]) until the booking commits (and
//! holds it) or fails, so concurrent bookings in this process are offered other spots instead
//! of racing for one in the store. A claim only steers offers: listings ignore it, and a window
//! whose free spots are all claimed is no refusal ([`Offer::AllClaimed`]).
//!
//! Lookup: the windows of one spot never overlap (that is the guarantee above), so ordered by
//! start they are also ordered by end; the only window that can overlap `[a, b)` is the last one
//! starting before `b`. One binary search of the spot's windows per spot: a 200-spot lot with
//! thousands of reservations answers in microseconds.

use crate::domain::TimeRange;
use crate::domain::spot_choice::{Candidate, Choice, SpotPolicy, best_spot, distance_from};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use warehouse_schema::{LotId, ReservationId, SpotId, VehicleType};

/// A spot that is free for a whole window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreeSpot {
    #[schema(value_type = i64)]
    pub spot_id: SpotId,
    pub label: String,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    /// Metres from the point the driver gave (their workplace), when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

/// An open spot of a lot as read from the store.
#[derive(Debug, Clone)]
pub struct SpotRow {
    pub id: i64,
    pub label: String,
    pub vehicle_type: VehicleType,
    pub position: Option<(f64, f64)>,
}

/// A spot as the index knows it.
#[derive(Debug, Clone)]
pub struct IndexedSpot {
    pub id: SpotId,
    pub label: String,
    pub vehicle_type: VehicleType,
    pub position: Option<(f64, f64)>,
    /// Reserved windows in epoch ms, `(start, end, reservation)`, by start: a sorted `Vec`,
    /// whose binary search is a few times quicker than a `BTreeMap`'s range lookup (which
    /// finds both ends of its range), and booking asks it once per spot of the lot.
    booked: Vec<(i64, i64, ReservationId)>,
}

impl IndexedSpot {
    pub fn new(
        id: SpotId,
        label: String,
        vehicle_type: VehicleType,
        position: Option<(f64, f64)>,
    ) -> Self {
        Self {
            id,
            label,
            vehicle_type,
            position,
            booked: Vec::new(),
        }
    }

    /// Whether no reserved window of this spot overlaps `[start, end)` (epoch ms).
    fn is_free(&self, start: i64, end: i64) -> bool {
        let starting_before_end = self.booked.partition_point(|(s, _, _)| *s < end);
        starting_before_end == 0 || self.booked[starting_before_end - 1].1 <= start
    }

    /// Hold `[start, end)` for `reservation`, in place of any window starting at `start`.
    fn book(&mut self, start: i64, end: i64, reservation: ReservationId) {
        match self.booked.binary_search_by_key(&start, |(s, _, _)| *s) {
            Ok(at) => self.booked[at] = (start, end, reservation),
            Err(at) => self.booked.insert(at, (start, end, reservation)),
        }
    }

    /// Let go of `reservation`'s window starting at `start`, if it still holds it.
    fn unbook(&mut self, start: i64, reservation: ReservationId) {
        if let Ok(at) = self.booked.binary_search_by_key(&start, |(s, _, _)| *s)
            && self.booked[at].2 == reservation
        {
            self.booked.remove(at);
        }
    }
}

/// One reserved window, as loaded from the store.
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub reservation: ReservationId,
    pub spot: SpotId,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Default)]
struct LotIndex {
    policy: SpotPolicy,
    spots: Vec<IndexedSpot>,
    slot_of: HashMap<SpotId, usize>,
    /// The slots of each spot type, by spot id: where a booking without a point looks for its
    /// spot ([`LotIndex::spread_pick`]).
    of_type: Vec<(VehicleType, Vec<usize>)>,
    holds: HashMap<ReservationId, (usize, i64)>,
    /// Spots offered to bookings in flight: (claim, slot, start, end) in epoch ms.
    claims: Vec<(u64, usize, i64, i64)>,
    /// The outbox position the lot was read at: every change recorded up to it is in the
    /// index, and so is every change this process made since.
    as_of: i64,
}

impl LotIndex {
    fn new(policy: SpotPolicy, spots: Vec<IndexedSpot>, as_of: i64) -> Self {
        let mut of_type: Vec<(VehicleType, Vec<usize>)> = Vec::new();
        let mut by_id: Vec<usize> = (0..spots.len()).collect();
        by_id.sort_by_key(|&slot| spots[slot].id);
        for slot in by_id {
            let kind = spots[slot].vehicle_type;
            match of_type.iter_mut().find(|(t, _)| *t == kind) {
                Some((_, slots)) => slots.push(slot),
                None => of_type.push((kind, vec![slot])),
            }
        }
        Self {
            policy,
            slot_of: spots.iter().enumerate().map(|(i, s)| (s.id, i)).collect(),
            spots,
            of_type,
            holds: HashMap::new(),
            claims: Vec::new(),
            as_of,
        }
    }

    /// The spots no reserved window overlaps `[start, end)` (epoch ms).
    fn free(&self, (start, end): (i64, i64)) -> impl Iterator<Item = &IndexedSpot> {
        self.spots.iter().filter(move |s| s.is_free(start, end))
    }

    /// Whether a booking in flight claimed `slot` for a window overlapping `[start, end)`.
    fn claimed(&self, slot: usize, (start, end): (i64, i64)) -> bool {
        self.claims
            .iter()
            .any(|&(_, s, a, b)| s == slot && a < end && start < b)
    }

    /// The best spot for `choice` free during `span`, leaving out `skip` and, with
    /// `unclaimed`, the spots claimed for an overlapping window: its slot.
    fn pick(
        &self,
        span: (i64, i64),
        choice: Choice,
        skip: &[SpotId],
        unclaimed: bool,
    ) -> Option<usize> {
        let open = |slot: usize| {
            let taken = unclaimed && self.claimed(slot, span);
            !taken && !skip.contains(&self.spots[slot].id)
        };
        match choice.near {
            None => self.spread_pick(span, choice, open),
            Some(_) => {
                let free = (0..self.spots.len())
                    .filter(|&slot| self.spots[slot].is_free(span.0, span.1) && open(slot));
                let best = best_spot(free.map(|slot| &self.spots[slot]), self.policy, choice)?;
                self.slot_of.get(&best.id).copied()
            }
        }
    }

    /// The slot of the spot a booking without a point takes, found without testing every spot:
    /// of the best-fitting type that has a free spot (`open`), the first free one at or after
    /// the place `choice.spread` picks among all that type's spots by id, wrapping round. With
    /// every spot free it is [`best_spot`]'s own pick; with some taken, the next free one after
    /// it (where `best_spot`, which sees only free spots, counts among those) — as good a spot,
    /// and one concurrent requests still rarely share. A lot with room answers after a spot or
    /// two instead of all of them.
    fn spread_pick(
        &self,
        (start, end): (i64, i64),
        choice: Choice,
        open: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        self.policy
            .ranked_spot_types(choice.vehicle)
            .into_iter()
            .find_map(|kind| {
                let (_, slots) = self.of_type.iter().find(|(t, _)| *t == kind)?;
                let first = (choice.spread % slots.len() as u64) as usize;
                let (after, before) = slots.split_at(first);
                before
                    .iter()
                    .chain(after)
                    .copied()
                    .find(|&slot| self.spots[slot].is_free(start, end) && open(slot))
            })
    }

    fn hold(&mut self, h: Hold) {
        self.release(h.reservation);
        if let Some(&slot) = self.slot_of.get(&h.spot) {
            self.spots[slot].book(h.start_ms, h.end_ms, h.reservation);
            self.holds.insert(h.reservation, (slot, h.start_ms));
        }
    }

    fn release(&mut self, reservation: ReservationId) {
        if let Some((slot, start)) = self.holds.remove(&reservation) {
            self.spots[slot].unbook(start, reservation);
        }
    }
}

/// `window` in epoch ms, as the index keeps windows.
fn span(window: TimeRange) -> (i64, i64) {
    (
        window.start().timestamp_millis(),
        window.end().timestamp_millis(),
    )
}

/// What the index offers a booking ([`AvailabilityIndex::best_unreserved`]).
#[derive(Debug)]
pub(crate) enum Offer<'a> {
    /// The best free spot no other booking in flight claimed, claimed now for this one.
    Spot(SpotRow, Claim<'a>),
    /// Free spots, every one claimed by a booking in flight (which may yet fail).
    AllClaimed,
    /// No free spot, in the lot as read at outbox position `as_of` with this process's changes
    /// since: the store's answer too, unless a change that frees spots was recorded after it.
    None { as_of: i64 },
}

/// A spot claimed in the index for one booking in flight: let go when dropped (by then the
/// booking that committed holds it).
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    index: &'a AvailabilityIndex,
    lot: LotId,
    id: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(index) = self.index.lot(self.lot) {
            let mut index = index.write().expect("index lock");
            index.claims.retain(|&(id, ..)| id != self.id);
        }
    }
}

/// The index of every loaded lot.
#[derive(Debug, Default)]
pub struct AvailabilityIndex {
    lots: RwLock<HashMap<LotId, Arc<RwLock<LotIndex>>>>,
    /// Changes applied per lot, loaded or not: a load that raced with a change is not installed.
    versions: Mutex<HashMap<LotId, u64>>,
    /// The last claim's number.
    claims: AtomicU64,
}

impl AvailabilityIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn lot(&self, lot: LotId) -> Option<Arc<RwLock<LotIndex>>> {
        self.lots.read().expect("index lock").get(&lot).cloned()
    }

    pub fn is_loaded(&self, lot: LotId) -> bool {
        self.lot(lot).is_some()
    }

    /// The change counter of `lot`: read it before loading from the store, pass it to `install`.
    pub fn version(&self, lot: LotId) -> u64 {
        *self
            .versions
            .lock()
            .expect("index lock")
            .get(&lot)
            .unwrap_or(&0)
    }

    fn bump(&self, lot: LotId) {
        *self
            .versions
            .lock()
            .expect("index lock")
            .entry(lot)
            .or_default() += 1;
    }

    /// Install a lot read from the store after its outbox head was `as_of`, unless a change was
    /// applied since `version` was read (then the snapshot may miss it; the caller reads
    /// again). Returns whether it was installed.
    pub fn install(
        &self,
        lot: LotId,
        (version, as_of): (u64, i64),
        policy: SpotPolicy,
        spots: Vec<IndexedSpot>,
        holds: impl IntoIterator<Item = Hold>,
    ) -> bool {
        let mut index = LotIndex::new(policy, spots, as_of);
        for h in holds {
            index.hold(h);
        }
        let versions = self.versions.lock().expect("index lock");
        if versions.get(&lot).copied().unwrap_or(0) != version {
            return false;
        }
        self.lots
            .write()
            .expect("index lock")
            .insert(lot, Arc::new(RwLock::new(index)));
        true
    }

    /// The spot policy `lot` was loaded with; `None`: not loaded.
    pub fn policy(&self, lot: LotId) -> Option<SpotPolicy> {
        Some(self.lot(lot)?.read().expect("index lock").policy)
    }

    /// The loaded lots, each with the outbox position it holds every change up to.
    pub fn loaded(&self) -> Vec<(LotId, i64)> {
        let lots = self.lots.read().expect("index lock");
        lots.iter()
            .map(|(lot, index)| (*lot, index.read().expect("index lock").as_of))
            .collect()
    }

    /// `lot` holds every change recorded up to `position` (a sync applied those after it).
    pub fn synced_to(&self, lot: LotId, position: i64) {
        if let Some(index) = self.lot(lot) {
            let mut index = index.write().expect("index lock");
            index.as_of = index.as_of.max(position);
        }
    }

    /// Forget `lot`; its next query loads it again.
    pub fn invalidate(&self, lot: LotId) {
        self.bump(lot);
        self.lots.write().expect("index lock").remove(&lot);
    }

    /// A committed reservation (new or moved) now holds its window.
    pub fn hold(&self, lot: LotId, h: Hold) {
        self.bump(lot);
        self.hold_new(lot, h);
    }

    /// A reservation just booked now holds its window. Unlike a move (which lets a window go),
    /// a new hold that a load in flight missed only leaves that load's index freer than the
    /// store — it may offer a spot the store then refuses, never refuse one the store has — so
    /// it does not keep the load from being installed (concurrent bookings of a lot being loaded
    /// would, each time).
    pub fn hold_new(&self, lot: LotId, h: Hold) {
        if let Some(index) = self.lot(lot) {
            index.write().expect("index lock").hold(h);
        }
    }

    /// A committed change let the reservation's window go.
    pub fn release(&self, lot: LotId, reservation: ReservationId) {
        self.bump(lot);
        if let Some(index) = self.lot(lot) {
            index.write().expect("index lock").release(reservation);
        }
    }

    /// `read` over a loaded `lot` and `window` in epoch ms. `None`: not loaded.
    fn with_lot<T>(
        &self,
        lot: LotId,
        window: TimeRange,
        read: impl FnOnce(&LotIndex, (i64, i64)) -> T,
    ) -> Option<T> {
        let index = self.lot(lot)?;
        let index = index.read().expect("index lock");
        Some(read(&index, span(window)))
    }

    /// The best open spot of a loaded `lot` for `choice.vehicle` (under the lot's spot policy;
    /// see [`best_spot`]) that no reserved window overlaps `window` and no booking in flight
    /// claimed, leaving out `skip`, claimed for the caller. `None`: not loaded. Without a point
    /// to be near, the spot is the one [`LotIndex::spread_pick`] finds.
    pub(crate) fn best_unreserved(
        &self,
        lot: LotId,
        window: TimeRange,
        choice: Choice,
        skip: &[SpotId],
    ) -> Option<Offer<'_>> {
        let index = self.lot(lot)?;
        let mut index = index.write().expect("index lock");
        let span = span(window);
        Some(match index.pick(span, choice, skip, true) {
            Some(slot) => {
                let id = self.claims.fetch_add(1, Ordering::Relaxed) + 1;
                index.claims.push((id, slot, span.0, span.1));
                let claim = Claim {
                    index: self,
                    lot,
                    id,
                };
                Offer::Spot(SpotRow::from(&index.spots[slot]), claim)
            }
            None if index.pick(span, choice, skip, false).is_some() => Offer::AllClaimed,
            None => Offer::None { as_of: index.as_of },
        })
    }

    /// Spots of a loaded `lot` that `vehicle` may use and that are free for all of `window`,
    /// best fit first, then nearest to `near` (when given), then by id. `None`: not loaded.
    pub fn free_spots(
        &self,
        lot: LotId,
        window: TimeRange,
        vehicle: VehicleType,
        near: Option<(f64, f64)>,
    ) -> Option<Vec<FreeSpot>> {
        self.with_lot(lot, window, |index, span| {
            let mut ranked: Vec<(usize, f64, &IndexedSpot)> = index
                .free(span)
                .filter_map(|s| {
                    let rank = index.policy.rank(vehicle, s.vehicle_type)?;
                    Some((rank, distance_from(s, near), s))
                })
                .collect();
            ranked.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(a.1.total_cmp(&b.1))
                    .then(a.2.id.cmp(&b.2.id))
            });
            ranked
                .into_iter()
                .map(|(_, distance, s)| FreeSpot {
                    spot_id: s.id,
                    label: s.label.clone(),
                    vehicle_type: s.vehicle_type,
                    distance_m: near.is_some().then_some(distance.round()),
                })
                .collect()
        })
    }
}
impl From<&IndexedSpot> for SpotRow {
    fn from(s: &IndexedSpot) -> Self {
        Self {
            id: s.id.0,
            label: s.label.clone(),
            vehicle_type: s.vehicle_type,
            position: s.position,
        }
    }
}

impl Candidate for SpotRow {
    fn id(&self) -> i64 {
        self.id
    }
    fn spot_type(&self) -> VehicleType {
        self.vehicle_type
    }
    fn position(&self) -> Option<(f64, f64)> {
        self.position
    }
}

impl Candidate for IndexedSpot {
    fn id(&self) -> i64 {
        self.id.0
    }
    fn spot_type(&self) -> VehicleType {
        self.vehicle_type
    }
    fn position(&self) -> Option<(f64, f64)> {
        self.position
    }
}

#[cfg(test)]
mod tests;

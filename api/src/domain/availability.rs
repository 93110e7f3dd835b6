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
//! sharing the database are picked up by `Services::sync_availability`, which reads the
//! outbox and drops the lots it touched so they load again. Applying is idempotent per
//! reservation id, so a change seen twice does no harm.
//!
//! Lookup: the windows of one spot never overlap (that is the guarantee above), so ordered by
//! start they are also ordered by end; the only window that can overlap `[a, b)` is the last one
//! starting before `b`. One binary search of the spot's windows per spot: a 200-spot lot with
//! thousands of reservations answers in microseconds.

use crate::domain::TimeRange;
use crate::domain::spot_choice::{Candidate, Choice, SpotPolicy, best_spot, distance_from};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
}

impl LotIndex {
    fn new(policy: SpotPolicy, spots: Vec<IndexedSpot>) -> Self {
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
        }
    }

    /// The spots no reserved window overlaps `[start, end)` (epoch ms).
    fn free(&self, (start, end): (i64, i64)) -> impl Iterator<Item = &IndexedSpot> {
        self.spots.iter().filter(move |s| s.is_free(start, end))
    }

    /// The spot a booking without a point takes, found without testing every spot: of the
    /// best-fitting type that has a free spot (not in `skip`), the first free one at or after
    /// the place `choice.spread` picks among all that type's spots by id, wrapping round. With
    /// every spot free it is [`best_spot`]'s own pick; with some taken, the next free one after
    /// it (where `best_spot`, which sees only free spots, counts among those) — as good a spot,
    /// and one concurrent requests still rarely share. A lot with room answers after a spot or
    /// two instead of all of them.
    fn spread_pick(
        &self,
        (start, end): (i64, i64),
        choice: Choice,
        skip: &[SpotId],
    ) -> Option<&IndexedSpot> {
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
                    .map(|&slot| &self.spots[slot])
                    .find(|s| s.is_free(start, end) && !skip.contains(&s.id))
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

/// The index of every loaded lot.
#[derive(Debug, Default)]
pub struct AvailabilityIndex {
    lots: RwLock<HashMap<LotId, Arc<RwLock<LotIndex>>>>,
    /// Changes applied per lot, loaded or not: a load that raced with a change is not installed.
    versions: Mutex<HashMap<LotId, u64>>,
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

    /// Install a lot read from the store, unless a change was applied since `version` was read
    /// (then the snapshot may miss it; the caller reads again). Returns whether it was installed.
    pub fn install(
        &self,
        lot: LotId,
        version: u64,
        policy: SpotPolicy,
        spots: Vec<IndexedSpot>,
        holds: impl IntoIterator<Item = Hold>,
    ) -> bool {
        let mut index = LotIndex::new(policy, spots);
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

    /// Forget `lot`; its next query loads it again.
    pub fn invalidate(&self, lot: LotId) {
        self.bump(lot);
        self.lots.write().expect("index lock").remove(&lot);
    }

    /// A committed reservation (new or moved) now holds its window.
    pub fn hold(&self, lot: LotId, h: Hold) {
        self.bump(lot);
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
        let span = (
            window.start().timestamp_millis(),
            window.end().timestamp_millis(),
        );
        Some(read(&index, span))
    }

    /// The best open spot of a loaded `lot` for `vehicle` (under the lot's spot policy; see
    /// [`best_spot`]) that no reserved window overlaps `window`, leaving out `skip`; `Some(None)`
    /// when there is none. `None`: not loaded. Without a point to be near, the spot is the one
    /// [`LotIndex::spread_pick`] finds.
    pub(crate) fn best_unreserved(
        &self,
        lot: LotId,
        window: TimeRange,
        choice: Choice,
        skip: &[SpotId],
    ) -> Option<Option<SpotRow>> {
        self.with_lot(lot, window, |index, span| {
            let best = match choice.near {
                None => index.spread_pick(span, choice, skip),
                Some(_) => best_spot(
                    index.free(span).filter(|s| !skip.contains(&s.id)),
                    index.policy,
                    choice,
                ),
            };
            best.map(SpotRow::from)
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
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn window(a: i64, b: i64) -> TimeRange {
        let at = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap();
        TimeRange::new(at(a), at(b)).unwrap()
    }

    fn lot_with(spots: usize) -> AvailabilityIndex {
        let index = AvailabilityIndex::new();
        let spots = (1..=spots as i64)
            .map(|i| IndexedSpot::new(SpotId(i), format!("C-{i}"), VehicleType::Car, None))
            .collect();
        assert!(index.install(LotId(1), 0, SpotPolicy::default(), spots, []));
        index
    }

    fn hold(index: &AvailabilityIndex, spot: i64, a: i64, b: i64) -> ReservationId {
        let r = ReservationId::new();
        index.hold(
            LotId(1),
            Hold {
                reservation: r,
                spot: SpotId(spot),
                start_ms: a * 3_600_000,
                end_ms: b * 3_600_000,
            },
        );
        r
    }

    fn free(index: &AvailabilityIndex, a: i64, b: i64) -> Vec<i64> {
        index
            .free_spots(LotId(1), window(a, b), VehicleType::Car, None)
            .unwrap()
            .iter()
            .map(|s| s.spot_id.0)
            .collect()
    }

    #[test]
    fn the_index_offers_the_spot_the_same_choice_makes_from_the_stores_list() {
        let index = AvailabilityIndex::new();
        let kinds = [
            VehicleType::Car,
            VehicleType::Ev,
            VehicleType::Car,
            VehicleType::Motorcycle,
            VehicleType::Car,
        ];
        let spot = |i: usize| {
            let position = Some((52.5 + i as f64 * 0.001, 13.4));
            IndexedSpot::new(SpotId(i as i64 + 1), format!("S-{i}"), kinds[i], position)
        };
        let spots: Vec<IndexedSpot> = (0..kinds.len()).map(spot).collect();
        let rows: Vec<SpotRow> = spots.iter().map(SpotRow::from).collect();
        assert!(index.install(LotId(1), 0, SpotPolicy::default(), spots, []));
        let offer = |choice: Choice, skip: &[SpotId]| {
            index
                .best_unreserved(LotId(1), window(9, 10), choice, skip)
                .expect("loaded")
                .map(|s| s.id)
        };
        let policy = SpotPolicy::default();
        for vehicle in VehicleType::ALL {
            for near in [None, Some((52.504, 13.4))] {
                for spread in 0..7 {
                    let choice = Choice {
                        vehicle,
                        near,
                        spread,
                    };
                    let from_list = best_spot(&rows, policy, choice).map(|s| s.id);
                    assert_eq!(offer(choice, &[]), from_list, "{choice:?}");
                }
            }
        }
        let car = |spread| Choice {
            vehicle: VehicleType::Car,
            near: None,
            spread,
        };
        // Equally good car spots are spread over by the request's hash; an EV spot is never a
        // car's under the default policy, a motorcycle takes its own spot first.
        assert_eq!(
            [offer(car(0), &[]), offer(car(1), &[]), offer(car(2), &[])],
            [Some(1), Some(3), Some(5)]
        );
        assert_eq!(offer(car(0), &[SpotId(1), SpotId(3), SpotId(5)]), None);
        let motorcycle = Choice {
            vehicle: VehicleType::Motorcycle,
            ..car(0)
        };
        assert_eq!(offer(motorcycle, &[]), Some(4));
        let near_the_fifth = Choice {
            near: Some((52.504, 13.4)),
            ..car(0)
        };
        assert_eq!(offer(near_the_fifth, &[]), Some(5));
    }

    #[test]
    fn without_a_point_the_spread_picks_the_next_free_spot_of_the_best_fitting_type() {
        let index = lot_with(5);
        let car = |spread| Choice {
            vehicle: VehicleType::Car,
            near: None,
            spread,
        };
        let offer = |choice: Choice, (a, b): (i64, i64), skip: &[SpotId]| {
            index
                .best_unreserved(LotId(1), window(a, b), choice, skip)
                .expect("loaded")
                .map(|s| s.id)
        };
        // Every spot free: the spread's own place among the spots, by id.
        assert_eq!(offer(car(1), (9, 10), &[]), Some(2));
        assert_eq!(offer(car(6), (9, 10), &[]), Some(2));
        hold(&index, 2, 8, 10);
        hold(&index, 3, 9, 11);
        // Its place taken: the next free spot after it, wrapping round past the last.
        assert_eq!(offer(car(1), (9, 10), &[]), Some(4));
        assert_eq!(offer(car(4), (9, 10), &[]), Some(5));
        assert_eq!(offer(car(4), (9, 10), &[SpotId(5)]), Some(1));
        hold(&index, 1, 9, 10);
        assert_eq!(offer(car(4), (9, 10), &[SpotId(5)]), Some(4));
        assert_eq!(offer(car(4), (9, 10), &[SpotId(4), SpotId(5)]), None);
        // A window that only touches a reserved one finds the spot free.
        assert_eq!(offer(car(1), (10, 11), &[]), Some(2));

        // The best-fitting type first; a worse fit only when the better has no free spot.
        let mixed = AvailabilityIndex::new();
        let spots = [
            VehicleType::Ev,
            VehicleType::Car,
            VehicleType::Ev,
            VehicleType::Car,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, vt)| IndexedSpot::new(SpotId(i as i64 + 1), format!("{i}"), vt, None))
        .collect();
        let open = SpotPolicy {
            ev_spots_open_to_cars: true,
        };
        assert!(mixed.install(LotId(1), 0, open, spots, []));
        let offer = |spread| {
            mixed
                .best_unreserved(LotId(1), window(9, 10), car(spread), &[])
                .expect("loaded")
                .map(|s| s.id)
        };
        assert_eq!([offer(0), offer(1)], [Some(2), Some(4)]);
        for spot in [2, 4] {
            mixed.hold(
                LotId(1),
                Hold {
                    reservation: ReservationId::new(),
                    spot: SpotId(spot),
                    start_ms: 9 * 3_600_000,
                    end_ms: 10 * 3_600_000,
                },
            );
        }
        assert_eq!([offer(0), offer(1)], [Some(1), Some(3)]);
    }

    #[test]
    fn touching_windows_are_free_overlapping_are_not() {
        let index = lot_with(2);
        hold(&index, 1, 9, 10);
        assert_eq!(free(&index, 10, 11), vec![1, 2]);
        assert_eq!(free(&index, 8, 9), vec![1, 2]);
        assert_eq!(free(&index, 9, 10), vec![2]);
        assert_eq!(free(&index, 8, 12), vec![2]);
    }

    #[test]
    fn release_and_move_are_idempotent() {
        let index = lot_with(1);
        let r = hold(&index, 1, 9, 10);
        let moved = Hold {
            reservation: r,
            spot: SpotId(1),
            start_ms: 12 * 3_600_000,
            end_ms: 13 * 3_600_000,
        };
        index.hold(LotId(1), moved);
        index.hold(LotId(1), moved);
        assert_eq!(free(&index, 9, 10), vec![1]);
        assert!(free(&index, 12, 13).is_empty());
        index.release(LotId(1), r);
        index.release(LotId(1), r);
        assert_eq!(free(&index, 12, 13), vec![1]);
    }

    #[test]
    fn a_load_that_raced_with_a_change_is_not_installed() {
        let index = AvailabilityIndex::new();
        let before = index.version(LotId(1));
        index.release(LotId(1), ReservationId::new());
        assert!(!index.install(LotId(1), before, SpotPolicy::default(), vec![], []));
        assert!(!index.is_loaded(LotId(1)));
        assert!(index.install(
            LotId(1),
            index.version(LotId(1)),
            SpotPolicy::default(),
            vec![],
            []
        ));
    }

    #[test]
    fn nearest_to_the_workplace_first_within_the_best_fit() {
        let index = AvailabilityIndex::new();
        let spot =
            |id, vt, lng| IndexedSpot::new(SpotId(id), format!("{id}"), vt, Some((52.0, lng)));
        let spots = vec![
            spot(1, VehicleType::Car, 13.000),
            spot(2, VehicleType::Car, 13.002),
            spot(3, VehicleType::Van, 13.003),
            spot(4, VehicleType::Car, 13.001),
        ];
        assert!(index.install(LotId(1), 0, SpotPolicy::default(), spots, []));
        let ids = |near| {
            index
                .free_spots(LotId(1), window(9, 10), VehicleType::Car, near)
                .unwrap()
                .iter()
                .map(|s| s.spot_id.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(None), vec![1, 2, 4, 3]);
        assert_eq!(ids(Some((52.0, 13.0025))), vec![2, 4, 1, 3]);
    }

    proptest! {
        /// The index agrees with a brute-force scan of the same non-overlapping windows, some
        /// of them held and let go again (a window booked after one let go at the same start
        /// takes its place).
        #[test]
        fn agrees_with_brute_force(
            windows in proptest::collection::vec((0i64..4, 0i64..48, 1i64..6, any::<bool>()), 0..40),
            queries in proptest::collection::vec((0i64..48, 1i64..8), 1..20),
        ) {
            let index = lot_with(4);
            let mut accepted: Vec<(i64, i64, i64)> = Vec::new();
            for (spot, a, len, let_go) in windows {
                let b = a + len;
                if accepted.iter().all(|&(s, x, y)| s != spot + 1 || y <= a || b <= x) {
                    let r = hold(&index, spot + 1, a, b);
                    if let_go {
                        index.release(LotId(1), r);
                    } else {
                        accepted.push((spot + 1, a, b));
                    }
                }
            }
            for (a, len) in queries {
                let b = a + len;
                let expected: Vec<i64> = (1..=4)
                    .filter(|&s| accepted.iter().all(|&(x, p, q)| x != s || q <= a || b <= p))
                    .collect();
                let choice = Choice {
                    vehicle: VehicleType::Car,
                    near: None,
                    spread: (a * 7 + len) as u64,
                };
                let offered = index
                    .best_unreserved(LotId(1), window(a, b), choice, &[])
                    .expect("loaded")
                    .map(|s| s.id);
                match offered {
                    Some(spot) => prop_assert!(expected.contains(&spot), "{spot} is not free"),
                    None => prop_assert!(expected.is_empty(), "{expected:?} are free"),
                }
                prop_assert_eq!(free(&index, a, b), expected);
            }
        }
    }
}

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
    assert!(index.install(LotId(1), (0, 0), SpotPolicy::default(), spots, []));
    index
}

/// A car's choice without a point, spread by `spread`.
fn car(spread: u64) -> Choice {
    Choice {
        vehicle: VehicleType::Car,
        near: None,
        spread,
    }
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

impl Offer<'_> {
    /// The spot offered, its claim let go at once.
    fn spot_id(self) -> Option<i64> {
        match self {
            Offer::Spot(spot, _) => Some(spot.id),
            Offer::AllClaimed | Offer::None { .. } => None,
        }
    }
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
    assert!(index.install(LotId(1), (0, 0), SpotPolicy::default(), spots, []));
    let offer = |choice: Choice, skip: &[SpotId]| {
        index
            .best_unreserved(LotId(1), window(9, 10), choice, skip)
            .expect("loaded")
            .spot_id()
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
    let offer = |choice: Choice, (a, b): (i64, i64), skip: &[SpotId]| {
        index
            .best_unreserved(LotId(1), window(a, b), choice, skip)
            .expect("loaded")
            .spot_id()
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
    assert!(mixed.install(LotId(1), (0, 0), open, spots, []));
    let offer = |spread| {
        mixed
            .best_unreserved(LotId(1), window(9, 10), car(spread), &[])
            .expect("loaded")
            .spot_id()
    };
    assert_eq!([offer(0), offer(1)], [Some(2), Some(4)]);
    for spot in [2, 4] {
        hold(&mixed, spot, 9, 10);
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
fn a_load_that_missed_only_new_holds_is_installed() {
    let index = lot_with(2);
    index.invalidate(LotId(1));
    let before = index.version(LotId(1));
    // Bookings committed while the lot was being read: the read may have missed them, which
    // leaves the index freer than the store, never fuller.
    index.hold_new(
        LotId(1),
        Hold {
            reservation: ReservationId::new(),
            spot: SpotId(1),
            start_ms: 0,
            end_ms: 3_600_000,
        },
    );
    let spots = vec![IndexedSpot::new(
        SpotId(1),
        "C-1".into(),
        VehicleType::Car,
        None,
    )];
    assert!(index.install(LotId(1), (before, 0), SpotPolicy::default(), spots, []));
    // A move lets a window go: a read that may have missed it is not installed.
    let before = index.version(LotId(1));
    hold(&index, 1, 5, 6);
    assert!(!index.install(LotId(1), (before, 0), SpotPolicy::default(), vec![], []));
}

#[test]
fn a_load_that_raced_with_a_change_is_not_installed() {
    let index = AvailabilityIndex::new();
    let before = index.version(LotId(1));
    index.release(LotId(1), ReservationId::new());
    assert!(!index.install(LotId(1), (before, 0), SpotPolicy::default(), vec![], []));
    assert!(!index.is_loaded(LotId(1)));
    assert!(index.install(
        LotId(1),
        (index.version(LotId(1)), 0),
        SpotPolicy::default(),
        vec![],
        []
    ));
}

#[test]
fn nearest_to_the_workplace_first_within_the_best_fit() {
    let index = AvailabilityIndex::new();
    let spot = |id, vt, lng| IndexedSpot::new(SpotId(id), format!("{id}"), vt, Some((52.0, lng)));
    let spots = vec![
        spot(1, VehicleType::Car, 13.000),
        spot(2, VehicleType::Car, 13.002),
        spot(3, VehicleType::Van, 13.003),
        spot(4, VehicleType::Car, 13.001),
    ];
    assert!(index.install(LotId(1), (0, 0), SpotPolicy::default(), spots, []));
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
                .spot_id();
            match offered {
                Some(spot) => prop_assert!(expected.contains(&spot), "{spot} is not free"),
                None => prop_assert!(expected.is_empty(), "{expected:?} are free"),
            }
            prop_assert_eq!(free(&index, a, b), expected);
        }
    }
}

#[test]
fn a_spot_offered_to_a_booking_in_flight_is_not_offered_again_until_let_go() {
    let index = lot_with(3);
    let offer = |spread, (a, b)| {
        index
            .best_unreserved(LotId(1), window(a, b), car(spread), &[])
            .expect("loaded")
    };
    // Two bookings in flight whose spreads pick spot 1 are offered spots 1 and 2.
    let Offer::Spot(first, claim) = offer(0, (9, 11)) else {
        panic!("spot 1 is free")
    };
    assert_eq!(first.id, 1);
    assert_eq!(offer(0, (10, 12)).spot_id(), Some(2));
    // A window the claim does not overlap is offered spot 1; listings ignore claims.
    assert_eq!(offer(0, (11, 12)).spot_id(), Some(1));
    assert_eq!(free(&index, 9, 11), vec![1, 2, 3]);
    // With every free spot claimed, that is said, not "none free".
    let others: Vec<_> = [1, 2]
        .into_iter()
        .map(|spread| match offer(spread, (9, 10)) {
            Offer::Spot(_, claim) => claim,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(matches!(offer(0, (9, 10)), Offer::AllClaimed));
    // The booking that committed holds its spot before its claim goes; one that failed just
    // lets it go.
    hold(&index, 1, 9, 11);
    drop(claim);
    drop(others);
    assert_eq!(offer(0, (9, 10)).spot_id(), Some(2));
    hold(&index, 2, 9, 10);
    hold(&index, 3, 9, 10);
    assert!(matches!(offer(0, (9, 10)), Offer::None { as_of: 0 }));
    // A claim outlives a reload of its lot harmlessly.
    let Offer::Spot(_, claim) = offer(0, (20, 21)) else {
        panic!("free")
    };
    index.invalidate(LotId(1));
    drop(claim);
}

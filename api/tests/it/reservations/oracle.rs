//! The store against a brute-force oracle: random reservations, moves and cancellations.

use super::{TestApp, request, spot_ids};
use chrono::Duration;
use parkflow_api::services::reservations::{ReservationChange, TimeRange};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;
use warehouse_schema::{LotId, ReservationId, UserId, VehicleType};

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        spot: Option<usize>,
        slot: i64,
        len: i64,
    },
    Cancel {
        nth: usize,
    },
    Move {
        nth: usize,
        slot: i64,
        len: i64,
    },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (proptest::option::of(0usize..3), 0i64..16, 1i64..6)
            .prop_map(|(spot, slot, len)| Op::Reserve { spot, slot, len }),
        1 => (0usize..8).prop_map(|nth| Op::Cancel { nth }),
        1 => (0usize..8, 0i64..16, 1i64..6).prop_map(|(nth, slot, len)| Op::Move { nth, slot, len }),
    ];
    proptest::collection::vec(op, 1..24)
}

/// Random reservations, moves and cancellations, half-hour slots, three spots: the store accepts
/// exactly what a brute-force overlap check over the accepted set accepts, and after every step
/// the availability index reports exactly the spots the oracle says are free.
pub async fn store_agrees_with_a_brute_force_oracle(app: TestApp) {
    let app = Arc::new(app);
    let handle = tokio::runtime::Handle::current();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&ops(), |ops| {
            let app = app.clone();
            tokio::task::block_in_place(|| handle.block_on(check_against_oracle(&app, ops)));
            Ok(())
        })
        .unwrap();
}

async fn check_against_oracle(app: &TestApp, ops: Vec<Op>) {
    let lot = app.with_lot(json!({"car": 3})).await;
    let spots = spot_ids(app, lot).await;
    let s = &app.state.services;
    let user = UserId::new();
    let base = s.now() + Duration::hours(1);
    // The oracle: accepted (reservation id, spot, [start, end)) in slot units.
    let mut accepted: Vec<(ReservationId, i64, i64, i64)> = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Reserve { spot, slot, len } => {
                let (from, to) = (slot, slot + len);
                let free = |sp: i64, acc: &[(ReservationId, i64, i64, i64)]| {
                    !acc.iter()
                        .any(|(_, s2, a, b)| *s2 == sp && *a < to && from < *b)
                };
                let at = |k: i64| base + Duration::minutes(30 * k);
                let result = s
                    .reservations()
                    .reserve(
                        user,
                        request(lot, spot.map(|k| spots[k]), at(from), at(to)),
                        &format!("op{i}"),
                    )
                    .await;
                let expect_ok = match spot {
                    Some(k) => free(spots[k], &accepted),
                    None => spots.iter().any(|sp| free(*sp, &accepted)),
                };
                match result {
                    Ok(r) => {
                        assert!(
                            expect_ok,
                            "store accepted what overlaps: {r:?} over {accepted:?}"
                        );
                        assert!(free(r.spot_id.0, &accepted), "chosen spot is not free");
                        accepted.push((r.id, r.spot_id.0, from, to));
                    }
                    Err(e) => {
                        assert!(
                            !expect_ok,
                            "store refused a free window [{from},{to}) on {spot:?}: {e}"
                        );
                        assert!(
                            matches!(e.code(), "spot_taken" | "no_spot_available"),
                            "{e}"
                        );
                    }
                }
            }
            Op::Cancel { nth } if !accepted.is_empty() => {
                let (id, ..) = accepted.remove(nth % accepted.len());
                s.reservations().cancel_reservation(user, id).await.unwrap();
            }
            Op::Cancel { .. } => {}
            Op::Move { nth, slot, len } if !accepted.is_empty() => {
                let k = nth % accepted.len();
                let (id, own_spot, ..) = accepted[k];
                let (from, to) = (slot, slot + len);
                let others: Vec<_> = accepted.iter().filter(|a| a.0 != id).cloned().collect();
                let free = |sp: i64| {
                    !others
                        .iter()
                        .any(|(_, s2, a, b)| *s2 == sp && *a < to && from < *b)
                };
                let at = |k: i64| base + Duration::minutes(30 * k);
                let change = ReservationChange {
                    start_at: Some(at(from)),
                    end_at: Some(at(to)),
                    ..ReservationChange::default()
                };
                match s.reservations().modify_reservation(user, id, change).await {
                    Ok(r) => {
                        assert!(
                            free(r.spot_id.0),
                            "moved onto a taken spot: {r:?} over {others:?}"
                        );
                        if free(own_spot) {
                            assert_eq!(
                                r.spot_id.0, own_spot,
                                "a move keeps a spot that is still free"
                            );
                        }
                        accepted[k] = (id, r.spot_id.0, from, to);
                    }
                    Err(e) => {
                        assert!(
                            !spots.iter().any(|sp| free(*sp)),
                            "move refused though free: {e}"
                        );
                        assert_eq!(e.code(), "no_spot_available", "{e}");
                    }
                }
            }
            Op::Move { .. } => {}
        }
        // The index agrees with the oracle on every window of two slots.
        for from in (0..20).step_by(2) {
            let at = |k: i64| base + Duration::minutes(30 * k);
            let window = TimeRange::new(at(from), at(from + 2)).unwrap();
            let got: Vec<i64> = s
                .lots()
                .free_spots(LotId(lot), window, VehicleType::Car, None)
                .await
                .unwrap()
                .iter()
                .map(|f| f.spot_id.0)
                .collect();
            let want: Vec<i64> = spots
                .iter()
                .copied()
                .filter(|sp| {
                    !accepted
                        .iter()
                        .any(|(_, s2, a, b)| s2 == sp && *a < from + 2 && from < *b)
                })
                .collect();
            assert_eq!(
                got,
                want,
                "free spots for [{from},{}) after {i} ops",
                from + 2
            );
        }
    }
}

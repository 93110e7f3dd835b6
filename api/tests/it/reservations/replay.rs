//! A seeded world replays alike (`parkflow demo`): what the services choose for a request may
//! depend on the request and the store, never on an id drawn at random.

use super::super::TestApp;
use super::request;
use chrono::Duration;
use parkflow_api::services::reservations::ReservationChange;
use serde_json::json;
use warehouse_schema::UserId;

/// Two lots laid out alike get the same bookings and the same changes; a change whose spot is
/// taken in its new window moves to another spot, chosen from the booking (not its random id),
/// so each lot's bookings end on the same spots by label.
pub async fn a_booking_changed_alike_in_a_world_alike_takes_the_same_spot(app: TestApp) {
    let start = app.state.services.now() + Duration::hours(2);
    let later = start + Duration::hours(4);
    let mut labels = Vec::new();
    for _ in 0..2 {
        let lot = app.with_lot(json!({"car": 12})).await;
        let reservations = app.state.services.reservations();
        let user = UserId::new();
        let mut mine = Vec::new();
        for i in 0..6 {
            let booked = reservations
                .reserve(
                    user,
                    request(lot, None, start, start + Duration::hours(1)),
                    &format!("first-{i}"),
                )
                .await
                .unwrap();
            // The booking's spot is taken in the window it moves to.
            reservations
                .reserve(
                    UserId::new(),
                    request(
                        lot,
                        Some(booked.spot_id.0),
                        later,
                        later + Duration::hours(1),
                    ),
                    &format!("blocker-{i}"),
                )
                .await
                .unwrap();
            mine.push(booked);
        }
        let mut moved = Vec::new();
        for booked in &mine {
            let change = ReservationChange {
                start_at: Some(later),
                end_at: Some(later + Duration::hours(1)),
                ..ReservationChange::default()
            };
            let r = reservations
                .modify_reservation(user, booked.id, change)
                .await
                .unwrap();
            assert_ne!(r.spot_id, booked.spot_id);
            moved.push(r.spot_label);
        }
        labels.push(moved);
    }
    assert_eq!(labels[0], labels[1]);
}

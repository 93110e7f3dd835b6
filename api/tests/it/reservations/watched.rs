//! A full window refused by the availability index on its own word (on SQLite the writer's,
//! `store/watch.rs`; on PostgreSQL the outbox's, `Reservations::rules_if_no_spot`): never when the
//! index may have missed a commit that freed a spot.

use super::super::TestApp;
use super::{code, request};
use chrono::Duration;
use parkflow_api::services::Services;
use serde_json::json;
use std::sync::Arc;
use warehouse_schema::UserId;

/// A spot another process freed is booked even while this process's writer holds a transaction
/// that began after the other's commit: the writer found that commit when it began, so until a
/// sync applies it this process's index does not refuse on its own (it would refuse here: its
/// index still holds the freed spot), and the store's reader finds the spot.
pub async fn a_spot_freed_by_another_process_is_booked_while_the_writer_is_busy(app: TestApp) {
    let other = app.second_process().await;
    freed_then_booked_while_the_writer_is_busy(&app, &app.state.services, &other.services).await;
}

/// Two sets of services on one store in one process, each with its own availability index: the
/// second does not hear of the first's changes, which to the writer's watch are its own, so
/// only the first (which claimed the watch) may refuse on the writer's word; the second asks
/// the store and books the spot the first freed.
pub async fn a_second_index_on_one_store_books_a_spot_the_first_freed(app: TestApp) {
    let second = parkflow_api::AppState::on_store(
        app.state.services.store().clone(),
        &app.config,
        Arc::new(app.clock.clone()),
        prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    freed_then_booked_while_the_writer_is_busy(&app, &second.services, &app.state.services).await;
}

/// On a lot of one spot, `booker` books a window and is refused it a second time (its index
/// now holds the spot); `canceller` cancels the booking, which `booker`'s index does not hear
/// of; then, while `booker`'s writer holds a transaction begun after the cancellation, `booker`
/// asks for the window again and must get the freed spot.
async fn freed_then_booked_while_the_writer_is_busy(
    app: &TestApp,
    booker: &Services,
    canceller: &Services,
) {
    let lot = app.with_lot(json!({"car": 1})).await;
    let start = booker.now() + Duration::hours(3);
    let end = start + Duration::hours(2);
    let owner = UserId::new();
    let first = booker
        .reservations()
        .reserve(owner, request(lot, None, start, end), "first")
        .await
        .unwrap();
    let full = booker
        .reservations()
        .reserve(UserId::new(), request(lot, None, start, end), "full")
        .await
        .unwrap_err();
    assert_eq!(code(&full), "no_spot_available");
    canceller
        .reservations()
        .cancel_reservation(owner, first.id)
        .await
        .unwrap();
    let busy = booker.store().begin_change(booker.now()).await.unwrap();
    let services = booker.clone();
    let booking = tokio::spawn(async move {
        services
            .reservations()
            .reserve(UserId::new(), request(lot, None, start, end), "after")
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    busy.commit().await.unwrap();
    let again = booking.await.unwrap().unwrap();
    assert_eq!(again.spot_id, first.spot_id);
}

/// A lot this process's index holds full is refused on the index's word only while no change
/// that frees a spot was recorded since the index read it: after another process cancels one
/// of this process's bookings, the next booking gets that spot instead of "no spot".
pub async fn a_lot_full_in_the_index_books_the_spot_another_process_freed(app: TestApp) {
    let other = app.second_process().await;
    let lot = app.with_lot(json!({"car": 2})).await;
    let start = app.state.services.now() + Duration::hours(3);
    let end = start + Duration::hours(2);
    let book = |key: &'static str, user: UserId| {
        let services = app.state.services.clone();
        async move {
            services
                .reservations()
                .reserve(user, request(lot, None, start, end), key)
                .await
        }
    };
    let me = UserId::new();
    let mine = book("m0", me).await.unwrap();
    book("m1", UserId::new()).await.unwrap();
    let full = book("m2", UserId::new()).await;
    assert_eq!(code(&full.unwrap_err()), "no_spot_available");

    other
        .services
        .reservations()
        .cancel_reservation(me, mine.id)
        .await
        .unwrap();
    let again = book("m3", UserId::new()).await.unwrap();
    assert_eq!(again.spot_id, mine.spot_id);
    let full = book("m4", UserId::new()).await;
    assert_eq!(code(&full.unwrap_err()), "no_spot_available");
}

/// A sync of the availability index (`parkflow serve`, every second) takes another process's
/// new booking in place, keeping the lot loaded, and drops the lot once a change that frees a
/// spot was recorded, so that it is read again.
pub async fn a_sync_takes_new_bookings_in_place_and_drops_a_lot_a_change_freed(app: TestApp) {
    use parkflow_api::services::reservations::TimeRange;
    use warehouse_schema::{LotId, VehicleType};
    let other = app.second_process().await;
    let lot = app.with_lot(json!({"car": 3})).await;
    let start = app.state.services.now() + Duration::hours(3);
    let end = start + Duration::hours(2);
    let window = TimeRange::new(start, end).unwrap();
    let lots = app.state.services.lots();
    let free = || async {
        let spots = lots.free_spots(LotId(lot), window, VehicleType::Car, None);
        spots.await.unwrap().len()
    };
    assert_eq!(free().await, 3);
    lots.sync_availability().await.unwrap();

    let user = UserId::new();
    let theirs = other
        .services
        .reservations()
        .reserve(user, request(lot, None, start, end), "o0")
        .await
        .unwrap();
    let synced = lots.sync_availability().await.unwrap();
    assert_eq!((synced.dropped, synced.held), (0, 1), "held in place");
    assert_eq!(free().await, 2, "the other process's booking is held");

    other
        .services
        .reservations()
        .cancel_reservation(user, theirs.id)
        .await
        .unwrap();
    let synced = lots.sync_availability().await.unwrap();
    assert_eq!((synced.dropped, synced.held), (1, 0), "the lot dropped");
    assert_eq!(free().await, 3, "read again, with the spot free");
}

//! A full window refused by the availability index on the SQLite writer's word
//! (`store/watch.rs`): never when the index may have missed a commit.

use super::super::TestApp;
use super::{code, request};
use chrono::Duration;
use serde_json::json;
use std::sync::Arc;
use warehouse_schema::UserId;

/// A spot another process freed is booked even while this process's writer holds a transaction
/// that began after the other's commit: the writer found that commit when it began, so until a
/// sync applies it this process's index does not refuse on its own (it would refuse here: its
/// index still holds the freed spot), and the store's reader finds the spot.
pub async fn a_spot_freed_by_another_process_is_booked_while_the_writer_is_busy(app: TestApp) {
    let other = app.second_process().await;
    let lot = app.with_lot(json!({"car": 1})).await;
    let start = app.state.services.now() + Duration::hours(3);
    let end = start + Duration::hours(2);
    let mine = app.state.services.reservations();
    let owner = UserId::new();
    let first = mine
        .reserve(owner, request(lot, None, start, end), "first")
        .await
        .unwrap();
    let full = mine
        .reserve(UserId::new(), request(lot, None, start, end), "full")
        .await
        .unwrap_err();
    assert_eq!(code(&full), "no_spot_available");
    // The other process cancels: this process's index still holds the spot.
    other
        .services
        .reservations()
        .cancel_reservation(owner, first.id)
        .await
        .unwrap();
    let busy = app
        .state
        .services
        .store()
        .begin_change(app.state.services.now())
        .await
        .unwrap();
    let services = app.state.services.clone();
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
    let lot = app.with_lot(json!({"car": 1})).await;
    let start = app.state.services.now() + Duration::hours(3);
    let end = start + Duration::hours(2);
    let theirs = second.services.reservations();
    let owner = UserId::new();
    let first = theirs
        .reserve(owner, request(lot, None, start, end), "first")
        .await
        .unwrap();
    let full = theirs
        .reserve(UserId::new(), request(lot, None, start, end), "full")
        .await
        .unwrap_err();
    assert_eq!(code(&full), "no_spot_available");
    app.state
        .services
        .reservations()
        .cancel_reservation(owner, first.id)
        .await
        .unwrap();
    let busy = app
        .state
        .services
        .store()
        .begin_change(app.state.services.now())
        .await
        .unwrap();
    let services = second.services.clone();
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

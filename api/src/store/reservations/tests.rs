//! How SQLite reads the reservations' hot queries: their plans.

use crate::store::Store;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

/// A fresh store in a temporary directory (kept alive with it).
async fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plan.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

/// How SQLite reads `query` (an `EXPLAIN QUERY PLAN` with its arguments bound): one line per
/// step.
async fn plan_of(store: &Store, query: Query<'_, Any, AnyArguments>) -> Vec<String> {
    query
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String, _>("detail").unwrap())
        .collect()
}

/// `sql` to be explained rather than run.
fn explain(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))
}

/// How SQLite reads a free-spot probe `sql` (with its four arguments, and a fifth if it takes
/// one).
async fn plan(store: &Store, sql: &str) -> Vec<String> {
    let query = sqlx::query(explain(sql))
        .bind(1_i64)
        .bind(1_i64)
        .bind(0_i64)
        .bind(1_i64);
    let query = if sql.contains("$5") {
        query.bind("")
    } else {
        query
    };
    plan_of(store, query).await
}

/// "Is this one spot free" finds the spot by its key (an `OR` with the whole lot's form
/// made SQLite walk every spot of the lot), and a spot's holds are read latest start first,
/// so that a taken spot is known from its first entry (migration 0018).
#[tokio::test]
async fn a_spot_is_found_by_its_key_and_its_holds_are_read_latest_first() {
    let (_dir, store) = fresh_store().await;
    let one = plan(&store, free_spots_sql!(sqlite, spot, except)).await;
    assert!(
        one.iter().any(|s| s.contains("USING INTEGER PRIMARY KEY")),
        "{one:?}"
    );
    assert!(!one.iter().any(|s| s.contains("spots_by_lot")), "{one:?}");
    let all = plan(&store, free_spots_sql!(sqlite, lot, except)).await;
    assert!(all.iter().any(|s| s.contains("spots_by_lot")), "{all:?}");
    for steps in [&one, &all] {
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX holding_reservations_by_spot")),
            "{steps:?}"
        );
    }
    let start_at_descending: i64 = sqlx::query(
        "SELECT \"desc\" FROM pragma_index_xinfo('holding_reservations_by_spot') WHERE name = 'start_at'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get("desc")
    .unwrap();
    assert_eq!(start_at_descending, 1);
}

/// Without a reservation to leave out, a spot's probe reads the index alone: the
/// reservation's id is not in it, and with `r.id <> $5` a full window's refusal read one
/// row of the table per taken spot.
#[tokio::test]
async fn a_probe_with_no_reservation_to_leave_out_reads_the_index_alone() {
    let (_dir, store) = fresh_store().await;
    for sql in [
        free_spots_sql!(sqlite, spot, any),
        free_spots_sql!(sqlite, lot, any),
    ] {
        let steps = plan(&store, sql).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING COVERING INDEX holding_reservations_by_spot")),
            "{steps:?}"
        );
    }
    let moving = plan(&store, free_spots_sql!(sqlite, lot, except)).await;
    assert!(
        !moving.iter().any(|s| s.contains("COVERING")),
        "a change leaving its own reservation out must read its id: {moving:?}"
    );
}

/// A gate's plate lookup reads the plate's own index, and a booking without a plate adds
/// nothing to it: the index SQLite had for plates (`status IN ('active', 'checked_in')`) it
/// never chose for `status = 'active'`, and it read the window's reservations of every lot.
#[tokio::test]
async fn a_plate_at_the_gate_is_found_by_its_index_and_a_booking_without_one_skips_it() {
    let (_dir, store) = fresh_store().await;
    let query = sqlx::query(explain(super::ARRIVING_BY_PLATE))
        .bind(1_i64)
        .bind("B-XY 123")
        .bind(1_i64)
        .bind(0_i64);
    let plate = plan_of(&store, query).await;
    assert!(
        plate
            .iter()
            .any(|s| s.contains("USING INDEX arriving_reservations_by_plate")),
        "{plate:?}"
    );
    let condition: String =
        sqlx::query("SELECT sql FROM sqlite_master WHERE name = 'arriving_reservations_by_plate'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("sql")
            .unwrap();
    assert!(condition.contains("plate IS NOT NULL"), "{condition}");
}

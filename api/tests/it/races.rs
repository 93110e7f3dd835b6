//! The races PostgreSQL may end a transaction with, and that the API answers by running the
//! transaction again (a CI run once met a deadlock between two bookings and answered 500).

use super::TestApp;
use parkflow_api::domain::error::Error;
use parkflow_api::store::{Backend, Handle, LostRace, lost_race};

/// Each race a write can lose is told apart from any other failure, on the real database: a
/// unique key taken, an exclusion constraint refusing an overlap, a deadlock broken by
/// PostgreSQL. A plain mistake is no race.
pub async fn lost_races_are_told_apart_from_other_failures(app: TestApp) {
    let store = app.state.services.store();
    let writer = store.writer();
    sqlx::query("CREATE TABLE race_probe (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(writer)
        .await
        .unwrap();
    sqlx::query("INSERT INTO race_probe (id, n) VALUES (1, 0), (2, 0)")
        .execute(writer)
        .await
        .unwrap();
    let taken = sqlx::query("INSERT INTO race_probe (id, n) VALUES (1, 0)")
        .execute(writer)
        .await
        .unwrap_err();
    assert_eq!(lost_race(&Error::from(taken)), Some(LostRace::Unique));
    let mistake = sqlx::query("INSERT INTO no_such_table VALUES (1)")
        .execute(writer)
        .await
        .unwrap_err();
    assert_eq!(lost_race(&Error::from(mistake)), None);
    assert_eq!(lost_race(&Error::conflict("spot_taken", "taken")), None);
    // PostgreSQL's writer is its pool.
    let Handle::Pool(writer) = store.writer() else {
        return;
    };

    // The reservations' no_double_booking constraint refuses an overlap with 23P01.
    sqlx::query(
        "CREATE TABLE range_probe (spot BIGINT NOT NULL, during int8range NOT NULL,
         EXCLUDE USING gist (spot WITH =, during WITH &&))",
    )
    .execute(writer)
    .await
    .unwrap();
    sqlx::query("INSERT INTO range_probe VALUES (1, int8range(0, 10))")
        .execute(writer)
        .await
        .unwrap();
    let overlap = sqlx::query("INSERT INTO range_probe VALUES (1, int8range(5, 15))")
        .execute(writer)
        .await
        .unwrap_err();
    assert_eq!(lost_race(&Error::from(overlap)), Some(LostRace::Exclusion));

    // Two transactions that each lock a row the other then wants: PostgreSQL aborts one.
    let mut first = writer.begin().await.unwrap();
    let mut second = writer.begin().await.unwrap();
    let bump = "UPDATE race_probe SET n = n + 1 WHERE id = $1";
    sqlx::query(bump)
        .bind(1_i64)
        .execute(&mut *first)
        .await
        .unwrap();
    sqlx::query(bump)
        .bind(2_i64)
        .execute(&mut *second)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        sqlx::query(bump).bind(2_i64).execute(&mut *first),
        sqlx::query(bump).bind(1_i64).execute(&mut *second),
    );
    let races: Vec<_> = [a, b]
        .into_iter()
        .filter_map(|r| r.err())
        .map(|e| lost_race(&Error::from(e)))
        .collect();
    assert_eq!(races, [Some(LostRace::Aborted)], "exactly one is aborted");
}

/// An entry that loses its spot to another gate again and again still gets the spot left.
/// Ten other gates hold uncommitted stays in ten of the eleven spots and commit one after
/// another; the entry picks a spot the store still shows free, waits for the holder, loses,
/// and picks again. Losing more times than the old fixed number of attempts (8, with every
/// loser running for the same next spot) answered 500.
pub async fn an_entry_that_keeps_losing_its_spot_still_gets_one(app: TestApp) {
    if app.state.services.store().backend() != Backend::Postgres {
        return; // SQLite's one writer lets no two entries race.
    }
    // Connections for the ten holders and the entry's own.
    let config = parkflow_api::ApiConfig {
        database_connections: 16,
        ..app.config.clone()
    };
    let clock = std::sync::Arc::new(app.clock.clone());
    let registry = prometheus_client::registry::Registry::default();
    let state = parkflow_api::AppState::open(&config, clock, registry)
        .await
        .unwrap();
    let app = TestApp { state, ..app };
    let store = app.state.services.store();
    let lot = app.with_lot(serde_json::json!({"car": 11})).await;
    let spots: Vec<i64> = sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1 ORDER BY id")
        .bind(lot)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let mut holders = Vec::new();
    for (i, spot) in spots.iter().take(10).enumerate() {
        let Handle::Pool(writer) = store.writer() else {
            unreachable!("PostgreSQL's writer is its pool");
        };
        let mut tx = writer.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO parking_sessions (id, lot_id, spot_id, vehicle_type, method, entered_at)
             VALUES ($1, $2, $3, 'car', 'qr', 0)",
        )
        .bind(format!("held-{i}"))
        .bind(lot)
        .bind(spot)
        .execute(&mut *tx)
        .await
        .unwrap();
        holders.push(tx);
    }
    let commits = tokio::spawn(async move {
        for tx in holders {
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            tx.commit().await.unwrap();
        }
    });
    let entry = app.enter(lot, "car").await;
    commits.await.unwrap();
    assert_eq!(
        entry.status,
        axum::http::StatusCode::CREATED,
        "{}",
        entry.body
    );
    let open: Vec<i64> = sqlx::query_scalar(
        "SELECT spot_id FROM parking_sessions WHERE lot_id = $1 AND exited_at IS NULL",
    )
    .bind(lot)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(open.len(), 11, "every spot holds one stay");
}

/// A driver's first top-ups, sent from two devices at once, all credit one balance. On
/// PostgreSQL the loser of the race to open the balance row used to fail its insert inside
/// the settling transaction, which aborted it: the request answered 500.
pub async fn first_top_ups_at_once_all_credit_one_balance(app: TestApp) {
    let service = app.state.services.clone();
    app.warm_pool().await;
    let user = warehouse_schema::UserId::new();
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (service, gate) = (service.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                service
                    .payments()
                    .top_up(
                        user,
                        1_000,
                        Some("EUR".into()),
                        parkflow_api::services::payments::PaymentMethod::Wallet {
                            token: "wal_ok".into(),
                        },
                        &format!("device-{i}"),
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        assert_eq!(p.status.as_str(), "captured");
    }
    assert_eq!(service.payments().balance(user).await.unwrap(), 12_000);
    assert_eq!(
        service
            .payments()
            .balance_currency(user)
            .await
            .unwrap()
            .as_deref(),
        Some("EUR")
    );
}

/// Two admins answer one inquiry at once: one answer is kept, the other is told it came too
/// late, and the driver gets one message. On PostgreSQL both used to read "unanswered" and
/// both wrote, the second overwriting the first.
pub async fn two_answers_to_one_inquiry_keep_one(app: TestApp) {
    use parkflow_api::services::admin::{Actor, NewInquiry};
    let service = app.state.services.clone();
    app.warm_pool().await;
    let user = warehouse_schema::UserId::new();
    let asked = service
        .admin()
        .open_inquiry(
            user,
            NewInquiry {
                subject: "Gate 2".into(),
                message: "The gate did not open.".into(),
                reservation_id: None,
            },
        )
        .await
        .unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (service, gate) = (service.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                service
                    .admin()
                    .answer_inquiry(&Actor::admin_token(), asked.id, &format!("answer {i}"))
                    .await
            })
        })
        .collect();
    let mut kept = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => kept.push(i.answer.unwrap()),
            Err(e) => assert_eq!(e.code(), "already_answered", "{e}"),
        }
    }
    assert_eq!(kept.len(), 1, "{kept:?}");
    let mine = service.admin().inquiries_of(user).await.unwrap();
    assert_eq!(
        mine[0].answer.as_ref(),
        Some(&kept[0]),
        "the answer given is the one kept"
    );
    let messages = parkflow_api::notifications::of_user(service.store(), user, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, kept[0]);
}

/// PostgreSQL's `no_double_booking` on the reservations themselves (SQLite has no such
/// constraint: its single writer checks the spot in the transaction that inserts): a window that overlaps a
/// holding one on the same spot is refused as an exclusion race, whatever wrote it; windows
/// that only touch are both kept, and neither another spot's window nor a cancelled one holds.
pub async fn the_database_refuses_overlapping_holds_of_one_spot(app: TestApp) {
    let store = app.state.services.store();
    let Handle::Pool(writer) = store.writer() else {
        panic!("PostgreSQL's writer is its pool");
    };
    let lot = app.with_lot(serde_json::json!({"car": 2})).await;
    let spots: Vec<i64> = sqlx::query_scalar("SELECT id FROM spots WHERE lot_id = $1 ORDER BY id")
        .bind(lot)
        .fetch_all(writer)
        .await
        .unwrap();
    let hour = 3_600_000_i64;
    let insert = |id: &'static str, spot: i64, start: i64, end: i64, status: &'static str| {
        sqlx::query(
            "INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, start_at, end_at,
                                       status, quote_cents, currency, idempotency_key, created_at)
             VALUES ($1, $2, $3, 'u', 'car', $4, $5, $6, 0, 'EUR', $1, 0)",
        )
        .bind(id)
        .bind(lot)
        .bind(spot)
        .bind(start)
        .bind(end)
        .bind(status)
        .execute(writer)
    };
    insert("a", spots[0], 10 * hour, 12 * hour, "active")
        .await
        .unwrap();
    insert("touching before", spots[0], 9 * hour, 10 * hour, "active")
        .await
        .unwrap();
    insert(
        "touching after",
        spots[0],
        12 * hour,
        13 * hour,
        "checked_in",
    )
    .await
    .unwrap();
    insert("other spot", spots[1], 10 * hour, 12 * hour, "active")
        .await
        .unwrap();
    insert("cancelled", spots[0], 11 * hour, 12 * hour, "cancelled")
        .await
        .unwrap();
    for (id, start, end) in [
        ("inside", 10 * hour + 1, 12 * hour - 1),
        ("a millisecond over the end", 12 * hour - 1, 14 * hour),
        ("around", 8 * hour, 14 * hour),
    ] {
        let refused = insert(id, spots[0], start, end, "active")
            .await
            .unwrap_err();
        assert_eq!(
            lost_race(&Error::from(refused)),
            Some(LostRace::Exclusion),
            "{id}"
        );
    }
    // A cancelled window holds nothing; made to hold again, it meets the constraint.
    let held_again =
        sqlx::query("UPDATE reservations SET status = 'active' WHERE id = 'cancelled'")
            .execute(writer)
            .await
            .unwrap_err();
    assert_eq!(
        lost_race(&Error::from(held_again)),
        Some(LostRace::Exclusion)
    );
}

/// PostgreSQL reads a lot's holds for the free-spot query through the lot-and-window index,
/// with statistics that do not know the lot's holds yet as with current ones: the exclusion constraint's index leads with the
/// spot, and a plan through it reads every lot's reservations overlapping the window (the two
/// indexes spell their ranges apart for this, migrations 0006 and 0021); a plate index led by
/// the lot, chosen while the statistics said the lot had no holds, read every one of them
/// (0022).
pub async fn a_lots_free_spots_are_read_through_its_own_window_index(app: TestApp) {
    let store = app.state.services.store();
    let Handle::Pool(writer) = store.writer() else {
        panic!("PostgreSQL's writer is its pool");
    };
    let earlier = app.with_lot(serde_json::json!({"car": 200})).await;
    let busy = app.with_lot(serde_json::json!({"car": 200})).await;
    let quiet = app.with_lot(serde_json::json!({"car": 200})).await;
    // `hours` back-to-back hours on each of `lot`'s spots.
    let hold = |lot: i64, hours: i64| async move {
        sqlx::query(
            "INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, start_at, end_at,
                                       status, quote_cents, currency, idempotency_key, created_at)
             SELECT 'h' || s.id || '-' || h, s.lot_id, s.id, 'u', 'car', h * 3600000,
                    (h + 1) * 3600000, 'active', 0, 'EUR', 'h' || s.id || '-' || h, 0
             FROM spots s, generate_series(0, $2 - 1) AS h WHERE s.lot_id = $1",
        )
        .bind(lot)
        .bind(hours)
        .execute(writer)
        .await
        .unwrap();
    };
    // Statistics gathered while another lot had every hold (as autovacuum may in `bench api`
    // between its set-up and its bookings) say the busy lot has none.
    hold(earlier, 10).await;
    sqlx::query("ANALYZE reservations")
        .execute(writer)
        .await
        .unwrap();
    // Then a hundred hours on each of the busy lot's spots: 20,000 holds.
    hold(busy, 100).await;
    let sql = parkflow_api::store::reservations::free_spots_sql(Backend::Postgres, false, false);
    let plan_for = |lot: i64| async move {
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
            .bind(lot)
            .bind(None::<i64>)
            .bind(50 * 3_600_000_i64)
            .bind(51 * 3_600_000_i64)
            .fetch_all(writer)
            .await
            .unwrap();
        plan.join("\n")
    };
    let plan = plan_for(busy).await;
    assert!(
        plan.contains("holding_reservations_by_lot_window") && !plan.contains("by_plate"),
        "with statistics of another lot:\n{plan}"
    );
    sqlx::query("ANALYZE reservations")
        .execute(writer)
        .await
        .unwrap();
    for lot in [busy, quiet] {
        let plan = plan_for(lot).await;
        assert!(!plan.contains("no_double_booking"), "lot {lot}:\n{plan}");
        if lot == busy {
            assert!(
                plan.contains("holding_reservations_by_lot_window"),
                "lot {lot}:\n{plan}"
            );
        }
    }
}

/// An event appended by a transaction that commits after a later-appended one is still read
/// by a reader that moved past the later one's position (the embedded ingest, the live
/// follower, the availability sync read "everything after the last position"): on
/// PostgreSQL appending transactions take turns, each holding its turn until it commits, so
/// positions commit in order (`parkflow_outbox::append_all`).
pub async fn an_event_that_commits_late_is_never_passed_over(app: TestApp) {
    use warehouse_schema::event::LotRegistered;
    use warehouse_schema::{Event, EventPayload, LotId};
    let store = app.state.services.store();
    let Handle::Pool(writer) = store.writer() else {
        panic!("PostgreSQL's writer is its pool");
    };
    let event = |name: &str| {
        Event::new(
            app.state.services.now(),
            LotId(1),
            EventPayload::LotRegistered(LotRegistered {
                name: name.into(),
                time_zone: "UTC".into(),
                latitude: 0.0,
                longitude: 0.0,
                capacity: 1,
            }),
        )
    };
    let outbox = store.outbox();
    // The early transaction's events take more than one statement (a thousand to each).
    let firsts: Vec<Event> = (0..1_500).map(|i| event(&format!("first {i}"))).collect();
    let second = event("second");
    let mut early = writer.begin().await.unwrap();
    parkflow_outbox::append_all(&mut early, &firsts.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    // A second transaction appends after the first and tries to commit before it.
    let late = {
        let writer = writer.clone();
        let second = second.clone();
        tokio::spawn(async move {
            let mut tx = writer.begin().await.unwrap();
            parkflow_outbox::append_all(&mut tx, &[&second])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A reader now: whatever it sees, it moves past.
    let seen = outbox.head().await.unwrap();
    early.commit().await.unwrap();
    late.await.unwrap();
    let read: Vec<String> = outbox
        .read_after(seen, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.payload)
        .collect();
    // Every event, in the order appended: the early transaction's, then the late one's.
    let appended: Vec<String> = firsts.iter().chain([&second]).map(Event::to_json).collect();
    assert_eq!(
        read.len(),
        appended.len(),
        "events passed over: read after {seen}"
    );
    assert!(read == appended, "out of order");
}

/// On PostgreSQL the availability index's "no spot" is the store's when no change that frees
/// a spot of the lot was recorded after the index read it (`Reservations::rules_if_no_spot`):
/// asked of the outbox, with the lot's settings, by lot and position through `outbox_releases`, an index over only
/// those events (migration 0024, whose list is `RELEASING_EVENTS`), however many bookings the
/// lot recorded; a cancellation after the position is found, one before it or of another lot
/// is not.
pub async fn a_spot_freed_since_the_index_read_its_lot_is_found_by_its_own_index(app: TestApp) {
    use parkflow_api::services::lots::RELEASING_EVENTS;
    use parkflow_api::store::lots::settings_unless_freed;
    use warehouse_schema::LotId;
    let store = app.state.services.store();
    let Handle::Pool(writer) = store.writer() else {
        panic!("PostgreSQL's writer is its pool");
    };
    let lot = app.with_lot(serde_json::json!({"car": 2})).await;
    let other = app.with_lot(serde_json::json!({"car": 2})).await;
    let record = |lot: i64, kind: &'static str, n: i64| async move {
        sqlx::query(
            "INSERT INTO outbox (event_id, lot_id, event_type, payload, created_at)
             SELECT 'e-' || $1 || '-' || $2 || '-' || i || '-' || md5(random()::text), $1, $2, '{}', 0
             FROM generate_series(1, $3) AS i",
        )
        .bind(lot)
        .bind(kind)
        .bind(n)
        .execute(writer)
        .await
        .unwrap();
    };
    // Twenty thousand bookings recorded, and a cancellation of another lot.
    record(lot, "reservation_created", 20_000).await;
    record(other, "reservation_cancelled", 1).await;
    sqlx::query("ANALYZE outbox").execute(writer).await.unwrap();
    let outbox = store.outbox();
    let head = outbox.head().await.unwrap();

    let sql = parkflow_api::store::lots::settings_unless_freed_sql(RELEASING_EVENTS);
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .bind(lot)
        .bind(0_i64)
        .fetch_all(writer)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("outbox_releases"), "{plan}");

    let freed = |after: i64| async move {
        let read = settings_unless_freed(writer, LotId(lot), after, RELEASING_EVENTS).await;
        read.unwrap().expect("the lot exists").1
    };
    assert!(!freed(0).await, "bookings free no spot");
    record(lot, "reservation_cancelled", 1).await;
    assert!(freed(head).await, "a cancellation after the position");
    let later = outbox.head().await.unwrap();
    assert!(!freed(later).await, "a cancellation before it");
    record(other, "exit", 1).await;
    assert!(!freed(later).await, "another lot's exit");
}

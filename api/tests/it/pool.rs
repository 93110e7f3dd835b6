//! PostgreSQL's connections: the pool as large as configured, a request no connection comes
//! free for told when to retry, and bookings committed in groups by the store's booking writer
//! (`store::group`).

use super::TestApp;
use parkflow_api::store::{Handle, lost_race};

/// PostgreSQL's pool is as large as `api.database_connections` says (by default the store's
/// `POSTGRES_CONNECTIONS`, sized for the database's cores, not for the clients), and a size out
/// of range is refused before anything opens; a small pool still serves many concurrent
/// bookings, each waiting its turn for a connection.
pub async fn the_pool_is_as_large_as_configured(app: TestApp) {
    use parkflow_api::store::POSTGRES_CONNECTIONS;
    use parkflow_api::{ApiConfig, AppState};
    // The readers as many as the pool that changes run on.
    let pool_size = |state: &AppState| {
        let store = state.services.store();
        let (Handle::Pool(pool), Handle::Lender(readers)) = (store.writer(), store.pool()) else {
            panic!("PostgreSQL's writer is its pool, its readers lent");
        };
        assert_eq!(readers.size(), pool.options().get_max_connections());
        pool.options().get_max_connections()
    };
    assert_eq!(pool_size(&app.state), POSTGRES_CONNECTIONS);
    let open = |connections: u32| {
        let config = ApiConfig {
            database_connections: connections,
            ..app.config.clone()
        };
        let clock = app.clock.clone();
        async move {
            AppState::open(
                &config,
                std::sync::Arc::new(clock),
                prometheus_client::registry::Registry::default(),
            )
            .await
        }
    };
    for refused in [0, 1_001] {
        let Err(err) = open(refused).await else {
            panic!("{refused} connections accepted")
        };
        assert!(
            err.to_string().contains("api.database_connections"),
            "{err}"
        );
    }
    let small = open(2).await.unwrap();
    assert_eq!(pool_size(&small), 2);
    let small = TestApp {
        state: small,
        ..app
    };
    let lot = small.with_lot(serde_json::json!({"car": 40})).await;
    let driver = small.driver("pool@example.com").await;
    let start = parkflow_api::Clock::now(&small.clock) + chrono::Duration::hours(2);
    let keys: Vec<String> = (0..40).map(|i| format!("pool-{i}")).collect();
    let bookings = keys
        .iter()
        .map(|key| driver.book(lot, (start, 1), "car", key));
    let answers = futures_util::future::join_all(bookings).await;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
}

/// A request that no PostgreSQL connection comes free for within the store's wait is refused
/// 503 `service_unavailable` with `Retry-After` (never a 500), whether it is a read or a keyed
/// booking, and it leaves nothing behind: sent again under the same key once a connection is
/// free, the booking books, once.
pub async fn a_request_no_connection_comes_free_for_is_told_when_to_retry(app: TestApp) {
    use parkflow_api::AppState;
    use parkflow_api::store::{Store, StoreOptions};
    use std::time::Duration;
    let options = StoreOptions {
        postgres_connections: 1,
        postgres_wait: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&app.config.database_url, options)
        .await
        .unwrap();
    let state = AppState::on_store(
        store,
        &app.config,
        std::sync::Arc::new(app.clock.clone()),
        prometheus_client::registry::Registry::default(),
    )
    .unwrap();
    let app = TestApp { state, ..app };
    let lot = app.with_lot(serde_json::json!({"car": 2})).await;
    let driver = app.driver("wait@example.com").await;
    let start = parkflow_api::Clock::now(&app.clock) + chrono::Duration::hours(2);
    // The one reader and the pool's one connection (changes, the outbox's reads) held.
    let store = app.state.services.store();
    let held = (
        store.pool().acquire().await.unwrap(),
        store.writer().acquire().await.unwrap(),
    );
    let refused = [
        app.call("GET", "/healthz", None, None).await,
        driver.get("/v1/reservations").await,
        driver.book(lot, (start, 1), "car", "wait-1").await,
    ];
    for r in &refused {
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "service_unavailable", "{}", r.body);
        assert_eq!(r.headers["retry-after"], "1");
    }
    drop(held);

    let booked = driver.book(lot, (start, 1), "car", "wait-1").await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let again = driver.book(lot, (start, 1), "car", "wait-1").await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body, booked.body);
    let mine = driver.get("/v1/reservations").await;
    assert_eq!(
        mine.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        mine.body
    );
}

/// PostgreSQL's bookings committed as one group (`store::group`) each get the outcome a
/// transaction of their own would have: the first of two overlapping holds of a spot is
/// booked and the second lost to the exclusion constraint; a second booking under a taken key
/// lost to its unique index; one whose `Idempotency-Key` another request holds is refused
/// `request_in_progress` and leaves no reservation; one the database fails for another reason
/// (a spot that does not exist) fails alone. Only the booked ones leave rows, events and
/// messages.
pub async fn bookings_committed_as_one_group_each_get_their_own_outcome(app: TestApp) {
    use parkflow_api::domain::notification::{NewNotification, NotificationKind};
    use parkflow_api::store::group::Booking;
    use parkflow_api::store::{idempotency, reservations::NewReservationRow};
    use warehouse_schema::{
        Event, EventPayload, LotId, ReservationId, SpotId, UserId, event::ReservationWindow,
    };
    let store = app.state.services.store();
    let lot = app.with_lot(serde_json::json!({"car": 3})).await;
    app.driver("group@example.com").await;
    let (user,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind("group@example.com")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let user = UserId(user.parse().unwrap());
    let spots: Vec<(i64,)> = sqlx::query_as("SELECT id FROM spots WHERE lot_id = $1 ORDER BY id")
        .bind(lot)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let now = parkflow_api::Clock::now(&app.clock);
    let hour = 3_600_000;
    let start = now.timestamp_millis() + 2 * hour;
    // Another request (a payment, say) holds the key "paid".
    idempotency::insert_answered(store.writer(), (user, "paid", "other"), (200, "{}"), 1)
        .await
        .unwrap();

    // (spot, start, key): booked; overlaps the first; the first's key; a key taken; no such
    // spot; booked.
    let plan = [
        (spots[0].0, start, "a"),
        (spots[0].0, start + hour / 2, "b"),
        (spots[1].0, start, "a"),
        (spots[2].0, start, "paid"),
        (999_999, start, "e"),
        (spots[1].0, start + hour, "f"),
    ];
    let ids: Vec<ReservationId> = plan.iter().map(|_| ReservationId::new()).collect();
    let bookings: Vec<Booking> = plan
        .iter()
        .zip(&ids)
        .map(|(&(spot, start_at, key), &id)| {
            let mut b = Booking::new(&NewReservationRow {
                id,
                lot: LotId(lot),
                spot,
                user,
                vehicle_type: "car",
                vehicle_id: None,
                plate: None,
                start_at,
                end_at: start_at + hour,
                quote_cents: 500,
                currency: "EUR",
                idempotency_key: key,
                created_at: now.timestamp_millis(),
                monthly_pass: None,
            });
            b.event(Event::new(
                now,
                LotId(lot),
                EventPayload::ReservationCreated(ReservationWindow {
                    reservation_id: id,
                    user_id: user,
                    spot_id: SpotId(spot),
                    start_at: chrono::DateTime::from_timestamp_millis(start_at).unwrap(),
                    end_at: chrono::DateTime::from_timestamp_millis(start_at + hour).unwrap(),
                    vehicle_type: warehouse_schema::VehicleType::Car,
                }),
            ))
            .notify(&NewNotification {
                user_id: user,
                kind: NotificationKind::ReservationConfirmed,
                dedup_key: format!("group:{id}"),
                lot_id: Some(LotId(lot)),
                title: "Reservation confirmed".into(),
                body: key.into(),
            })
            .keep_answer(&format!("fp-{key}"), 201, format!("{{\"id\":\"{id}\"}}"));
            b
        })
        .collect();
    let events_before = store.outbox_len().await.unwrap();

    let outcomes = store.book_together(&bookings).await.unwrap();
    let told: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(()) => "booked".to_owned(),
            Err(e) => match lost_race(e) {
                Some(race) => format!("{race:?}"),
                None => e.code().to_owned(),
            },
        })
        .collect();
    assert_eq!(
        told,
        [
            "booked",
            "Exclusion",
            "Unique",
            "request_in_progress",
            "internal",
            "booked"
        ]
    );

    let booked: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, idempotency_key FROM reservations WHERE user_id = $1 ORDER BY start_at, id",
    )
    .bind(user.0.to_string())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let expected = [
        (ids[0].0.to_string(), "a".to_owned()),
        (ids[5].0.to_string(), "f".to_owned()),
    ];
    assert_eq!(booked, expected);
    assert_eq!(store.outbox_len().await.unwrap(), events_before + 2);
    let messages: Vec<(String,)> = sqlx::query_as(
        "SELECT body FROM notification_outbox WHERE dedup_key LIKE 'group:%' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(messages, [("a".to_owned(),), ("f".to_owned(),)]);
    // The booked keys keep their answers; the taken one is still the other request's.
    for (key, fingerprint) in [("a", "fp-a"), ("f", "fp-f"), ("paid", "other")] {
        let kept = idempotency::find(store.pool(), user, key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.fingerprint, fingerprint, "{key}");
    }
}

/// PostgreSQL's readers are lent without sqlx's pool (`store::handles::lender`): a reader whose
/// task was dropped in the middle of a statement is lent again and answers the next one; one
/// the server ended fails the statement it was lent for, is closed, and the next statement
/// gets a new connection.
pub async fn a_reader_left_mid_statement_or_ended_by_the_server_is_never_lent_broken(app: TestApp) {
    use parkflow_api::store::{Store, StoreOptions};
    let options = StoreOptions {
        postgres_connections: 1,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&app.config.database_url, options)
        .await
        .unwrap();
    let one = || async {
        sqlx::query_scalar::<_, i64>("SELECT 1::bigint")
            .fetch_one(store.pool())
            .await
    };

    let mut reader = store.pool().acquire().await.unwrap();
    let pid = backend_pid(&mut reader).await;
    let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&mut reader);
    let cut = tokio::time::timeout(std::time::Duration::from_millis(50), slow).await;
    assert!(cut.is_err(), "the statement was cut short");
    drop(reader);
    assert_eq!(one().await.unwrap(), 1);
    assert_eq!(
        reader_pid(&store).await,
        pid,
        "the same connection, lent again"
    );

    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(store.writer())
        .await
        .unwrap();
    assert!(ended);
    assert!(
        one().await.is_err(),
        "the ended connection fails its statement"
    );
    assert_eq!(one().await.unwrap(), 1);
    assert_ne!(reader_pid(&store).await, pid, "a new connection");
}

/// PostgreSQL's readers are not kept for good (`StoreOptions::postgres_lifetime`,
/// `postgres_idle`, 30 and 10 minutes by default as sqlx's pool): one open longer than the
/// lifetime is replaced when it is next lent, and those unused longer than the idle limit are
/// closed.
pub async fn readers_are_replaced_when_old_and_closed_when_unused(app: TestApp) {
    use parkflow_api::store::{Store, StoreOptions};
    use std::time::Duration;
    let open = |lifetime_ms: u64, idle_ms: u64| {
        let options = StoreOptions {
            postgres_connections: 2,
            postgres_lifetime: Duration::from_millis(lifetime_ms),
            postgres_idle: Duration::from_millis(idle_ms),
            ..StoreOptions::default()
        };
        Store::open_with(&app.config.database_url, options)
    };

    let store = open(400, 60_000).await.unwrap();
    let first = reader_pid(&store).await;
    assert_eq!(reader_pid(&store).await, first, "lent again while young");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(reader_pid(&store).await, first, "replaced once old");

    let store = open(60_000, 300).await.unwrap();
    let Handle::Lender(readers) = store.pool() else {
        panic!("PostgreSQL's readers are lent");
    };
    let (mut a, mut b) = (
        store.pool().acquire().await.unwrap(),
        store.pool().acquire().await.unwrap(),
    );
    let pids = [backend_pid(&mut a).await, backend_pid(&mut b).await];
    drop((a, b));
    assert_eq!(readers.idle_count(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let now = reader_pid(&store).await;
    assert!(!pids.contains(&now), "{now} was unused too long: {pids:?}");
    assert_eq!(readers.idle_count(), 1, "the unused ones are closed");
}

/// The PostgreSQL backend serving `conn`.
async fn backend_pid(conn: &mut parkflow_api::store::Conn) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The PostgreSQL backend serving the reader `store` lends now.
async fn reader_pid(store: &parkflow_api::store::Store) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// A group of bookings takes the outbox's turn only once its other writes are done, so it
/// never holds the turn while it waits on another transaction's row (which could hold up every
/// appending transaction behind that one, or deadlock with it): while a group waits for
/// another transaction's uncommitted claim of its booking's `Idempotency-Key`, a third
/// transaction appends and commits; once that claim is rolled back, the group books.
pub async fn a_group_waiting_on_another_transactions_row_holds_no_turn(app: TestApp) {
    use parkflow_api::store::group::Booking;
    use parkflow_api::store::reservations::NewReservationRow;
    use sqlx::Connection;
    use std::time::Duration;
    use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SpotId, UserId};
    let store = app.state.services.store().clone();
    let Handle::Pool(pool) = store.writer() else {
        panic!("PostgreSQL's writer is its pool");
    };
    let lot = app.with_lot(serde_json::json!({"car": 1})).await;
    app.driver("turn@example.com").await;
    let (user,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind("turn@example.com")
        .fetch_one(pool)
        .await
        .unwrap();
    let (spot,): (i64,) = sqlx::query_as("SELECT id FROM spots WHERE lot_id = $1")
        .bind(lot)
        .fetch_one(pool)
        .await
        .unwrap();
    let now = parkflow_api::Clock::now(&app.clock);
    let start = now.timestamp_millis() + 7_200_000;
    let end = start + 3_600_000;

    // Transaction A claims the key the group books under, uncommitted.
    let mut a = pool.acquire().await.unwrap();
    let mut a = a.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, created_at, locked_until)
         VALUES ($1, 'group', 'another request', $2, $2)",
    )
    .bind(&user)
    .bind(now.timestamp_millis())
    .execute(&mut *a)
    .await
    .unwrap();

    // The group books under that key: it waits on A's row.
    let id = ReservationId::new();
    let mut booking = Booking::new(&NewReservationRow {
        id,
        lot: LotId(lot),
        spot,
        user: UserId(user.parse().unwrap()),
        vehicle_type: "car",
        vehicle_id: None,
        plate: None,
        start_at: start,
        end_at: end,
        quote_cents: 500,
        currency: "EUR",
        idempotency_key: "group",
        created_at: now.timestamp_millis(),
        monthly_pass: None,
    });
    let created = EventPayload::ReservationCreated(warehouse_schema::event::ReservationWindow {
        reservation_id: id,
        user_id: UserId(user.parse().unwrap()),
        spot_id: SpotId(spot),
        start_at: chrono::DateTime::from_timestamp_millis(start).unwrap(),
        end_at: chrono::DateTime::from_timestamp_millis(end).unwrap(),
        vehicle_type: warehouse_schema::VehicleType::Car,
    });
    booking
        .event(Event::new(now, LotId(lot), created.clone()))
        .keep_answer("the booking", 201, "{}".into());
    let group = {
        let store = store.clone();
        tokio::spawn(async move { store.book_together(&[booking]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!group.is_finished(), "the group waits on A's row");

    // Another transaction appends and commits meanwhile: the group holds no turn.
    let other = Event::new(now, LotId(lot), created);
    let appended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut c = pool.acquire().await.unwrap();
        let mut c = c.begin().await.unwrap();
        parkflow_outbox::append_all(&mut c, &[&other])
            .await
            .unwrap();
        c.commit().await.unwrap();
    })
    .await;
    assert!(appended.is_ok(), "an append waited for the group's turn");

    a.rollback().await.unwrap();
    let outcomes = group.await.unwrap().unwrap();
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
}

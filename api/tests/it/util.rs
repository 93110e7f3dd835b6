//! What every scenario of the suite shares: the app on a fresh database of either store
//! (`TestApp::sqlite()`, `TestApp::postgres()`), requests through the real router, and the
//! typed handles scenarios act through (`app.driver(..)`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use parkflow_api::{ApiConfig, AppState, ManualClock, router};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub struct TestApp {
    pub(crate) state: AppState,
    pub(crate) clock: ManualClock,
    pub(crate) config: ApiConfig,
    pub(crate) _dir: tempfile::TempDir,
}

pub struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Value,
}

pub const ADMIN: &str = "dev-admin-token";
pub const GATE: &str = "dev-gate-token";
pub const PRICING: &str = "dev-pricing-token";

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Drops a test's PostgreSQL database once the test has passed (a failed test leaves its
/// database behind, to look at).
pub struct Cleanup(Option<(String, String)>);

impl Cleanup {
    pub async fn run(self) {
        let Some((admin, name)) = self.0 else {
            return;
        };
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        // FORCE: the test's own pool may still be closing its connections.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
}

/// A fresh PostgreSQL database on the test server, or None (with a note) outside CI.
pub(crate) async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("PARKFLOW_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PARKFLOW_TEST_POSTGRES_URL must be set in CI"
        );
        eprintln!("SKIPPED: PARKFLOW_TEST_POSTGRES_URL is not set (run ./scripts/test)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("pf_api_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

impl TestApp {
    /// The app on a fresh SQLite file.
    pub(crate) async fn sqlite() -> Self {
        Self::new(Db::Sqlite).await.expect("SQLite needs no server")
    }

    /// The app on a fresh PostgreSQL database, or `None` (with a note) outside CI.
    pub(crate) async fn postgres() -> Option<Self> {
        Self::new(Db::Postgres).await
    }

    /// A registered, signed-in driver to act as.
    pub(crate) async fn driver(&self, email: &str) -> Driver<'_> {
        Driver {
            token: self.with_driver(email).await,
            app: self,
        }
    }

    pub(crate) async fn new(db: Db) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("api.db").display()),
            Db::Postgres => postgres_database().await?,
        };
        let config = ApiConfig {
            database_url,
            ..ApiConfig::default()
        };
        // A Monday morning in Berlin: 09:00 local.
        let clock = ManualClock::new(t("2026-06-01T07:00:00Z"));
        let state = AppState::open(&config, Arc::new(clock.clone()), Registry::default())
            .await
            .unwrap();
        Some(Self {
            state,
            clock,
            config,
            _dir: dir,
        })
    }

    /// What to drop after the test: its PostgreSQL database (nothing on SQLite, whose file
    /// goes with the temporary directory).
    pub(crate) fn cleanup(&self) -> Cleanup {
        let url = &self.config.database_url;
        let name = url
            .starts_with("postgres")
            .then(|| url.rsplit_once('/').map(|(_, name)| name.to_owned()))
            .flatten();
        Cleanup(name.and_then(|n| Some((std::env::var("PARKFLOW_TEST_POSTGRES_URL").ok()?, n))))
    }

    /// Another API process on the same database and clock, with its own availability index.
    pub(crate) async fn second_process(&self) -> AppState {
        AppState::open(
            &self.config,
            Arc::new(self.clock.clone()),
            Registry::default(),
        )
        .await
        .unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.call_with(method, uri, token, body, None).await
    }

    pub(crate) async fn call_with(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        header: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(tok) = token {
            req = req.header("authorization", format!("Bearer {tok}"));
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// "Lot A" in Berlin with `spots` (per vehicle type), created by the operator's admin.
    pub(crate) async fn with_lot(&self, spots: Value) -> i64 {
        self.admin().create_lot(spots).await
    }

    /// Publish `rates` (`{"rates": [...]}`) for `lot` as the pricing service does; it must be
    /// accepted.
    pub(crate) async fn publish_rates(&self, lot: i64, rates: Value) {
        let uri = format!("/v1/lots/{lot}/rates");
        let r = self
            .call("PUT", &uri, Some(PRICING), Some(&rates.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    /// A drive-up of `vehicle` at `lot`'s entry gate.
    pub(crate) async fn enter(&self, lot: i64, vehicle: &str) -> Reply {
        self.gate(lot).drive_up(vehicle).await
    }

    /// The operator's admin, acting with the admin token.
    pub(crate) fn admin(&self) -> Admin<'_> {
        Admin { app: self }
    }

    /// The gates of `lot`, acting with the gate token.
    pub(crate) fn gate(&self, lot: i64) -> Gate<'_> {
        Gate { app: self, lot }
    }

    /// Open every pooled connection now: requests released together then truly run together
    /// instead of queueing behind connection set-up.
    pub(crate) async fn warm_pool(&self) {
        use parkflow_api::store::Handle;
        let store = self.state.services.store();
        // SQLite's connections are all open from the start; PostgreSQL's readers and pool
        // open theirs on demand.
        let (readers, pool) = match (store.pool(), store.writer()) {
            (Handle::Lender(readers), Handle::Pool(pool)) => (readers.size(), pool),
            _ => return,
        };
        let holders = (0..readers + pool.options().get_max_connections()).map(|i| {
            let handle = if i < readers {
                store.pool()
            } else {
                store.writer()
            };
            async move {
                let mut conn = handle.acquire().await.unwrap();
                sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        futures_util::future::join_all(holders).await;
    }

    /// How many events of type `event_type` the outbox holds.
    pub(crate) async fn outbox_count(&self, event_type: &str) -> usize {
        self.outbox_types()
            .await
            .iter()
            .filter(|t| *t == event_type)
            .count()
    }

    pub(crate) async fn outbox_types(&self) -> Vec<String> {
        // Any driver: the same query on both stores.
        sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY id")
            .fetch_all(self.state.services.store().pool())
            .await
            .unwrap()
    }
}

/// How many of the racing requests `tasks` answered `ok`; every other answer must be the
/// envelope of `refused` (status and code).
pub async fn successes(
    tasks: Vec<tokio::task::JoinHandle<Reply>>,
    ok: StatusCode,
    refused: (StatusCode, &str),
) -> usize {
    let mut n = 0;
    for task in tasks {
        let r = task.await.unwrap();
        if r.status == ok {
            n += 1;
        } else {
            assert_envelope(&r, refused.0, refused.1);
        }
    }
    n
}

pub fn assert_envelope(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// `v` with what is random in it named by first appearance: each UUID becomes `[id N]` and
/// each gate pass `[pass N]`, the same value the same name, so a snapshot still shows which
/// fields refer to the same record.
pub fn stable_ids(v: &Value) -> Value {
    pub(crate) fn walk(v: &Value, seen: &mut Vec<String>) -> Value {
        match v {
            Value::String(s) => {
                let kind = if s.parse::<uuid::Uuid>().is_ok() {
                    "id"
                } else if s.starts_with("pf1.") {
                    "pass"
                } else {
                    return v.clone();
                };
                let n = seen.iter().position(|x| x == s).unwrap_or_else(|| {
                    seen.push(s.clone());
                    seen.len() - 1
                });
                Value::String(format!("[{kind} {}]", n + 1))
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, seen)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), walk(v, seen)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(v, &mut Vec::new())
}

/// A driver, acting through the API with their own access token.
pub struct Driver<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) token: String,
}

impl Driver<'_> {
    /// Book any spot of `vehicle_type` in `lot` from `start` for `hours`, under `key`; the
    /// answer as sent.
    pub(crate) async fn book(
        &self,
        lot: i64,
        (start, hours): (DateTime<Utc>, i64),
        vehicle_type: &str,
        key: &str,
    ) -> Reply {
        let body = json!({
            "lotId": lot, "startAt": start, "endAt": start + chrono::Duration::hours(hours),
            "vehicleType": vehicle_type,
        });
        self.app
            .call_with(
                "POST",
                "/v1/reservations",
                Some(&self.token),
                Some(&body.to_string()),
                Some(("idempotency-key", key)),
            )
            .await
    }

    /// `GET` `uri` as this driver.
    pub(crate) async fn get(&self, uri: &str) -> Reply {
        self.app.call("GET", uri, Some(&self.token), None).await
    }
}

/// The operator's admin, acting through the API with the admin token.
pub struct Admin<'a> {
    pub(crate) app: &'a TestApp,
}

impl Admin<'_> {
    /// Create "Lot A" in Berlin (EUR, 200 cents an hour) with `spots` per vehicle type; its id.
    pub(crate) async fn create_lot(&self, spots: Value) -> i64 {
        let body = json!({
            "name": "Lot A", "timeZone": "Europe/Berlin", "latitude": 52.52, "longitude": 13.40,
            "currency": "EUR", "defaultCentsPerHour": 200, "spots": spots
        });
        let r = self.post("/v1/lots", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    }

    /// `POST` `body` to `uri` as the admin.
    pub(crate) async fn post(&self, uri: &str, body: Value) -> Reply {
        self.app
            .call("POST", uri, Some(ADMIN), Some(&body.to_string()))
            .await
    }
}

/// The entry and exit gates of one lot, acting through the API with the gate token.
pub struct Gate<'a> {
    pub(crate) app: &'a TestApp,
    pub(crate) lot: i64,
}

impl Gate<'_> {
    /// An entry presenting `body` (a pass, a plate, or a vehicle type).
    pub(crate) async fn enter(&self, body: Value) -> Reply {
        self.send("entries", &body.to_string()).await
    }

    /// A drive-up of `vehicle` with nothing to present.
    pub(crate) async fn drive_up(&self, vehicle: &str) -> Reply {
        self.enter(json!({ "vehicleType": vehicle, "method": "qr" }))
            .await
    }

    /// An exit presenting `body` (the stay's session).
    pub(crate) async fn exit(&self, body: Value) -> Reply {
        self.send("exits", &body.to_string()).await
    }

    /// The exit of the stay `session`.
    pub(crate) async fn leave(&self, session: &str) -> Reply {
        self.exit(json!({ "sessionId": session })).await
    }

    /// What a gate sends as it is (malformed bodies included).
    pub(crate) async fn send(&self, way: &str, body: &str) -> Reply {
        let uri = format!("/v1/gates/{}/{way}", self.lot);
        self.app.call("POST", &uri, Some(GATE), Some(body)).await
    }
}

/// `POST /v1/reservations` with `body` under `key` as `token`, through a router of its own
/// (for tasks spawned beside a test): the status and the JSON answer.
pub(crate) async fn book_keyed(
    state: AppState,
    token: &str,
    key: &str,
    body: String,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/v1/reservations")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body))
        .unwrap();
    let resp = router(state).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

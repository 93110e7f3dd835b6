//! `parkflow bench api`: the operational API under real HTTP load on loopback.
//!
//! 1. Availability: one lot (200 spots by default) with 2,000 future reservations; keep-alive
//!    connections ask `GET /v1/parkingspots` for random windows as fast as the server answers,
//!    for a fixed time. Server time is measured by a middleware around the router (from request
//!    routed to response built); client time from request written to body read.
//! 2. Reservations: drivers log in, then concurrent connections `POST /v1/reservations` random
//!    windows on a fresh lot (connections opened and requests written before the clock
//!    starts); afterwards one SQL self-join counts overlapping holds (must be 0).
//!    The rate is printed against the same work done without the API in the same run
//!    (`bench_reference`: Python's sqlite3, or pgbench).
//!
//! Client and server share this machine's cores, as they would on one 2-core box.

use anyhow::{Context, bail};
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use parkflow_api::services::NewLot;
use parkflow_api::services::reservations::NewReservation;
use parkflow_api::store::{Backend, Store, StoreOptions};
use parkflow_api::{ApiConfig, AppState, SystemClock};
use prometheus_client::registry::Registry;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use warehouse_schema::{LotId, UserId, VehicleType};

#[derive(Debug, Clone)]
pub struct ApiBench {
    /// `sqlite://…` or `postgres://…`; empty: a fresh SQLite file in a temp dir.
    pub database_url: String,
    pub spots: u32,
    pub reservations: usize,
    pub seconds: u64,
    pub connections: usize,
    pub reserve_requests: usize,
    pub reserve_connections: usize,
    /// PostgreSQL: the store's pool of connections.
    pub database_connections: u32,
}

/// Server-side latencies in microseconds, per route.
#[derive(Default)]
pub(crate) struct ServerTimes(Mutex<BTreeMap<String, Vec<u32>>>);

async fn time_requests(times: Arc<ServerTimes>, req: Request, next: Next) -> Response {
    let route = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    let key = if route.starts_with("/v1/parkingspots") {
        "GET /v1/parkingspots"
    } else if route.starts_with("/v1/reservations") {
        "POST /v1/reservations"
    } else {
        "other"
    };
    times
        .0
        .lock()
        .expect("times lock")
        .entry(key.to_owned())
        .or_default()
        .push(micros);
    response
}

/// The p-th percentile (0..=100) of `v` (sorted in place).
pub(crate) fn percentile(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    f64::from(v[i.min(v.len() - 1)])
}

/// A keep-alive HTTP/1.1 connection: one request at a time, `Content-Length` bodies.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Send a request and read the whole response: (status, body).
    pub(crate) async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.reader.get_mut().write_all(request).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes()
}

fn post(path: &str, token: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random window in the next six days, on the quarter hour, 1 to 4 hours long.
fn random_window(rng: &mut ChaCha8Rng, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let base = now
        .duration_trunc(Span::minutes(15))
        .expect("quarter hours truncate");
    let start = base + Span::minutes(15 * rng.random_range(8..6 * 96));
    (start, start + Span::minutes(15 * rng.random_range(4..=16)))
}

pub(crate) async fn create_lot(state: &AppState, name: &str, spots: u32) -> anyhow::Result<LotId> {
    let ev = spots / 10;
    let moto = spots / 20;
    let lot = state
        .services
        .lots()
        .create_lot(NewLot {
            ev_spots_open_to_cars: false,
            name: name.into(),
            time_zone: "Europe/Berlin".into(),
            latitude: 52.52,
            longitude: 13.40,
            currency: "EUR".into(),
            default_cents_per_hour: 250,
            spots: BTreeMap::from([
                (VehicleType::Car, spots - ev - moto),
                (VehicleType::Ev, ev),
                (VehicleType::Motorcycle, moto),
            ]),
        })
        .await?;
    Ok(lot.id)
}

pub async fn api(opts: ApiBench) -> anyhow::Result<String> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let database_url = if opts.database_url.is_empty() {
        format!("sqlite://{}", dir.path().join("bench.db").display())
    } else {
        opts.database_url.clone()
    };
    let state = open_state(&database_url, opts.store_options(1)).await?;
    let store = state.services.store().backend();
    let pool = match store {
        Backend::Postgres => format!(" (a pool of {} connections)", opts.database_connections),
        Backend::Sqlite => String::new(),
    };
    let mut out = format!(
        "parkflow bench api — store {store:?}{pool}, {} spots, {} reservations, {} s at {} \
         connections, {} reservation requests at {} connections\n",
        opts.spots,
        opts.reservations,
        opts.seconds,
        opts.connections,
        opts.reserve_requests,
        opts.reserve_connections
    );

    // The availability lot and its reservations (through the service: the set-up is not timed).
    let lot = create_lot(&state, "Bench availability", opts.spots).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let now = Utc::now();
    let (mut booked, mut refused) = (0, 0);
    for i in 0..opts.reservations {
        let (start, end) = random_window(&mut rng, now);
        let req = NewReservation::new(lot, start, end, VehicleType::Car);
        match state
            .services
            .reservations()
            .reserve(UserId::new(), req, &format!("setup-{i}"))
            .await
        {
            Ok(_) => booked += 1,
            Err(e) if e.is_client_error() => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    out += &format!("set-up: {booked} reservations held ({refused} refused as full)\n");

    let (addr, times, server) = serve(&state).await?;

    // 1. Availability under load.
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await?;
            let mut rng = ChaCha8Rng::seed_from_u64(100 + c as u64);
            let (mut ok, mut bad, mut client) = (0u64, 0u64, Vec::new());
            let kinds = ["car", "car", "car", "ev", "motorcycle"];
            while Instant::now() < deadline {
                let (start, end) = random_window(&mut rng, now);
                let kind = kinds[rng.random_range(0..kinds.len())];
                let request = get(&format!(
                    "/v1/parkingspots?lot-id={}&start-at={}&end-at={}&vehicle-type={kind}",
                    lot.0,
                    utc(start),
                    utc(end)
                ));
                let sent = Instant::now();
                let (status, body) = conn.send(&request).await?;
                client.push(sent.elapsed().as_micros() as u32);
                if status == 200 && body.starts_with(b"{") {
                    ok += 1;
                } else {
                    bad += 1;
                }
            }
            anyhow::Ok((ok, bad, client))
        }));
    }
    let (mut ok, mut bad, mut client) = (0, 0, Vec::new());
    for t in tasks {
        let (o, b, c) = t.await??;
        ok += o;
        bad += b;
        client.extend(c);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut server_times = times
        .0
        .lock()
        .expect("times lock")
        .remove("GET /v1/parkingspots")
        .unwrap_or_default();
    out += &format!(
        "availability: {ok} answers ({bad} not 200) in {elapsed:.1} s = {:.0} requests/s; \
         server p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs; client round trip p50 {:.0} µs, p99 {:.0} µs\n",
        ok as f64 / elapsed,
        percentile(&mut server_times, 50.0),
        percentile(&mut server_times, 99.0),
        percentile(&mut server_times, 99.9),
        percentile(&mut client, 50.0),
        percentile(&mut client, 99.0),
    );
    if bad > 0 {
        bail!("{bad} availability requests failed");
    }

    // 2. Reservations under load, then the same work without the API in the same run.
    let booked = reservations(&state, addr, &times, &opts, now).await;
    server.abort();
    let (line, rate) = booked?;
    out += &line;
    out += &match state.services.store().backend() {
        Backend::Sqlite => {
            let reference =
                crate::bench_reference::sqlite(dir.path(), opts.reserve_requests, opts.spots)?;
            format!(
                "the same work without the API (Python's sqlite3, one transaction after another: \
                 check, insert, outbox row, commit): {:.0} bookings/s, each booking transaction \
                 timed ({:.0} transactions/s counting those that found the spot taken and wrote \
                 nothing); the API's bookings run at {:.1} % of its bookings\n",
                reference.bookings_per_s,
                reference.transactions_per_s,
                100.0 * rate / reference.bookings_per_s
            )
        }
        Backend::Postgres => {
            let reference = crate::bench_reference::postgres(
                dir.path(),
                &database_url,
                opts.reserve_connections,
                opts.seconds,
            )?;
            format!(
                "the same work without the API (pgbench, as many clients as booking connections: \
                 check, insert, outbox row, commit): {reference:.0} transactions/s; the API's \
                 bookings run at {:.1} % of it\n",
                100.0 * rate / reference
            )
        }
    };

    // The same load on SQLite with several connections racing for the file lock (as the store
    // wrote before it had one writer), against one writer, each on a database of its own so
    // neither carries the availability lot: the comparison of this run.
    if state.services.store().backend() == Backend::Sqlite && opts.database_url.is_empty() {
        for (name, writers) in [("racing", RACING_WRITERS), ("single", 1)] {
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("{name}.db")).display()
            );
            let fresh = open_state(&url, opts.store_options(writers)).await?;
            let (addr, times, server) = serve(&fresh).await?;
            let booked = reservations(&fresh, addr, &times, &opts, now)
                .await
                .map(|(line, _)| line);
            server.abort();
            out += &format!(
                "fresh database, {writers} write connection{}: {}",
                if writers == 1 {
                    ""
                } else {
                    "s racing for the lock"
                },
                booked?
            );
        }
    }
    Ok(out)
}

/// How many write connections the SQLite store had before it got one writer (its pool size).
const RACING_WRITERS: u32 = 4;

impl ApiBench {
    fn store_options(&self, sqlite_writers: u32) -> StoreOptions {
        StoreOptions {
            sqlite_writers,
            postgres_connections: self.database_connections,
            ..StoreOptions::default()
        }
    }
}

async fn open_state(database_url: &str, options: StoreOptions) -> anyhow::Result<AppState> {
    let store = Store::open_with(database_url, options).await?;
    Ok(AppState::on_store(
        store,
        &ApiConfig::default(),
        Arc::new(SystemClock),
        Registry::default(),
    )?)
}

/// The router on a loopback port, with the server-time middleware around it.
pub(crate) async fn serve(
    state: &AppState,
) -> anyhow::Result<(
    SocketAddr,
    Arc<ServerTimes>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let times = Arc::new(ServerTimes::default());
    let t = times.clone();
    let app = parkflow_api::router(state.clone()).layer(middleware::from_fn(move |req, next| {
        time_requests(t.clone(), req, next)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((
        addr,
        times,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    ))
}

/// Drivers with tokens, then concurrent bookings on a fresh lot; one line of figures.
async fn reservations(
    state: &AppState,
    addr: SocketAddr,
    times: &ServerTimes,
    opts: &ApiBench,
    now: DateTime<Utc>,
) -> anyhow::Result<(String, f64)> {
    let lot = create_lot(state, "Bench reservations", opts.spots).await?;
    let mut tokens = Vec::new();
    for i in 0..opts.reserve_connections {
        let creds = parkflow_api::accounts::Credentials {
            email: format!("bench-{}-{i}@example.com", uuid::Uuid::now_v7().simple()),
            password: "bench password 1".into(),
        };
        state.accounts.register(creds.clone()).await?;
        tokens.push(state.accounts.login(creds, "bench").await?.access_token);
    }
    let per_connection = opts.reserve_requests.div_ceil(opts.reserve_connections);
    // Each connection's requests are written out before the clock starts: the timed loop is
    // the round trips alone, as a load generator on another machine would send them.
    let mut loads = Vec::new();
    for (c, token) in tokens.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1_000 + c as u64);
        let requests: Vec<Vec<u8>> = (0..per_connection)
            .map(|i| {
                let (start, end) = random_window(&mut rng, now);
                let body = format!(
                    r#"{{"lotId":{},"startAt":"{}","endAt":"{}","vehicleType":"car"}}"#,
                    lot.0,
                    utc(start),
                    utc(end)
                );
                post("/v1/reservations", &token, &format!("b{c}-{i}"), &body)
            })
            .collect();
        loads.push((Connection::open(addr).await?, requests));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut conn, requests) in loads {
        tasks.push(tokio::spawn(async move {
            let (mut created, mut full, mut other) = (0u64, 0u64, Vec::new());
            for request in &requests {
                let (status, body) = conn.send(request).await?;
                match status {
                    201 => created += 1,
                    409 => full += 1,
                    _ => other.push(format!("{status}: {}", String::from_utf8_lossy(&body))),
                }
            }
            anyhow::Ok((created, full, other))
        }));
    }
    let (mut created, mut full, mut other) = (0, 0, Vec::new());
    for t in tasks {
        let (c, f, o) = t.await??;
        created += c;
        full += f;
        other.extend(o);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let overlaps = state.services.reservations().overlapping_holds(lot).await?;
    let mut reserve_times = times
        .0
        .lock()
        .expect("times lock")
        .remove("POST /v1/reservations")
        .unwrap_or_default();
    let out = format!(
        "reservations: {created} created, {full} refused as taken or full, {} other answers, in {elapsed:.1} s \
         = {:.0} reservations/s ({:.0} requests/s); server p50 {:.0} µs, p99 {:.0} µs; overlapping holds: {overlaps}\n",
        other.len(),
        created as f64 / elapsed,
        (created + full) as f64 / elapsed,
        percentile(&mut reserve_times, 50.0),
        percentile(&mut reserve_times, 99.0),
    );
    if let Some(first) = other.first() {
        bail!(
            "{} reservation requests got unexpected answers, e.g. {first}",
            other.len()
        );
    }
    if overlaps != 0 {
        bail!("{overlaps} overlapping reservations: the no-double-booking guarantee is broken");
    }
    Ok((out, created as f64 / elapsed))
}

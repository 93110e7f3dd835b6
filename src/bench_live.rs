//! `parkflow bench live`: live availability streams under load. One API process on loopback
//! holds `streams` open Server-Sent Events streams spread over `lots` lots; then gate entries
//! are made one at a time through the HTTP API, and for each, every stream watching that lot
//! must receive the new state. Printed: the time from the entry's request to each watcher's
//! update (p50, p99, max), and apart the entry's own response time, so the push's share shows.
//! Opening the streams is not timed.

use crate::bench_api::{Connection, create_lot, percentile, serve};
use anyhow::{Context, bail};
use parkflow_api::store::Store;
use parkflow_api::{ApiConfig, AppState, SystemClock};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use warehouse_schema::LotId;

#[derive(Debug, Clone)]
pub struct LiveBench {
    /// `sqlite://…` or `postgres://…`; empty: a fresh SQLite file in a temp dir.
    pub database_url: String,
    pub streams: usize,
    pub lots: usize,
    pub entries: usize,
}

/// What a stream's reader reports: its lot and when an event arrived.
struct Arrival {
    lot: i64,
    at: Instant,
}

pub async fn live(opts: LiveBench) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let url = if opts.database_url.is_empty() {
        format!("sqlite://{}", dir.path().join("live.db").display())
    } else {
        opts.database_url.clone()
    };
    let store = Store::open(&url).await?;
    let state = AppState::on_store(
        store,
        &ApiConfig::default(),
        Arc::new(SystemClock),
        Registry::default(),
    )?;
    let mut lots = Vec::with_capacity(opts.lots);
    for i in 0..opts.lots {
        lots.push(create_lot(&state, &format!("Live {i}"), 200).await?);
    }
    let (addr, _times, server) = serve(&state).await?;

    // Open the streams and wait for each one's first state (not timed).
    let (tx, mut rx) = mpsc::unbounded_channel();
    let opened = Instant::now();
    let mut readers = Vec::with_capacity(opts.streams);
    for i in 0..opts.streams {
        let lot = lots[i % lots.len()];
        let stream = open(addr, lot)
            .await
            .with_context(|| format!("opening stream {i} (is `ulimit -n` high enough?)"))?;
        readers.push(tokio::spawn(read_events(stream, lot, tx.clone())));
    }
    let mut first = 0;
    while first < opts.streams {
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        match got {
            Ok(Some(_)) => first += 1,
            _ => bail!(
                "only {first} of {} streams sent their first state",
                opts.streams
            ),
        }
    }
    let open_s = opened.elapsed().as_secs_f64();
    let watchers_per_lot = |lot: LotId| {
        (0..opts.streams)
            .filter(|i| lots[i % lots.len()] == lot)
            .count()
    };

    // Entries one at a time: each lot's watchers must all hear of it.
    let mut gate = Connection::open(addr).await?;
    let (mut push_us, mut entry_us) = (Vec::new(), Vec::new());
    let mut missed = 0usize;
    for k in 0..opts.entries {
        let lot = lots[k % lots.len()];
        let body = r#"{"vehicleType":"car","method":"qr"}"#;
        let request = format!(
            "POST /v1/gates/{}/entries HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer dev-gate-token\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            lot.0,
            body.len()
        );
        let sent = Instant::now();
        let (status, reply) = gate.send(request.as_bytes()).await?;
        if status != 201 {
            bail!(
                "entry {k}: HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            );
        }
        entry_us.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        let mut waiting = watchers_per_lot(lot);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while waiting > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(a)) if a.lot == lot.0 && a.at >= sent => {
                    push_us.push(
                        a.at.duration_since(sent)
                            .as_micros()
                            .min(u128::from(u32::MAX)) as u32,
                    );
                    waiting -= 1;
                }
                Ok(Some(_)) => {}
                _ => {
                    missed += waiting;
                    break;
                }
            }
        }
    }
    for r in readers {
        r.abort();
    }
    server.abort();
    let delivered = push_us.len();
    Ok(format!(
        "live: {streams} streams over {lots} lots on one process (all open and sent their first state in {open_s:.2} s)\n\
         live: {entries} gate entries one at a time, {delivered} updates delivered, {missed} missed\n\
         live: entry → update at every watcher of the lot: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms\n\
         live: the entry's own response (request to 201): p50 {e50:.1} ms, p99 {e99:.1} ms",
        streams = opts.streams,
        lots = opts.lots,
        entries = opts.entries,
        p50 = percentile(&mut push_us, 50.0) / 1000.0,
        p99 = percentile(&mut push_us, 99.0) / 1000.0,
        max = percentile(&mut push_us, 100.0) / 1000.0,
        e50 = percentile(&mut entry_us, 50.0) / 1000.0,
        e99 = percentile(&mut entry_us, 99.0) / 1000.0,
    ))
}

/// A stream of `lot`, past its response headers.
async fn open(addr: SocketAddr, lot: LotId) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream);
    let request = format!(
        "GET /v1/lots/{}/live HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        lot.0
    );
    reader.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.contains(" 200 ") {
        bail!("stream of lot {lot}: {line:?}");
    }
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            return Ok(reader);
        }
    }
}

/// Report each event of a stream (chunked transfer: the chunk-size lines are not `data:`).
async fn read_events(
    mut reader: BufReader<TcpStream>,
    lot: LotId,
    tx: mpsc::UnboundedSender<Arrival>,
) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line.starts_with("data:") {
            let at = Instant::now();
            if tx.send(Arrival { lot: lot.0, at }).is_err() {
                return Ok(());
            }
        }
    }
}

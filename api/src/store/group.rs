//! PostgreSQL's bookings, committed in groups.
//!
//! A booking on PostgreSQL reads what it needs (the lot's rules, its rates, a spot) on a
//! reader, then hands what it writes — the reservation, its key's answer, its event, its
//! message — to the store's booking writer ([`GroupWriter`]). The writer commits every booking
//! waiting for it as one statement (its own transaction, one round trip), so a booking costs
//! the database a share of each of its multi-row writes instead of a transaction of its own:
//! pgbench measured the same writes at 10k bookings/s one transaction each on two connections,
//! 5k on 32, and 16k in groups of 16 (BENCHMARKS.md, stop 43); one statement instead of seven
//! round trips a group took `bench api` from 44–46 % to 54–60 % of pgbench (stop 45). SQLite's
//! single writer groups its changes already (`handles.rs`).
//!
//! The database still settles every race. The group takes its spots' turns in ascending order
//! (as [`take_turn_on_spot`](super::reservations::take_turn_on_spot) does for one spot), then
//! inserts its reservations with `ON CONFLICT DO NOTHING`: one the exclusion constraint or the
//! key's unique index refuses is left out, told apart by whether its key is there, and its
//! booking is told it lost that race ([`LostRace`]), as a transaction of its own would have
//! been. A booking whose `Idempotency-Key` turns out taken fails the statement, which is
//! written again without it, as [`Change::commit`](super::Change::commit) refuses it. A group
//! the database fails for any other reason is run again one booking at a time, so one bad
//! booking fails alone. The group's events are its last write: appending takes the outbox's
//! turn once the other writes are done, held to the commit
//! (`parkflow_outbox::append_in_statement`).

use super::reservations::NewReservationRow;
use super::{Backend, Handle, LostRace};
use crate::domain::ReservationStatus;
use crate::domain::error::{Error, Result};
use crate::domain::notification::NewNotification;
use futures_util::FutureExt;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Row};
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};
use warehouse_schema::Event;

/// Most bookings one group commits (16 to 128 booked alike with 32 clients).
const GROUP: usize = 32;
/// Bookings waiting for the writer before a new one waits for room.
const QUEUE: usize = 4096;

/// What one booking writes, as rows ready for the group's statements.
#[derive(Debug)]
pub struct Booking {
    reservation: Value,
    /// The reservation's id, user and key, to tell which race a refused one lost.
    id: String,
    user: String,
    key: String,
    spot: i64,
    answer: Option<Value>,
    events: Vec<Event>,
    messages: Vec<Value>,
}

impl Booking {
    /// A booking of `row`, made at `row.created_at`.
    pub fn new(row: &NewReservationRow<'_>) -> Self {
        Self {
            reservation: json!({
                "id": row.id.0.to_string(),
                "lot_id": row.lot.0,
                "spot_id": row.spot,
                "user_id": row.user.0.to_string(),
                "vehicle_type": row.vehicle_type,
                "vehicle_id": row.vehicle_id,
                "plate": row.plate,
                "start_at": row.start_at,
                "end_at": row.end_at,
                "status": ReservationStatus::Active.as_str(),
                "quote_cents": row.quote_cents,
                "currency": row.currency,
                "idempotency_key": row.idempotency_key,
                "created_at": row.created_at,
                "monthly_pass_id": row.monthly_pass.map(|m| m.0.to_string()),
            }),
            id: row.id.0.to_string(),
            user: row.user.0.to_string(),
            key: row.idempotency_key.to_owned(),
            spot: row.spot,
            answer: None,
            events: Vec::new(),
            messages: Vec::new(),
        }
    }

    fn created_at(&self) -> i64 {
        self.reservation["created_at"].as_i64().unwrap_or_default()
    }

    /// Record `event` in the outbox with the booking.
    pub fn event(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Send `message` once the booking commits (unless one with its deduplication key was).
    pub fn notify(&mut self, message: &NewNotification) -> &mut Self {
        self.messages.push(json!({
            "user_id": message.user_id.0.to_string(),
            "kind": message.kind.as_str(),
            "dedup_key": message.dedup_key,
            "lot_id": message.lot_id.map(|l| l.0),
            "title": message.title,
            "body": message.body,
            "created_at": self.created_at(),
            "tag": self.id,
        }));
        self
    }

    /// Claim the booking's own `Idempotency-Key` with it and keep the request's answer
    /// (`status`, JSON `body`, the request's `fingerprint`) under it, as
    /// [`Change::keep_answer`](super::Change::keep_answer) does for a change.
    pub fn keep_answer(&mut self, fingerprint: &str, status: u16, body: String) -> &mut Self {
        self.answer = Some(json!({
            "user_id": self.user,
            "idem_key": self.key,
            "fingerprint": fingerprint,
            "created_at": self.created_at(),
            "status_code": status,
            "response": body,
        }));
        self
    }
}

impl super::Store {
    /// Commit a PostgreSQL booking with the others waiting to be written (`group.rs`): done,
    /// or the race it lost (`lost_race`), or `request_in_progress` when its key was taken. On
    /// SQLite a booking is a [`Change`] of the single writer, which checks its spot in the
    /// same transaction.
    pub async fn book(&self, booking: Booking) -> Result<()> {
        match &self.bookings {
            Some(writer) => writer.book(booking).await,
            None => Err(not_postgres()),
        }
    }

    /// Commit several PostgreSQL bookings as one group, as the booking writer commits those
    /// waiting for it: each one's outcome, as [`book`](Self::book) would give it.
    pub async fn book_together(&self, bookings: &[Booking]) -> Result<Vec<Result<()>>> {
        let (Handle::Pool(pool), Backend::Postgres) = (&self.writer, self.backend) else {
            return Err(not_postgres());
        };
        let mut conn = pool.acquire().await?;
        let outcomes = commit_group(&mut conn, &bookings.iter().collect::<Vec<_>>()).await;
        if outcomes.iter().any(Result::is_ok) {
            self.committed.notify_one();
        }
        Ok(outcomes)
    }
}

/// Asked of a store that is not PostgreSQL's.
fn not_postgres() -> Error {
    Error::Storage("grouped bookings are PostgreSQL's; SQLite books in a change".into())
}

/// A booking and where its outcome goes.
struct Waiting {
    booking: Booking,
    outcome: oneshot::Sender<Result<()>>,
}

/// The store's PostgreSQL booking writer: a task that commits the bookings waiting for it in
/// groups. It ends when the last handle to it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Waiting>,
}

impl GroupWriter {
    /// Start the writer on `pool`; `committed` is poked after each group that wrote; its
    /// connection lives for `limits.0` at most and is closed after `limits.1` unused.
    pub(crate) fn start(
        pool: AnyPool,
        committed: Arc<Notify>,
        limits: (Duration, Duration),
    ) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_groups(pool, committed, limits, waiting));
        Self { queue }
    }

    /// Commit `booking` with the group it joins; its own outcome.
    pub(crate) async fn book(&self, booking: Booking) -> Result<()> {
        let (outcome, told) = oneshot::channel();
        let gone = || Error::Storage("the booking writer has stopped".into());
        self.queue
            .send(Waiting { booking, outcome })
            .await
            .map_err(|_| gone())?;
        told.await.map_err(|_| gone())?
    }
}

/// The writer: each group is every booking waiting (up to [`GROUP`]), committed while the next
/// ones queue. One writer: two or three committing at once booked 7–10 % less (`bench api`).
/// It has a connection of its own, taken out of the pool (`detach`: the pool opens another in
/// its place, so readers never wait for the writer's), kept between groups: a connection's
/// return to the pool costs a round trip. One the database failed a group on is closed, one
/// idle as long as the pool would test one after (`PING_WHEN_IDLE_FOR`) is pinged first.
async fn write_groups(
    pool: AnyPool,
    committed: Arc<Notify>,
    (lifetime, idle_for): (Duration, Duration),
    mut waiting: mpsc::Receiver<Waiting>,
) {
    let mut group = Vec::with_capacity(GROUP);
    let mut held: Option<Held> = None;
    loop {
        let received = tokio::time::timeout(idle_for, waiting.recv_many(&mut group, GROUP));
        match received.await {
            Ok(0) => break,
            Ok(_) => {}
            // No booking for a while: the connection is let go until the next one.
            Err(_) => {
                if let Some(h) = held.take() {
                    let _ = h.conn.close().await;
                }
                continue;
            }
        }
        let bookings: Vec<&Booking> = group.iter().map(|w| &w.booking).collect();
        let outcomes = match writer_connection(&pool, held.take(), lifetime).await {
            Ok((mut conn, opened)) => {
                // A panic fails its group (and the connection), not every booking after it.
                let committing = AssertUnwindSafe(commit_group(&mut conn, &bookings));
                match committing.catch_unwind().await {
                    Ok(outcomes) => {
                        if outcomes.iter().any(failed) {
                            let _ = conn.close().await;
                        } else {
                            held = Some(Held {
                                conn,
                                used: Instant::now(),
                                opened,
                            });
                        }
                        outcomes
                    }
                    Err(_) => bookings
                        .iter()
                        .map(|_| Err(Error::Storage("the booking writer failed".into())))
                        .collect(),
                }
            }
            Err(e) => bookings.iter().map(|_| Err(share(&e))).collect(),
        };
        if outcomes.iter().any(Result::is_ok) {
            committed.notify_one();
        }
        for (w, outcome) in group.drain(..).zip(outcomes) {
            // A booking whose request went away is committed all the same.
            let _ = w.outcome.send(outcome);
        }
    }
}

/// The writer's connection between groups: when it was last used, and when it was opened.
struct Held {
    conn: AnyConnection,
    used: Instant,
    opened: Instant,
}

/// The writer's connection and when it was opened: `held` if it still answers (and the store
/// is open, and it is younger than `lifetime`), else a new one out of the pool.
async fn writer_connection(
    pool: &AnyPool,
    held: Option<Held>,
    lifetime: Duration,
) -> Result<(AnyConnection, Instant)> {
    if let Some(Held {
        mut conn,
        used,
        opened,
    }) = held
    {
        if pool.is_closed() || opened.elapsed() >= lifetime {
            let _ = conn.close().await;
        } else if used.elapsed() < super::PING_WHEN_IDLE_FOR || conn.ping().await.is_ok() {
            return Ok((conn, opened));
        }
    }
    // A closed pool refuses this too: the store was closed.
    Ok((pool.acquire().await?.detach(), Instant::now()))
}

/// Whether `outcome` is the database failing, not a booking refused.
fn failed(outcome: &Result<()>) -> bool {
    matches!(outcome, Err(e) if !e.is_client_error() && lost_in_group(e).is_none())
}

/// `e` again, for each booking of a group no connection came for: an overload stays one.
fn share(e: &Error) -> Error {
    match e {
        Error::Unavailable { retry_after_s } => Error::Unavailable {
            retry_after_s: *retry_after_s,
        },
        e => Error::Storage(e.to_string().into()),
    }
}

/// Commit `bookings` as one group on `conn`: each one's outcome. A group the database fails
/// (not one of its bookings losing a race, which the group's statements tell apart) is
/// committed again one booking at a time, so one bad booking fails alone.
pub(super) async fn commit_group(
    conn: &mut AnyConnection,
    bookings: &[&Booking],
) -> Vec<Result<()>> {
    match commit(conn, bookings).await {
        Ok(outcomes) => outcomes,
        Err(e) if bookings.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut alone = Vec::with_capacity(bookings.len());
            for b in bookings {
                alone.push(match commit(conn, std::slice::from_ref(b)).await {
                    Ok(mut one) => one.pop().unwrap_or(Ok(())),
                    Err(e) => Err(e),
                });
            }
            alone
        }
    }
}

/// The race a grouped booking lost, told by the group's statements instead of by an error of
/// its own; [`lost_race`](super::lost_race) reads it as it reads the database's.
#[derive(Debug, thiserror::Error)]
#[error("the booking lost a race to another write ({0:?})")]
pub(super) struct LostInGroup(pub(super) LostRace);

fn lost(race: LostRace) -> Error {
    Error::Storage(Box::new(LostInGroup(race)))
}

/// `rows` as one JSON array's text (written from the references: no row is copied).
fn array<'a>(rows: impl Iterator<Item = &'a Value>) -> String {
    use std::fmt::Write;
    let mut text = String::from("[");
    for (i, row) in rows.enumerate() {
        if i > 0 {
            text.push(',');
        }
        // Writing to a `String` cannot fail.
        let _ = write!(text, "{row}");
    }
    text.push(']');
    text
}

/// The SQLSTATE `parkflow_key_taken` fails a group's statement with (PostgreSQL migration 0023).
const KEY_TAKEN: &str = "PF409";

/// Commit `bookings` in one transaction: each one's outcome, or the error that failed them all.
/// The transaction is one statement ([`write_group`]); when it fails because a booking's key
/// was taken, the taken keys are read, those bookings are refused (`request_in_progress`, as
/// [`Change::commit`](super::Change::commit) refuses a change whose key was taken) and the
/// others are written again.
async fn commit(conn: &mut AnyConnection, bookings: &[&Booking]) -> Result<Vec<Result<()>>> {
    let mut outcomes: Vec<Result<()>> = bookings.iter().map(|_| Ok(())).collect();
    for _ in 0..3 {
        let going: Vec<usize> = (0..bookings.len())
            .filter(|&i| outcomes[i].is_ok())
            .collect();
        if going.is_empty() {
            return Ok(outcomes);
        }
        let group: Vec<&Booking> = going.iter().map(|&i| bookings[i]).collect();
        match write_group(conn, &group).await {
            Ok(inserted) => {
                let refused: Vec<usize> = going
                    .into_iter()
                    .filter(|&i| !inserted.contains(&bookings[i].id))
                    .collect();
                for (i, race) in races_lost(conn, bookings, &refused).await? {
                    outcomes[i] = Err(lost(race));
                }
                return Ok(outcomes);
            }
            Err(e) if key_was_taken(&e) => {
                let keyed: Vec<usize> = going
                    .into_iter()
                    .filter(|&i| bookings[i].answer.is_some())
                    .collect();
                let taken = held_keys(
                    conn,
                    "SELECT user_id, idem_key FROM idempotency_keys WHERE (user_id, idem_key) IN",
                    keyed.iter().map(|&i| bookings[i]),
                )
                .await?;
                for i in keyed {
                    if taken.contains(&(bookings[i].user.clone(), bookings[i].key.clone())) {
                        outcomes[i] = Err(Error::key_in_progress());
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Storage(
        "the bookings' keys kept being taken while their group was written".into(),
    ))
}

/// Write `bookings` in one statement, so in one round trip and one transaction: the spots'
/// turns in ascending order, then the reservations (`ON CONFLICT DO NOTHING`: one the exclusion
/// constraint or the key's unique index refuses is left out), then, for those inserted, their
/// keys' answers, their messages and, last, their events (the outbox's turn, taken once the
/// other writes are done). A booked reservation whose key another request holds fails the
/// statement ([`KEY_TAKEN`]). Returns the ids of the reservations inserted.
async fn write_group(
    conn: &mut AnyConnection,
    bookings: &[&Booking],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut spots: Vec<i64> = bookings.iter().map(|b| b.spot).collect();
    spots.sort_unstable();
    spots.dedup();
    let events: Vec<Value> = bookings
        .iter()
        .flat_map(|b| {
            b.events
                .iter()
                .map(|e| parkflow_outbox::event_row(e, &b.id))
        })
        .collect();
    let sql = format!(
        "WITH turns AS MATERIALIZED (
           SELECT count(pg_advisory_xact_lock(s)) FROM
             (SELECT value::bigint AS s FROM jsonb_array_elements_text($1::jsonb) ORDER BY 1 OFFSET 0) AS spots),
         booked AS (
           INSERT INTO reservations (id, lot_id, spot_id, user_id, vehicle_type, vehicle_id, plate,
                                     start_at, end_at, status, quote_cents, currency,
                                     idempotency_key, created_at, monthly_pass_id)
           SELECT r->>'id', (r->>'lot_id')::bigint, (r->>'spot_id')::bigint, r->>'user_id',
                  r->>'vehicle_type', r->>'vehicle_id', r->>'plate', (r->>'start_at')::bigint,
                  (r->>'end_at')::bigint, r->>'status', (r->>'quote_cents')::bigint, r->>'currency',
                  r->>'idempotency_key', (r->>'created_at')::bigint, r->>'monthly_pass_id'
           FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS rows(r, n), turns ORDER BY n
           ON CONFLICT DO NOTHING RETURNING id, user_id, idempotency_key),
         answers AS (SELECT k FROM jsonb_array_elements($3::jsonb) AS keys(k)
                     WHERE (k->>'user_id', k->>'idem_key') IN (SELECT user_id, idempotency_key FROM booked)),
         claimed AS (
           INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, created_at, locked_until,
                                         status_code, response, completed_at)
           SELECT k->>'user_id', k->>'idem_key', k->>'fingerprint', (k->>'created_at')::bigint,
                  (k->>'created_at')::bigint, (k->>'status_code')::bigint, k->>'response',
                  (k->>'created_at')::bigint
           FROM answers
           ON CONFLICT DO NOTHING RETURNING user_id, idem_key),
         taken AS MATERIALIZED (
           SELECT parkflow_key_taken(k->>'user_id', k->>'idem_key') FROM answers
           WHERE (k->>'user_id', k->>'idem_key') NOT IN (SELECT user_id, idem_key FROM claimed)),
         sent AS (
           INSERT INTO notification_outbox (user_id, kind, dedup_key, lot_id, title, body, created_at)
           SELECT m->>'user_id', m->>'kind', m->>'dedup_key', (m->>'lot_id')::bigint,
                  m->>'title', m->>'body', (m->>'created_at')::bigint
           FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS messages(m, n)
           WHERE m->>'tag' IN (SELECT id FROM booked) ORDER BY n
           ON CONFLICT (dedup_key) DO NOTHING RETURNING 1),
         {}
         SELECT id FROM booked",
        parkflow_outbox::append_in_statement(
            "appended",
            5,
            &["booked", "claimed", "taken", "sent"],
            "e->>'tag' IN (SELECT id FROM booked)",
        )
    );
    let answers = bookings.iter().filter_map(|b| b.answer.as_ref());
    let messages = bookings.iter().flat_map(|b| &b.messages);
    sqlx::query(AssertSqlSafe(sql))
        .bind(Value::from(spots).to_string())
        .bind(array(bookings.iter().map(|b| &b.reservation)))
        .bind(array(answers))
        .bind(array(messages))
        .bind(array(events.iter()))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect()
}

/// The races the `refused` bookings lost, read once their group committed: the key's unique
/// index when a reservation holds the booking's key now (an earlier request's, or one of its
/// group's), else the exclusion constraint.
async fn races_lost(
    conn: &mut AnyConnection,
    bookings: &[&Booking],
    refused: &[usize],
) -> Result<Vec<(usize, LostRace)>> {
    if refused.is_empty() {
        return Ok(Vec::new());
    }
    let held = held_keys(
        conn,
        "SELECT user_id, idempotency_key FROM reservations WHERE (user_id, idempotency_key) IN",
        refused.iter().map(|&i| bookings[i]),
    )
    .await?;
    Ok(refused
        .iter()
        .map(|&i| {
            let b = bookings[i];
            let race = if held.contains(&(b.user.clone(), b.key.clone())) {
                LostRace::Unique
            } else {
                LostRace::Exclusion
            };
            (i, race)
        })
        .collect())
}

/// The (user, key) pairs of `bookings` that `select` (`SELECT user, key FROM … WHERE (user,
/// key) IN`) finds.
async fn held_keys<'a>(
    conn: &mut AnyConnection,
    select: &str,
    bookings: impl Iterator<Item = &'a Booking>,
) -> Result<HashSet<(String, String)>> {
    let keys: Vec<Value> = bookings
        .map(|b| json!({"user_id": b.user, "key": b.key}))
        .collect();
    let sql = format!(
        "{select} (SELECT k->>'user_id', k->>'key' FROM jsonb_array_elements($1::jsonb) AS keys(k))"
    );
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(array(keys.iter()))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Whether `e` is a group's statement failed by `parkflow_key_taken`.
fn key_was_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(KEY_TAKEN))
}

/// Whether `e` is a race a booking lost inside a group.
pub(super) fn lost_in_group(e: &Error) -> Option<LostRace> {
    let Error::Storage(cause) = e else {
        return None;
    };
    cause.downcast_ref::<LostInGroup>().map(|l| l.0)
}

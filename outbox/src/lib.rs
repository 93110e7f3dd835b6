//! The outbox: every state change of the operational API records its event here, in the same
//! transaction (`append`), and ingest reads the events back in position order (`read_after`,
//! or `unpublished_outside` / `mark_published` for the Kafka relay). This module is the only code
//! that names the table; its DDL lives with the API's migrations, which create it.
//!
//! Positions are assigned in commit order, so "everything after the last position" is exact: on
//! SQLite by its single writer; on PostgreSQL, where two transactions may commit in the other
//! order than they took their positions, by a turn each appending transaction waits for as its
//! last write and holds until it commits ([`append_all`], or [`append_in_statement`] for a
//! transaction written as one statement). Without it, a reader could read a
//! higher position, move past it, and never see a lower one that committed after.
//!
//! What Kafka has not acknowledged yet is kept apart from the events, as the ids in
//! `outbox_unpublished`: a trigger adds each appended row's id in the appending transaction, and
//! the relay deletes the ids Kafka acknowledged (cheaper than rewriting the rows, and exact
//! whatever the order of commits).

mod unpublished;

use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor};
pub use unpublished::{Unpublished, UnpublishedRow};
use warehouse_schema::Event;

/// Errors are the store's own: a failed statement.
pub type Result<T, E = sqlx::Error> = std::result::Result<T, E>;

/// The columns an event is recorded in, in the order [`bind_event`] binds them.
macro_rules! event_columns {
    () => {
        "event_id, lot_id, event_type, payload, created_at"
    };
}

/// The insert of events, ending with `$values` (one `($1, …, $5)` per event).
macro_rules! insert_events {
    ($values:expr) => {
        concat!(
            "INSERT INTO outbox (",
            event_columns!(),
            ") VALUES ",
            $values
        )
    };
}

/// `query` with `event`'s five values bound after the ones it has.
fn bind_event<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    event: &Event,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    query
        .bind(event.event_id.0.to_string())
        .bind(event.lot_id.0)
        .bind(event.payload.type_name())
        .bind(event.to_json())
        .bind(event.occurred_at.timestamp_millis())
}

/// Record `event` inside the caller's transaction: it commits or rolls back with the state
/// change it describes. No turn is taken: for SQLite's single writer, whose commits are in
/// position order already; a PostgreSQL transaction appends with [`append_all`].
pub async fn append<'c>(conn: impl Executor<'c, Database = Any>, event: &Event) -> Result<()> {
    bind_event(sqlx::query(insert_events!("($1, $2, $3, $4, $5)")), event)
        .execute(conn)
        .await?;
    Ok(())
}

/// Events one statement of [`append_all`] records (SQLite takes at most 32,766 parameters).
const EVENTS_PER_STATEMENT: usize = 1_000;

/// The PostgreSQL advisory lock appending transactions take turns on: the two-key form, a key
/// space apart from the one-key locks the API takes on spots.
const APPEND_TURN: (i32, i32) = (0x6f75_7462, 1);

/// Record `events`, in order, inside the caller's transaction, a thousand to a statement: what a
/// change or a group of them committed together records (`parkflow_api::store::change`,
/// `parkflow_api::store::group`). On PostgreSQL the transaction first waits for its turn to
/// append, held until it commits, so that positions commit in order; it must be the
/// transaction's last write (a turn held while waiting on another transaction's row could
/// deadlock with it).
pub async fn append_all(conn: &mut AnyConnection, events: &[&Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let postgres = conn.backend_name() == "PostgreSQL";
    for (n, chunk) in events.chunks(EVENTS_PER_STATEMENT).enumerate() {
        let values: Vec<String> = (0..chunk.len() * 5)
            .step_by(5)
            .map(|p| {
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        let sql = if postgres && n == 0 {
            // The turn in the first statement itself (one round trip, not two): no row is
            // produced, so no position is taken, before the lock is held.
            format!(
                concat!(
                    "WITH turn AS MATERIALIZED (SELECT pg_advisory_xact_lock({}, {})) ",
                    "INSERT INTO outbox (",
                    event_columns!(),
                    ") SELECT v.* FROM (VALUES {}) AS v(",
                    event_columns!(),
                    "), turn"
                ),
                APPEND_TURN.0,
                APPEND_TURN.1,
                values.join(", ")
            )
        } else {
            format!("{}{}", insert_events!(""), values.join(", "))
        };
        let query = chunk
            .iter()
            .fold(sqlx::query(AssertSqlSafe(sql)), |q, e| bind_event(q, e));
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `event` as one row of the JSON array [`append_in_statement`] appends, with the caller's
/// `tag` (what its `keep` condition reads as `e->>'tag'`).
pub fn event_row(event: &Event, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": event.event_id.0.to_string(),
        "lot_id": event.lot_id.0,
        "event_type": event.payload.type_name(),
        "payload": event.to_json(),
        "created_at": event.occurred_at.timestamp_millis(),
        "tag": tag,
    })
}

/// For a PostgreSQL transaction written as one statement (`parkflow_api::store::group`): two
/// CTEs of its `WITH` list that append the events of the JSON array `$param` (rows of
/// [`event_row`]), in order, those for which `keep` (SQL over the row `e`) holds. The first,
/// `{name}_turn`, takes the outbox's turn once the data-modifying CTEs `after` have run to
/// completion (it counts their rows), so the turn is the statement's last write, as
/// [`append_all`] must be a transaction's; the second, `name`, inserts the rows joined with the
/// turn, so no position is drawn before it is held, and returns their positions.
pub fn append_in_statement(name: &str, param: usize, after: &[&str], keep: &str) -> String {
    let written = if after.is_empty() {
        "0".to_owned()
    } else {
        after
            .iter()
            .map(|cte| format!("(SELECT count(*) FROM {cte})"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    format!(
        concat!(
            // The condition on the count makes the planner keep it (an unused column of a
            // subquery is dropped, and with it the scans that would run the writes first).
            "{name}_turn AS MATERIALIZED (SELECT pg_advisory_xact_lock({a}, {b}) ",
            "FROM (SELECT {written} AS rows) AS written WHERE written.rows >= 0), ",
            "{name} AS (INSERT INTO outbox (",
            event_columns!(),
            ") SELECT e->>'event_id', (e->>'lot_id')::bigint, e->>'event_type', e->>'payload', ",
            "(e->>'created_at')::bigint FROM jsonb_array_elements(${param}::jsonb) WITH ORDINALITY AS rows(e, n), {name}_turn ",
            "WHERE {keep} ORDER BY n RETURNING id)"
        ),
        name = name,
        a = APPEND_TURN.0,
        b = APPEND_TURN.1,
        written = written,
        param = param,
        keep = keep,
    )
}

/// Whether an event of one of `types` about the lot `lot` was recorded after position `after`
/// (both SQL expressions of the caller's statement), as an `EXISTS` condition: `types` are
/// written into it, not bound, so that an index whose predicate names the same list
/// (PostgreSQL migration 0024's `outbox_releases`) answers it.
pub fn recorded_after(lot: &str, after: &str, types: &[&str]) -> String {
    let listed = types
        .iter()
        .map(|t| format!("'{}'", t.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "EXISTS (SELECT 1 FROM outbox WHERE lot_id = {lot} AND id > {after} AND event_type IN ({listed}))"
    )
}

/// One outbox row: its position and the event exactly as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub position: i64,
    pub payload: String,
}

/// The outbox of one database: reads on one pool, the one write (`mark_published`) on the
/// writer (the same pool on PostgreSQL; the single writer connection on SQLite, see
/// `parkflow_api::store`).
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: AnyPool,
    writer: AnyPool,
}

impl Outbox {
    /// Reads and writes on `pool`.
    pub fn new(pool: AnyPool) -> Self {
        Self {
            writer: pool.clone(),
            pool,
        }
    }

    /// Reads on `pool`, writes on `writer`.
    pub fn with_writer(pool: AnyPool, writer: AnyPool) -> Self {
        Self { pool, writer }
    }

    /// Up to `limit` rows with position greater than `after`, in order.
    pub async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, payload FROM outbox WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(position, payload)| OutboxRow { position, payload })
            .collect())
    }

    /// The rows of the events of `types` at positions in `after..=upto`, in order.
    pub async fn read_of_types(
        &self,
        after: i64,
        upto: i64,
        types: &[&str],
    ) -> Result<Vec<OutboxRow>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let sql = between_of_types("SELECT id, payload", types, "ORDER BY id");
        let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(after).bind(upto);
        for t in types {
            query = query.bind(*t);
        }
        let rows: Vec<(i64, String)> = query.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(position, payload)| OutboxRow { position, payload })
            .collect())
    }

    /// The highest position written so far (0 when empty).
    pub async fn head(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await
    }

    /// Number of events recorded.
    pub async fn len(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
    }

    /// Up to `limit` rows Kafka has not acknowledged, in position order, leaving out those at
    /// positions `first..=last` (the relay's round in flight; `(1, 0)` leaves out none). A row
    /// below `first` that committed late (PostgreSQL) is still found.
    pub async fn unpublished_outside(
        &self,
        first: i64,
        last: i64,
        limit: i64,
    ) -> Result<Unpublished> {
        // One row of aggregates for the whole round (see `Unpublished` for why and how it is
        // cut apart); `string_agg` and `octet_length` are spelled alike by SQLite and
        // PostgreSQL.
        let (count, positions, lot_ids, event_id_lengths, event_ids, payload_lengths, payloads) =
            sqlx::query_as(
                "SELECT COUNT(*), \
                    string_agg(CAST(o.id AS TEXT), ','), \
                    string_agg(CAST(o.lot_id AS TEXT), ','), \
                    string_agg(CAST(octet_length(o.event_id) AS TEXT), ','), \
                    string_agg(o.event_id, ''), \
                    string_agg(CAST(octet_length(o.payload) AS TEXT), ','), \
                    string_agg(o.payload, '') \
                 FROM (SELECT id FROM outbox_unpublished WHERE id < $1 OR id > $2 \
                       ORDER BY id LIMIT $3) u \
                 JOIN outbox o ON o.id = u.id",
            )
            .bind(first)
            .bind(last)
            .bind(limit)
            .fetch_one(&self.pool)
            .await?;
        Unpublished::from_aggregates(unpublished::Aggregates {
            count,
            positions,
            lot_ids,
            event_id_lengths,
            event_ids,
            payload_lengths,
            payloads,
        })
        .map_err(|e| sqlx::Error::Decode(format!("the unpublished outbox rows: {e}").into()))
    }

    /// Mark the rows at `positions` (ascending) as acknowledged by Kafka: one statement per run
    /// of consecutive ids (a relay round is usually one run).
    pub async fn mark_published(&self, positions: &[i64]) -> Result<()> {
        for (first, last) in runs(positions) {
            sqlx::query("DELETE FROM outbox_unpublished WHERE id BETWEEN $1 AND $2")
                .bind(first)
                .bind(last)
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// The distinct lots of the events of `types` at positions in `after..=upto`.
    pub async fn lots_with_events(
        &self,
        after: i64,
        upto: i64,
        types: &[&str],
    ) -> Result<Vec<i64>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let sql = between_of_types("SELECT DISTINCT lot_id", types, "ORDER BY lot_id");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(upto);
        for t in types {
            query = query.bind(*t);
        }
        query.fetch_all(&self.pool).await
    }
}

/// `select` over the outbox rows at positions in `$1` exclusive to `$2` inclusive whose type
/// is one of `types` (bound from `$3` on), then `order`.
fn between_of_types(select: &str, types: &[&str], order: &str) -> String {
    let placeholders = (0..types.len())
        .map(|i| format!("${}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{select} FROM outbox WHERE id > $1 AND id <= $2 AND event_type IN ({placeholders}) {order}"
    )
}

/// Ascending ids as runs of consecutive ids: `[1, 2, 3, 7, 8]` → `(1, 3), (7, 8)`.
fn runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match out.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
            _ => out.push((id, id)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_make_runs_of_consecutive_ids_only() {
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), [(1, 3), (7, 8), (10, 10)]);
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[i64::MAX - 1, i64::MAX]), [(i64::MAX - 1, i64::MAX)]);
    }
    use warehouse_schema::LotId;
    use warehouse_schema::event::{EventPayload, LotRegistered};

    async fn outbox() -> (Outbox, tempfile::TempDir) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
        let pool = AnyPool::connect(&url).await.unwrap();
        // The tables as the API's migrations leave them.
        sqlx::raw_sql(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
                 lot_id INTEGER NOT NULL, event_type TEXT NOT NULL, payload TEXT NOT NULL,
                 created_at INTEGER NOT NULL);
             CREATE TABLE outbox_unpublished (id INTEGER PRIMARY KEY);
             CREATE TRIGGER outbox_unpublished_on_append AFTER INSERT ON outbox
             BEGIN INSERT INTO outbox_unpublished (id) VALUES (new.id); END;",
        )
        .execute(&pool)
        .await
        .unwrap();
        (Outbox::new(pool), dir)
    }

    fn registered(lot: i64) -> Event {
        Event::new(
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            LotId(lot),
            EventPayload::LotRegistered(LotRegistered {
                // Commas, a line break and a two-byte letter: none may cut the relay's read.
                name: format!("Lot {lot}, \"Nord\"\n ü"),
                time_zone: "UTC".into(),
                latitude: 0.0,
                longitude: 0.0,
                capacity: 10,
            }),
        )
    }

    /// Many events in one call, more than one statement takes: all recorded, in order, each
    /// marked unpublished by the trigger as a single append is.
    #[tokio::test]
    async fn events_appended_together_are_recorded_in_order() {
        let (outbox, _dir) = outbox().await;
        let events: Vec<Event> = (1..=2_345).map(registered).collect();
        let mut conn = outbox.pool.acquire().await.unwrap();
        append(&mut *conn, &events[0]).await.unwrap();
        append_all(&mut conn, &events[1..].iter().collect::<Vec<_>>())
            .await
            .unwrap();
        append_all(&mut conn, &[]).await.unwrap();
        drop(conn);
        let read = outbox.read_after(0, 10_000).await.unwrap();
        let payloads: Vec<String> = events.iter().map(Event::to_json).collect();
        assert_eq!(
            read.iter().map(|r| &r.payload).collect::<Vec<_>>(),
            payloads.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            read.iter().map(|r| r.position).collect::<Vec<_>>(),
            (1..=2_345).collect::<Vec<i64>>()
        );
        assert_eq!(
            outbox
                .unpublished_outside(1, 0, 10_000)
                .await
                .unwrap()
                .len(),
            2_345
        );
    }

    #[tokio::test]
    async fn events_are_read_back_in_order_and_published_once() {
        let (outbox, _dir) = outbox().await;
        assert_eq!(outbox.head().await.unwrap(), 0);
        let events: Vec<Event> = (1..=3).map(registered).collect();
        let mut conn = outbox.pool.acquire().await.unwrap();
        for e in &events {
            append(&mut *conn, e).await.unwrap();
        }
        drop(conn);
        assert_eq!(
            (outbox.head().await.unwrap(), outbox.len().await.unwrap()),
            (3, 3)
        );
        let after_one = outbox.read_after(1, 10).await.unwrap();
        assert_eq!(
            after_one.iter().map(|r| r.position).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(after_one[0].payload, events[1].to_json());
        let pending = outbox.unpublished_outside(1, 0, 10).await.unwrap();
        assert_eq!(pending.len(), 3);
        let third = pending.iter().nth(2).unwrap();
        assert_eq!(third.lot_id, "3");
        assert_eq!(third.event_id, events[2].event_id.0.to_string());
        assert_eq!(third.payload, events[2].to_json());
        outbox.mark_published(&[1, 3]).await.unwrap();
        let left = outbox.unpublished_outside(1, 0, 10).await.unwrap();
        assert_eq!(
            left.iter().map(|r| r.position).collect::<Vec<_>>(),
            [2],
            "the row between two acknowledged ones was not acknowledged"
        );
        // A round in flight is left out; what is below it is still found.
        assert!(
            outbox
                .unpublished_outside(2, 2, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            outbox
                .unpublished_outside(3, 9, 10)
                .await
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .position,
            2
        );
        outbox.mark_published(&[2]).await.unwrap();
        let left = outbox.unpublished_outside(1, 0, 10).await.unwrap();
        assert!(left.is_empty());
        assert_eq!(
            outbox
                .lots_with_events(1, 3, &["lot_registered"])
                .await
                .unwrap(),
            [2, 3]
        );
        assert!(
            outbox
                .lots_with_events(0, 3, &["exit"])
                .await
                .unwrap()
                .is_empty()
        );
    }
}

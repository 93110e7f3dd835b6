//! One state change and what reports it, written together.
//!
//! A service opens a [`Change`] with [`Store::begin_change`](super::Store::begin_change), writes
//! its rows through it (it is the write transaction: `&mut *change` is the [`Conn`]), and
//! adds what the change must be known by: its events for the outbox, an audit row when an admin
//! did it, the messages it sends. [`Change::commit`] writes those and commits, in one
//! transaction, so an event is never recorded without its change, nor a change without its
//! event; dropping a `Change` without committing rolls everything back. A keyed request whose
//! whole effect is one change claims its `Idempotency-Key` with it and keeps its answer there
//! ([`Change::keep_answer`], `crate::http::idempotency`).

use super::{Conn, desk, idempotency as keys, notifications as rows};
use crate::domain::Actor;
use crate::domain::error::Result;
use crate::domain::notification::NewNotification;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::Notify;
use warehouse_schema::{Event, UserId};

/// An admin action to record in the audit log.
struct Audit {
    actor: Actor,
    action: &'static str,
    target: String,
    detail: Value,
}

/// A write transaction that collects the change's events, audit rows and messages and writes
/// them at [`commit`](Self::commit).
pub struct Change {
    /// The writer's connection with the transaction begun.
    tx: Conn,
    now: DateTime<Utc>,
    events: Vec<Event>,
    audits: Vec<Audit>,
    messages: Vec<NewNotification>,
    /// Whether [`notify_unless_sent`](Self::notify_unless_sent) stored a message.
    stored_messages: bool,
    /// The key [`keep_answer`](Self::keep_answer) claims at commit, with its request's answer.
    key: Option<KeptAnswer>,
    /// The store's change signal, poked once the change committed.
    committed: Arc<Notify>,
}

impl Change {
    pub(super) fn new(tx: Conn, now: DateTime<Utc>, committed: Arc<Notify>) -> Self {
        Self {
            tx,
            now,
            events: Vec::new(),
            audits: Vec::new(),
            messages: Vec::new(),
            stored_messages: false,
            key: None,
            committed,
        }
    }

    /// When the change happens: the time its audit rows and messages are stamped with.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Record `event` in the outbox with the change.
    pub fn event(&mut self, event: Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Record that `actor` did `action` on `target` in the audit log with the change.
    pub fn audit(
        &mut self,
        actor: &Actor,
        action: &'static str,
        target: impl Into<String>,
        detail: Value,
    ) -> &mut Self {
        self.audits.push(Audit {
            actor: actor.clone(),
            action,
            target: target.into(),
            detail,
        });
        self
    }

    /// Send `message` once the change commits (a message with a deduplication key already
    /// stored is not stored again).
    pub fn notify(&mut self, message: NewNotification) -> &mut Self {
        self.messages.push(message);
        self
    }

    /// Store `message` now, in the change, unless a message with its deduplication key is
    /// stored already; whether it was stored (for a caller that counts what it sent). A job
    /// that proposes many messages, most of them sent on an earlier run, writes them all in one
    /// change this way instead of one transaction each.
    pub async fn notify_unless_sent(&mut self, message: &NewNotification) -> Result<bool> {
        let stored =
            rows::insert_message(&mut self.tx, rows::NewMessage::of(message, self.now)).await?;
        self.stored_messages |= stored;
        Ok(stored)
    }

    /// Keep the answer (`status`, JSON `body`) of `user`'s request with `key` and `fingerprint`
    /// under the key, written with the change: the key is claimed when the change commits, in
    /// the same statement that keeps the answer, so a retry meets the key's row only with the
    /// answer in it. A key taken already (an earlier request's, or on PostgreSQL one that
    /// committed while this waited for it) fails the commit with `request_in_progress`, and
    /// nothing of the change is written.
    pub fn keep_answer(
        &mut self,
        (user, key, fingerprint): (UserId, &str, &str),
        status: u16,
        body: String,
    ) -> &mut Self {
        self.key = Some(KeptAnswer {
            user,
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
            status,
            body,
        });
        self
    }

    /// Write the events, audit rows, messages and a claimed key's answer, then commit the
    /// whole change.
    pub async fn commit(mut self) -> Result<()> {
        let now = self.now;
        if let Some(kept) = self.key.take() {
            let at = now.timestamp_millis();
            let answer = (kept.status, kept.body.as_str());
            if !keys::insert_answered(
                &mut self.tx,
                (kept.user, &kept.key, &kept.fingerprint),
                answer,
                at,
            )
            .await?
            {
                return Err(crate::domain::error::Error::key_in_progress());
            }
        }
        for a in std::mem::take(&mut self.audits) {
            desk::audit(&mut self.tx, &a.actor, a.action, &a.target, a.detail, now).await?;
        }
        for m in &self.messages {
            rows::insert_message(&mut self.tx, rows::NewMessage::of(m, now)).await?;
        }
        // The events last: on PostgreSQL appending takes the outbox's turn, held to the commit.
        match &mut self.tx {
            Conn::Transaction(tx) => {
                let events: Vec<&Event> = self.events.iter().collect();
                parkflow_outbox::append_all(tx, &events).await?;
            }
            conn => {
                for event in &self.events {
                    parkflow_outbox::append(&mut *conn, event).await?;
                }
            }
        }
        match self.tx {
            // Committed with the changes queued behind it (group commit, `handles.rs`).
            Conn::Sqlite(c) => c.commit().await?,
            Conn::Transaction(tx) => tx.commit().await?,
            Conn::Pooled(_) | Conn::Lent(_) => unreachable!("a change is begun in a transaction"),
        }
        if !self.events.is_empty() || !self.messages.is_empty() || self.stored_messages {
            self.committed.notify_one();
        }
        Ok(())
    }

    /// Give the change up: nothing of it is written.
    pub async fn rollback(self) -> Result<()> {
        match self.tx {
            Conn::Sqlite(c) => c.roll_back()?,
            Conn::Transaction(tx) => tx.rollback().await?,
            Conn::Pooled(_) | Conn::Lent(_) => unreachable!("a change is begun in a transaction"),
        }
        Ok(())
    }
}

/// A request's key, claimed when its change commits, and the answer the request gave.
struct KeptAnswer {
    user: UserId,
    key: String,
    fingerprint: String,
    status: u16,
    body: String,
}

impl Deref for Change {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl DerefMut for Change {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, idempotency as keys};
    use warehouse_schema::event::LotCapacityChanged;
    use warehouse_schema::{Event, EventPayload, LotId, UserId};

    /// A key is claimed and its answer kept when its change commits, or not at all: a change
    /// rolled back leaves the key free; a key taken already fails the commit, and nothing of
    /// that change is written.
    #[tokio::test]
    async fn a_kept_answer_is_written_with_its_change_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::open(&url).await.unwrap();
        let user = UserId(uuid::Uuid::now_v7());
        let now = chrono::Utc::now();
        let stored = || async { keys::find(store.pool(), user, "k").await.unwrap() };
        let event = |n: i64| {
            Event::new(
                now,
                LotId(n),
                EventPayload::LotCapacityChanged(LotCapacityChanged { capacity: 10 }),
            )
        };

        let mut change = store.begin_change(now).await.unwrap();
        change.keep_answer((user, "k", "fp"), 201, r#"{"id":"r0"}"#.into());
        change.rollback().await.unwrap();
        assert!(stored().await.is_none(), "rolled back with its change");

        let mut change = store.begin_change(now).await.unwrap();
        change.keep_answer((user, "k", "fp"), 201, r#"{"id":"r1"}"#.into());
        change.event(event(1));
        change.commit().await.unwrap();
        let kept = stored().await.expect("kept");
        assert_eq!(kept.fingerprint, "fp");
        assert_eq!(kept.status_code, Some(201));
        assert_eq!(kept.response.as_deref(), Some(r#"{"id":"r1"}"#));

        let mut change = store.begin_change(now).await.unwrap();
        change.keep_answer((user, "k", "other"), 201, r#"{"id":"r2"}"#.into());
        change.event(event(2));
        let refused = change.commit().await.unwrap_err();
        assert_eq!(
            refused.code(),
            crate::domain::error::KEY_IN_PROGRESS,
            "taken"
        );
        let kept = stored().await.expect("kept");
        assert_eq!(
            kept.response.as_deref(),
            Some(r#"{"id":"r1"}"#),
            "the first answer"
        );
        let lots: Vec<i64> = sqlx::query_scalar("SELECT lot_id FROM outbox ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(lots, [1], "the refused change's event is not written");
    }
}

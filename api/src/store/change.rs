//! One state change and what reports it, written together.
//!
//! A service opens a [`Change`] with [`Store::begin_change`](super::Store::begin_change), writes
//! its rows through it (it is the write transaction: `&mut *change` is the [`Conn`]), and
//! adds what the change must be known by: its events for the outbox, an audit row when an admin
//! did it, the messages it sends. [`Change::commit`] writes those and commits, in one
//! transaction, so an event is never recorded without its change, nor a change without its
//! event; dropping a `Change` without committing rolls everything back.

use super::{Conn, desk, notifications as rows};
use crate::domain::Actor;
use crate::domain::error::Result;
use crate::domain::notification::NewNotification;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::Notify;
use warehouse_schema::Event;

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

    /// Write the events, audit rows and messages, then commit the whole change.
    pub async fn commit(mut self) -> Result<()> {
        let now = self.now;
        for event in &self.events {
            parkflow_outbox::append(&mut self.tx, event).await?;
        }
        for a in std::mem::take(&mut self.audits) {
            desk::audit(&mut self.tx, &a.actor, a.action, &a.target, a.detail, now).await?;
        }
        for m in &self.messages {
            rows::insert_message(&mut self.tx, rows::NewMessage::of(m, now)).await?;
        }
        match self.tx {
            // Committed with the changes queued behind it (group commit, `handles.rs`).
            Conn::Sqlite(c) => c.commit().await?,
            Conn::Transaction(tx) => tx.commit().await?,
            Conn::Pooled(_) => unreachable!("a change is begun in a transaction"),
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
            Conn::Pooled(_) => unreachable!("a change is begun in a transaction"),
        }
        Ok(())
    }
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

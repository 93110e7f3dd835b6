//! A batch: changes answered at once and written together when the batch's owner says so.
//!
//! `parkflow demo` replays a seeded world through the services, one slice of simulated time
//! after another, and is the only client of its store. Through the group commit each of its
//! changes waited for a commit of its own group: about six changes of different lots per
//! commit, 75,000 commits in the default demo, 25 s of the 64 s it spent in SQLite
//! (BENCHMARKS.md, "Stop 34"). In a batch, a change's `commit` lets its savepoint go and
//! returns; the batch's transaction stays open, and [`Batch::commit`] writes everything since
//! its last commit at once. The simulator commits its batch once a simulated hour.
//!
//! What a batch changes, and what it does not:
//! - every change still runs through the services with the same statements, in a savepoint
//!   of its own: a change that fails is undone alone, as in a group;
//! - while a batch runs, reads (`Store::pool()`) go to the writer, so they see the batch's
//!   changes, which readers on connections of their own would not see before the commit. A
//!   caller must then not hold a read connection (`pool().acquire()`) while it begins a
//!   change: it would wait for itself;
//! - a change is answered before it is written. A batch whose commit fails (a full disk)
//!   loses what it did since its last commit and says so to its owner, which must stop; a
//!   batch dropped without [`Batch::finish`] discards the same. Hence only a replay runs in a
//!   batch: its changes come from a seed, and a failed run is run again. The API never does:
//!   its answers are given once written;
//! - another process on the same file sees the batch's changes at each of its commits, and
//!   waits for the write lock meanwhile, as for any write transaction.

use super::{Connections, Slot};
use crate::domain::error::Result;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Mutex;

/// How the writer's connection is set while a batch runs (given back after it): a page cache
/// of 64 MiB (SQLite's default is 2,000 KiB), so that the pages a batch changed stay in it until
/// its commit; a smaller cache spills them into the WAL before, and a page changed again is
/// written again. (The savepoints' journals are in memory on every connection, batch or not:
/// `sqlite.rs`. A batch set them so first: `demo --lots 100 --days 2` simulated in 16.1 and
/// 14.1 s instead of 18.8 and 18.1 s, with 3 s of system time instead of 7.)
const SETTINGS: [(&str, &str); 1] = [("cache_size", "-65536")];

/// A batch of changes on the embedded store's writer; on PostgreSQL, where each change
/// commits on its own, a batch does nothing.
#[must_use = "a batch dropped without `finish` discards what it did not commit"]
pub struct Batch {
    /// The writer's one connection and its set (`None` on PostgreSQL).
    writer: Option<(Arc<Mutex<Slot>>, Arc<Connections>)>,
    /// The connection's [`SETTINGS`] before the batch, given back after it.
    before: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.writer.is_some() {
            "a batch on the SQLite writer"
        } else {
            "a batch of changes that commit one by one"
        })
    }
}

impl Batch {
    /// A batch that leaves every change to commit on its own.
    pub(in crate::store) fn none() -> Self {
        Self {
            writer: None,
            before: Vec::new(),
        }
    }

    /// Begin a batch on `writer`, once the group waiting for its commit (if any) is written.
    pub(in crate::store) async fn begin(writer: &Arc<Connections>) -> Result<Self> {
        let Some(conn) = writer.all.first() else {
            return Ok(Self::none());
        };
        let mut slot = conn.lock().await;
        if writer.batched.load(Ordering::SeqCst) {
            return Err(sqlx::Error::AnyDriverError(
                "a batch is already running on this store".into(),
            )
            .into());
        }
        slot.settle();
        let mut before = Vec::new();
        for (name, value) in SETTINGS {
            let now = slot.conn.run(&format!("PRAGMA {name}"), &[], false)?;
            let now: i64 = now.rows.first().map_or(Ok(0), |r| r.try_get(0))?;
            before.push((name, now.to_string()));
            set(&mut slot, name, value)?;
        }
        writer.batched.store(true, Ordering::SeqCst);
        Ok(Self {
            writer: Some((conn.clone(), writer.clone())),
            before,
        })
    }

    /// Write every change the batch made since its last commit.
    pub async fn commit(&self) -> Result<()> {
        if let Some((conn, _)) = &self.writer {
            write(&mut *conn.lock().await)?;
        }
        Ok(())
    }

    /// Write what is left and go back to one commit per change (or group).
    pub async fn finish(mut self) -> Result<()> {
        let Some((conn, writer)) = self.writer.take() else {
            return Ok(());
        };
        let mut slot = conn.lock().await;
        let written = write(&mut slot);
        writer.batched.store(false, Ordering::SeqCst);
        written.and(restore(&mut slot, &self.before))?;
        Ok(())
    }
}

/// Commit the batch's transaction on `slot`, if one is open; a commit that fails rolls back.
fn write(slot: &mut Slot) -> std::result::Result<(), sqlx::Error> {
    if slot.conn.autocommit() {
        return Ok(());
    }
    slot.end("COMMIT").map(drop).inspect_err(|_| discard(slot))
}

fn set(slot: &mut Slot, name: &str, value: &str) -> std::result::Result<(), sqlx::Error> {
    let pragma = format!("PRAGMA {name} = {value}");
    slot.conn.run(&pragma, &[], false).map(drop)
}

fn restore(slot: &mut Slot, settings: &[(&str, String)]) -> std::result::Result<(), sqlx::Error> {
    settings
        .iter()
        .try_for_each(|(name, value)| set(slot, name, value))
}

fn discard(slot: &mut Slot) {
    if !slot.conn.autocommit() {
        // A rollback that fails leaves the transaction for the next statement to report.
        let _ = slot.end("ROLLBACK");
    }
}

impl Drop for Batch {
    /// Unfinished (its owner failed or was cancelled): what it did not commit is discarded,
    /// now, or once the change in flight on the writer is done.
    fn drop(&mut self) {
        let Some((conn, writer)) = self.writer.take() else {
            return;
        };
        let before = std::mem::take(&mut self.before);
        let end = move |writer: Arc<Connections>, slot: &mut Slot| {
            discard(slot);
            writer.batched.store(false, Ordering::SeqCst);
            // Failing, the batch's settings stay: they cost memory, not correctness.
            let _ = restore(slot, &before);
        };
        match conn.clone().try_lock_owned() {
            Ok(mut slot) => end(writer, &mut slot),
            Err(_) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let mut slot = conn.lock_owned().await;
                        end(writer, &mut slot);
                    });
                }
                // No runtime left to wait in: the change in flight commits as any other.
                Err(_) => writer.batched.store(false, Ordering::SeqCst),
            },
        }
    }
}

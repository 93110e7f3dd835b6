//! A batch: changes answered at once and written together when the batch's owner says so.
//!
//! `parkflow demo` replays a seeded world through the services, one slice of simulated time
//! after another, and is the only client of its store. Through the group commit each of its
//! changes waited for a commit of its own group: about six changes of different lots per
//! commit, 75,000 commits in the default demo, 25 s of the 64 s it spent in SQLite
//! (BENCHMARKS.md, "Stop 34"). In a batch, a change's `commit` lets its savepoint go and
//! returns; the batch's transaction stays open, and [`Batch::commit`] writes everything since
//! its last commit at once. The simulator commits its batch at the end of each slice.
//!
//! What a batch changes, and what it does not:
//! - every change still runs through the services with the same statements, in a savepoint
//!   of its own: a change that fails is undone alone, as in a group;
//! - while a batch runs, reads (`Store::pool()`) go to the writer, so they see the batch's
//!   changes, which readers on connections of their own would not see before the commit;
//! - a change is answered before it is written. A batch whose commit fails (a full disk)
//!   loses what it did since its last commit and says so to its owner, which must stop; a
//!   batch dropped without [`Batch::finish`] discards the same. Hence only a replay runs in a
//!   batch: its changes come from a seed, and a failed run is run again. The API never does:
//!   its answers are given once written;
//! - another process on the same file sees the batch's changes at each of its commits, and
//!   waits for the write lock meanwhile, as for any write transaction.

use super::{Connections, Slot};
use crate::domain::error::Result;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A batch of changes on the embedded store's writer; on PostgreSQL, where each change
/// commits on its own, a batch does nothing.
#[must_use = "a batch dropped without `finish` discards what it did not commit"]
pub struct Batch {
    writer: Option<Arc<Connections>>,
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
        Self { writer: None }
    }

    /// Begin a batch on `writer`, once the group waiting for its commit (if any) is written.
    pub(in crate::store) async fn begin(writer: &Arc<Connections>) -> Result<Self> {
        for c in &writer.all {
            c.lock().await.settle();
        }
        if writer.batched.swap(true, Ordering::SeqCst) {
            return Err(sqlx::Error::AnyDriverError(
                "a batch is already running on this store".into(),
            )
            .into());
        }
        Ok(Self {
            writer: Some(writer.clone()),
        })
    }

    /// Write every change the batch made since its last commit.
    pub async fn commit(&self) -> Result<()> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        for c in &writer.all {
            write(&mut *c.lock().await)?;
        }
        Ok(())
    }

    /// Write what is left and go back to one commit per change (or group).
    pub async fn finish(mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let mut written = Ok(());
        for c in &writer.all {
            let mut slot = c.lock().await;
            written = written.and(write(&mut slot));
            if written.is_err() {
                discard(&mut slot);
            }
        }
        writer.batched.store(false, Ordering::SeqCst);
        Ok(written?)
    }
}

/// Commit the batch's transaction on `slot`, if one is open; a commit that fails rolls back.
fn write(slot: &mut Slot) -> std::result::Result<(), sqlx::Error> {
    if slot.conn.autocommit() {
        return Ok(());
    }
    slot.conn
        .run("COMMIT", &[], true)
        .map(drop)
        .inspect_err(|_| {
            if !slot.conn.autocommit() {
                let _ = slot.conn.run("ROLLBACK", &[], true);
            }
        })
}

fn discard(slot: &mut Slot) {
    if !slot.conn.autocommit() {
        // A rollback that fails leaves the transaction for the next statement to report.
        let _ = slot.conn.run("ROLLBACK", &[], true);
    }
}

impl Drop for Batch {
    /// Unfinished (its owner failed or was cancelled): what it did not commit is discarded,
    /// now, or once the change in flight on the writer is done.
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let end = move |writer: Arc<Connections>, slot: &mut Slot| {
            discard(slot);
            writer.batched.store(false, Ordering::SeqCst);
        };
        let Some(first) = writer.all.first().cloned() else {
            return;
        };
        match first.clone().try_lock_owned() {
            Ok(mut slot) => end(writer, &mut slot),
            Err(_) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let mut slot = first.lock_owned().await;
                        end(writer, &mut slot);
                    });
                }
                // No runtime left to wait in: the change in flight commits as any other.
                Err(_) => writer.batched.store(false, Ordering::SeqCst),
            },
        }
    }
}

//! What the SQLite writer knows about other connections' commits, for the availability index
//! to tell when it can refuse a booking by itself.
//!
//! The index holds every change this process commits; another process's change reaches it only
//! through the outbox (`Services::sync_availability`). So a booking the index finds no spot
//! for is checked against the store on a reader before it is refused — a lot-wide read that
//! probes every spot, dearer than a booking's whole write (BENCHMARKS.md "Stop 41").
//!
//! The writer can tell when that read would find nothing new. Each time it begins a transaction
//! it holds SQLite's write lock, so no other connection (another process, or a connection of
//! this one outside the store) commits until that transaction ends; and `PRAGMA data_version`,
//! read then, says whether any did since the writer last read it. A booking that reads the
//! writer's open transaction before asking the index and finds the same transaction still open
//! after, knows that no other connection committed in between, and every commit before was
//! either seen by the index or counted here. Once the counted ones are synced
//! ([`WriterWatch::foreign_commits`] against what the sync read), the index's "no spot" is the
//! store's.
//!
//! Checkpoints (passive, by the store's thread) change no data and do not count; a `TRUNCATE`
//! checkpoint by another connection does, which only sends refusals to the reader.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The single writer's transactions and the other connections' commits it found.
#[derive(Debug)]
pub struct WriterWatch {
    /// `PRAGMA data_version` as the writer last read it.
    version: AtomicI64,
    /// Times the writer found `data_version` moved: another connection committed.
    foreign: AtomicU64,
    /// Transactions the writer has begun.
    began: AtomicU64,
    /// The number of the writer's open transaction, 0 when none is open.
    open: AtomicU64,
    /// Taken by the first `Services` on the store: only its availability index is told of every
    /// change the writer commits.
    claimed: AtomicBool,
}

/// The writer's open transaction as read at one moment, and the foreign commits found by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    transaction: u64,
    pub foreign_commits: u64,
}

impl WriterWatch {
    /// Start watching from `data_version` as the writer's connection reads it now.
    pub fn new(data_version: i64) -> Self {
        Self {
            version: AtomicI64::new(data_version),
            foreign: AtomicU64::new(0),
            began: AtomicU64::new(0),
            open: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
        }
    }

    /// True for the first caller only: the one availability index that may rely on the watch.
    /// Another index on the same store does not hear of the first one's changes, which to it
    /// are commits of another connection the watch does not see.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }

    /// The writer began a transaction (it holds the write lock) and read `data_version`.
    pub(super) fn began(&self, data_version: i64) {
        if self.version.swap(data_version, Ordering::SeqCst) != data_version {
            self.foreign.fetch_add(1, Ordering::SeqCst);
        }
        let number = self.began.fetch_add(1, Ordering::SeqCst) + 1;
        self.open.store(number, Ordering::SeqCst);
    }

    /// The writer is about to end its transaction (commit or roll back).
    pub(super) fn ending(&self) {
        self.open.store(0, Ordering::SeqCst);
    }

    /// The writer's open transaction now, or `None` when none is open.
    pub fn open(&self) -> Option<Watched> {
        let transaction = self.open.load(Ordering::SeqCst);
        // Counted before the transaction was marked open: read after it, it includes what
        // that transaction's begin found.
        let foreign_commits = self.foreign.load(Ordering::SeqCst);
        (transaction != 0).then_some(Watched {
            transaction,
            foreign_commits,
        })
    }

    /// Whether the transaction `watched` was read in is still open: no other connection has
    /// committed since it began.
    pub fn still_open(&self, watched: Watched) -> bool {
        self.open.load(Ordering::SeqCst) == watched.transaction
    }

    /// Other connections' commits found so far. Read before the outbox's head, the events of
    /// all of them are at or before it.
    pub fn foreign_commits(&self) -> u64 {
        self.foreign.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_data_version_counts_one_foreign_commit_and_an_end_closes_the_transaction() {
        let watch = WriterWatch::new(2);
        assert_eq!(watch.open(), None);
        watch.began(2);
        let first = watch.open().expect("open");
        assert_eq!(first.foreign_commits, 0);
        assert!(watch.still_open(first));
        watch.ending();
        assert!(!watch.still_open(first));
        assert_eq!(watch.open(), None);
        watch.began(3);
        let second = watch.open().expect("open");
        assert_eq!(second.foreign_commits, 1);
        assert_ne!(first, second);
        assert!(
            !watch.still_open(first),
            "another transaction is not the same one"
        );
        watch.ending();
        watch.began(3);
        assert_eq!(watch.foreign_commits(), 1);
        assert!(watch.claim());
        assert!(!watch.claim(), "claimed once");
    }
}

//! The embedded store's WAL checkpoints, off the path of every change.
//!
//! In WAL mode SQLite appends each commit to the `-wal` file and copies the pages back into the
//! database at a checkpoint, which waits for two fsyncs. By default the connection whose commit
//! crosses 1,000 pages runs it inside that commit; in the demo those waits were a third of the
//! wall time. Here a thread of the store runs a passive checkpoint every [`EVERY`]: it copies
//! what is committed while readers and the writer go on (a passive checkpoint never waits for
//! a lock). The writer still checkpoints itself past [`WRITER_CHECKPOINT_PAGES`], which is what
//! lets the next write start the WAL over: a WAL is only started over by a writer that finds
//! it wholly copied, which a writer that never pauses does not find after another thread's
//! checkpoint (a first version left it all to the thread and grew the WAL to 24 GB in the
//! default demo). By then the thread has copied nearly every page, so the writer's checkpoint
//! is short: the last pages and one fsync. A last checkpoint runs when the store is dropped.

use super::sqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the committed WAL is copied into the database. Often enough that the writer's own
/// checkpoint, past [`WRITER_CHECKPOINT_PAGES`], finds little left to copy: booking at ~9,000/s
/// (`parkflow bench api`) the writer fills those pages about every 120 ms, so with a round every
/// 250 ms it copied most of them itself inside a commit (25–37 ms each, a fifth of the writer's
/// time); with one every 20 ms its checkpoints take 4–15 ms, mostly their two fsyncs
/// (BENCHMARKS.md "Stop 41"). A round with nothing new to copy syncs nothing.
const EVERY: Duration = Duration::from_millis(20);

/// WAL pages past which the writer checkpoints, and so starts the WAL over (16 MB of the
/// store's 2 KB pages, `super::SQLITE_PAGE_SIZE`; 32 MB in a file made with 4 KB pages).
pub const WRITER_CHECKPOINT_PAGES: u32 = 8192;

/// The checkpointing thread; dropping this stops it after a last checkpoint.
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer")
    }
}

impl Checkpointer {
    /// Checkpoint the database at `path` every [`EVERY`], on a connection of its own.
    pub fn start(path: &Path) -> Result<Self, sqlx::Error> {
        let mut conn = Connection::open(path, 0)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    let last = matches!(
                        stopped.recv_timeout(EVERY),
                        Err(RecvTimeoutError::Disconnected) | Ok(())
                    );
                    // Busy (another checkpoint running) or failed: the next round tries again,
                    // and the WAL keeps every commit until one succeeds.
                    if let Err(e) = conn.run("PRAGMA wal_checkpoint(PASSIVE)", &[], true) {
                        tracing::debug!(error = %e, "WAL checkpoint deferred");
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(sqlx::Error::Io)?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panicked thread has nothing left to stop.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{SQLITE_PAGE_SIZE, Store};

    /// A writer that never pauses still has its WAL started over: 400 MB written in one
    /// go leave a WAL of a few times the writer's checkpoint size, not of everything written.
    /// (Past its checkpoint size the writer's own checkpoint finds the thread's still running
    /// and is skipped until the thread's is done, so the WAL overshoots by what the writer
    /// writes meanwhile: the faster the writer, the more. With the savepoints' journals in
    /// memory it writes faster, and 3 × overshot in about one run in twenty under the other
    /// tests' load.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE filler (b BLOB NOT NULL)")
            .execute(store.writer())
            .await
            .unwrap();
        let page = vec![7u8; 64 * 1024];
        let mut largest = 0;
        for _ in 0..6400 {
            sqlx::query("INSERT INTO filler (b) VALUES ($1)")
                .bind(page.clone())
                .execute(store.writer())
                .await
                .unwrap();
            let wal = std::fs::metadata(dir.path().join("c.db-wal")).map_or(0, |m| m.len());
            largest = largest.max(wal);
        }
        let bound = 4 * u64::from(super::WRITER_CHECKPOINT_PAGES) * u64::from(SQLITE_PAGE_SIZE);
        assert!(largest < bound, "the WAL grew to {largest} bytes");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM filler")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 6400);
    }
}

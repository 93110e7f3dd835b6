//! A batch as the consumer collects it: the event ids it remembers, and the pieces of events it
//! hands on to the Parquet files while it decodes the rest.

use crate::error::Result;
use crate::sink::DeadLetter;
use crate::sink::parquet::{ParquetSink, StagingThread, events_by_date};
use arrow::array::RecordBatch;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use warehouse_schema::Event;

/// A set of event ids. Hashing them is a good part of the dedup: foldhash is several times
/// faster than the standard SipHash and still seeded at random per set, so ids chosen by
/// whoever can write to the topic cannot aim at one bucket.
pub(super) type IdSet = HashSet<uuid::Uuid, foldhash::fast::RandomState>;

/// Event ids written recently, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct RecentIds {
    set: IdSet,
    order: VecDeque<uuid::Uuid>,
}

/// How many recent event ids the consumer remembers (relay retries come within seconds).
const RECENT_IDS: usize = 2_000_000;
/// Data files read at start-up to remember what the last batches wrote.
pub(super) const RECENT_FILES: usize = 64;

impl RecentIds {
    pub fn contains(&self, id: &uuid::Uuid) -> bool {
        self.set.contains(id)
    }

    pub fn insert(&mut self, id: uuid::Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > RECENT_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// A batch as received: validated message by message, its events handed on in pieces
/// ([`HANDOVER`]) to the Parquet files being written meanwhile, with what the other sinks and
/// the commit need.
#[derive(Default)]
pub(super) struct Received {
    pub messages: u64,
    /// Below the lake's position of their partition (a replay after a crash).
    pub skipped: u64,
    /// The ids of the events kept: an event met again in the batch is dropped, and once the
    /// batch is committed the consumer remembers them ([`RecentIds`]).
    pub kept: IdSet,
    /// Relay re-sends dropped by event id.
    pub duplicates: u64,
    /// The kept events as Arrow record batches, for ClickHouse (none without it).
    pub batches: Vec<RecordBatch>,
    /// The batch's Parquet files, written while the rest is decoded (from the first event on).
    pub files: Option<StagingThread>,
    pub dead: Vec<DeadLetter>,
    /// The key of each dead letter's message, so the DLQ keeps the partitioning by lot.
    pub dead_keys: Vec<Vec<u8>>,
    /// The offset after the last message of each partition.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Waiting on an empty queue once the batch had its first message.
    pub waiting: Duration,
    pub dedup: Duration,
    pub arrow: Duration,
}

/// How many decoded events the consumer collects, by default, before it hands them on (dedup, Arrow, the
/// Parquet thread): small enough that the files of a batch are mostly written by the time its
/// last message is decoded, large enough that each piece is a reasonable Arrow batch.
pub(super) const HANDOVER: usize = 4_096;

impl Received {
    /// Drop the events seen before (remembered from committed batches, or earlier in this
    /// one), convert the rest to Arrow by date and hand them to the Parquet thread, started
    /// on the first piece.
    pub fn hand_over(
        &mut self,
        mut events: Vec<Event>,
        recent: &RecentIds,
        parquet: &ParquetSink,
        keep_batches: bool,
    ) -> Result<()> {
        let t = Instant::now();
        let before = events.len();
        let kept = &mut self.kept;
        events.retain(|e| !recent.contains(&e.event_id.0) && kept.insert(e.event_id.0));
        self.duplicates += (before - events.len()) as u64;
        self.dedup += t.elapsed();
        let t = Instant::now();
        let piece = events_by_date(&events)?;
        self.arrow += t.elapsed();
        if keep_batches {
            self.batches
                .extend(piece.batches.iter().map(|(_, batch)| batch.clone()));
        }
        self.files
            .get_or_insert_with(|| StagingThread::start(parquet.staging()))
            .write(piece);
        Ok(())
    }
}

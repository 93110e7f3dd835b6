//! The Parquet lake sink: one file per table partition per batch, committed by the manifest.
//!
//! A batch is durable once its manifest is renamed into place; the manifest also carries the
//! source positions, so "data written" and "input consumed" are one atomic fact. A crash before
//! the rename leaves only unlisted files, which [`ParquetSink::open`] deletes.

use super::DeadLetter;
use crate::FailPoint;
use crate::error::{Error, Result};
use arrow::array::{BinaryArray, RecordBatch, StringArray, TimestampMillisecondArray};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashSet, btree_map};
use std::sync::Arc;
use warehouse_schema::convert::{batch_to_events, events_to_batch};
use warehouse_schema::lake::{Lake, Manifest, ParquetFile};
use warehouse_schema::tables::Section;
use warehouse_schema::{Event, EventPayload, LotDirectory, LotId, Table};

/// Where one [`ParquetSink::write`] spent its time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteTime {
    /// Events (and dead letters) into Arrow record batches.
    pub arrow: std::time::Duration,
    /// Parquet encoding and the data files written.
    pub encode: std::time::Duration,
    /// The manifest written and renamed into place.
    pub manifest: std::time::Duration,
}

/// A batch's files written by [`ParquetSink::stage`], waiting for their commit.
#[derive(Debug)]
pub struct Staged {
    /// The manifest that lists them.
    next: Manifest,
    time: WriteTime,
}

#[derive(Debug)]
pub struct ParquetSink {
    lake: Lake,
    manifest: Manifest,
    fail_point: Option<FailPoint>,
}

/// Lots known to the sink's committed state plus those registered earlier in the batch.
pub struct KnownLots<'a> {
    committed: &'a std::collections::BTreeSet<i64>,
    pending: &'a HashSet<i64>,
}

impl LotDirectory for KnownLots<'_> {
    fn contains(&self, lot: LotId) -> bool {
        self.committed.contains(&lot.0) || self.pending.contains(&lot.0)
    }
}

/// One batch's files being written, not yet part of the lake ([`ParquetSink::staging`]):
/// events go into one file per date as they come ([`add`](Self::add), or
/// [`write`](Self::write) with a record batch already built), and [`finish`](Self::finish)
/// closes the files, writes the dead letters' and lists them all in the next manifest, which
/// [`ParquetSink::commit`] then renames into place. It owns what it needs, so the Kafka consumer
/// writes a batch's first events on a thread of its own while it decodes the rest
/// ([`StagingThread`]).
#[derive(Debug)]
pub struct Staging {
    lake: Lake,
    next: Manifest,
    fail_point: Option<FailPoint>,
    /// The open event file of each date, with its path in the lake.
    open: BTreeMap<NaiveDate, (String, ParquetFile)>,
    time: WriteTime,
}

impl Staging {
    /// Convert `events` to Arrow (by date) and write them.
    pub fn add(&mut self, events: &[Event]) -> Result<()> {
        let t = std::time::Instant::now();
        let by_date = events_by_date(events)?;
        self.time.arrow += t.elapsed();
        self.write_all(&by_date)
    }

    /// Write events already converted to Arrow, and list the lots they register as known.
    pub fn write_all(&mut self, by_date: &ByDate) -> Result<()> {
        self.next.lots.extend(by_date.lots.iter().copied());
        for (date, batch) in &by_date.batches {
            self.write(*date, batch)?;
        }
        Ok(())
    }

    /// Write a record batch of events that all happened on `date`.
    fn write(&mut self, date: NaiveDate, batch: &RecordBatch) -> Result<()> {
        let t = std::time::Instant::now();
        let parts = self.open.len();
        let (_, file) = match self.open.entry(date) {
            btree_map::Entry::Occupied(e) => e.into_mut(),
            btree_map::Entry::Vacant(e) => {
                let rel = Lake::data_file(
                    Table::FactParkingEvent,
                    Some(date),
                    self.next.version,
                    parts,
                );
                let file = self.lake.create_parquet(&rel, batch.schema())?;
                e.insert((rel, file))
            }
        };
        file.write(batch)?;
        self.time.encode += t.elapsed();
        Ok(())
    }

    /// Close the event files, write the dead letters' (one file per date received) and list
    /// every file in the next manifest.
    pub fn finish(mut self, dead: &[DeadLetter]) -> Result<Staged> {
        let mut written = 0usize;
        for (_, (rel, file)) in std::mem::take(&mut self.open) {
            self.check_fail_point(written)?;
            let t = std::time::Instant::now();
            let rows = file.finish()?;
            self.time.encode += t.elapsed();
            self.list(Table::FactParkingEvent, rel, rows);
            written += 1;
        }
        let mut dead_by_date: BTreeMap<NaiveDate, Vec<&DeadLetter>> = BTreeMap::new();
        for d in dead {
            dead_by_date
                .entry(d.received_at.date_naive())
                .or_default()
                .push(d);
        }
        for (part, (date, letters)) in dead_by_date.iter().enumerate() {
            self.check_fail_point(written)?;
            let rel = Lake::data_file(Table::DeadLetters, Some(*date), self.next.version, part);
            let rows = self
                .lake
                .write_parquet(&rel, &[dead_letter_batch(letters)?])?;
            self.list(Table::DeadLetters, rel, rows);
            written += 1;
        }
        Ok(Staged {
            next: self.next,
            time: self.time,
        })
    }

    /// A crash injected after `written` files (recovery tests only).
    fn check_fail_point(&self, written: usize) -> Result<()> {
        if self.fail_point == Some(FailPoint::AfterFiles(written)) {
            return Err(Error::Injected(FailPoint::AfterFiles(written)));
        }
        Ok(())
    }

    fn list(&mut self, table: Table, rel: String, rows: u64) {
        let name = table.name().to_owned();
        self.next.files.entry(name.clone()).or_default().push(rel);
        *self.next.rows.entry(name).or_default() += rows;
    }
}

/// Events as the lake takes them: one Arrow record batch per date they happened on, and the
/// lots they register.
#[derive(Debug)]
pub struct ByDate {
    pub batches: Vec<(NaiveDate, RecordBatch)>,
    pub lots: Vec<i64>,
}

/// `events` [`ByDate`].
pub fn events_by_date(events: &[Event]) -> Result<ByDate> {
    let mut by_date: BTreeMap<NaiveDate, Vec<&Event>> = BTreeMap::new();
    let mut lots = Vec::new();
    for e in events {
        by_date
            .entry(e.occurred_at.date_naive())
            .or_default()
            .push(e);
        if let EventPayload::LotRegistered(_) = e.payload {
            lots.push(e.lot_id.0);
        }
    }
    let batches = by_date
        .into_iter()
        .map(|(date, day)| Ok((date, events_to_batch(day)?)))
        .collect::<Result<_>>()?;
    Ok(ByDate { batches, lots })
}

/// A [`Staging`] on a thread of its own: events converted to Arrow are handed over as they are
/// built and encoded there while the caller goes on (the Kafka consumer decodes the rest of its
/// batch meanwhile, on the other core).
#[derive(Debug)]
pub struct StagingThread {
    to_thread: std::sync::mpsc::Sender<ByDate>,
    thread: tokio::task::JoinHandle<Result<Staging>>,
}

impl StagingThread {
    pub fn start(mut staging: Staging) -> Self {
        let (to_thread, pieces) = std::sync::mpsc::channel::<ByDate>();
        let thread = tokio::task::spawn_blocking(move || {
            for piece in pieces {
                staging.write_all(&piece)?;
            }
            Ok(staging)
        });
        Self { to_thread, thread }
    }

    /// Hand over a piece of the batch's events. If the thread stopped on an error, the piece
    /// is dropped and [`finish`](Self::finish) reports that error.
    pub fn write(&self, piece: ByDate) {
        let _ = self.to_thread.send(piece);
    }

    /// Once every piece is written: the dead letters added, the files closed
    /// ([`Staging::finish`]).
    pub async fn finish(self, dead: Vec<DeadLetter>) -> Result<Staged> {
        drop(self.to_thread);
        let staging = self.thread.await??;
        tokio::task::spawn_blocking(move || staging.finish(&dead)).await?
    }
}

impl ParquetSink {
    /// Open the lake, recovering from any crash: files not in the manifest are removed.
    pub fn open(lake: Lake) -> Result<Self> {
        let manifest = lake.manifest(Section::Ingested)?;
        let removed = lake.remove_uncommitted(Section::Ingested, &manifest)?;
        if removed > 0 {
            tracing::warn!(files = removed, "removed files of an uncommitted batch");
        }
        Ok(Self {
            lake,
            manifest,
            fail_point: None,
        })
    }

    /// Stop at `point` in the next batch, as a crash would (recovery tests only).
    pub fn fail_at(&mut self, point: FailPoint) {
        self.fail_point = Some(point);
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn position(&self, source: &str) -> Option<i64> {
        self.manifest.positions.get(source).copied()
    }

    /// Event ids in the newest `files` data files of `fact_parking_event`: what a consumer needs
    /// to recognise a recent event sent again (a relay retry) after a restart.
    pub fn recent_event_ids(&self, files: usize) -> Result<HashSet<uuid::Uuid>> {
        let all = self.manifest.files_of(Table::FactParkingEvent);
        let mut ids = HashSet::new();
        for rel in &all[all.len().saturating_sub(files)..] {
            for batch in warehouse_schema::lake::read_parquet(&self.lake.absolute(rel))? {
                ids.extend(batch_to_events(&batch)?.into_iter().map(|e| e.event_id.0));
            }
        }
        Ok(ids)
    }

    /// Validation state for a batch: what is committed plus lots registered so far in it.
    pub fn known_lots<'a>(&'a self, pending: &'a HashSet<i64>) -> KnownLots<'a> {
        KnownLots {
            committed: &self.manifest.lots,
            pending,
        }
    }

    /// Write one batch and commit it with the new source positions.
    pub fn write(
        &mut self,
        events: &[Event],
        dead: &[DeadLetter],
        positions: BTreeMap<String, i64>,
    ) -> Result<WriteTime> {
        let staged = self.stage(events, dead)?;
        self.commit(staged, positions)
    }

    /// Write one batch's files, not yet part of the lake: [`commit`](Self::commit) makes them
    /// so. Until then a crash or an error leaves only unlisted files, removed at the next open.
    pub fn stage(&self, events: &[Event], dead: &[DeadLetter]) -> Result<Staged> {
        let mut staging = self.staging();
        staging.add(events)?;
        staging.finish(dead)
    }

    /// The next batch's files, to be written piece by piece ([`Staging`]).
    pub fn staging(&self) -> Staging {
        let mut next = self.manifest.clone();
        next.version = self.manifest.version + 1;
        Staging {
            lake: self.lake.clone(),
            next,
            fail_point: self.fail_point,
            open: BTreeMap::new(),
            time: WriteTime::default(),
        }
    }

    /// Commit a [`stage`](Self::stage)d batch with the source positions it covers: the
    /// manifest renamed into place.
    pub fn commit(
        &mut self,
        staged: Staged,
        positions: BTreeMap<String, i64>,
    ) -> Result<WriteTime> {
        let Staged { mut next, mut time } = staged;
        if next.version != self.manifest.version + 1 {
            return Err(Error::Config(format!(
                "a batch staged on manifest version {} cannot commit on version {}",
                next.version - 1,
                self.manifest.version
            )));
        }
        if self.fail_point == Some(FailPoint::BeforeCommit) {
            return Err(Error::Injected(FailPoint::BeforeCommit));
        }
        next.positions.extend(positions);
        let t = std::time::Instant::now();
        self.lake.commit(Section::Ingested, &next)?;
        time.manifest = t.elapsed();
        self.manifest = next;
        if self.fail_point == Some(FailPoint::AfterCommit) {
            return Err(Error::Injected(FailPoint::AfterCommit));
        }
        Ok(time)
    }
}

fn dead_letter_batch(letters: &[&DeadLetter]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Table::DeadLetters.schema(),
        vec![
            Arc::new(
                letters
                    .iter()
                    .map(|d| Some(d.source.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|d| Some(d.received_at.timestamp_millis()))
                    .collect::<TimestampMillisecondArray>()
                    .with_timezone("UTC"),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|d| Some(d.rejection.reason.code()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|d| Some(d.rejection.detail.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                letters
                    .iter()
                    .map(|d| Some(d.payload.as_slice()))
                    .collect::<BinaryArray>(),
            ),
        ],
    )?)
}

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
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use warehouse_schema::convert::{batch_to_events, events_to_batch};
use warehouse_schema::lake::{Lake, Manifest};
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
    /// so. Until then a crash or an error leaves only unlisted files, removed at the next open
    /// (the Kafka consumer stages while its ClickHouse insert is under way, and commits once
    /// that insert has succeeded).
    pub fn stage(&self, events: &[Event], dead: &[DeadLetter]) -> Result<Staged> {
        let mut time = WriteTime::default();
        let mut next = self.manifest.clone();
        next.version = self.manifest.version + 1;
        let mut written = 0usize;

        let mut by_date: BTreeMap<NaiveDate, Vec<&Event>> = BTreeMap::new();
        for e in events {
            by_date
                .entry(e.occurred_at.date_naive())
                .or_default()
                .push(e);
            if let EventPayload::LotRegistered(_) = e.payload {
                next.lots.insert(e.lot_id.0);
            }
        }
        for (part, (date, day)) in by_date.iter().enumerate() {
            let t = std::time::Instant::now();
            let batch = events_to_batch(day.iter().copied())?;
            time.arrow += t.elapsed();
            let t = std::time::Instant::now();
            self.put(
                &mut next,
                Table::FactParkingEvent,
                Some(*date),
                part,
                batch,
                &mut written,
            )?;
            time.encode += t.elapsed();
        }
        let mut dead_by_date: BTreeMap<NaiveDate, Vec<&DeadLetter>> = BTreeMap::new();
        for d in dead {
            dead_by_date
                .entry(d.received_at.date_naive())
                .or_default()
                .push(d);
        }
        for (part, (date, letters)) in dead_by_date.iter().enumerate() {
            let batch = dead_letter_batch(letters)?;
            self.put(
                &mut next,
                Table::DeadLetters,
                Some(*date),
                part,
                batch,
                &mut written,
            )?;
        }
        Ok(Staged { next, time })
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

    fn put(
        &self,
        next: &mut Manifest,
        table: Table,
        date: Option<NaiveDate>,
        part: usize,
        batch: RecordBatch,
        written: &mut usize,
    ) -> Result<()> {
        if self.fail_point == Some(FailPoint::AfterFiles(*written)) {
            return Err(Error::Injected(FailPoint::AfterFiles(*written)));
        }
        let rel = Lake::data_file(table, date, next.version, part);
        let rows = self.lake.write_parquet(&rel, &[batch])?;
        next.files
            .entry(table.name().to_owned())
            .or_default()
            .push(rel);
        *next.rows.entry(table.name().to_owned()).or_default() += rows;
        *written += 1;
        Ok(())
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

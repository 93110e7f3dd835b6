//! Embedded mode: drain the outbox straight into the Parquet lake, in outbox order.
//!
//! Each batch reads rows after the committed position, validates them (refusals become dead
//! letters), and commits files and the new position in one manifest. Restarting at any point
//! resumes from the last commit: nothing is lost and nothing is written twice.

use crate::error::Result;
use crate::metrics::IngestMetrics;
use crate::sink::parquet::ParquetSink;
use crate::source::Outbox;
use std::collections::BTreeMap;
use warehouse_schema::lake::Lake;

/// The manifest key of the outbox position.
pub const OUTBOX_POSITION: &str = "outbox";

/// Totals of one or more batches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestReport {
    pub batches: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// The committed outbox position afterwards.
    pub position: i64,
}

impl IngestReport {
    /// Count the batch `r` reports, done after those counted so far.
    fn add(&mut self, r: &IngestReport) {
        self.batches += r.batches;
        self.events += r.events;
        self.dead_letters += r.dead_letters;
        self.position = r.position;
    }
}

#[derive(Debug)]
pub struct EmbeddedIngest {
    outbox: Outbox,
    sink: ParquetSink,
    batch_size: i64,
    metrics: IngestMetrics,
}

impl EmbeddedIngest {
    /// Open the lake (recovering from a crash) and prepare to read the outbox.
    pub fn new(
        outbox: Outbox,
        lake: Lake,
        batch_size: usize,
        metrics: IngestMetrics,
    ) -> Result<Self> {
        Ok(Self {
            outbox,
            sink: ParquetSink::open(lake)?,
            batch_size: batch_size.max(1) as i64,
            metrics,
        })
    }

    pub fn sink_mut(&mut self) -> &mut ParquetSink {
        &mut self.sink
    }

    pub fn position(&self) -> i64 {
        self.sink.position(OUTBOX_POSITION).unwrap_or(0)
    }

    /// Ingest one batch; a report with no rows means the outbox is drained.
    pub async fn step(&mut self) -> Result<IngestReport> {
        let after = self.position();
        let rows = self.outbox.read_after(after, self.batch_size).await?;
        let Some(last) = rows.last().map(|r| r.position) else {
            self.metrics.lag.set(0);
            return Ok(IngestReport {
                position: after,
                ..Default::default()
            });
        };
        let mut validator = crate::validate::Validator::new(&self.sink, rows.len());
        for r in &rows {
            validator.push(|| format!("outbox:{}", r.position), r.payload.as_bytes());
        }
        let crate::validate::Validated { events, dead } = validator.finish();
        self.sink.write(
            &events,
            &dead,
            BTreeMap::from([(OUTBOX_POSITION.to_owned(), last)]),
        )?;
        self.metrics.batches.inc();
        self.metrics.events.inc_by(events.len() as u64);
        self.metrics.dead_letters.inc_by(dead.len() as u64);
        let head = self.outbox.head().await?;
        self.metrics.lag.set(head - last);
        Ok(IngestReport {
            batches: 1,
            events: events.len() as u64,
            dead_letters: dead.len() as u64,
            position: last,
        })
    }

    /// Ingest whole batches while at least one is waiting in the outbox, and leave the rest:
    /// what runs beside a writer that is still recording, so that the batches (and the lake's
    /// files) are the ones a single drain at the end would write.
    pub async fn catch_up(&mut self) -> Result<IngestReport> {
        let mut total = IngestReport {
            position: self.position(),
            ..Default::default()
        };
        while self.outbox.head().await? - self.position() >= self.batch_size {
            total.add(&self.step().await?);
        }
        Ok(total)
    }

    /// Ingest until the outbox has nothing after the committed position.
    pub async fn drain(&mut self) -> Result<IngestReport> {
        self.drain_with(|_| {}).await
    }

    /// [`drain`](Self::drain), calling `progress` after every committed batch.
    pub async fn drain_with(
        &mut self,
        mut progress: impl FnMut(&IngestReport),
    ) -> Result<IngestReport> {
        let mut total = IngestReport {
            position: self.position(),
            ..Default::default()
        };
        loop {
            let r = self.step().await?;
            if r.batches == 0 {
                return Ok(total);
            }
            total.add(&r);
            progress(&r);
        }
    }
}

//! Time windows: half-open `[start, end)`, never empty.

use crate::domain::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};

/// A time window with `start < end`, checked once at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(Error::Invalid(format!(
                "the window must end after it starts ({start} .. {end})"
            )))
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Half-open overlap: touching windows do not overlap.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

//! Importer for the public occupancy-time-series CSV format
//! `SystemCodeNumber,Capacity,Occupancy,LastUpdated` (one reading per car park and time, local
//! wall-clock times such as `2016-10-04 07:59:42`).
//!
//! Real feeds of this shape are dirty, and each kind of dirt is handled and counted:
//! - duplicate rows (same car park and time) are kept once;
//! - occupancy above capacity is clipped to capacity; negative occupancy is a sensor fault and
//!   the reading is dropped;
//! - unreadable rows (bad numbers or times, wrong field count) are dropped with their line;
//! - irregular timestamps are put on the nearest 30-minute slot (several in a slot: their mean);
//! - missing slots and whole missing days stay missing (never zero);
//! - car parks that report rarely (fewer than a quarter of the median car park's readings) are
//!   left out and named.

use crate::series::{Measure, Series, Slot};
use crate::{Error, Result};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// Slots of the imported series.
pub const SLOT_MINUTES: u32 = 30;
const SLOTS_PER_DAY: usize = (24 * 60 / SLOT_MINUTES) as usize;
const COLUMNS: [&str; 4] = ["SystemCodeNumber", "Capacity", "Occupancy", "LastUpdated"];
/// How many refused lines the report quotes (all are counted).
const QUOTED: usize = 5;

/// What the import found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub rows: usize,
    pub duplicates: usize,
    pub clipped_above_capacity: usize,
    pub negative_dropped: usize,
    pub unreadable: usize,
    /// The first few unreadable lines: (line number, reason).
    pub unreadable_examples: Vec<(u64, String)>,
    /// Readings that shared a slot with another reading of the same car park.
    pub merged_into_slots: usize,
    /// Days inside a car park's span without one reading, summed over car parks.
    pub missing_days: usize,
    /// Car parks left out for reporting rarely: (code, readings).
    pub sparse: Vec<(String, usize)>,
    pub car_parks: usize,
}

impl ImportReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} rows: {} duplicates dropped, {} clipped to capacity, {} negative dropped, {} unreadable, \
             {} merged into 30-min slots, {} missing days; {} car parks kept",
            self.rows,
            self.duplicates,
            self.clipped_above_capacity,
            self.negative_dropped,
            self.unreadable,
            self.merged_into_slots,
            self.missing_days,
            self.car_parks
        );
        if !self.sparse.is_empty() {
            let names: Vec<String> = self
                .sparse
                .iter()
                .map(|(code, n)| format!("{code} ({n} readings)"))
                .collect();
            s += &format!("; left out as reporting rarely: {}", names.join(", "));
        }
        for (line, why) in &self.unreadable_examples {
            s += &format!("\n  line {line}: {why}");
        }
        s
    }
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 5] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
    ];
    let text = text.trim();
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

struct Reading {
    at: NaiveDateTime,
    capacity: f64,
    occupancy: f64,
}

/// Read the file into one 30-minute occupancy series per car park.
pub fn import_occupancy_csv(input: impl Read) -> Result<(Vec<Series>, ImportReport)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| Error::Import(format!("header: {e}")))?
        .clone();
    let index: Vec<usize> = COLUMNS
        .iter()
        .map(|name| {
            headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    Error::Import(format!(
                        "the header has no {name} column (expected {})",
                        COLUMNS.join(",")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let mut report = ImportReport::default();
    let mut seen: BTreeSet<(String, NaiveDateTime)> = BTreeSet::new();
    let mut by_park: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    for record in reader.records() {
        report.rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                refuse(
                    &mut report,
                    e.position().map_or(0, |p| p.line()),
                    e.to_string(),
                );
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(index[i]).unwrap_or("");
        let code = field(0).to_owned();
        let capacity = field(1).parse::<f64>().ok().filter(|c| *c > 0.0);
        let occupancy = field(2).parse::<f64>().ok().filter(|o| o.is_finite());
        let at = parse_time(field(3));
        let (Some(capacity), Some(occupancy), Some(at)) = (capacity, occupancy, at) else {
            let why = if code.is_empty() {
                "no car park code".to_owned()
            } else {
                format!(
                    "unreadable capacity {:?}, occupancy {:?} or time {:?}",
                    field(1),
                    field(2),
                    field(3)
                )
            };
            refuse(&mut report, line, why);
            continue;
        };
        if code.is_empty() {
            refuse(&mut report, line, "no car park code".into());
            continue;
        }
        if !seen.insert((code.clone(), at)) {
            report.duplicates += 1;
            continue;
        }
        if occupancy < 0.0 {
            report.negative_dropped += 1;
            continue;
        }
        let occupancy = if occupancy > capacity {
            report.clipped_above_capacity += 1;
            capacity
        } else {
            occupancy
        };
        by_park.entry(code).or_default().push(Reading {
            at,
            capacity,
            occupancy,
        });
    }
    if by_park.is_empty() {
        return Err(Error::Import(format!(
            "no usable readings in {} rows",
            report.rows
        )));
    }
    let mut counts: Vec<usize> = by_park.values().map(Vec::len).collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    let mut series = Vec::new();
    for (code, readings) in by_park {
        if readings.len() * 4 < median {
            report.sparse.push((code, readings.len()));
            continue;
        }
        series.push(resample(code, readings, &mut report));
    }
    report.car_parks = series.len();
    Ok((series, report))
}

fn refuse(report: &mut ImportReport, line: u64, why: String) {
    report.unreadable += 1;
    if report.unreadable_examples.len() < QUOTED {
        report.unreadable_examples.push((line, why));
    }
}

/// Readings of one car park on 30-minute slots from the midnight of its first day to the end of
/// its last; slots without a reading stay missing.
fn resample(code: String, readings: Vec<Reading>, report: &mut ImportReport) -> Series {
    // The nearest slot: minutes rounded to the closest multiple of 30 (23:50 → next day 00:00).
    let slot_of = |at: NaiveDateTime| -> (NaiveDate, usize) {
        let minutes = at.hour() * 60 + at.minute() + u32::from(at.second() >= 30);
        let slot = ((minutes + SLOT_MINUTES / 2) / SLOT_MINUTES) as usize;
        if slot >= SLOTS_PER_DAY {
            (at.date().succ_opt().unwrap_or(at.date()), 0)
        } else {
            (at.date(), slot)
        }
    };
    let first = readings
        .iter()
        .map(|r| slot_of(r.at).0)
        .min()
        .expect("readings");
    let last = readings
        .iter()
        .map(|r| slot_of(r.at).0)
        .max()
        .expect("readings");
    let days = (last - first).num_days() as usize + 1;
    let capacity = readings.iter().map(|r| r.capacity).fold(0.0, f64::max);
    let mut sums = vec![(0.0, 0usize); days * SLOTS_PER_DAY];
    for r in &readings {
        let (date, slot) = slot_of(r.at);
        let i = (date - first).num_days() as usize * SLOTS_PER_DAY + slot;
        sums[i].0 += r.occupancy;
        sums[i].1 += 1;
    }
    report.merged_into_slots += sums.iter().map(|(_, n)| n.saturating_sub(1)).sum::<usize>();
    report.missing_days += sums
        .chunks(SLOTS_PER_DAY)
        .filter(|day| day.iter().all(|(_, n)| *n == 0))
        .count();
    let slots = sums
        .iter()
        .enumerate()
        .map(|(i, (sum, n))| {
            let date = first + chrono::Duration::days((i / SLOTS_PER_DAY) as i64);
            Slot {
                slot_of_day: (i % SLOTS_PER_DAY) as u32,
                weekday: date.weekday().num_days_from_monday(),
                value: (*n > 0).then(|| sum / *n as f64),
            }
        })
        .collect();
    Series {
        key: code,
        capacity,
        slots_per_day: SLOTS_PER_DAY,
        measure: Measure::Occupancy,
        slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_rows_are_counted_and_handled() {
        let csv = "\
SystemCodeNumber,Capacity,Occupancy,LastUpdated
A,100,40,2016-10-03 08:01:12
A,100,40,2016-10-03 08:01:12
A,100,130,2016-10-03 08:29:50
A,100,-3,2016-10-03 09:00:00
A,100,50,2016-10-03 09:10:00
A,100,60,2016-10-03 09:20:00
A,abc,60,2016-10-03 09:40:00
A,100,60,yesterday
A,100,70,2016-10-05 10:02:00
";
        let (series, r) = import_occupancy_csv(csv.as_bytes()).unwrap();
        assert_eq!(r.rows, 9);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.clipped_above_capacity, 1);
        assert_eq!(r.negative_dropped, 1);
        assert_eq!(r.unreadable, 2);
        assert_eq!(r.unreadable_examples[0].0, 8, "{r:?}");
        assert_eq!(r.missing_days, 1, "the 4th has no reading");
        let a = &series[0];
        assert_eq!(a.slots.len(), 3 * 48);
        // 08:01 → slot 16 (08:00); 08:29:50 → 08:30 (clipped to 100); 09:10 and 09:20 → 09:00
        // and 09:30.
        assert_eq!(a.value(16), Some(40.0));
        assert_eq!(a.value(17), Some(100.0));
        assert_eq!(a.value(18), Some(50.0));
        assert_eq!(a.value(19), Some(60.0));
        assert_eq!(a.value(20), None);
        assert_eq!(a.slots[0].weekday, 0, "2016-10-03 was a Monday");
        assert_eq!(a.value(2 * 48 + 20), Some(70.0));
    }

    #[test]
    fn readings_in_one_slot_are_averaged_and_sparse_car_parks_left_out() {
        let mut csv = String::from("LastUpdated,Occupancy,Capacity,SystemCodeNumber\n");
        for day in 1..=20 {
            for (minute, occ) in [(0, 10), (10, 20), (40, 30)] {
                csv += &format!("2016-11-{day:02} 12:{minute:02}:00,{occ},50,BIG\n");
            }
        }
        csv += "2016-11-05 12:00:00,5,50,RARE\n";
        let (series, r) = import_occupancy_csv(csv.as_bytes()).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(r.sparse, vec![("RARE".to_owned(), 1)]);
        assert_eq!(r.merged_into_slots, 20);
        assert_eq!(series[0].value(24), Some(15.0));
        assert_eq!(series[0].value(25), Some(30.0));
    }

    #[test]
    fn a_file_without_the_columns_is_refused_with_the_reason() {
        let err = import_occupancy_csv("a,b\n1,2\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("SystemCodeNumber"), "{err}");
        let err = import_occupancy_csv(
            "SystemCodeNumber,Capacity,Occupancy,LastUpdated\nA,x,y,z\n".as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no usable readings"), "{err}");
    }
}

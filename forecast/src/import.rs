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
use chrono::{Datelike, NaiveDate};
use polars::prelude::{
    BooleanChunked, Column as PolarsColumn, DataFrame, DataType, Float64Chunked, Int64Chunked,
    IntoColumn, IntoSeries, NewChunkedArray, PlSmallStr, PolarsError, SortMultipleOptions,
    StringChunked, StringMethods, TimeUnit,
};
use polars_io::prelude::{CsvReadOptions, SerReader};
use std::io::{Cursor, Read};

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

/// The time formats a feed may use, tried in this order.
const TIME_FORMATS: [&str; 5] = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
];

fn frame_error(e: PolarsError) -> Error {
    Error::Import(e.to_string())
}

/// Read the file into one 30-minute occupancy series per car park.
///
/// Polars reads the file (every field as text), parses the numbers leniently and the times in
/// each of [`TIME_FORMATS`] (a value that does not parse becomes null and its row unreadable),
/// and sorts the readable rows stably by car park and time, so that the first reading of a car
/// park and time in the file comes first and is the one kept. The rest is one linear pass over
/// the sorted columns: duplicates, negative and clipped readings counted, the kept readings
/// summed per slot and laid out as series. (Polars' lazy engine is not used: it cost ~110
/// CPU-seconds of every cold release build for what these passes do.)
///
/// Blocking: call it from a blocking thread, not from an async task (polars parses and sorts
/// on its own thread pool).
pub fn import_occupancy_csv(mut input: impl Read) -> Result<(Vec<Series>, ImportReport)> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Import(format!("read: {e}")))?;
    let raw = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(false)
        .map_parse_options(|o| o.with_truncate_ragged_lines(true))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|e| Error::Import(format!("header: {e}")))?;
    let names: Vec<PlSmallStr> = COLUMNS
        .iter()
        .map(|name| {
            raw.get_column_names()
                .into_iter()
                .find(|h| h.trim().eq_ignore_ascii_case(name))
                .cloned()
                .ok_or_else(|| {
                    Error::Import(format!(
                        "the header has no {name} column (expected {})",
                        COLUMNS.join(",")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let mut report = ImportReport {
        rows: raw.height(),
        ..ImportReport::default()
    };

    // Each field without its surrounding whitespace; a missing field is empty.
    let text = |i: usize, name: &'static str| -> Result<StringChunked> {
        let ca = column(&raw, &names[i])?.str().map_err(frame_error)?;
        Ok(ca
            .iter()
            .map(|v| Some(v.unwrap_or("").trim()))
            .collect::<StringChunked>()
            .with_name(name.into()))
    };
    let code = text(0, "code")?;
    let capacity_text = text(1, "capacity_text")?;
    let occupancy_text = text(2, "occupancy_text")?;
    let at_text = text(3, "at_text")?;
    let number = |ca: &StringChunked, name: &'static str| -> Result<Float64Chunked> {
        let s = ca
            .clone()
            .into_series()
            .cast(&DataType::Float64)
            .map_err(frame_error)?;
        Ok(s.f64().map_err(frame_error)?.clone().with_name(name.into()))
    };
    let capacity = number(&capacity_text, "capacity")?;
    let occupancy = number(&occupancy_text, "occupancy")?;
    let at = parse_times(&at_text)?;

    let readable: BooleanChunked = code
        .iter()
        .zip(capacity.iter())
        .zip(occupancy.iter())
        .zip(at.iter())
        .map(|(((code, capacity), occupancy), at)| {
            code.is_some_and(|c| !c.is_empty())
                && capacity.is_some_and(|c| c > 0.0)
                && occupancy.is_some_and(f64::is_finite)
                && at.is_some()
        })
        .collect();
    report.unreadable = readable.iter().filter(|r| *r == Some(false)).count();
    report.unreadable_examples = refused_examples(
        &readable,
        [&code, &capacity_text, &occupancy_text, &at_text],
    );

    // Sorted by car park and time, stably: of the readings of one car park and time, the first
    // in the file comes first and is the one kept.
    let frame = DataFrame::new(
        raw.height(),
        vec![
            code.into_column(),
            capacity.into_column(),
            occupancy.into_column(),
            at.into_column(),
        ],
    )
    .map_err(frame_error)?;
    let readings = frame
        .filter(&readable)
        .and_then(|f| {
            f.sort(
                ["code", "at"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
        })
        .map_err(frame_error)?;
    if readings.height() == 0 {
        return Err(Error::Import(format!(
            "no usable readings in {} rows",
            report.rows
        )));
    }

    let parks = car_parks(&readings, &mut report)?;
    let mut per_park: Vec<usize> = parks.iter().map(CarPark::readings).collect();
    per_park.sort_unstable();
    let median = per_park[per_park.len() / 2];
    let mut series = Vec::new();
    for park in parks {
        let readings = park.readings();
        if readings * 4 < median {
            report.sparse.push((park.code, readings));
            continue;
        }
        series.push(park.into_series(&mut report));
    }
    report.car_parks = series.len();
    Ok((series, report))
}

/// The times of `texts` in milliseconds since the epoch, read in the first of [`TIME_FORMATS`]
/// that reads them. Most feeds keep to one format: the others are only tried on the texts it
/// could not read (a null text parses for free).
fn parse_times(texts: &StringChunked) -> Result<Int64Chunked> {
    let ambiguous = StringChunked::from_slice("ambiguous".into(), &["raise"]);
    let parse = |texts: &StringChunked, format: &str| -> Result<Int64Chunked> {
        Ok(texts
            .as_datetime(
                Some(format),
                TimeUnit::Milliseconds,
                false,
                false,
                None,
                &ambiguous,
            )
            .map_err(frame_error)?
            .physical()
            .clone())
    };
    let mut at = parse(texts, TIME_FORMATS[0])?;
    for format in &TIME_FORMATS[1..] {
        if at.null_count() == texts.null_count() {
            break;
        }
        let rest: StringChunked = texts
            .iter()
            .zip(at.iter())
            .map(|(text, at)| if at.is_none() { text } else { None })
            .collect();
        let again = parse(&rest, format)?;
        at = at
            .iter()
            .zip(again.iter())
            .map(|(at, again)| at.or(again))
            .collect();
    }
    Ok(at.with_name("at".into()))
}

fn column<'a>(frame: &'a DataFrame, name: &str) -> Result<&'a PolarsColumn> {
    frame.column(name).map_err(frame_error)
}

/// (line, reason) for the first [`QUOTED`] refused rows; the header is line 1 and records span
/// one line each. `texts` are the code, capacity, occupancy and time as read.
fn refused_examples(readable: &BooleanChunked, texts: [&StringChunked; 4]) -> Vec<(u64, String)> {
    let text = |column: &StringChunked, i: usize| column.get(i).unwrap_or("").to_owned();
    readable
        .iter()
        .enumerate()
        .filter(|(_, readable)| *readable == Some(false))
        .take(QUOTED)
        .map(|(i, _)| {
            let [code, capacity, occupancy, at] = texts;
            let why = if text(code, i).is_empty() {
                "no car park code".to_owned()
            } else {
                format!(
                    "unreadable capacity {:?}, occupancy {:?} or time {:?}",
                    text(capacity, i),
                    text(occupancy, i),
                    text(at, i)
                )
            };
            (i as u64 + 2, why)
        })
        .collect()
}

/// The nearest slot of a time in milliseconds: seconds rounded to the minute, minutes to the
/// closest multiple of 30 (23:50 → next day 00:00), counted in slots since the epoch.
fn slot_of(at_ms: i64) -> i64 {
    let seconds = at_ms.div_euclid(1000);
    let minute = seconds.div_euclid(60) + i64::from(seconds.rem_euclid(60) >= 30);
    (minute + i64::from(SLOT_MINUTES / 2)).div_euclid(i64::from(SLOT_MINUTES))
}

/// One car park's kept readings summed per slot: (slot since the epoch, sum, readings).
struct CarPark {
    code: String,
    capacity: f64,
    slots: Vec<(i64, f64, usize)>,
}

/// The readable rows (sorted by car park and time, so by slot too) summed per car park and slot.
/// Of the readings of a car park and time only the first counts: the others are duplicates; a
/// negative one is dropped and one above capacity clipped to it.
fn car_parks(readings: &DataFrame, report: &mut ImportReport) -> Result<Vec<CarPark>> {
    let code = column(readings, "code")?.str().map_err(frame_error)?;
    let capacity = column(readings, "capacity")?.f64().map_err(frame_error)?;
    let occupancy = column(readings, "occupancy")?.f64().map_err(frame_error)?;
    let at = column(readings, "at")?.i64().map_err(frame_error)?;
    let mut parks: Vec<CarPark> = Vec::new();
    let mut previous: Option<(&str, i64)> = None;
    let rows = code
        .iter()
        .zip(capacity.iter())
        .zip(occupancy.iter())
        .zip(at.iter());
    for (((c, cap), o), at) in rows {
        let (Some(c), Some(cap), Some(o), Some(at)) = (c, cap, o, at) else {
            continue;
        };
        if previous == Some((c, at)) {
            report.duplicates += 1;
            continue;
        }
        previous = Some((c, at));
        if o < 0.0 {
            report.negative_dropped += 1;
            continue;
        }
        let o = if o > cap {
            report.clipped_above_capacity += 1;
            cap
        } else {
            o
        };
        if parks.last().is_none_or(|p| p.code != c) {
            parks.push(CarPark {
                code: c.to_owned(),
                capacity: 0.0,
                slots: Vec::new(),
            });
        }
        let park = parks.last_mut().expect("pushed");
        park.capacity = park.capacity.max(cap);
        let slot = slot_of(at);
        match park.slots.last_mut() {
            Some((s, sum, n)) if *s == slot => {
                *sum += o;
                *n += 1;
            }
            _ => park.slots.push((slot, o, 1)),
        }
    }
    Ok(parks)
}

impl CarPark {
    fn readings(&self) -> usize {
        self.slots.iter().map(|(_, _, n)| n).sum()
    }

    /// Slots from the midnight of the first day to the end of the last; slots without a
    /// reading stay missing.
    fn into_series(self, report: &mut ImportReport) -> Series {
        let per_day = SLOTS_PER_DAY as i64;
        let day_of = |slot: i64| slot.div_euclid(per_day);
        let first = day_of(self.slots.first().expect("a car park has slots").0);
        let last = day_of(self.slots.last().expect("a car park has slots").0);
        let days = (last - first + 1) as usize;
        let mut values = vec![None; days * SLOTS_PER_DAY];
        for &(slot, sum, n) in &self.slots {
            values[(slot - first * per_day) as usize] = Some(sum / n as f64);
            report.merged_into_slots += n.saturating_sub(1);
        }
        report.missing_days += values
            .chunks(SLOTS_PER_DAY)
            .filter(|day| day.iter().all(Option::is_none))
            .count();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
        let slots = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let day = first + (i / SLOTS_PER_DAY) as i64;
                let date = epoch + chrono::Duration::days(day);
                Slot {
                    slot_of_day: (i % SLOTS_PER_DAY) as u32,
                    weekday: date.weekday().num_days_from_monday(),
                    value,
                }
            })
            .collect();
        Series {
            key: self.code,
            capacity: self.capacity,
            slots_per_day: SLOTS_PER_DAY,
            measure: Measure::Occupancy,
            slots,
        }
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
    fn padded_fields_other_time_formats_and_ragged_rows_are_read_as_a_person_would() {
        let csv = "\
SystemCodeNumber,Capacity,Occupancy,LastUpdated
 A , 100 ,10, 2016-10-03 08:00:00
A,100,20,2016-10-03 08:30
A,100,30,2016-10-03T09:00:00
A,100,40,03/10/2016 09:30:00
A,100,50,03/10/2016 10:00
A,100,60
A,100,70,2016-10-03 10:30:00,extra
A,0,80,2016-10-03 11:00:00
,100,90,2016-10-03 11:30:00
";
        let (series, r) = import_occupancy_csv(csv.as_bytes()).unwrap();
        assert_eq!(r.rows, 9);
        assert_eq!(r.unreadable, 3, "{r:?}");
        let lines: Vec<u64> = r.unreadable_examples.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![7, 9, 10]);
        assert_eq!(r.unreadable_examples[2].1, "no car park code");
        let a = &series[0];
        assert_eq!(a.key, "A");
        let values: Vec<Option<f64>> = (16..22).map(|i| a.value(i)).collect();
        assert_eq!(
            values,
            [10.0, 20.0, 30.0, 40.0, 50.0, 70.0].map(Some).to_vec()
        );
    }

    #[test]
    fn of_two_readings_at_one_time_the_first_in_the_file_is_kept_whatever_the_order() {
        let csv = "\
SystemCodeNumber,Capacity,Occupancy,LastUpdated
B,100,5,2016-10-03 09:00:00
A,100,10,2016-10-03 09:00:00
A,100,40,2016-10-03 08:00:00
A,100,99,2016-10-03 09:00:00
B,100,7,2016-10-03 09:00:00
A,100,20,2016-10-03 08:10:00
";
        let (series, r) = import_occupancy_csv(csv.as_bytes()).unwrap();
        assert_eq!(r.duplicates, 2);
        assert_eq!(r.merged_into_slots, 1);
        let keys: Vec<&str> = series.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["A", "B"]);
        assert_eq!(series[0].value(16), Some(30.0));
        assert_eq!(series[0].value(18), Some(10.0));
        assert_eq!(series[1].value(18), Some(5.0));
    }

    #[test]
    fn the_first_reading_is_kept_in_a_file_large_enough_for_an_unstable_sort_to_show() {
        let start = NaiveDate::from_ymd_opt(2016, 10, 3)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let mut csv = String::from("SystemCodeNumber,Capacity,Occupancy,LastUpdated\n");
        for repeat in 0..3 {
            for slot in 0..3000 {
                let at = start + chrono::Duration::minutes(30 * slot);
                let occupancy = if repeat == 0 { 10 } else { 50 + repeat };
                csv += &format!("A,100,{occupancy},{}\n", at.format("%Y-%m-%d %H:%M:%S"));
            }
        }
        let (series, r) = import_occupancy_csv(csv.as_bytes()).unwrap();
        assert_eq!(r.duplicates, 6000);
        let kept: Vec<f64> = series[0].slots.iter().filter_map(|s| s.value).collect();
        assert_eq!(kept.len(), 3000);
        assert!(kept.iter().all(|v| *v == 10.0), "a later reading was kept");
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

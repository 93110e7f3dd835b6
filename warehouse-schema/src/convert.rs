//! Events ⇄ Arrow record batches for `fact_parking_event`.
//!
//! Both directions are driven by the column table in [`crate::tables`], through the event's JSON
//! form, so a field added to the contract needs one new column entry and nothing else.

use crate::event::Event;
use crate::tables::{Column, FACT_PARKING_EVENT, Kind, Table};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray, UInt16Array,
};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType, UInt16Type};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("row {row}: {source}")]
    Row {
        row: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("column `{0}` missing or of the wrong type")]
    Column(&'static str),
}

/// One record batch of `fact_parking_event` rows, in the order given.
pub fn events_to_batch(events: &[Event]) -> Result<RecordBatch, ConvertError> {
    let values: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).expect("events always serialize"))
        .collect();
    let arrays = FACT_PARKING_EVENT
        .iter()
        .map(|c| column_from_json(c, &values))
        .collect();
    Ok(RecordBatch::try_new(
        Table::FactParkingEvent.schema(),
        arrays,
    )?)
}

fn column_from_json(c: &Column, rows: &[Value]) -> ArrayRef {
    fn get<'v>(c: &Column, v: &'v Value) -> Option<&'v Value> {
        v.get(c.json).filter(|x| !x.is_null())
    }
    let field = |v| get(c, v);
    match c.kind {
        Kind::Utf8 => Arc::new(
            rows.iter()
                .map(|v| {
                    field(v).map(|x| match x.as_str() {
                        Some(s) => std::borrow::Cow::Borrowed(s),
                        None => std::borrow::Cow::Owned(x.to_string()),
                    })
                })
                .collect::<StringArray>(),
        ),
        Kind::Int64 => Arc::new(
            rows.iter()
                .map(|v| field(v).and_then(|x| x.as_i64()))
                .collect::<Int64Array>(),
        ),
        Kind::Int32 => Arc::new(
            rows.iter()
                .map(|v| field(v).and_then(|x| x.as_i64()).map(|x| x as i32))
                .collect::<Int32Array>(),
        ),
        Kind::UInt16 => Arc::new(
            rows.iter()
                .map(|v| field(v).and_then(|x| x.as_u64()).map(|x| x as u16))
                .collect::<UInt16Array>(),
        ),
        Kind::Float64 => Arc::new(
            rows.iter()
                .map(|v| field(v).and_then(|x| x.as_f64()))
                .collect::<Float64Array>(),
        ),
        Kind::Boolean => Arc::new(
            rows.iter()
                .map(|v| field(v).and_then(|x| x.as_bool()))
                .collect::<BooleanArray>(),
        ),
        Kind::TimestampMs => Arc::new(
            rows.iter()
                .map(|v| {
                    field(v)
                        .and_then(|x| {
                            x.as_str()
                                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        })
                        .map(|t| t.timestamp_millis())
                })
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
        Kind::Date32 | Kind::Binary => unreachable!("no event field is a date or binary"),
    }
}

/// Read events back from a `fact_parking_event` batch (e.g. one read from Parquet).
pub fn batch_to_events(batch: &RecordBatch) -> Result<Vec<Event>, ConvertError> {
    let columns: Vec<(&Column, &ArrayRef)> = FACT_PARKING_EVENT
        .iter()
        .map(|c| {
            batch
                .column_by_name(c.name)
                .map(|a| (c, a))
                .ok_or(ConvertError::Column(c.name))
        })
        .collect::<Result<_, _>>()?;
    (0..batch.num_rows())
        .map(|row| {
            let mut obj = Map::new();
            for (c, array) in &columns {
                if let Some(v) = json_at(c, array, row)? {
                    obj.insert(c.json.to_owned(), v);
                }
            }
            serde_json::from_value(Value::Object(obj))
                .map_err(|source| ConvertError::Row { row, source })
        })
        .collect()
}

fn json_at(c: &Column, a: &ArrayRef, row: usize) -> Result<Option<Value>, ConvertError> {
    if a.is_null(row) {
        return Ok(None);
    }
    let bad = || ConvertError::Column(c.name);
    Ok(Some(match c.kind {
        Kind::Utf8 => Value::from(a.as_string_opt::<i32>().ok_or_else(bad)?.value(row)),
        Kind::Int64 => Value::from(
            a.as_primitive_opt::<Int64Type>()
                .ok_or_else(bad)?
                .value(row),
        ),
        Kind::Int32 => Value::from(
            a.as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?
                .value(row),
        ),
        Kind::UInt16 => Value::from(
            a.as_primitive_opt::<UInt16Type>()
                .ok_or_else(bad)?
                .value(row),
        ),
        Kind::Float64 => Value::from(
            a.as_primitive_opt::<Float64Type>()
                .ok_or_else(bad)?
                .value(row),
        ),
        Kind::Boolean => Value::from(a.as_boolean_opt().ok_or_else(bad)?.value(row)),
        Kind::TimestampMs => {
            let ms = a
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(bad)?
                .value(row);
            let t = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(bad)?;
            Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        }
        Kind::Date32 | Kind::Binary => return Err(bad()),
    }))
}

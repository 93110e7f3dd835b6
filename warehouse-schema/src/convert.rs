//! Events ⇄ Arrow record batches for `fact_parking_event`.
//!
//! Events → Arrow goes through each event's flat row, typed and in one pass (the hot path of
//! every ingest batch); Arrow → events is driven by the column table in [`crate::tables`]
//! through the event's JSON form. A field added to the contract needs its column entry and its
//! place in the flat row; the round-trip test of every event type fails until both are there.

use crate::event::{Event, EventPayload};
use crate::tables::{Column, FACT_PARKING_EVENT, Kind, Table};
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array,
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

/// One record batch of `fact_parking_event` rows, in the order given. Each event is read once
/// into its flat row ([`Flat`]) and the columns are filled in the column table's order; a
/// column the table names that the flat row does not know is an error, so a field added to the
/// contract fails the round-trip test until it is added here too.
pub fn events_to_batch<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<RecordBatch, ConvertError> {
    let rows: Vec<Flat<'_>> = events.into_iter().map(Flat::of).collect();
    let arrays = FACT_PARKING_EVENT
        .iter()
        .map(|c| column(c, &rows))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(
        Table::FactParkingEvent.schema(),
        arrays,
    )?)
}

/// One event as its `fact_parking_event` row: the JSON contract's fields, flattened.
#[derive(Default)]
struct Flat<'a> {
    event_id: String,
    schema_version: u16,
    event_type: &'static str,
    occurred_at: i64,
    lot_id: i64,
    session_id: Option<String>,
    user_id: Option<String>,
    reservation_id: Option<String>,
    spot_id: Option<i64>,
    vehicle_type: Option<&'static str>,
    method: Option<&'a str>,
    duration_s: Option<i64>,
    amount_cents: Option<i64>,
    currency: Option<&'a str>,
    payment_id: Option<String>,
    start_at: Option<i64>,
    end_at: Option<i64>,
    reason: Option<&'a str>,
    /// A rate's reason, as JSON text in the `reason` column.
    reason_text: Option<String>,
    band: Option<&'static str>,
    day_kind: Option<&'static str>,
    cents_per_hour: Option<i64>,
    effective_from: Option<i64>,
    capacity: Option<i32>,
    name: Option<&'a str>,
    time_zone: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    monthly_pass_id: Option<String>,
}

impl<'a> Flat<'a> {
    fn of(e: &'a Event) -> Self {
        let mut f = Flat {
            event_id: e.event_id.0.to_string(),
            schema_version: e.schema_version,
            event_type: e.payload.type_name(),
            occurred_at: e.occurred_at.timestamp_millis(),
            lot_id: e.lot_id.0,
            ..Flat::default()
        };
        match &e.payload {
            EventPayload::LotRegistered(l) => {
                f.name = Some(&l.name);
                f.time_zone = Some(&l.time_zone);
                f.latitude = Some(l.latitude);
                f.longitude = Some(l.longitude);
                f.capacity = Some(l.capacity);
            }
            EventPayload::LotCapacityChanged(c) => f.capacity = Some(c.capacity),
            EventPayload::CheckIn(c) => {
                f.session_id = Some(c.session_id.0.to_string());
                f.user_id = c.user_id.map(|u| u.0.to_string());
                f.reservation_id = c.reservation_id.map(|r| r.0.to_string());
                f.spot_id = c.spot_id.map(|s| s.0);
                f.vehicle_type = Some(c.vehicle_type.as_str());
                f.method = Some(c.method.as_str());
                f.monthly_pass_id = c.monthly_pass_id.map(|m| m.0.to_string());
            }
            EventPayload::Exit(x) => {
                f.session_id = Some(x.session_id.0.to_string());
                f.duration_s = Some(x.duration_s);
                f.amount_cents = Some(x.amount_cents.0);
                f.currency = Some(&x.currency);
            }
            EventPayload::ReservationCreated(r) | EventPayload::ReservationModified(r) => {
                f.reservation_id = Some(r.reservation_id.0.to_string());
                f.user_id = Some(r.user_id.0.to_string());
                f.spot_id = Some(r.spot_id.0);
                f.start_at = Some(r.start_at.timestamp_millis());
                f.end_at = Some(r.end_at.timestamp_millis());
                f.vehicle_type = Some(r.vehicle_type.as_str());
            }
            EventPayload::ReservationCancelled(r) | EventPayload::ReservationNoShow(r) => {
                f.reservation_id = Some(r.reservation_id.0.to_string());
                f.reason = r.reason.as_deref();
            }
            EventPayload::PaymentCaptured(p)
            | EventPayload::PaymentFailed(p)
            | EventPayload::PaymentRefunded(p) => {
                f.payment_id = Some(p.payment_id.0.to_string());
                f.reservation_id = p.reservation_id.map(|r| r.0.to_string());
                f.session_id = p.session_id.map(|s| s.0.to_string());
                f.amount_cents = Some(p.amount_cents.0);
                f.currency = Some(&p.currency);
                f.reason = p.reason.as_deref();
                f.method = p.method.as_deref();
            }
            EventPayload::MonthlyPassPurchased(m) | EventPayload::MonthlyPassRenewed(m) => {
                f.monthly_pass_id = Some(m.monthly_pass_id.0.to_string());
                f.user_id = Some(m.user_id.0.to_string());
                f.vehicle_type = Some(m.vehicle_type.as_str());
                f.start_at = Some(m.start_at.timestamp_millis());
                f.end_at = Some(m.end_at.timestamp_millis());
                f.amount_cents = Some(m.amount_cents.0);
                f.currency = Some(&m.currency);
                f.spot_id = m.spot_id.map(|s| s.0);
            }
            EventPayload::MonthlyPassEnded(m) => {
                f.monthly_pass_id = Some(m.monthly_pass_id.0.to_string());
                f.reason = Some(&m.reason);
            }
            EventPayload::RatePublished(r) => {
                f.reason_text = r
                    .reason
                    .as_ref()
                    .map(|why| serde_json::to_string(why).expect("a reason serializes"));
                f.band = Some(r.band.as_str());
                f.day_kind = Some(r.day_kind.as_str());
                f.vehicle_type = Some(r.vehicle_type.as_str());
                f.cents_per_hour = Some(r.cents_per_hour.0);
                f.effective_from = Some(r.effective_from.timestamp_millis());
            }
        }
        f
    }
}

/// Column `c` of `rows`, by the contract's field name (`c.json`).
fn column(c: &Column, rows: &[Flat<'_>]) -> Result<ArrayRef, ConvertError> {
    fn text<'r>(rows: &'r [Flat<'_>], f: impl Fn(&'r Flat<'_>) -> Option<&'r str>) -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    }
    fn int(rows: &[Flat<'_>], f: impl Fn(&Flat<'_>) -> Option<i64>) -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    }
    fn time(rows: &[Flat<'_>], f: impl Fn(&Flat<'_>) -> Option<i64>) -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(f)
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        )
    }
    Ok(match c.json {
        "event_id" => text(rows, |f| Some(&f.event_id)),
        "schema_version" => Arc::new(
            rows.iter()
                .map(|f| Some(f.schema_version))
                .collect::<UInt16Array>(),
        ),
        "type" => text(rows, |f| Some(f.event_type)),
        "occurred_at" => time(rows, |f| Some(f.occurred_at)),
        "lot_id" => int(rows, |f| Some(f.lot_id)),
        "session_id" => text(rows, |f| f.session_id.as_deref()),
        "user_id" => text(rows, |f| f.user_id.as_deref()),
        "reservation_id" => text(rows, |f| f.reservation_id.as_deref()),
        "spot_id" => int(rows, |f| f.spot_id),
        "vehicle_type" => text(rows, |f| f.vehicle_type),
        "method" => text(rows, |f| f.method),
        "duration_s" => int(rows, |f| f.duration_s),
        "amount_cents" => int(rows, |f| f.amount_cents),
        "currency" => text(rows, |f| f.currency),
        "payment_id" => text(rows, |f| f.payment_id.as_deref()),
        "start_at" => time(rows, |f| f.start_at),
        "end_at" => time(rows, |f| f.end_at),
        "reason" => text(rows, |f| f.reason.or(f.reason_text.as_deref())),
        "band" => text(rows, |f| f.band),
        "day_kind" => text(rows, |f| f.day_kind),
        "cents_per_hour" => int(rows, |f| f.cents_per_hour),
        "effective_from" => time(rows, |f| f.effective_from),
        "capacity" => Arc::new(rows.iter().map(|f| f.capacity).collect::<Int32Array>()),
        "name" => text(rows, |f| f.name),
        "time_zone" => text(rows, |f| f.time_zone),
        "latitude" => Arc::new(rows.iter().map(|f| f.latitude).collect::<Float64Array>()),
        "longitude" => Arc::new(rows.iter().map(|f| f.longitude).collect::<Float64Array>()),
        "monthly_pass_id" => text(rows, |f| f.monthly_pass_id.as_deref()),
        _ => return Err(ConvertError::Column(c.name)),
    })
}

/// Read events back from a `fact_parking_event` batch (e.g. one read from Parquet). A nullable
/// column the batch lacks (a file written before the column was added) reads as null.
pub fn batch_to_events(batch: &RecordBatch) -> Result<Vec<Event>, ConvertError> {
    let columns: Vec<(&Column, &ArrayRef)> = FACT_PARKING_EVENT
        .iter()
        .filter_map(|c| match batch.column_by_name(c.name) {
            Some(a) => Some(Ok((c, a))),
            None if c.nullable => None,
            None => Some(Err(ConvertError::Column(c.name))),
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

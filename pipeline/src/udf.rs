//! Scalar functions for lot-local calendars. Buckets are UTC; a lot's time zone decides which
//! local date and 15-minute time key a bucket belongs to (a DST day has 92 or 100 of them).

use chrono::{DateTime, NaiveDate, Timelike};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int32Array};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use std::collections::HashMap;
use std::sync::Arc;
use warehouse_schema::star::TIME_GRAIN_MINUTES;

/// `local_date(epoch_ms BIGINT, tz VARCHAR) -> DATE`
pub fn local_date() -> ScalarUDF {
    create_udf(
        "local_date",
        vec![DataType::Int64, DataType::Utf8],
        DataType::Date32,
        Volatility::Immutable,
        Arc::new(|args| {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
            map_local(args, |local| {
                Ok(Arc::new(
                    local
                        .into_iter()
                        .map(|t| t.map(|t| (t.date_naive() - epoch).num_days() as i32))
                        .collect::<Date32Array>(),
                ))
            })
        }),
    )
}

/// `local_time_key(epoch_ms BIGINT, tz VARCHAR) -> INT`: the local 15-minute slot, 0..96.
pub fn local_time_key() -> ScalarUDF {
    create_udf(
        "local_time_key",
        vec![DataType::Int64, DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args| {
            map_local(args, |local| {
                Ok(Arc::new(
                    local
                        .into_iter()
                        .map(|t| {
                            t.map(|t| ((t.hour() * 60 + t.minute()) as i32) / TIME_GRAIN_MINUTES)
                        })
                        .collect::<Int32Array>(),
                ))
            })
        }),
    )
}

type Local = Option<chrono::DateTime<Tz>>;

fn map_local(
    args: &[ColumnarValue],
    f: impl Fn(Vec<Local>) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let ms = arrays[0].as_primitive_opt::<Int64Type>().ok_or_else(|| {
        DataFusionError::Execution("first argument must be BIGINT epoch ms".into())
    })?;
    let tz_col = arrays[1].as_string_opt::<i32>().ok_or_else(|| {
        DataFusionError::Execution("second argument must be a time zone name".into())
    })?;
    let mut zones: HashMap<&str, Tz> = HashMap::new();
    let mut out = Vec::with_capacity(ms.len());
    for i in 0..ms.len() {
        if ms.is_null(i) || tz_col.is_null(i) {
            out.push(None);
            continue;
        }
        let name = tz_col.value(i);
        let tz = match zones.get(name) {
            Some(tz) => *tz,
            None => {
                let tz: Tz = name.parse().map_err(|_| {
                    DataFusionError::Execution(format!("unknown time zone `{name}`"))
                })?;
                zones.insert(name, tz);
                tz
            }
        };
        out.push(DateTime::from_timestamp_millis(ms.value(i)).map(|t| t.with_timezone(&tz)));
    }
    Ok(ColumnarValue::Array(f(out)?))
}

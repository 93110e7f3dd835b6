//! ClickHouse DDL for the star schema, in the SQL subset shared by ClickHouse 18.16 and current
//! releases (no DateTime64, Map, LowCardinality or TTL).

use crate::tables::Table;

const FILES: [&str; 3] = [
    include_str!("../clickhouse/fact_parking_event.sql"),
    include_str!("../clickhouse/fact_stay.sql"),
    include_str!("../clickhouse/dimensions.sql"),
];

/// The tables of the warehouse that exist in ClickHouse (the derived and operational ones stay in
/// the lake).
pub const TABLES: [Table; 8] = [
    Table::FactParkingEvent,
    Table::FactStay,
    Table::DimLot,
    Table::DimSpot,
    Table::DimVehicleType,
    Table::DimUser,
    Table::DimDate,
    Table::DimTime,
];

/// The `CREATE TABLE` statements for database `db`, one statement per element.
pub fn ddl(db: &str) -> Vec<String> {
    FILES.iter().flat_map(|f| statements(f, db)).collect()
}

/// Columns added to a table after databases were first created with it: (table, column, type).
/// `CREATE TABLE IF NOT EXISTS` leaves an older table as it is, and ClickHouse 18.16 has no
/// `ADD COLUMN IF NOT EXISTS`, so a migration adds each one its table lacks.
pub const ADDED_COLUMNS: [(&str, &str, &str); 1] =
    [("fact_parking_event", "monthly_pass_id", "Nullable(String)")];

/// The statements that rebuild `fact_stay` and the lot, spot and user dimensions from
/// `fact_parking_event` in database `db` (idempotent: see the file's header).
pub fn refresh(db: &str) -> Vec<String> {
    statements(include_str!("../clickhouse/refresh.sql"), db)
}

fn statements(file: &str, db: &str) -> Vec<String> {
    // Comments go first: they may contain `;`.
    file.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(|s| s.trim().replace("{db}", db))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A batch of `table` (events from `convert::events_to_batch`, dimensions from `star.rs`) as
/// ClickHouse `RowBinary` rows, columns in the column table's order (the order of the DDL):
/// Date32 as `Date` (UInt16 days), Boolean as `UInt8`, times as Int64 epoch milliseconds,
/// nullable columns behind the one-byte null marker.
pub fn batch_row_binary(
    table: Table,
    batch: &arrow::array::RecordBatch,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use crate::tables::Kind;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Date32Type, Float64Type, Int32Type, Int64Type, TimestampMillisecondType, UInt16Type,
    };
    let columns: Vec<_> = table
        .columns()
        .iter()
        .map(|c| {
            batch
                .column_by_name(c.name)
                .map(|a| (c, a.clone()))
                .ok_or_else(|| format!("{} has no column {}", table.name(), c.name))
        })
        .collect::<Result<_, _>>()?;
    for row in 0..batch.num_rows() {
        for (c, a) in &columns {
            if c.nullable {
                if a.is_null(row) {
                    out.push(1);
                    continue;
                }
                out.push(0);
            }
            match c.kind {
                Kind::Utf8 => {
                    let v = a.as_string::<i32>().value(row);
                    write_varint(v.len() as u64, out);
                    out.extend_from_slice(v.as_bytes());
                }
                Kind::Int64 => {
                    out.extend_from_slice(&a.as_primitive::<Int64Type>().value(row).to_le_bytes())
                }
                Kind::Int32 => {
                    out.extend_from_slice(&a.as_primitive::<Int32Type>().value(row).to_le_bytes())
                }
                Kind::UInt16 => {
                    out.extend_from_slice(&a.as_primitive::<UInt16Type>().value(row).to_le_bytes())
                }
                Kind::Float64 => {
                    out.extend_from_slice(&a.as_primitive::<Float64Type>().value(row).to_le_bytes())
                }
                Kind::Boolean => out.push(u8::from(a.as_boolean().value(row))),
                Kind::Date32 => {
                    let days = a.as_primitive::<Date32Type>().value(row);
                    let days = u16::try_from(days)
                        .map_err(|_| format!("date {days} out of ClickHouse Date range"))?;
                    out.extend_from_slice(&days.to_le_bytes());
                }
                Kind::TimestampMs => out.extend_from_slice(
                    &a.as_primitive::<TimestampMillisecondType>()
                        .value(row)
                        .to_le_bytes(),
                ),
                Kind::Binary => return Err(format!("{}.{} is binary", table.name(), c.name)),
            }
        }
    }
    Ok(())
}

fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_declares_every_column_of_every_table() {
        let ddl = ddl("w");
        for table in TABLES {
            let stmt = ddl
                .iter()
                .find(|s| s.contains(&format!("w.{} (", table.name())))
                .unwrap_or_else(|| panic!("no DDL for {}", table.name()));
            for c in table.columns() {
                assert!(
                    stmt.lines()
                        .any(|l| l.trim_start().starts_with(&format!("{} ", c.name))),
                    "{}.{} missing from DDL",
                    table.name(),
                    c.name
                );
            }
        }
    }

    #[test]
    fn every_statement_is_one_create_table_without_comments() {
        let ddl = ddl("w");
        assert_eq!(ddl.len(), TABLES.len());
        for s in &ddl {
            assert!(s.starts_with("CREATE TABLE IF NOT EXISTS w."), "{s}");
            assert!(!s.contains("--"), "{s}");
        }
    }

    #[test]
    fn row_binary_follows_the_column_table() {
        use crate::event::RatePublished;
        use crate::{Cents, DayKind, Event, EventPayload, LotId, TimeBand, VehicleType};
        let at: chrono::DateTime<chrono::Utc> = "2026-06-01T10:00:00.123Z".parse().unwrap();
        let e = Event::new(
            at,
            LotId(7),
            EventPayload::RatePublished(RatePublished {
                band: TimeBand::at(at, chrono_tz::Tz::UTC),
                day_kind: DayKind::Weekday,
                vehicle_type: VehicleType::Car,
                cents_per_hour: Cents(275),
                effective_from: at,
                reason: None,
            }),
        );
        let mut out = Vec::new();
        let batch = crate::convert::events_to_batch(std::slice::from_ref(&e)).unwrap();
        batch_row_binary(Table::FactParkingEvent, &batch, &mut out).unwrap();
        // event_id: a 36-byte string behind its one-byte length.
        assert_eq!(out[0], 36);
        assert_eq!(&out[1..37], e.event_id.to_string().as_bytes());
        // schema_version (UInt16), then event_type as a string.
        let version = u16::from_le_bytes([out[37], out[38]]);
        assert_eq!(version, e.schema_version);
        assert_eq!(out[39] as usize, "rate_published".len());
        assert_eq!(&out[40..54], b"rate_published");
        // occurred_at: Int64 epoch milliseconds, then lot_id.
        assert_eq!(
            i64::from_le_bytes(out[54..62].try_into().unwrap()),
            at.timestamp_millis()
        );
        assert_eq!(i64::from_le_bytes(out[62..70].try_into().unwrap()), 7);
        // session_id is NULL for a rate: the null marker alone.
        assert_eq!(out[70], 1);
        assert_eq!(batch.num_columns(), crate::tables::FACT_PARKING_EVENT.len());
    }
}

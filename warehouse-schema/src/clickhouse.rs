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
    FILES
        .iter()
        .flat_map(|f| f.split(';'))
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().replace("{db}", db))
        .filter(|s| !s.is_empty())
        .collect()
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
}

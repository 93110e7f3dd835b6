//! The ClickHouse sink: events inserted in large `RowBinary` batches into the star schema of
//! `warehouse-schema` (DDL created by `parkflow warehouse migrate`).
//!
//! Replays are harmless by design: `fact_parking_event` is a `ReplacingMergeTree` whose sort key
//! ends in `event_id`, so a replayed event collapses with its first copy; exact counts before a
//! merge read the table with `FINAL`.

use crate::error::{Error, Result};
use bytes::Bytes;
use clickhouse::Client;
use serde::{Deserialize, Serialize};
use warehouse_schema::Event;

/// How to reach ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// `http://host:8123`; empty means ClickHouse is not used.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// Check row types against the server's schema. Servers older than 22.x (e.g. 18.16) lack
    /// the format this needs: turn it off for them.
    pub validation: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            database: "parkflow".into(),
            user: "default".into(),
            password: String::new(),
            validation: true,
        }
    }
}

impl ClickHouseConfig {
    pub fn is_enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }
}

#[derive(Clone)]
pub struct ClickHouseSink {
    client: Client,
    database: String,
}

impl std::fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSink")
            .field("database", &self.database)
            .finish()
    }
}

fn check_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{name}` is not a valid ClickHouse database name"
        )))
    }
}

impl ClickHouseSink {
    pub fn new(cfg: &ClickHouseConfig) -> Result<Self> {
        if !cfg.is_enabled() {
            return Err(Error::Config("clickhouse.url is empty".into()));
        }
        check_identifier(&cfg.database)?;
        let client = Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(&cfg.password)
            .with_validation(cfg.validation);
        Ok(Self {
            client,
            database: cfg.database.clone(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Create the database and every table of the star schema where missing.
    pub async fn migrate(&self) -> Result<()> {
        self.client
            .query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))
            .execute()
            .await?;
        for statement in warehouse_schema::clickhouse::ddl(&self.database) {
            self.client.query(&statement).execute().await?;
        }
        for (table, column, kind) in warehouse_schema::clickhouse::ADDED_COLUMNS {
            let present: u64 = self
                .client
                .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
                .bind(&self.database)
                .bind(table)
                .bind(column)
                .fetch_one()
                .await?;
            if present == 0 {
                let db = &self.database;
                self.client
                    .query(&format!(
                        "ALTER TABLE {db}.{table} ADD COLUMN {column} {kind}"
                    ))
                    .execute()
                    .await?;
            }
        }
        Ok(())
    }

    /// Insert `events` into `fact_parking_event` in one request.
    pub async fn insert_events(&self, events: &[Event]) -> Result<()> {
        self.insert_event_batches(&[warehouse_schema::convert::events_to_batch(events)?])
            .await
    }

    /// Insert events already converted to Arrow (record batches of `fact_parking_event`'s
    /// schema) as one insert.
    pub async fn insert_event_batches(&self, batches: &[arrow::array::RecordBatch]) -> Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let table = warehouse_schema::Table::FactParkingEvent;
        if let [batch] = batches {
            return self.insert_batch(table, batch).await;
        }
        let batch = arrow::compute::concat_batches(&table.schema(), batches)?;
        self.insert_batch(table, &batch).await
    }

    /// Rebuild `fact_stay` and the lot, spot and user dimensions from the events, and write the
    /// generated ones (vehicle types, 15-minute times, the dates the events cover).
    pub async fn refresh_derived(&self) -> Result<()> {
        for statement in warehouse_schema::clickhouse::refresh(&self.database) {
            self.client.query(&statement).execute().await?;
        }
        use warehouse_schema::{Table, star};
        self.insert_batch(Table::DimVehicleType, &star::dim_vehicle_type())
            .await?;
        self.insert_batch(Table::DimTime, &star::dim_time()).await?;
        let (first, last): (u16, u16) = self
            .client
            .query(&format!(
                "SELECT toUInt16(min(toDate(intDiv(occurred_at, 1000)))), toUInt16(max(toDate(intDiv(occurred_at, 1000)))) FROM {}.fact_parking_event",
                self.database
            ))
            .fetch_one()
            .await?;
        if first > 0 {
            let day = |d: u16| {
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                    + chrono::Duration::days(i64::from(d))
            };
            self.insert_batch(Table::DimDate, &star::dim_date(day(first), day(last)))
                .await?;
        }
        Ok(())
    }

    async fn insert_batch(
        &self,
        table: warehouse_schema::Table,
        batch: &arrow::array::RecordBatch,
    ) -> Result<()> {
        let mut body = Vec::new();
        warehouse_schema::clickhouse::batch_row_binary(table, batch, &mut body)
            .map_err(Error::Config)?;
        let columns = table
            .columns()
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = self.client.insert_formatted_with(format!(
            "INSERT INTO {}.{} ({columns}) FORMAT RowBinary",
            self.database,
            table.name()
        ));
        insert.send(Bytes::from(body)).await?;
        insert.end().await?;
        Ok(())
    }

    /// Rows of `table` after replays collapsed (`FINAL`).
    pub async fn rows(&self, table: warehouse_schema::Table) -> Result<u64> {
        Ok(self
            .client
            .query(&format!(
                "SELECT count() FROM {}.{} FINAL",
                self.database,
                table.name()
            ))
            .fetch_one::<u64>()
            .await?)
    }

    /// Rows of `fact_parking_event` after replays collapsed, and distinct event ids.
    pub async fn event_counts(&self) -> Result<(u64, u64)> {
        Ok(self
            .client
            .query(&format!(
                "SELECT count(), uniqExact(event_id) FROM {}.fact_parking_event FINAL",
                self.database
            ))
            .fetch_one::<(u64, u64)>()
            .await?)
    }

    /// The usage summary's stay figures from ClickHouse (`fact_stay` after replays collapsed,
    /// as `refresh_derived` builds it): stays, of them still open, and revenue in cents.
    pub async fn stay_totals(&self) -> Result<StayTotals> {
        let (stays, open_stays, revenue_cents) = self
            .client
            .query(&format!(
                "SELECT count(), toUInt64(sum(is_open)), toInt64(sum(ifNull(amount_cents, 0))) FROM {}.fact_stay FINAL",
                self.database
            ))
            .fetch_one::<(u64, u64, i64)>()
            .await?;
        Ok(StayTotals {
            stays,
            open_stays,
            revenue_cents,
        })
    }
}

/// Quarter-hour marks, as the lake's occupancy job counts `cars_present` at its buckets' starts.
const QUARTER_MS: i64 = 900_000;

impl ClickHouseSink {
    /// Each lot's most cars present at a quarter-hour mark before `as_of` (a stay counts at the
    /// marks in `[entered, exited)`, an open one up to `as_of`): the lake's usage summary's
    /// `max_cars_present`, from ClickHouse's `fact_stay`. Only marks of complete quarters count,
    /// as only complete buckets are written to the lake.
    pub async fn peak_present(
        &self,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(i64, i64)>> {
        let as_of = as_of.timestamp_millis();
        // `range(n)` and `arrayMap`: ClickHouse 18.16 has no two-argument `range`.
        let sql = format!(
            "SELECT lot_id, toInt64(max(present)) FROM (
                 SELECT lot_id, mark, count() AS present FROM (
                     SELECT lot_id, arrayJoin(arrayMap(i -> first + toInt64(i), range(toUInt64(greatest(last, first) - first)))) AS mark
                     FROM (
                         SELECT lot_id,
                                toInt64(intDiv(entered_at + {q} - 1, {q})) AS first,
                                toInt64(intDiv(least(ifNull(exited_at, toInt64({as_of})), toInt64({as_of})) + {q} - 1, {q})) AS last
                         FROM {db}.fact_stay FINAL
                     )
                 )
                 WHERE mark * {q} + {q} <= {as_of}
                 GROUP BY lot_id, mark
             )
             GROUP BY lot_id ORDER BY lot_id",
            q = QUARTER_MS,
            db = self.database,
        );
        Ok(self.client.query(&sql).fetch_all::<(i64, i64)>().await?)
    }
}

/// What ClickHouse says of the stays: the same figures as the lake's usage summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StayTotals {
    pub stays: u64,
    pub open_stays: u64,
    pub revenue_cents: i64,
}

//! The star schema: every warehouse table, its columns and their Arrow types, defined once.
//!
//! Facts: `fact_parking_event` (one row per event, written by ingest) and `fact_stay` (one row per
//! stay, derived by the pipeline). Dimensions: lot, spot, vehicle type, user (pseudonymous key
//! only), date, and time of day at a 15-minute grain. Derived: `occupancy_15m`. Operational:
//! `_dead_letters`. Other crates use these names and schemas; none spells a column itself.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, LazyLock};

/// Column kinds used in the warehouse. Times are UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Utf8,
    Int64,
    Int32,
    UInt16,
    Float64,
    Boolean,
    Date32,
    TimestampMs,
    Binary,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Utf8 => DataType::Utf8,
            Kind::Int64 => DataType::Int64,
            Kind::Int32 => DataType::Int32,
            Kind::UInt16 => DataType::UInt16,
            Kind::Float64 => DataType::Float64,
            Kind::Boolean => DataType::Boolean,
            Kind::Date32 => DataType::Date32,
            Kind::TimestampMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Kind::Binary => DataType::Binary,
        }
    }
}

/// One column: its warehouse name, the event JSON field it comes from (if any), and its type.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub json: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

const fn req(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        json: name,
        kind,
        nullable: false,
    }
}
const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        json: name,
        kind,
        nullable: true,
    }
}
const fn renamed(name: &'static str, json: &'static str, kind: Kind, nullable: bool) -> Column {
    Column {
        name,
        json,
        kind,
        nullable,
    }
}

/// Column names that code outside this crate refers to.
pub mod col {
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const OCCURRED_AT: &str = "occurred_at";
    pub const LOT_ID: &str = "lot_id";
    pub const SESSION_ID: &str = "session_id";
    pub const SPOT_ID: &str = "spot_id";
    pub const USER_KEY: &str = "user_key";
    pub const RESERVATION_ID: &str = "reservation_id";
    pub const VEHICLE_TYPE: &str = "vehicle_type";
    pub const METHOD: &str = "method";
    pub const DURATION_S: &str = "duration_s";
    pub const AMOUNT_CENTS: &str = "amount_cents";
    pub const CURRENCY: &str = "currency";
    pub const CAPACITY: &str = "capacity";
    pub const LOT_NAME: &str = "lot_name";
    pub const TIME_ZONE: &str = "time_zone";
    pub const ENTERED_AT: &str = "entered_at";
    pub const EXITED_AT: &str = "exited_at";
    pub const IS_OPEN: &str = "is_open";
    pub const BUCKET_START: &str = "bucket_start";
    pub const LOCAL_DATE: &str = "local_date";
    pub const LOCAL_TIME_KEY: &str = "local_time_key";
    pub const CARS_PRESENT: &str = "cars_present";
    pub const AVG_OCCUPIED: &str = "avg_occupied";
    pub const OCCUPANCY_RATIO: &str = "occupancy_ratio";
    pub const ARRIVALS: &str = "arrivals";
    pub const DEPARTURES: &str = "departures";
    pub const MONTHLY_PASS_ID: &str = "monthly_pass_id";
}

use Kind::*;

/// `fact_parking_event`: one row per event; payload fields not used by a type are null.
pub const FACT_PARKING_EVENT: &[Column] = &[
    req("event_id", Utf8),
    req("schema_version", UInt16),
    renamed("event_type", "type", Utf8, false),
    req("occurred_at", TimestampMs),
    req("lot_id", Int64),
    opt("session_id", Utf8),
    // The operational user id is an opaque UUID; the warehouse knows it only under this name and
    // never joins it with contact data.
    renamed("user_key", "user_id", Utf8, true),
    opt("reservation_id", Utf8),
    opt("spot_id", Int64),
    opt("vehicle_type", Utf8),
    opt("method", Utf8),
    opt("duration_s", Int64),
    opt("amount_cents", Int64),
    opt("currency", Utf8),
    opt("payment_id", Utf8),
    opt("start_at", TimestampMs),
    opt("end_at", TimestampMs),
    opt("reason", Utf8),
    opt("band", Utf8),
    opt("day_kind", Utf8),
    opt("cents_per_hour", Int64),
    opt("effective_from", TimestampMs),
    opt("capacity", Int32),
    renamed("lot_name", "name", Utf8, true),
    opt("time_zone", Utf8),
    opt("latitude", Float64),
    opt("longitude", Float64),
    // Added after the first lakes were written: files without it read it as null.
    opt("monthly_pass_id", Utf8),
];

/// `fact_stay`: one row per stay (open stays included, flagged), derived from check-in and exit.
pub const FACT_STAY: &[Column] = &[
    req("session_id", Utf8),
    req("lot_id", Int64),
    opt("spot_id", Int64),
    opt("user_key", Utf8),
    opt("reservation_id", Utf8),
    req("vehicle_type", Utf8),
    req("method", Utf8),
    req("entered_at", TimestampMs),
    opt("exited_at", TimestampMs),
    opt("duration_s", Int64),
    opt("amount_cents", Int64),
    opt("currency", Utf8),
    req("is_reservation", Boolean),
    req("is_open", Boolean),
];

pub const DIM_LOT: &[Column] = &[
    req("lot_id", Int64),
    req("lot_name", Utf8),
    req("time_zone", Utf8),
    req("latitude", Float64),
    req("longitude", Float64),
    req("capacity", Int32),
    req("registered_at", TimestampMs),
];

pub const DIM_SPOT: &[Column] = &[
    req("spot_id", Int64),
    req("lot_id", Int64),
    req("first_seen_at", TimestampMs),
];

pub const DIM_VEHICLE_TYPE: &[Column] = &[req("vehicle_type", Utf8), req("fits_spots", Utf8)];

pub const DIM_USER: &[Column] = &[req("user_key", Utf8), req("first_seen_at", TimestampMs)];

pub const DIM_DATE: &[Column] = &[
    req("date", Date32),
    req("year", Int32),
    req("month", Int32),
    req("day", Int32),
    req("iso_weekday", Int32),
    req("iso_week", Int32),
    req("is_weekend", Boolean),
];

pub const DIM_TIME: &[Column] = &[
    req("time_key", Int32),
    req("hour", Int32),
    req("minute", Int32),
    req("band", Utf8),
];

/// `occupancy_15m`: per lot per UTC 15-minute bucket, with the bucket's local date and time key.
pub const OCCUPANCY_15M: &[Column] = &[
    req("lot_id", Int64),
    req("bucket_start", TimestampMs),
    req("local_date", Date32),
    req("local_time_key", Int32),
    req("capacity", Int32),
    req("cars_present", Int64),
    req("avg_occupied", Float64),
    req("occupancy_ratio", Float64),
    req("arrivals", Int64),
    req("departures", Int64),
];

/// `occupancy_15m_vehicle`: the measures of `occupancy_15m` per vehicle type, only for buckets
/// in which that type was present, arrived or left. Summed over the types of a bucket they give
/// the lot's row (`occupancy_ratio` is a share of the whole lot's capacity).
pub const OCCUPANCY_15M_VEHICLE: &[Column] = &[
    req("lot_id", Int64),
    req("bucket_start", TimestampMs),
    req("vehicle_type", Utf8),
    req("cars_present", Int64),
    req("avg_occupied", Float64),
    req("occupancy_ratio", Float64),
    req("arrivals", Int64),
    req("departures", Int64),
];

/// `open_stays`: the stays still open at `day_start` (a UTC midnight), the state the occupancy
/// job carries from one day into the next so that a day is recomputed from its own events.
pub const OPEN_STAYS: &[Column] = &[
    req("day_start", TimestampMs),
    req("session_id", Utf8),
    req("lot_id", Int64),
    req("vehicle_type", Utf8),
    req("entered_at", TimestampMs),
];

pub const DEAD_LETTERS: &[Column] = &[
    req("source", Utf8),
    req("received_at", TimestampMs),
    req("reason", Utf8),
    req("detail", Utf8),
    req("payload", Binary),
];

/// The lake has two writers, each committing through its own manifest: ingest appends events
/// and dead letters; the pipeline replaces derived tables and dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Ingested,
    Derived,
}

impl Section {
    pub fn manifest_file(self) -> &'static str {
        match self {
            Self::Ingested => "_manifest.json",
            Self::Derived => "_derived_manifest.json",
        }
    }

    pub fn tables(self) -> impl Iterator<Item = Table> {
        Table::ALL.into_iter().filter(move |t| t.section() == self)
    }
}

/// Every table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    FactParkingEvent,
    FactStay,
    DimLot,
    DimSpot,
    DimVehicleType,
    DimUser,
    DimDate,
    DimTime,
    Occupancy15m,
    Occupancy15mVehicle,
    OpenStays,
    DeadLetters,
}

impl Table {
    pub const ALL: [Table; 12] = [
        Self::FactParkingEvent,
        Self::FactStay,
        Self::DimLot,
        Self::DimSpot,
        Self::DimVehicleType,
        Self::DimUser,
        Self::DimDate,
        Self::DimTime,
        Self::Occupancy15m,
        Self::Occupancy15mVehicle,
        Self::OpenStays,
        Self::DeadLetters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::FactParkingEvent => "fact_parking_event",
            Self::FactStay => "fact_stay",
            Self::DimLot => "dim_lot",
            Self::DimSpot => "dim_spot",
            Self::DimVehicleType => "dim_vehicle_type",
            Self::DimUser => "dim_user",
            Self::DimDate => "dim_date",
            Self::DimTime => "dim_time",
            Self::Occupancy15m => "occupancy_15m",
            Self::Occupancy15mVehicle => "occupancy_15m_vehicle",
            Self::OpenStays => "open_stays",
            Self::DeadLetters => "_dead_letters",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Self::FactParkingEvent => FACT_PARKING_EVENT,
            Self::FactStay => FACT_STAY,
            Self::DimLot => DIM_LOT,
            Self::DimSpot => DIM_SPOT,
            Self::DimVehicleType => DIM_VEHICLE_TYPE,
            Self::DimUser => DIM_USER,
            Self::DimDate => DIM_DATE,
            Self::DimTime => DIM_TIME,
            Self::Occupancy15m => OCCUPANCY_15M,
            Self::Occupancy15mVehicle => OCCUPANCY_15M_VEHICLE,
            Self::OpenStays => OPEN_STAYS,
            Self::DeadLetters => DEAD_LETTERS,
        }
    }

    /// The Arrow schema, built once per table.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<SchemaRef>> = LazyLock::new(|| {
            Table::ALL
                .iter()
                .map(|t| {
                    Arc::new(Schema::new(
                        t.columns()
                            .iter()
                            .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
                            .collect::<Vec<_>>(),
                    ))
                })
                .collect()
        });
        let idx = Table::ALL.iter().position(|t| *t == self).expect("listed");
        SCHEMAS[idx].clone()
    }

    /// Which writer owns the table (and so which manifest lists its files).
    pub fn section(self) -> Section {
        match self {
            Self::FactParkingEvent | Self::DeadLetters => Section::Ingested,
            _ => Section::Derived,
        }
    }

    /// The folder key of a table partitioned by UTC date: ingested facts by event date
    /// (`event_date=YYYY-MM-DD`), occupancy by the date of the bucket (`bucket_date=…`); the
    /// rest are one folder each.
    pub fn partition_key(self) -> Option<&'static str> {
        match self {
            Self::FactParkingEvent | Self::DeadLetters => Some("event_date"),
            Self::Occupancy15m | Self::Occupancy15mVehicle | Self::OpenStays => Some("bucket_date"),
            _ => None,
        }
    }

    pub fn is_date_partitioned(self) -> bool {
        self.partition_key().is_some()
    }
}

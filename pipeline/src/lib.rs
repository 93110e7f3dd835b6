//! DataFusion jobs over the Parquet lake: the refresh job builds stays, 15-minute occupancy
//! (incrementally, a day at a time) and the dimensions; queries turn them into the inputs of pricing, forecasting and reports. The
//! pipeline reads only committed files and never writes the operational database.

pub mod context;
pub mod error;
pub mod occupancy;
pub mod queries;
pub mod refresh;
pub mod report;
pub mod udf;

pub use error::{Error, Result};
pub use occupancy::{BUCKET_MS, OccupancyRun, refresh_occupancy};
pub use queries::{
    band_occupancy, data_end, driver_entries, lot_hours, lot_time_zones, recorded_stays,
    usage_summary,
};
pub use refresh::{RefreshReport, refresh};
pub use report::usage_report;

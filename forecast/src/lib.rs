//! Arrival and occupancy forecasting for lots, and the backtests that say whether to trust it.
//!
//! - [`series`]: the regular per-lot series everything works on (from the lake's lot-hours or
//!   an imported CSV).
//! - [`model`]: a calendar profile corrected per horizon by a linfa ridge regression on seasonal
//!   lags and the latest readings; forecasts the next 24 hours.
//! - [`backtest`]: rolling-origin evaluation against persistence and same-slot-last-week.
//! - [`driver`]: the probability that a known driver arrives at a lot in an hour, from their
//!   own history, with precision and recall against "same hour last week".
//! - [`free_spot`]: the chance of a free spot at a time, from the occupancy forecast and its
//!   own error distribution, and its reliability table and Brier score against climatology.
//! - [`import`]: the public `SystemCodeNumber,Capacity,Occupancy,LastUpdated` CSV format,
//!   cleaned.
//!
//! Knows nothing of HTTP or storage formats.

pub mod backtest;
pub mod driver;
pub mod free_spot;
pub mod import;
pub mod model;
pub mod series;

pub use backtest::{Backtest, HorizonRow, Scores, backtest, held_out_days};
pub use free_spot::{FreeSpotModel, Reliability, reliability};
pub use model::LotModel;
pub use series::{Measure, Series, Slot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not enough history: {0}")]
    NotEnoughHistory(String),
    #[error("model fit failed for lot {lot}: {message}")]
    Fit { lot: String, message: String },
    #[error("cannot import the CSV: {0}")]
    Import(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of a backtest that found no series long enough, naming each and why.
pub(crate) fn none_long_enough(skipped: &[(String, String)]) -> Error {
    Error::NotEnoughHistory(format!(
        "no series long enough: {}",
        skipped
            .iter()
            .map(|(k, why)| format!("{k} ({why})"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

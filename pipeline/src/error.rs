//! Errors of the pipeline jobs.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Lake(#[from] warehouse_schema::lake::LakeError),
    #[error("unexpected result shape: {0}")]
    Shape(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Errors of the ingest path.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("outbox: {0}")]
    Outbox(#[from] sqlx::Error),
    #[error(transparent)]
    Lake(#[from] warehouse_schema::lake::LakeError),
    #[error("arrow conversion: {0}")]
    Convert(#[from] warehouse_schema::convert::ConvertError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// A task of the ingest path panicked or was cancelled (the ClickHouse insert's).
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("configuration: {0}")]
    Config(String),
    /// A fail point stopped the batch here, as a crash would (tests of recovery).
    #[error("injected failure at {0:?}")]
    Injected(crate::FailPoint),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

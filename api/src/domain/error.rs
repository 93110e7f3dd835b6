//! The one error type of the API's core. A caller's mistake is a variant with a stable `code`
//! (`not_found`, `spot_taken`, …); a fault of ours (storage, configuration) carries its cause.
//! Only the HTTP edge (`http::error::ApiError`) knows status codes and the JSON envelope.

/// A storage fault, boxed so the core does not name the driver's error type; the store layer
/// converts its driver's errors into it and alone looks inside (to tell lost races apart).
pub type StorageError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    Invalid(String),
    /// Well-formed input that cannot be acted on, with a specific code (e.g. `invalid_pass`).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("this credential may not {0}")]
    Forbidden(&'static str),
    #[error("storage: {0}")]
    Storage(StorageError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("too many attempts; retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64 },
    /// No database connection came free (or could be made) for as long as a request waits
    /// for one: the service is overloaded or its database out of reach, and the same request
    /// may simply be sent again.
    #[error("the service cannot take this request now; retry in {retry_after_s} s")]
    Unavailable { retry_after_s: u64 },
    /// A payment was declined or failed, or a balance is too low.
    #[error("{message}")]
    PaymentRequired { code: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The code of [`Error::key_in_progress`].
pub const KEY_IN_PROGRESS: &str = "request_in_progress";

impl Error {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The refusal of a request whose `Idempotency-Key` another request holds: the keyed
    /// scheme's own (`crate::http::idempotency`), whichever layer finds the key taken.
    pub fn key_in_progress() -> Self {
        Self::conflict(
            KEY_IN_PROGRESS,
            "a request with this Idempotency-Key is still in progress; retry shortly",
        )
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// The stable code a client can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::PaymentRequired { code, .. } => code,
            Self::Invalid(_) => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::TooManyRequests { .. } => "too_many_attempts",
            Self::Unavailable { .. } => "service_unavailable",
            Self::Storage(_) | Self::Config(_) => "internal",
        }
    }

    /// Whether the caller caused this (as opposed to a fault of ours).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::Storage(_) | Self::Config(_) | Self::Unavailable { .. }
        )
    }
}

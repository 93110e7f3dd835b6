//! The one error type of the API and its JSON envelope `{ "error": { "code", "message" } }`.
//!
//! Caller mistakes map to 4xx with a stable `code`; storage failures are bugs or outages, map
//! to 500 with a generic message, and are logged here, once, with their cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    Storage(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("too many attempts; retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64 },
    /// A payment was declined or failed, or a balance is too low.
    #[error("{message}")]
    PaymentRequired { code: &'static str, message: String },
    /// A request the HTTP layer refused before a handler saw it (405, 413, 415).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn rejected(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Rejected { status, .. } => *status,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Invalid(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::Storage(_) | Self::Migrate(_) | Self::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. }
            | Self::Rejected { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::PaymentRequired { code, .. } => code,
            Self::Invalid(_) => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::TooManyRequests { .. } => "too_many_attempts",
            Self::Storage(_) | Self::Migrate(_) | Self::Config(_) => "internal",
        }
    }

    /// Whether the caller caused this (as opposed to a fault of ours).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }
}

impl Error {
    /// The JSON body of this error; a server error shows no internals.
    pub fn envelope(&self) -> serde_json::Value {
        let message = if self.status().is_server_error() {
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        json!({ "error": { "code": self.code(), "message": message } })
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(self.envelope())).into_response()
    }
}

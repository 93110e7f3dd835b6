//! `ApiError`: the only place that knows HTTP status codes and the JSON envelope
//! `{ "error": { "code", "message" } }`.
//!
//! A core [`Error`] maps to its status here: caller mistakes to 4xx with their stable code,
//! faults of ours (storage, configuration) to 500 with a generic message, logged here, once,
//! with their cause. Requests the edge refuses before a handler runs (405, 413, 415) are
//! [`ApiError::Rejected`].

use crate::domain::error::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] Error),
    /// A request the HTTP layer refused before a handler saw it (405, 413, 415).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

/// What a handler returns.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn rejected(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        let e = match self {
            Self::Core(e) => e,
            Self::Rejected { status, .. } => return *status,
        };
        match e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Invalid(_) | Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            Error::Storage(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Core(e) => e.code(),
            Self::Rejected { code, .. } => code,
        }
    }

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(self.envelope())).into_response()
    }
}

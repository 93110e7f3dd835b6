//! `ApiError`: the only place that knows HTTP status codes and the JSON envelope
//! `{ "error": { "code", "message" } }`.
//!
//! A core [`Error`] maps to its status here: caller mistakes to 4xx with their stable code,
//! faults of ours (storage, configuration) to 500 with a generic message, logged here, once,
//! with their cause; an overloaded or unreachable database (no connection for as long as a
//! request waits) to 503 `service_unavailable`. A 429 or 503 says in `Retry-After` when to
//! try again. Requests the edge refuses before a handler runs (405, 413, 415) are
//! [`ApiError::Rejected`].

use crate::domain::error::Error;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Storage(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A fault of ours: its message is not shown to the client (its cause is logged instead).
    pub fn is_fault(&self) -> bool {
        self.status() == StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The seconds after which the same request may be sent again (429, 503).
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::Core(
                Error::TooManyRequests { retry_after_s } | Error::Unavailable { retry_after_s },
            ) => Some(*retry_after_s),
            _ => None,
        }
    }

    /// `response` (this error's, as JSON or a portal page) with the headers the error asks
    /// for, and the error logged: a fault with its cause, an overload as a warning.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(s) = self.retry_after_s() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.is_fault() {
            tracing::error!(error = %self, "request failed");
        } else if self.status().is_server_error() {
            tracing::warn!(error = %self, "request refused");
        }
        response
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Core(e) => e.code(),
            Self::Rejected { code, .. } => code,
        }
    }

    /// The JSON body of this error; a server error shows no internals.
    pub fn envelope(&self) -> serde_json::Value {
        let message = if self.is_fault() {
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        json!({ "error": { "code": self.code(), "message": message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.finish((self.status(), Json(self.envelope())).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A pool that gave no connection in its wait is an overload, told apart from a fault: 503
    /// with when to retry and a message the client may read, where a fault is a 500 that
    /// shows nothing of its cause.
    #[tokio::test]
    async fn no_connection_in_the_wait_is_503_with_retry_after_and_a_fault_is_500() {
        let answer = |e: sqlx::Error| async move {
            let r = ApiError::from(Error::from(e)).into_response();
            let (status, retry_after) = (r.status(), r.headers().get(header::RETRY_AFTER).cloned());
            let body = r.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (status, retry_after, body)
        };
        let (status, retry_after, body) = answer(sqlx::Error::PoolTimedOut).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.unwrap(), "1");
        assert_eq!(body["error"]["code"], "service_unavailable");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("retry in 1 s")
        );

        let (status, retry_after, body) = answer(sqlx::Error::PoolClosed).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(retry_after.is_none());
        assert_eq!(
            body["error"],
            serde_json::json!({"code": "internal", "message": "internal error"})
        );
    }
}

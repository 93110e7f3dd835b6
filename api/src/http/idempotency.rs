//! The one idempotency scheme of every keyed request (a booking, a payment, a top-up).
//!
//! A driver's `Idempotency-Key` is bound, the first time it is used, to a fingerprint of that
//! request: its method, its path (which names the reservation a payment is for) and its body
//! in canonical form. Then:
//! - the same key with the same request gets the first answer again, byte for byte;
//! - the same key with another request is refused (422 `idempotency_key_reused`);
//! - a request whose key is still in flight waits for that request's answer (or, after
//!   [`WAIT`], is told to retry: 409 `request_in_progress`), so concurrent retries of one
//!   booking all get the booking, never "no spot".
//!
//! A request whose whole effect is one change of the store (a booking) claims its key and keeps
//! its answer in that change ([`Keyed::run_in_change`]): nothing of it is seen before it
//! commits, and a retry meets the key's row only once the answer is in it.
//!
//! Answers that changed something are kept: 2xx, and 402 (a declined payment is recorded).
//! Any other error leaves nothing behind, so the driver can retry the same request with the
//! same key once the cause is gone. The aggregates keep their own unique key columns as well
//! (`reservations`, `payments`): they make the effect happen once even when a process dies
//! between its commit and storing the answer here, after which the next retry takes the
//! expired claim over and finds the effect already there.

use crate::domain::error::{Error, KEY_IN_PROGRESS};
use crate::http::error::{ApiError, Result};
use crate::http::from_json_value;
use crate::store::{Store, idempotency as keys};
use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;
use warehouse_schema::UserId;

/// How long a retry waits for the request holding its key.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a claim stands without an answer before another request may take it over (its
/// holder is taken to have died).
const LEASE_MS: i64 = 60_000;
const POLL: Duration = Duration::from_millis(15);

/// A keyed request's body, its `Idempotency-Key` and its fingerprint.
pub struct Keyed<T> {
    pub key: String,
    pub fingerprint: String,
    pub body: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Keyed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = key_of(req.headers())?;
        let head = format!("{} {}", req.method(), req.uri().path());
        let crate::http::ApiJson(value) =
            crate::http::ApiJson::<Value>::from_request(req, state).await?;
        let fingerprint = fingerprint(&head, &value);
        Ok(Self {
            key,
            fingerprint,
            body: from_json_value(value)?,
        })
    }
}

impl<T> Keyed<T> {
    /// Answer this request once per (`user`, key) with `action`, given the body and the key
    /// (see the module documentation).
    pub async fn run<F, Fut>(
        self,
        service: &crate::services::Services,
        user: UserId,
        action: F,
    ) -> Result<Response>
    where
        F: FnOnce(T, String) -> Fut,
        Fut: Future<Output = Result<(StatusCode, Value)>>,
    {
        let Self {
            key,
            fingerprint,
            body,
        } = self;
        let held = key.clone();
        run(
            service.store(),
            || service.now(),
            user,
            (&key, &fingerprint),
            || action(body, held),
        )
        .await
    }
}

impl<T: Clone> Keyed<T> {
    /// [`run`](Self::run) for a request whose whole effect is one change of the store (a
    /// booking): `action` is given the request's fingerprint, and its change claims the key
    /// and keeps its answer itself (`Change::keep_answer`), so a first request takes the
    /// store's writer once instead of three times. When the action is refused (the key was
    /// taken, or any other refusal) and the key holds an earlier request's, the request is
    /// answered as every keyed request is ([`run`](Self::run)): the earlier answer, a refusal
    /// of another request's key, a wait; and should the key be free again, `action` runs once
    /// more, given no fingerprint, under a claim taken here.
    pub async fn run_in_change<F, Fut>(
        self,
        service: &crate::services::Services,
        user: UserId,
        action: F,
    ) -> Result<Response>
    where
        F: Fn(T, String, Option<String>) -> Fut,
        Fut: Future<Output = Result<(StatusCode, Value)>>,
    {
        let first = action(
            self.body.clone(),
            self.key.clone(),
            Some(self.fingerprint.clone()),
        )
        .await;
        match first {
            Ok((status, body)) => return Ok(Answer { status, body }.into_response()),
            Err(e) if !e.status().is_client_error() => return Err(e),
            // The key is another request's, maybe not committed yet (on SQLite, waiting in the
            // writer's group commit, where only the writer sees it): the claim below waits
            // for it through the writer.
            Err(e) if e.code() == KEY_IN_PROGRESS => {}
            // Nothing was kept: a key no earlier request holds gets the refusal. (A refusal
            // comes from a reader only once the index holds the bookings before it, that is
            // once they committed, their keys with them.)
            Err(e) => {
                if keys::find(service.store().pool(), user, &self.key)
                    .await?
                    .is_none()
                {
                    return Err(e);
                }
            }
        }
        self.run(service, user, |body, key| action(body, key, None))
            .await
    }
}

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters.
fn key_of(headers: &axum::http::HeaderMap) -> Result<String> {
    let raw = headers
        .get("idempotency-key")
        .ok_or_else(|| Error::Invalid("the Idempotency-Key header is required".into()))?;
    let key = raw.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Invalid(
            "an Idempotency-Key is 1 to 200 visible ASCII characters".into(),
        )
        .into());
    }
    Ok(key.to_owned())
}

/// SHA-256 of the request line and the body with its object keys sorted.
fn fingerprint(head: &str, body: &Value) -> String {
    let mut text = String::from(head);
    text.push('\n');
    canonical(body, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What a finished request answered.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Run `action` once per (`user`, key): see the module documentation. `action` answers with a
/// status and a JSON body.
async fn run<F, Fut>(
    store: &Store,
    now: impl Fn() -> DateTime<Utc>,
    user: UserId,
    keyed: (&str, &str),
    action: F,
) -> Result<Response>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Value)>>,
{
    let (key, fingerprint) = keyed;
    if let Some(answer) = claim(store, &now, user, key, fingerprint).await? {
        return Ok(answer.into_response());
    }
    let outcome = action().await;
    let kept = match &outcome {
        Ok((status, body)) => Some((*status, body.clone())),
        Err(e) if e.status() == StatusCode::PAYMENT_REQUIRED => Some((e.status(), e.envelope())),
        Err(_) => None,
    };
    match kept {
        Some((status, body)) => {
            let at = now().timestamp_millis();
            let body = body.to_string();
            keys::complete(store.writer(), user, key, status.as_u16(), &body, at).await?;
        }
        None => keys::release(store.writer(), user, key).await?,
    }
    outcome.map(|(status, body)| Answer { status, body }.into_response())
}

/// Take the key for this request (None), or find the answer it already has (Some), waiting
/// while another request holds it.
async fn claim(
    store: &Store,
    now: &impl Fn() -> DateTime<Utc>,
    user: UserId,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Answer>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let at = now().timestamp_millis();
        let lease = at.saturating_add(LEASE_MS);
        if keys::insert(store.writer(), user, key, fingerprint, at, lease).await? {
            return Ok(None);
        }
        // Released meanwhile by a request that failed: try to take it again.
        let Some(stored) = keys::find(store.pool(), user, key).await? else {
            continue;
        };
        if stored.fingerprint != fingerprint {
            return Err(Error::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            ).into());
        }
        if let (Some(status), Some(response)) = (stored.status_code, stored.response) {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let body = serde_json::from_str(&response).unwrap_or(Value::Null);
            return Ok(Some(Answer { status, body }));
        }
        if stored.locked_until < at
            && keys::take_over(store.writer(), user, key, stored.locked_until, lease).await?
        {
            return Ok(None);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::key_in_progress().into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_key_order_and_whitespace_but_not_the_path() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(fingerprint("POST /p/1", &a), fingerprint("POST /p/1", &b));
        assert_ne!(fingerprint("POST /p/1", &a), fingerprint("POST /p/2", &a));
        let c: Value = serde_json::from_str(r#"{"b": 2, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        assert_ne!(fingerprint("POST /p/1", &a), fingerprint("POST /p/1", &c));
    }
}

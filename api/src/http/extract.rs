//! The extractors of the HTTP layer: JSON bodies, query strings and path segments whose
//! rejections use our error envelope (naming the field, never a Rust type), the client address
//! (`X-Forwarded-For` only from trusted proxies) and the caller's role from the bearer token.

use super::{AppState, Role};
use crate::domain::error::Error;
use crate::http::error::ApiError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use warehouse_schema::{LotId, UserId};

/// A JSON body whose rejections use our envelope: 400 for text that is not JSON, 413 past the
/// body limit, 415 without a JSON content type, 422 for JSON of the wrong shape (naming the
/// field, never our type names).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsed as a JSON value first, so syntax is the only 400 and every type error (a
        // number where a name belongs, an array where an object belongs) is the same 422.
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(e) => return Err(json_rejection(e)),
        };
        from_json_value(value).map(Self)
    }
}

/// Our envelope for axum's own JSON rejections.
pub(crate) fn json_rejection(e: JsonRejection) -> ApiError {
    let status = e.status();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::rejected(
            status,
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::rejected(
            status,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        _ => Error::BadRequest(format!("the body is not valid JSON: {}", source_of(&e))).into(),
    }
}

/// The innermost cause of a rejection (serde_json's line and column), without axum's prefix.
pub(crate) fn source_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// `T` from a JSON object; anything else, or a field of the wrong type, is a 422 that names
/// the field.
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(Error::Invalid("the body must be a JSON object".into()).into());
    }
    serde_path_to_error::deserialize(integral_numbers(value))
        .map_err(|e| {
            let path = field_path(e.path());
            let message = plain_serde_message(&e.inner().to_string());
            Error::Invalid(if path.is_empty() {
                message
            } else {
                format!("`{path}`: {message}")
            })
        })
        .map_err(ApiError::from)
}

/// JSON does not tell `5` from `5.0`, and neither does JSON Schema's `integer`: a number with
/// no fractional part is read as an integer wherever one is expected.
pub(crate) fn integral_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A field path as a client wrote it: `rates[0].band`, `spots` (a map key's own name is
/// not known to the deserializer, so it is left out).
pub(crate) fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// serde's message without our Rust type names: "expected struct Point with 2 elements"
/// becomes "expected an object".
pub(crate) fn plain_serde_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "struct ".len()..];
        let name_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_end == 0 {
            out.push_str("struct ");
            rest = after;
            continue;
        }
        out.push_str("an object");
        rest = &after[name_end..];
        if let Some(tail) = rest.strip_prefix(" with ") {
            let digits = tail
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(tail.len());
            let unit = &tail[digits..];
            if digits > 0 {
                for word in [" elements", " element"] {
                    if let Some(after_unit) = unit.strip_prefix(word) {
                        rest = after_unit;
                        break;
                    }
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// Query parameters whose rejections use our envelope (422).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| Error::Invalid(plain_serde_message(&source_of(&e))))
            .map_err(ApiError::from)
    }
}

/// One path segment parsed as `T`; anything unparsable is a 404 (no such resource).
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: std::str::FromStr> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| Error::BadRequest(e.body_text()))?;
        raw.parse::<T>()
            .map(Self)
            .map_err(|_| Error::NotFound(raw))
            .map_err(ApiError::from)
    }
}

/// A lot id from the path; anything but a positive integer is a 404 (no such lot).
pub struct LotPath(pub LotId);

impl<S: Send + Sync> FromRequestParts<S> for LotPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Id(id) = Id::<i64>::from_request_parts(parts, state).await?;
        if id > 0 {
            Ok(Self(LotId(id)))
        } else {
            Err(Error::NotFound(format!("lot {id}")).into())
        }
    }
}

/// The client address, for per-client login limits ("unknown" when served without
/// connection info): the peer, or what a trusted proxy says in `X-Forwarded-For`.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(Self(client_address(
            peer,
            &forwarded,
            &state.trusted_proxies,
        )))
    }
}

/// The client behind `peer`: when the peer is a trusted proxy, the right-most address of
/// `X-Forwarded-For` (all its headers, in order) that is not itself a trusted proxy — the
/// left part of the header is whatever the client wrote and is never believed.
pub fn client_address(
    peer: Option<std::net::IpAddr>,
    forwarded: &[&str],
    trusted: &[std::net::IpAddr],
) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let hops: Vec<&str> = forwarded
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip.to_string(),
            // An unreadable hop: the chain cannot be followed past it.
            Err(_) => return peer.to_string(),
        }
    }
    peer.to_string()
}

/// The caller's role (and account, for drivers), from `Authorization: Bearer <token>`.
pub struct Caller {
    pub role: Role,
    pub user: Option<UserId>,
    /// A driver's saved workplace, read when the token was checked.
    pub workplace: Option<(f64, f64)>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(Error::Unauthorized)?;
        let t = &state.tokens;
        if let Some(role) = [
            (Role::Admin, &t.admin),
            (Role::Gate, &t.gate),
            (Role::Pricing, &t.pricing),
        ]
        .into_iter()
        .find(|(_, secret)| secret.matches(token))
        .map(|(role, _)| role)
        {
            return Ok(Self {
                role,
                user: None,
                workplace: None,
            });
        }
        let p = state.accounts.authenticate(token).await?;
        Ok(Self {
            role: if p.admin { Role::Admin } else { Role::Driver },
            user: Some(p.user),
            workplace: p.workplace,
        })
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme name is case-insensitive
/// (RFC 7235 section 2.1).
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller when an `Authorization` header is present; `None` for anonymous calls. A header
/// that is present but invalid is still refused (401), never silently ignored.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Ok(Self(Some(Caller::from_request_parts(parts, state).await?)))
        } else {
            Ok(Self(None))
        }
    }
}

impl MaybeCaller {
    /// [`Caller::near`] for a caller who may be anonymous (then `given` alone).
    pub(crate) fn near(&self, given: Option<(f64, f64)>) -> Option<(f64, f64)> {
        match &self.0 {
            Some(caller) => caller.near(given),
            None => given,
        }
    }
}

impl Caller {
    /// `given`, else the driver's saved workplace: the point distances are measured from.
    pub(crate) fn near(&self, given: Option<(f64, f64)>) -> Option<(f64, f64)> {
        given.or(self.workplace)
    }

    pub(crate) fn require(&self, allowed: &[Role], action: &'static str) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::Forbidden(action).into())
        }
    }

    /// Who the audit log names for this caller's admin actions.
    pub(crate) fn actor(&self) -> crate::services::admin::Actor {
        match self.user {
            Some(user) => crate::services::admin::Actor::account(user),
            None => crate::services::admin::Actor::admin_token(),
        }
    }

    /// The driver's own account (reservations and vehicles belong to one).
    pub(crate) fn driver(&self) -> Result<UserId, ApiError> {
        match (self.role, self.user) {
            (Role::Driver | Role::Admin, Some(user)) => Ok(user),
            _ => Err(Error::Forbidden("act for a driver").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // Straight from a client: its own header is ignored.
        assert_eq!(
            client_address(Some(ip("203.0.113.9")), &["1.2.3.4"], &proxies),
            "203.0.113.9"
        );
        // Through two proxies: the right-most untrusted hop; a spoofed left part is ignored.
        assert_eq!(
            client_address(
                Some(ip("10.0.0.1")),
                &["6.6.6.6, 198.51.100.7", "10.0.0.2"],
                &proxies
            ),
            "198.51.100.7"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &[], &proxies),
            "10.0.0.1"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &["junk"], &proxies),
            "10.0.0.1"
        );
        assert_eq!(client_address(None, &["1.2.3.4"], &proxies), "unknown");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn serde_messages_name_no_rust_types() {
        assert_eq!(
            plain_serde_message("invalid length 1, expected struct Point with 2 elements"),
            "invalid length 1, expected an object"
        );
        assert_eq!(
            plain_serde_message("invalid type: sequence, expected struct ReservationBody"),
            "invalid type: sequence, expected an object"
        );
        assert_eq!(
            plain_serde_message("missing field `lotId`"),
            "missing field `lotId`"
        );
    }
}

//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`, and a docs page at
//! `/docs` rendered from the same document (self-contained: no scripts from elsewhere).
//!
//! Derived from the code (`http::ApiDoc`: each handler's `#[utoipa::path]`, each body's
//! `ToSchema`); a test checks that every route in `http/mod.rs` is described and the API tests
//! that every described operation is routed.

pub(crate) mod docs;

pub use docs::docs_page;

use axum::Json;
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::OpenApi;

#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This document",
    responses(
        (status = 200, description = "OK", body = Object),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub async fn document() -> Json<Value> {
    Json(spec().clone())
}

/// The document, built once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc =
            serde_json::to_value(crate::http::ApiDoc::openapi()).expect("the document serializes");
        combinations(&mut doc["components"]["schemas"]);
        optional_headers_are_not_null(&mut doc["paths"]);
        unavailable_when_the_database_is(&mut doc["paths"]);
        doc
    })
}

/// The rules over combinations of fields that JSON Schema states and utoipa's derive cannot:
/// a booking names exactly one of `vehicleType` and `vehicleId`; a change names at least one
/// field and at most one of the two. The server checks the same (`http::reservations`).
fn combinations(schemas: &mut Value) {
    schemas["NewReservation"]["oneOf"] =
        serde_json::json!([{ "required": ["vehicleType"] }, { "required": ["vehicleId"] }]);
    schemas["ReservationChange"]["minProperties"] = 1.into();
    schemas["ReservationChange"]["not"] =
        serde_json::json!({ "required": ["vehicleType", "vehicleId"] });
}

/// An optional header is absent or has a value: utoipa types an `Option` header as
/// `[type, "null"]`, which a client would read as leave to send the text `null`.
fn optional_headers_are_not_null(paths: &mut Value) {
    let Some(paths) = paths.as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in operation.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params.iter_mut().filter(|p| p["in"] == "header") {
                if let Some(types) = p["schema"]["type"].as_array() {
                    let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                    if let [one] = kept.as_slice() {
                        p["schema"]["type"] = one.clone();
                    }
                }
            }
        }
    }
}

/// Every operation that uses the database (all but this document, its page and the metrics)
/// may be answered 503 `service_unavailable`, with `Retry-After`, when no connection comes
/// free for as long as a request waits (`store::POSTGRES_WAIT`): stated once here rather than
/// in each handler's responses.
fn unavailable_when_the_database_is(paths: &mut Value) {
    let Some(paths) = paths.as_object_mut() else {
        return;
    };
    let response = serde_json::json!({
        "description": "The database is overloaded or out of reach; send the same request again after Retry-After seconds",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before sending the request again",
                "required": true,
                "schema": { "type": "integer", "minimum": 1 }
            }
        },
        "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/Error" } }
        }
    });
    for (path, item) in paths.iter_mut() {
        if ["/openapi.json", "/docs", "/metrics"].contains(&path.as_str()) {
            continue;
        }
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                responses.insert("503".into(), response.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("…")` in the router is described (the other direction is tested over
    /// HTTP in the API tests: every described operation is routed).
    #[test]
    fn every_route_is_described() {
        let source = include_str!("../mod.rs");
        let routes: Vec<&str> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .collect();
        assert!(routes.len() > 15, "{routes:?}");
        let paths = spec()["paths"].as_object().unwrap();
        for route in routes {
            assert!(
                paths.contains_key(route),
                "{route} is not in the OpenAPI document"
            );
        }
    }

    /// The document as a client sees it: any change to the wire format shows up here, for
    /// review (`cargo insta review`), before it reaches a client.
    #[test]
    fn the_document_is_as_reviewed() {
        insta::assert_json_snapshot!("openapi", spec());
    }

    #[test]
    fn every_schema_reference_resolves() {
        let text = spec().to_string();
        let schemas = spec()["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}

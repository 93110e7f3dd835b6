//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`, and a docs page at
//! `/docs` rendered from the same document (self-contained: no scripts from elsewhere).
//!
//! Written by hand next to the routes; a test checks that every route in `http.rs` is described
//! and that every described operation is routed.

mod docs;
mod operations;
mod schemas;

pub use docs::docs_page;
use operations::operations;
use schemas::schemas;

use axum::Json;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Who {
    Anyone,
    Driver,
    Staff(&'static str),
}

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    who: Who,
    params: &'static [Param],
    body: Option<&'static str>,
    ok: (u16, &'static str),
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    who: Who,
    body: Option<&'static str>,
    ok: (u16, &'static str),
) -> Op {
    Op {
        method,
        path,
        summary,
        who,
        params: &[],
        body,
        ok,
    }
}

/// A parameter: name, where it goes, required, description, and the kind of value.
type Param = (&'static str, &'static str, bool, &'static str, Kind);

/// The value a parameter takes, as the server checks it.
#[derive(Clone, Copy)]
enum Kind {
    LotId,
    Uuid,
    Time,
    Vehicle,
    Point,
    Key,
    Page,
    PerPage,
    Limit,
}

impl Kind {
    fn schema(self) -> Value {
        match self {
            Self::LotId => json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX }),
            Self::Uuid => json!({ "type": "string", "format": "uuid" }),
            Self::Time => json!({ "type": "string", "format": "date-time" }),
            Self::Vehicle => {
                json!({ "type": "string", "enum": ["car", "ev", "motorcycle", "van"] })
            }
            Self::Point => {
                json!({ "type": "string", "description": "latitude,longitude in degrees",
                        "pattern": "^-?(90(\\.0{1,8})?|[1-8]?[0-9](\\.[0-9]{1,8})?),-?(180(\\.0{1,8})?|(1[0-7][0-9]|[1-9]?[0-9])(\\.[0-9]{1,8})?)$" })
            }
            Self::Key => {
                json!({ "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$" })
            }
            Self::Page => json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
            Self::PerPage | Self::Limit => {
                json!({ "type": "integer", "minimum": 1, "maximum": 100 })
            }
        }
    }
}

const NEAR: Param = (
    "near",
    "query",
    false,
    "latitude,longitude to measure distances from (default: the driver's workplace)",
    Kind::Point,
);

const IDEMPOTENCY_KEY: Param = (
    "Idempotency-Key",
    "header",
    true,
    "the same key with the same request returns the first answer again; with another request it is refused (422)",
    Kind::Key,
);

const LOT: Param = ("lot_id", "path", true, "lot id", Kind::LotId);

const RESERVATION: Param = ("reservation_id", "path", true, "reservation id", Kind::Uuid);

fn build() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let ok = match (o.ok.0, o.ok.1) {
            (204, _) => json!({ "description": "Done; no body" }),
            (_, "Html") => {
                json!({ "description": "OK", "content": { "text/html": { "schema": { "type": "string" } } } })
            }
            (_, "OpenMetrics") => {
                json!({ "description": "OK", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } })
            }
            (_, name) => {
                json!({ "description": "OK", "content": { "application/json": { "schema": schema_ref(name) } } })
            }
        };
        let mut operation = json!({
            "summary": o.summary,
            "responses": {
                o.ok.0.to_string(): ok,
                "4XX": { "description": "Bad input, missing rights, not found, conflict or too many attempts", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        match o.who {
            Who::Anyone => {}
            Who::Driver => {
                operation["security"] = json!([{ "driver": [] }]);
            }
            Who::Staff(which) => {
                operation["security"] = json!([{ "staff": [] }]);
                operation["description"] = json!(format!("Static bearer token of: {which}."));
            }
        }
        if !o.params.is_empty() {
            operation["parameters"] = o
                .params
                .iter()
                .map(|(name, place, required, description, kind)| {
                    json!({ "name": name, "in": place, "required": required, "description": description, "schema": kind.schema() })
                })
                .collect();
        }
        if let Some(body) = o.body {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(body) } } });
        }
        paths
            .entry(o.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(o.method.into(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "parkflow operational API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Lots, availability, reservations that never double-book, gate passes, entries and exits. Times are RFC 3339 with an offset. Every error is {\"error\": {\"code\", \"message\"}} with a 4xx for bad input.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "driver": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "access token from POST /v1/sessions" },
                "staff": { "type": "http", "scheme": "bearer", "description": "static admin, gate or pricing token" },
            },
        },
    })
}

fn schema_ref(name: &str) -> Value {
    if schemas().get(name).is_some() {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    } else {
        json!({ "type": "object", "title": name })
    }
}

/// The document, built once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(build)
}

pub async fn document() -> Json<Value> {
    Json(spec().clone())
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

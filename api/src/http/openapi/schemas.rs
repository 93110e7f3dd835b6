//! The JSON schemas of what clients send (strict: unknown fields refused) and what the server
//! answers: derived from the Rust types by utoipa (`http::WireTypes` lists them), with the
//! limits the server enforces (`crate::schema`).

use serde_json::Value;
use utoipa::OpenApi;

pub(super) fn schemas() -> Value {
    let components = crate::http::WireTypes::openapi()
        .components
        .expect("the wire types are components");
    serde_json::to_value(components.schemas).expect("schemas serialize")
}

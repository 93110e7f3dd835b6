//! The `/docs` page, rendered from the same document by a template that escapes every value.

use super::*;
use axum::response::Html;
use serde_json::Value;

pub(super) struct DocParam {
    name: String,
    place: String,
    required: bool,
    description: String,
}

pub(super) struct DocOperation {
    method: String,
    path: String,
    summary: String,
    params: Vec<DocParam>,
}

pub(super) struct DocSchema {
    name: String,
    json: String,
}

#[derive(askama::Template)]
#[template(path = "docs/page.html")]
pub(super) struct DocsPage {
    title: String,
    description: String,
    operations: Vec<DocOperation>,
    schemas: Vec<DocSchema>,
}

pub(super) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The docs page: every operation with its parameters, and every schema, from the same
/// document (rendered by a template that escapes every value).
#[utoipa::path(
    get,
    path = "/docs",
    summary = "Human-readable API documentation",
    responses(
        (status = 200, description = "OK", body = String, content_type = "text/html"),
        (status = "4XX", description = "Bad input, missing rights, not found, conflict or too many attempts", body = crate::http::wire::ErrorBody),
    ),
)]
pub async fn docs_page() -> Result<Html<String>, crate::http::error::ApiError> {
    use askama::Template;
    let spec = spec();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| DocParam {
                    name: text(&p["name"]),
                    place: text(&p["in"]),
                    required: p["required"].as_bool() == Some(true),
                    description: text(&p["description"]),
                })
                .collect();
            operations.push(DocOperation {
                method: method.clone(),
                path: path.clone(),
                summary: text(&op["summary"]),
                params,
            });
        }
    }
    let schemas = spec["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| DocSchema {
            name: name.clone(),
            json: serde_json::to_string_pretty(schema).unwrap_or_default(),
        })
        .collect();
    let page = DocsPage {
        title: text(&spec["info"]["title"]),
        description: text(&spec["info"]["description"]),
        operations,
        schemas,
    };
    page.render()
        .map(Html)
        .map_err(|e| crate::domain::error::Error::Config(format!("docs template: {e}")).into())
}

//! Pages served as they are (no data rendered in on the server), which talk to the API from
//! the browser: the drivers' app at `/` (an installable web app: `api/pages/app/`) and the
//! gate page for an entrance machine or an attendant's handheld (`api/pages/gate.html`).

use super::AppState;
use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// What a page may load and whom it may talk to: only this origin (its own inline script and
/// style, the camera's stream), never framed by another site.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The app's policy: its script and style come from its own files, never inline, so text a
/// user or the API supplies cannot run as script.
const APP_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data: blob:; manifest-src 'self'; worker-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/gate", get(gate))
        .route("/", get(|| file("text/html; charset=utf-8", APP_INDEX)))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", APP_JS)),
        )
        .route("/app.css", get(|| file("text/css; charset=utf-8", APP_CSS)))
        .route(
            "/sw.js",
            get(|| file("text/javascript; charset=utf-8", APP_WORKER)),
        )
        .route("/icon.svg", get(|| file("image/svg+xml", APP_ICON)))
        .route(
            "/manifest.webmanifest",
            get(|| file("application/manifest+json", APP_MANIFEST)),
        )
}

const APP_INDEX: &str = include_str!("../../pages/app/index.html");
const APP_JS: &str = include_str!("../../pages/app/app.js");
const APP_CSS: &str = include_str!("../../pages/app/app.css");
const APP_WORKER: &str = include_str!("../../pages/app/sw.js");
const APP_ICON: &str = include_str!("../../pages/app/icon.svg");
const APP_MANIFEST: &str = include_str!("../../pages/app/manifest.webmanifest");

/// One of the app's files; revalidated on each load (the service worker keeps a copy for
/// offline use).
async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, APP_POLICY),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The gate: scans a pass (camera where the browser has a barcode detector, else a focused
/// input a keyboard-wedge scanner types into) and shows OPEN or REFUSED with the reason in
/// large type; at an exit gate, the charge.
async fn gate() -> impl IntoResponse {
    page(include_str!("../../pages/gate.html"))
}

fn page(html: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Html(html),
    )
}

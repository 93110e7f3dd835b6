//! Pages served as they are (no data rendered in on the server): the gate page for an
//! entrance machine or an attendant's handheld, which signs in with the gate token and talks
//! to the API from the browser.

use super::AppState;
use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// What a page may load and whom it may talk to: only this origin (its own inline script and
/// style, the camera's stream), never framed by another site.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/gate", get(gate))
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

//! Live availability over Server-Sent Events: a lot's (or several lots') free spots and rates,
//! pushed as they change; and a driver's new messages. A client that does not ask for `text/event-stream` gets the state
//! now as JSON and the response ends, so a plain `GET` (a script, a fuzzer) never hangs.

use super::AppState;
use super::extract::*;
use crate::domain::error::Error;
use crate::http::error::ApiError;
use crate::notifications;
use crate::services::live::{LotLive, LotWatch, StreamSlot};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use warehouse_schema::LotId;

/// Several lots' live states.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveLots {
    pub lots: Vec<LotLive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LotsQuery {
    lots: String,
}

#[utoipa::path(
    get,
    path = "/v1/lots/{lot_id}/live",
    summary = "A lot's free spots per vehicle type and rates, live",
    description = "With `Accept: text/event-stream`: Server-Sent Events, one `lot` event (JSON data, the event id its outbox position) now and one each time what a driver sees changes (entries, exits, bookings, cancellations, rate publications — of any API process on the database); a comment line every `live.heartbeat_s` seconds. Reconnecting with `Last-Event-ID` sends the lot again only if it changed after that position. Otherwise: the state now as JSON.",
    params(
        ("lot_id" = i64, Path, description = "lot id", minimum = 1),
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received (an outbox position), to resume a stream", pattern = "^[0-9]{1,18}$"),
    ),
    responses(
        (status = 200, description = "The state now (JSON), or the stream", content(
            (crate::services::live::LotLive = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = "4XX", description = "Bad input, not found, or too many lots watched by open streams", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn lot_live(
    State(state): State<AppState>,
    LotPath(lot): LotPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let live = state.services.live();
    last_event_id(&headers)?;
    if !wants_stream(&headers) {
        return Ok(Json(live.now_state(lot).await?).into_response());
    }
    stream_of(&state, &[lot], &headers).await
}

#[utoipa::path(
    get,
    path = "/v1/live",
    summary = "Several lots' free spots and rates, live",
    description = "As `/v1/lots/{lot_id}/live` for each lot of `lots` on one stream (each event names its lot; the event id is the highest outbox position sent).",
    params(
        ("lots" = String, Query, description = "comma-separated lot ids, 1 to `live.max_lots_per_stream` (default 1,000)", pattern = "^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,999}$"),
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received (an outbox position), to resume a stream", pattern = "^[0-9]{1,18}$"),
    ),
    responses(
        (status = 200, description = "The states now (JSON), or the stream", content(
            (LiveLots = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = "4XX", description = "Bad input, not found, or too many lots watched by open streams", body = crate::http::wire::ErrorBody),
    ),
)]
pub(super) async fn lots_live(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LotsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let max = state.services.live_config().max_lots_per_stream;
    let lots = parse_lots(&q.lots, max)?;
    last_event_id(&headers)?;
    if !wants_stream(&headers) {
        let live = state.services.live();
        let mut states = Vec::with_capacity(lots.len());
        for lot in lots {
            states.push(live.now_state(lot).await?);
        }
        return Ok(Json(LiveLots { lots: states }).into_response());
    }
    stream_of(&state, &lots, &headers).await
}

#[utoipa::path(
    get,
    path = "/v1/notifications/live",
    summary = "The driver's new messages, live",
    description = "With `Accept: text/event-stream`: Server-Sent Events, one `message` event per new message of the driver (JSON data as in `/v1/notifications`, the event id the message id), from any API process; a comment line every `live.heartbeat_s` seconds. With `Last-Event-ID` the messages after that one come first. Otherwise: the messages after `Last-Event-ID` (all when absent) as JSON, oldest first, at most 100.",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last message received", pattern = "^[0-9]{1,18}$"),
    ),
    responses(
        (status = 200, description = "The messages (JSON), or the stream", content(
            (crate::http::wire::Notifications = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = "4XX", description = "Bad input, missing rights, or too many open streams", body = crate::http::wire::ErrorBody),
    ),
    security(("driver" = [])),
)]
pub(super) async fn inbox_live(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = caller.driver()?;
    let last = last_event_id(&headers)?;
    let store = state.services.store().clone();
    if !wants_stream(&headers) {
        let items = notifications::of_user_after(&store, user, last.unwrap_or(0), 100).await?;
        return Ok(Json(crate::http::wire::Notifications { items }).into_response());
    }
    let live = state.services.live();
    live.start().await?;
    let slot = live.open_stream(1)?;
    let watch = live.watch_inbox(user);
    // Without a resume point, only what arrives from now on.
    let after = last.unwrap_or_else(|| live.inbox_position());
    const PAGE: i64 = 100;
    let messages = stream::unfold(
        (watch, after, last.is_some(), store),
        move |(mut watch, after, now, store)| async move {
            if !now {
                watch.changed().await.ok()?;
            }
            // A failed read sends nothing and moves nothing: the next wake-up reads again.
            let new = notifications::of_user_after(&store, user, after, PAGE)
                .await
                .unwrap_or_default();
            let next = new.last().map_or(after, |m| m.id);
            // A full page may not be all: read the rest at once, not at the next message.
            let more = new.len() as i64 == PAGE;
            Some((new, (watch, next, more, store)))
        },
    )
    .flat_map(stream::iter)
    .map(move |m| {
        let _holds = &slot;
        Ok::<_, Infallible>(
            Event::default()
                .event("message")
                .id(m.id.to_string())
                .data(serde_json::to_string(&m).unwrap_or_default()),
        )
    });
    Ok(sse(&state, messages))
}

/// `1,2,3` → distinct lot ids in the order given. Each is as the document's pattern says: 1 to
/// 18 digits, no leading zero, nothing around it.
fn parse_lots(raw: &str, max: usize) -> Result<Vec<LotId>, Error> {
    let mut lots = Vec::new();
    for part in raw.split(',') {
        let id: i64 = Some(part)
            .filter(|p| {
                (1..=18).contains(&p.len())
                    && !p.starts_with('0')
                    && p.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::Invalid(format!("lots: `{part}` is not a lot id")))?;
        if !lots.contains(&LotId(id)) {
            lots.push(LotId(id));
        }
    }
    if lots.len() > max {
        return Err(Error::Invalid(format!(
            "lots: at most {max} lots per stream, got {}",
            lots.len()
        )));
    }
    Ok(lots)
}

/// Whether the client asked for an event stream (an `EventSource` always does).
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// The `Last-Event-ID` a reconnecting client sends: an outbox position, 1 to 18 digits as the
/// document says (checked on every request, stream or not).
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, Error> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or("").trim();
    Some(raw)
        .filter(|r| (1..=18).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|r| r.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::BadRequest("Last-Event-ID must be the id of an event this stream sent".into())
        })
}

async fn stream_of(
    state: &AppState,
    lots: &[LotId],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let last = last_event_id(headers)?;
    let live = state.services.live();
    live.start().await?;
    let slot = live.open_stream(lots.len())?;
    let mut watches = Vec::with_capacity(lots.len());
    for lot in lots {
        watches.push(live.watch(*lot).await?);
    }
    Ok(sse(state, events(watches, last, slot)))
}

/// `events` as a Server-Sent Events response, with a heartbeat comment every
/// `live.heartbeat_s` seconds.
fn sse(
    state: &AppState,
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let heartbeat = Duration::from_secs(state.services.live_config().heartbeat_s.max(1));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response()
}

/// The SSE events of `watches`: each lot's state when it is newer than `last`, then each
/// change. The stream holds `slot` (and the watches): a client that goes away frees both.
fn events(
    watches: Vec<LotWatch>,
    last: Option<i64>,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let updates = stream::select_all(watches.into_iter().map(|w| Box::pin(updates(w, last))));
    let mut first = true;
    updates.map(move |state| {
        let _holds = &slot;
        let mut event = Event::default()
            .event("lot")
            .id(state.position.to_string())
            .data(serde_json::to_string(&*state).unwrap_or_default());
        if std::mem::take(&mut first) {
            // How long a browser waits before reconnecting after a dropped connection.
            event = event.retry(Duration::from_secs(2));
        }
        Ok(event)
    })
}

/// One lot's states newer than `last`, as they come.
fn updates(watch: LotWatch, last: Option<i64>) -> impl Stream<Item = Arc<LotLive>> {
    stream::unfold((watch, last, true), |(mut watch, last, first)| async move {
        let mut first = first;
        loop {
            if !first {
                // The hub dropped the lot (nobody else watched it and ...): end.
                watch.changed().await.ok()?;
            }
            first = false;
            let state = watch.borrow_and_update().clone();
            if let Some(state) = state
                && last.is_none_or(|l| state.position > l)
            {
                let position = state.position;
                return Some((state, (watch, Some(position), false)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lots_are_ids_distinct_and_bounded() {
        assert_eq!(parse_lots("3,1,3", 50).unwrap(), vec![LotId(3), LotId(1)]);
        for bad in [
            "",
            "a",
            "1,,2",
            "0",
            "01",
            "-1",
            "+1",
            " 1",
            "1.5",
            "1000000000000000000",
        ] {
            assert!(parse_lots(bad, 50).is_err(), "{bad}");
        }
        assert!(parse_lots("1,2,3", 2).is_err());
    }
}

//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`, and a docs page at
//! `/docs` rendered from the same document (self-contained: no scripts from elsewhere).
//!
//! Written by hand next to the routes; a test checks that every route in `http.rs` is described
//! and that every described operation is routed.

use axum::Json;
use axum::response::Html;
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

fn operations() -> Vec<Op> {
    use Who::*;
    vec![
        op(
            "get",
            "/healthz",
            "Liveness and database check",
            Anyone,
            None,
            (200, "Status"),
        ),
        op(
            "get",
            "/metrics",
            "Prometheus metrics (OpenMetrics text)",
            Anyone,
            None,
            (200, "OpenMetrics"),
        ),
        op(
            "get",
            "/openapi.json",
            "This document",
            Anyone,
            None,
            (200, "Document"),
        ),
        op(
            "get",
            "/docs",
            "Human-readable API documentation",
            Anyone,
            None,
            (200, "Html"),
        ),
        op(
            "post",
            "/v1/accounts",
            "Register a driver",
            Anyone,
            Some("Credentials"),
            (201, "UserCreated"),
        ),
        op(
            "post",
            "/v1/sessions",
            "Log in: a short-lived access token and a refresh token; failed attempts are limited per account and per IP (429)",
            Anyone,
            Some("Credentials"),
            (200, "SessionTokens"),
        ),
        op(
            "post",
            "/v1/sessions/refresh",
            "Spend a refresh token for new tokens",
            Anyone,
            Some("Refresh"),
            (200, "SessionTokens"),
        ),
        op(
            "get",
            "/v1/vehicles",
            "The driver's vehicles",
            Driver,
            None,
            (200, "Vehicles"),
        ),
        op(
            "post",
            "/v1/vehicles",
            "Register a vehicle (plate, region, vehicle type)",
            Driver,
            Some("NewVehicle"),
            (201, "Vehicle"),
        ),
        Op {
            params: &[RESERVATION, IDEMPOTENCY_KEY],
            ..op(
                "post",
                "/v1/reservations/{reservation_id}/payments",
                "Pay a reservation by card token, wallet token or balance (Idempotency-Key required; 402 when declined)",
                Driver,
                Some("PaymentMethod"),
                (201, "Payment"),
            )
        },
        op(
            "get",
            "/v1/me/notification-preferences",
            "The driver's channels: e-mail and push (in-app is always on)",
            Driver,
            None,
            (200, "Preferences"),
        ),
        op(
            "put",
            "/v1/me/notification-preferences",
            "Choose the channels: `{\"email\": true, \"push\": false}`",
            Driver,
            Some("Preferences"),
            (200, "Preferences"),
        ),
        op(
            "get",
            "/v1/me/balance",
            "The driver's prepaid balance",
            Driver,
            None,
            (200, "Balance"),
        ),
        Op {
            params: &[IDEMPOTENCY_KEY],
            ..op(
                "post",
                "/v1/me/balance/top-ups",
                "Top up the prepaid balance by card or wallet token (Idempotency-Key required)",
                Driver,
                Some("TopUp"),
                (201, "Payment"),
            )
        },
        op(
            "post",
            "/v1/payments/webhook",
            "The payment gateway's signed events (X-Gateway-Signature); each event id is handled once",
            Anyone,
            Some("GatewayEvent"),
            (200, "Handled"),
        ),
        op(
            "post",
            "/v1/waitlist",
            "Wait for a full lot's window (409 when spots are free); `autoBook` books the first spot that frees up",
            Driver,
            Some("JoinWaitlist"),
            (201, "WaitlistEntry"),
        ),
        op(
            "get",
            "/v1/waitlist",
            "The driver's waitlist entries, newest first",
            Driver,
            None,
            (200, "WaitlistEntries"),
        ),
        op(
            "post",
            "/v1/inquiries",
            "Ask the operator something (optionally about one of the driver's reservations); admins answer in the portal and the answer arrives as a message",
            Driver,
            Some("NewInquiry"),
            (201, "Inquiry"),
        ),
        op(
            "get",
            "/v1/inquiries",
            "The driver's inquiries with their answers, newest first",
            Driver,
            None,
            (200, "Inquiries"),
        ),
        Op {
            params: &[("entry_id", "path", true, "waitlist entry id", Kind::Uuid)],
            ..op(
                "delete",
                "/v1/waitlist/{entry_id}",
                "Leave the waitlist",
                Driver,
                None,
                (204, "Withdrawn"),
            )
        },
        op(
            "get",
            "/v1/me/export",
            "Everything stored about the driver: account, vehicles, reservations, stays, messages",
            Driver,
            None,
            (200, "Export"),
        ),
        op(
            "delete",
            "/v1/me",
            "Erase the driver's account: upcoming reservations cancelled, plates removed, the rest keyed only by the random user id",
            Driver,
            None,
            (200, "Erasure"),
        ),
        Op {
            params: &[("limit", "query", false, "1 to 100, default 50", Kind::Limit)],
            ..op(
                "get",
                "/v1/notifications",
                "The driver's messages, newest first",
                Driver,
                None,
                (200, "Notifications"),
            )
        },
        op(
            "get",
            "/v1/me/workplace",
            "The driver's saved workplace",
            Driver,
            None,
            (200, "Workplace"),
        ),
        op(
            "put",
            "/v1/me/workplace",
            "Save the driver's workplace: lots and spots nearest to it come first",
            Driver,
            Some("Point"),
            (200, "Workplace"),
        ),
        Op {
            params: &[NEAR],
            ..op(
                "get",
                "/v1/lots",
                "Lots with capacity, free spots and the rate now; nearest first when a point or workplace is known",
                Anyone,
                None,
                (200, "Lots"),
            )
        },
        op(
            "post",
            "/v1/lots",
            "Create a lot with spots per vehicle type",
            Staff("admin"),
            Some("NewLot"),
            (201, "Lot"),
        ),
        Op {
            params: &[LOT],
            ..op(
                "get",
                "/v1/lots/{lot_id}",
                "One lot",
                Anyone,
                None,
                (200, "Lot"),
            )
        },
        Op {
            params: &[LOT],
            ..op(
                "get",
                "/v1/lots/{lot_id}/rates",
                "Rates in force and announced",
                Anyone,
                None,
                (200, "RateSchedule"),
            )
        },
        Op {
            params: &[LOT],
            ..op(
                "put",
                "/v1/lots/{lot_id}/rates",
                "Publish rates (per band, day kind, vehicle type, effective from)",
                Staff("pricing or admin"),
                Some("PublishRates"),
                (200, "Published"),
            )
        },
        Op {
            params: &[
                ("lot-id", "query", true, "lot id", Kind::LotId),
                (
                    "start-at",
                    "query",
                    true,
                    "RFC 3339 with offset",
                    Kind::Time,
                ),
                ("end-at", "query", true, "RFC 3339 with offset", Kind::Time),
                (
                    "vehicle-type",
                    "query",
                    true,
                    "car, ev, motorcycle or van",
                    Kind::Vehicle,
                ),
                NEAR,
            ],
            ..op(
                "get",
                "/v1/parkingspots",
                "Spots free for the whole window, best fit then nearest first; answered from the in-memory availability index",
                Anyone,
                None,
                (200, "FreeSpots"),
            )
        },
        Op {
            params: &[IDEMPOTENCY_KEY],
            ..op(
                "post",
                "/v1/reservations",
                "Reserve a spot (named, or the best free one) for a window; answers with the price quote and the gate pass",
                Driver,
                Some("NewReservation"),
                (201, "ReservationWithPass"),
            )
        },
        Op {
            params: &[
                ("page", "query", false, "from 1", Kind::Page),
                ("perPage", "query", false, "1 to 100", Kind::PerPage),
            ],
            ..op(
                "get",
                "/v1/reservations",
                "The driver's reservations, latest start first",
                Driver,
                None,
                (200, "ReservationPage"),
            )
        },
        Op {
            params: &[RESERVATION],
            ..op(
                "get",
                "/v1/reservations/{reservation_id}",
                "One of the driver's reservations (others' are 404)",
                Driver,
                None,
                (200, "Reservation"),
            )
        },
        Op {
            params: &[RESERVATION],
            ..op(
                "patch",
                "/v1/reservations/{reservation_id}",
                "Change window, vehicle or spot before the start, with the same no-overlap guarantee",
                Driver,
                Some("ReservationChange"),
                (200, "Reservation"),
            )
        },
        Op {
            params: &[RESERVATION],
            ..op(
                "get",
                "/v1/reservations/{reservation_id}/pass",
                "The signed gate pass (QR/NFC) and its entry window",
                Driver,
                None,
                (200, "GatePass"),
            )
        },
        Op {
            params: &[RESERVATION],
            ..op(
                "post",
                "/v1/reservations/{reservation_id}/cancel",
                "Cancel: answers with a cancellation id",
                Driver,
                None,
                (200, "Cancellation"),
            )
        },
        Op {
            params: &[LOT],
            ..op(
                "post",
                "/v1/gates/{lot_id}/entries",
                "A vehicle enters by pass, by plate, or as a drive-up; 409 lot_full",
                Staff("gate or admin"),
                Some("GateEntry"),
                (201, "CheckInReceipt"),
            )
        },
        Op {
            params: &[LOT],
            ..op(
                "post",
                "/v1/gates/{lot_id}/exits",
                "A vehicle leaves (by session id, pass or plate) and is charged",
                Staff("gate or admin"),
                Some("GateExit"),
                (200, "ExitReceipt"),
            )
        },
    ]
}

fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time", "description": "RFC 3339 with offset; stored in UTC" });
    let vehicle = json!({ "type": "string", "enum": ["car", "ev", "motorcycle", "van"] });
    let band =
        json!({ "type": "string", "enum": ["night", "morning", "midday", "afternoon", "evening"] });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let nullable = |v: Value| json!({ "anyOf": [v, { "type": "null" }] });
    // Rust's `char::is_control` (Unicode Cc: U+0000–U+001F, U+007F–U+009F) is what the server
    // refuses; at least one character is not white space (the value is trimmed).
    let text = |max: u32| {
        json!({ "type": "string", "minLength": 1, "maxLength": max,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        "description": "no control characters, not only spaces; surrounding spaces are trimmed" })
    };
    let paragraphs = |max: u32| {
        json!({ "type": "string", "minLength": 1, "maxLength": max,
        "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$",
        "description": "line breaks and tabs allowed, no other control character, not only spaces" })
    };
    let plate = json!({ "type": "string", "pattern": "^[ .\\-]*([A-Za-z0-9ÄÖÜäöü][ .\\-]*){1,16}$",
        "description": "1 to 16 letters and digits, with spaces, dashes and dots between them that are dropped (stored upper-cased)" });
    let time_zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    let cents = json!({ "type": "integer", "minimum": 0, "maximum": 100_000 });
    let latitude = json!({ "type": "number", "minimum": -90, "maximum": 90 });
    let longitude = json!({ "type": "number", "minimum": -180, "maximum": 180 });
    // What the server answers: may carry fields beyond those listed.
    let obj = |required: &[&str], props: Value| json!({ "type": "object", "required": required, "properties": props });
    // What a client sends: exactly these fields (the server refuses unknown ones).
    let input = |required: &[&str], props: Value| json!({ "type": "object", "required": required, "properties": props, "additionalProperties": false });
    let token = |prefix: &str| json!({ "type": "string", "pattern": format!("^{prefix}[A-Za-z0-9_-]{{0,60}}$"), "maxLength": 64 });
    let mut all = json!({
        "Error": obj(&["error"], json!({ "error": obj(&["code", "message"], json!({
            "code": { "type": "string", "examples": ["validation_failed", "not_found", "spot_taken", "lot_full", "invalid_pass", "idempotency_key_reused"] },
            "message": { "type": "string" } })) })),
        "Credentials": input(&["email", "password"], json!({
            "email": { "type": "string", "format": "email", "maxLength": 254, "description": "trimmed and lower-cased; the domain has a dot" },
            "password": { "type": "string", "minLength": 10, "maxLength": 256 } })),
        "Refresh": input(&["refreshToken"], json!({ "refreshToken": { "type": "string", "minLength": 1 } })),
        "UserCreated": obj(&["userId"], json!({ "userId": uuid })),
        "SessionTokens": obj(&["accessToken", "refreshToken", "expiresIn"], json!({ "accessToken": { "type": "string" }, "refreshToken": { "type": "string" }, "tokenType": { "type": "string" }, "expiresIn": { "type": "integer" } })),
        "Point": input(&["latitude", "longitude"], json!({ "latitude": latitude, "longitude": longitude })),
        "Workplace": obj(&["workplace"], json!({ "workplace": nullable(json!({ "$ref": "#/components/schemas/Point" })) })),
        "NewVehicle": input(&["plate", "region", "vehicleType"], json!({
            "plate": plate.clone(),
            "region": text(8), "vehicleType": vehicle })),
        "Vehicle": obj(&["id", "plate", "region", "vehicleType"], json!({ "id": uuid, "plate": { "type": "string" }, "region": { "type": "string" }, "vehicleType": vehicle })),
        "Vehicles": obj(&["vehicles"], json!({ "vehicles": { "type": "array", "items": { "$ref": "#/components/schemas/Vehicle" } } })),
        "NewLot": input(&["name", "timeZone", "latitude", "longitude", "defaultCentsPerHour", "spots"], json!({
            "name": text(200), "timeZone": { "type": "string", "enum": time_zones, "description": "IANA, e.g. Europe/Berlin" },
            "latitude": latitude, "longitude": longitude,
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$", "default": "USD" },
            "defaultCentsPerHour": cents,
            "spots": { "type": "object", "description": "spots per vehicle type: each 0 to 5000, 1 to 5000 in all",
                       "minProperties": 1, "additionalProperties": false,
                       "properties": { "car": { "type": "integer", "minimum": 0, "maximum": 5000 }, "ev": { "type": "integer", "minimum": 0, "maximum": 5000 },
                                       "motorcycle": { "type": "integer", "minimum": 0, "maximum": 5000 }, "van": { "type": "integer", "minimum": 0, "maximum": 5000 } } },
            "evSpotsOpenToCars": { "type": "boolean", "default": false, "description": "cars may use EV spots, as their last choice" } })),
        "Lot": obj(&["id", "name", "capacity", "freeSpots", "currentCentsPerHour"], json!({
            "id": { "type": "integer" }, "name": { "type": "string" }, "timeZone": { "type": "string" }, "latitude": { "type": "number" },
            "longitude": { "type": "number" }, "currency": { "type": "string" }, "capacity": { "type": "integer" },
            "freeSpots": { "type": "integer" }, "currentCentsPerHour": { "type": "integer" }, "distanceM": { "type": "number" } })),
        "Lots": obj(&["lots"], json!({ "lots": { "type": "array", "items": { "$ref": "#/components/schemas/Lot" } } })),
        "Rate": input(&["band", "dayKind", "vehicleType", "centsPerHour"], json!({
            "band": band, "dayKind": { "type": "string", "enum": ["weekday", "weekend"] }, "vehicleType": vehicle,
            "centsPerHour": cents, "effectiveFrom": nullable(time.clone()) })),
        "PublishRates": input(&["rates"], json!({ "rates": { "type": "array", "minItems": 1, "maxItems": 1000, "items": { "$ref": "#/components/schemas/Rate" } } })),
        "Published": obj(&["published"], json!({ "published": { "type": "integer" } })),
        "RateSchedule": obj(&["lotId", "currency", "current", "upcoming"], json!({ "lotId": { "type": "integer" }, "currency": { "type": "string" },
            "defaultCentsPerHour": { "type": "integer" }, "current": { "type": "array" }, "upcoming": { "type": "array" } })),
    });
    let more = [
        json!({
        "Preferences": input(&["email", "push"], json!({
            "email": { "type": "boolean" }, "push": { "type": "boolean" } })),
        "Balance": obj(&["cents"], json!({ "cents": { "type": "integer" } })),
        "JoinWaitlist": input(&["lotId", "startAt", "endAt", "vehicleType"], json!({
            "lotId": { "type": "integer", "minimum": 1 }, "startAt": time, "endAt": time, "vehicleType": vehicle,
            "autoBook": { "type": "boolean", "default": false } })),
        "WaitlistEntry": obj(&["id", "lotId", "startAt", "endAt", "vehicleType", "autoBook", "status"], json!({
            "id": uuid, "lotId": { "type": "integer" }, "startAt": time, "endAt": time, "vehicleType": vehicle, "autoBook": { "type": "boolean" },
            "status": { "type": "string", "enum": ["waiting", "notified", "booked", "expired", "withdrawn", "failed"] },
            "reservationId": uuid, "reason": { "type": "string" } })),
        "WaitlistEntries": obj(&["items"], json!({ "items": { "type": "array", "items": { "$ref": "#/components/schemas/WaitlistEntry" } } })),
        "NewInquiry": input(&["subject", "message"], json!({
            "subject": text(200), "message": paragraphs(4000),
            "reservationId": nullable(uuid.clone()) })),
        "Inquiry": obj(&["id", "subject", "message", "createdAt"], json!({
            "id": uuid, "reservationId": nullable(json!({ "type": "string" })),
            "subject": { "type": "string" }, "message": { "type": "string" }, "createdAt": time,
            "answer": nullable(json!({ "type": "string" })), "answeredAt": nullable(time.clone()) })),
        "Inquiries": obj(&["inquiries"], json!({ "inquiries": { "type": "array", "items": { "$ref": "#/components/schemas/Inquiry" } } })),
        "PaymentMethod": { "oneOf": [
            input(&["method", "token", "last4"], json!({ "method": { "const": "card" }, "token": token("tok_"), "last4": { "type": "string", "pattern": "^[0-9]{4}$" } })),
            input(&["method", "token"], json!({ "method": { "const": "wallet" }, "token": token("wal_") })),
            input(&["method"], json!({ "method": { "const": "balance" } })),
        ], "description": "the gateway's token (tok_… for a card with its last four digits, wal_… for a wallet) or the prepaid balance; never card details" },
        "TopUp": input(&["amountCents", "payment"], json!({
            "amountCents": { "type": "integer", "minimum": 100, "maximum": 100000 },
            "payment": { "oneOf": [
                input(&["method", "token", "last4"], json!({ "method": { "const": "card" }, "token": token("tok_"), "last4": { "type": "string", "pattern": "^[0-9]{4}$" } })),
                input(&["method", "token"], json!({ "method": { "const": "wallet" }, "token": token("wal_") })),
            ] },
            "currency": { "type": ["string", "null"], "pattern": "^[A-Z]{3}$", "description": "the balance's currency: the first top-up fixes it (default USD), later ones must match" } })),
        "Payment": obj(&["id", "status", "amountCents", "currency"], json!({ "id": { "type": "string" }, "status": { "type": "string" },
            "amountCents": { "type": "integer" }, "currency": { "type": "string" } })),
        "GatewayEvent": input(&["eventId", "type", "reference"], json!({
            "eventId": { "type": "string", "minLength": 1 }, "type": { "type": "string", "enum": ["payment.reversed"] },
            "reference": { "type": "string", "minLength": 1 } })),
        "Handled": obj(&["handled"], json!({ "handled": { "type": "boolean" } })),
        }),
        json!({
        "NewReservation": {
            "type": "object", "required": ["lotId", "startAt", "endAt"], "additionalProperties": false,
            "properties": {
                "lotId": { "type": "integer", "minimum": 1 }, "spotId": nullable(json!({ "type": "integer", "minimum": 1 })), "startAt": time, "endAt": time,
                "vehicleType": vehicle, "vehicleId": { "type": "string", "format": "uuid", "description": "one of the driver's vehicles, instead of vehicleType" },
                "near": { "$ref": "#/components/schemas/Point" } },
            "oneOf": [ { "required": ["vehicleType"] }, { "required": ["vehicleId"] } ],
            "description": "exactly one of vehicleType and vehicleId" },
        "ReservationChange": {
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": { "startAt": time, "endAt": time, "vehicleType": vehicle, "vehicleId": uuid,
                "spotId": { "type": "integer", "minimum": 1 }, "near": { "$ref": "#/components/schemas/Point" } },
            "not": { "required": ["vehicleType", "vehicleId"] },
            "description": "at most one of vehicleType and vehicleId" },
        "Reservation": obj(&["id", "lotId", "spotId", "startAt", "endAt", "status", "quoteCents", "currency"], json!({
            "id": uuid, "lotId": { "type": "integer" }, "spotId": { "type": "integer" }, "spotLabel": { "type": "string" },
            "startAt": time, "endAt": time, "vehicleType": vehicle, "vehicleId": { "type": "string" }, "plate": { "type": "string" },
            "status": { "type": "string", "enum": ["active", "checked_in", "completed", "cancelled", "no_show"] },
            "quoteCents": { "type": "integer" }, "currency": { "type": "string" }, "cancellationId": { "type": "string" }, "sessionId": { "type": "string" } })),
        "ReservationWithPass": obj(&["id", "reservationId", "lotId", "spotId", "startAt", "endAt", "status", "quoteCents", "currency"], json!({
            "id": uuid, "reservationId": uuid, "lotId": { "type": "integer" }, "spotId": { "type": "integer" },
            "startAt": time, "endAt": time, "status": { "type": "string" }, "quoteCents": { "type": "integer" }, "currency": { "type": "string" },
            "pass": { "$ref": "#/components/schemas/GatePass" } })),
        "ReservationPage": obj(&["items", "page", "perPage", "total"], json!({ "items": { "type": "array", "items": { "$ref": "#/components/schemas/Reservation" } },
            "page": { "type": "integer" }, "perPage": { "type": "integer" }, "total": { "type": "integer" } })),
        "Cancellation": obj(&["reservationId", "status"], json!({ "reservationId": uuid, "cancellationId": nullable(json!({ "type": "string" })), "status": { "type": "string" } })),
        "GatePass": obj(&["reservationId", "pass", "entryFrom", "entryUntil", "expiresAt"], json!({
            "reservationId": { "type": "string" }, "pass": { "type": "string", "description": "pf1.<claims>.<HMAC-SHA256>: the QR/NFC payload" },
            "entryFrom": time, "entryUntil": time, "expiresAt": time })),
        "GateEntry": input(&["method"], json!({ "method": { "type": "string", "enum": ["qr", "nfc", "plate", "staff"] },
            "pass": nullable(json!({ "type": "string", "minLength": 1 })), "plate": nullable(plate.clone()), "vehicleType": nullable(vehicle.clone()), "userId": nullable(uuid.clone()) })),
        "GateExit": input(&[], json!({ "sessionId": nullable(uuid.clone()), "pass": nullable(json!({ "type": "string", "minLength": 1 })), "plate": nullable(plate.clone()) })),
        "CheckInReceipt": obj(&["sessionId", "lotId", "spotId", "enteredAt"], json!({ "sessionId": { "type": "string" }, "lotId": { "type": "integer" },
            "spotId": { "type": "integer" }, "spotLabel": { "type": "string" }, "enteredAt": time, "reservationId": { "type": "string" } })),
        "ExitReceipt": obj(&["sessionId", "durationS", "amountCents", "currency"], json!({ "sessionId": { "type": "string" }, "durationS": { "type": "integer" },
            "amountCents": { "type": "integer" }, "currency": { "type": "string" }, "centsPerHour": { "type": "integer" }, "band": { "type": "string" },
            "reservationId": { "type": "string" } })),
        "FreeSpots": obj(&["spots"], json!({ "lotId": { "type": "integer" }, "startAt": time, "endAt": time, "spots": { "type": "array", "items": obj(&["spotId", "label", "vehicleType"], json!({
            "spotId": { "type": "integer" }, "label": { "type": "string" }, "vehicleType": vehicle, "distanceM": { "type": "number" } })) } })),
        }),
    ];
    for part in more {
        if let (Some(all), Value::Object(part)) = (all.as_object_mut(), part) {
            all.extend(part);
        }
    }
    all
}

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

struct DocParam {
    name: String,
    place: String,
    required: bool,
    description: String,
}

struct DocOperation {
    method: String,
    path: String,
    summary: String,
    params: Vec<DocParam>,
}

struct DocSchema {
    name: String,
    json: String,
}

#[derive(askama::Template)]
#[template(path = "docs/page.html")]
struct DocsPage {
    title: String,
    description: String,
    operations: Vec<DocOperation>,
    schemas: Vec<DocSchema>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The docs page: every operation with its parameters, and every schema, from the same
/// document (rendered by a template that escapes every value).
pub async fn docs_page() -> Result<Html<String>, crate::error::Error> {
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
        .map_err(|e| crate::error::Error::Config(format!("docs template: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("…")` in the router is described (the other direction is tested over
    /// HTTP in the API tests: every described operation is routed).
    #[test]
    fn every_route_is_described() {
        let source = include_str!("http/mod.rs");
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

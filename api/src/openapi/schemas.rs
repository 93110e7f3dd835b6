//! The JSON schemas of what clients send (strict: unknown fields refused) and what the server
//! answers, with the limits the server enforces.

use serde_json::{Value, json};

pub(super) fn schemas() -> Value {
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

//! Every operation of the API: path, method, who may call it, parameters, body and answer.

use super::*;

pub(super) fn operations() -> Vec<Op> {
    use Who::*;
    vec![
        op(
            "get",
            "/healthz",
            "Liveness and database check",
            Anyone,
            None,
            (200, "Health"),
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
            (200, "Erased"),
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
                "A vehicle enters by pass, by plate, or as a drive-up; 409 lot_full, or entry_contended when every free spot went to vehicles entering at the same moment",
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

//! The event contract: every type survives JSON, Arrow and Parquet unchanged, and bad input is
//! refused with the right reason.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use std::collections::HashSet;
use warehouse_schema::convert::{batch_to_events, events_to_batch};
use warehouse_schema::event::*;
use warehouse_schema::lake::{Lake, read_parquet};
use warehouse_schema::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn lots() -> HashSet<LotId> {
    [LotId(1), LotId(2)].into_iter().collect()
}

fn one_of_each() -> Vec<Event> {
    let at = t("2026-03-29T00:30:00.123Z");
    let lot = LotId(1);
    let session = SessionId::new();
    let reservation = ReservationId::new();
    let user = UserId::new();
    let window = ReservationWindow {
        reservation_id: reservation,
        user_id: user,
        spot_id: SpotId(7),
        start_at: at + Duration::hours(1),
        end_at: at + Duration::hours(3),
        vehicle_type: VehicleType::Ev,
    };
    let payment = Payment {
        payment_id: PaymentId::new(),
        reservation_id: Some(reservation),
        session_id: None,
        amount_cents: Cents(450),
        currency: "EUR".into(),
        reason: None,
        method: Some("card".into()),
    };
    let monthly_pass = warehouse_schema::MonthlyPassId::new();
    let period = warehouse_schema::event::MonthlyPassPeriod {
        monthly_pass_id: monthly_pass,
        user_id: user,
        vehicle_type: VehicleType::Car,
        start_at: at,
        end_at: at + Duration::days(31),
        amount_cents: Cents(9_900),
        currency: "EUR".into(),
        spot_id: Some(SpotId(9)),
    };
    let payloads = vec![
        EventPayload::LotRegistered(LotRegistered {
            name: "Lot A".into(),
            time_zone: "Europe/Berlin".into(),
            latitude: 52.52,
            longitude: 13.405,
            capacity: 200,
        }),
        EventPayload::LotCapacityChanged(LotCapacityChanged { capacity: 180 }),
        EventPayload::CheckIn(CheckIn {
            session_id: session,
            user_id: Some(user),
            reservation_id: Some(reservation),
            spot_id: Some(SpotId(7)),
            vehicle_type: VehicleType::Ev,
            method: EntryMethod::Qr,
            monthly_pass_id: None,
        }),
        EventPayload::CheckIn(CheckIn {
            session_id: SessionId::new(),
            user_id: None,
            reservation_id: None,
            spot_id: None,
            vehicle_type: VehicleType::Motorcycle,
            method: EntryMethod::Plate,
            monthly_pass_id: None,
        }),
        EventPayload::Exit(Exit {
            session_id: session,
            duration_s: 5400,
            amount_cents: Cents(375),
            currency: "EUR".into(),
        }),
        EventPayload::ReservationCreated(window.clone()),
        EventPayload::ReservationModified(window),
        EventPayload::ReservationCancelled(ReservationRef {
            reservation_id: reservation,
            reason: Some("driver".into()),
        }),
        EventPayload::ReservationNoShow(ReservationRef {
            reservation_id: reservation,
            reason: None,
        }),
        EventPayload::PaymentCaptured(payment.clone()),
        EventPayload::PaymentFailed(Payment {
            reason: Some("declined".into()),
            ..payment.clone()
        }),
        // A stay paid at the exit from the prepaid balance: a session, no reservation.
        EventPayload::PaymentCaptured(Payment {
            reservation_id: None,
            session_id: Some(session),
            method: Some("balance".into()),
            ..payment.clone()
        }),
        EventPayload::PaymentRefunded(payment),
        EventPayload::RatePublished(RatePublished {
            band: TimeBand::Morning,
            day_kind: DayKind::Weekday,
            vehicle_type: VehicleType::Car,
            cents_per_hour: Cents(275),
            effective_from: at + Duration::days(1),
            reason: None,
        }),
        // A rate with its reason: an object in the event, JSON text in the lake's column.
        EventPayload::RatePublished(RatePublished {
            band: TimeBand::Midday,
            day_kind: DayKind::Weekday,
            vehicle_type: VehicleType::Car,
            cents_per_hour: Cents(325),
            effective_from: at + Duration::days(7),
            reason: Some(warehouse_schema::event::RateReason {
                policy: "forecast-aware".into(),
                observed_occupancy: 0.91,
                observed_from: at - Duration::days(7),
                observed_to: at,
                target_low: 0.6,
                target_high: 0.8,
                forecast_at_previous: Some(0.9),
                forecast_at_new: Some(0.87),
                elasticity: Some(-0.3),
                previous_cents: Cents(300),
                step_cents: 25,
                floor_cents: Cents(50),
                cap_cents: Cents(800),
                bound: None,
            }),
        }),
        // A pass holder's entry.
        EventPayload::CheckIn(CheckIn {
            session_id: SessionId::new(),
            user_id: Some(user),
            reservation_id: None,
            spot_id: Some(SpotId(9)),
            vehicle_type: VehicleType::Car,
            method: EntryMethod::Plate,
            monthly_pass_id: Some(monthly_pass),
        }),
        EventPayload::MonthlyPassPurchased(period.clone()),
        EventPayload::MonthlyPassEnded(warehouse_schema::event::MonthlyPassEnd {
            monthly_pass_id: monthly_pass,
            reason: "lapsed".into(),
        }),
        // A floating pass (no spot kept) renewed.
        EventPayload::MonthlyPassRenewed(warehouse_schema::event::MonthlyPassPeriod {
            spot_id: None,
            ..period
        }),
    ];
    payloads
        .into_iter()
        .map(|p| Event::new(at, lot, p))
        .collect()
}

#[test]
fn every_event_type_is_covered() {
    let types: HashSet<&str> = one_of_each()
        .iter()
        .map(|e| e.payload.type_name())
        .collect();
    assert_eq!(types.len(), EVENT_TYPES.len());
}

#[test]
fn json_round_trip() {
    for e in one_of_each() {
        let json = e.to_json();
        let back =
            Event::from_json(json.as_bytes(), &lots()).unwrap_or_else(|r| panic!("{r}: {json}"));
        assert_eq!(back, e);
    }
}

#[test]
fn arrow_and_parquet_round_trip() {
    let events = one_of_each();
    let batch = events_to_batch(&events).unwrap();
    assert_eq!(batch.num_rows(), events.len());
    assert_eq!(batch_to_events(&batch).unwrap(), events);

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    let rel = Lake::data_file(
        Table::FactParkingEvent,
        Some(events[0].occurred_at.date_naive()),
        1,
        0,
    );
    assert!(
        rel.starts_with("fact_parking_event/event_date=2026-03-29/"),
        "{rel}"
    );
    lake.write_parquet(&rel, &[batch]).unwrap();
    let read = read_parquet(&lake.absolute(&rel)).unwrap();
    let back: Vec<Event> = read
        .iter()
        .flat_map(|b| batch_to_events(b).unwrap())
        .collect();
    assert_eq!(back, events);
}

fn reject(json: &str) -> RejectReason {
    match Event::from_json(json.as_bytes(), &lots()) {
        Ok(e) => panic!("accepted {e:?}"),
        Err(r) => {
            assert!(!r.detail.is_empty());
            r.reason
        }
    }
}

fn check_in_json(mutate: impl FnOnce(&mut serde_json::Value)) -> String {
    let e = &one_of_each()[2];
    let mut v = serde_json::to_value(e).unwrap();
    mutate(&mut v);
    v.to_string()
}

#[test]
fn validation_rejects_with_reasons() {
    use RejectReason::*;
    assert_eq!(reject("{not json"), MalformedJson);
    assert_eq!(reject("[1,2]"), MalformedJson);
    assert_eq!(
        reject(&check_in_json(|v| {
            v.as_object_mut().unwrap().remove("lot_id");
        })),
        MissingField
    );
    assert_eq!(
        reject(&check_in_json(|v| {
            v.as_object_mut().unwrap().remove("session_id");
        })),
        MissingField
    );
    assert_eq!(
        reject(&check_in_json(|v| v["type"] = "teleported".into())),
        UnknownType
    );
    assert_eq!(
        reject(&check_in_json(|v| v["schema_version"] = 99.into())),
        UnsupportedVersion
    );
    assert_eq!(
        reject(&check_in_json(
            |v| v["occurred_at"] = "2026-03-29 10:00:00".into()
        )),
        BadTime
    );
    assert_eq!(
        reject(&check_in_json(
            |v| v["occurred_at"] = "2026-03-29T10:00:00".into()
        )),
        BadTime
    );
    assert_eq!(
        reject(&check_in_json(|v| v["occurred_at"] = 12.into())),
        BadTime
    );
    assert_eq!(
        reject(&check_in_json(|v| v["lot_id"] = 3.into())),
        UnknownLot
    );
    assert_eq!(
        reject(&check_in_json(|v| v["vehicle_type"] = "tank".into())),
        InvalidValue
    );
    let exit = serde_json::to_value(&one_of_each()[4]).unwrap();
    let with = |k: &str, val: serde_json::Value| {
        let mut e = exit.clone();
        e[k] = val;
        e.to_string()
    };
    assert_eq!(reject(&with("amount_cents", (-1).into())), InvalidValue);
    assert_eq!(reject(&with("duration_s", (-5).into())), InvalidValue);
    assert_eq!(reject(&with("currency", "euro".into())), InvalidValue);
    let mut payment = serde_json::to_value(
        one_of_each()
            .into_iter()
            .find(|e| e.payload.type_name() == "payment_captured")
            .unwrap(),
    )
    .unwrap();
    payment["method"] = "iou".into();
    assert_eq!(reject(&payment.to_string()), InvalidValue);
    let mut lot = serde_json::to_value(&one_of_each()[0]).unwrap();
    lot["time_zone"] = "Mars/Olympus".into();
    assert_eq!(reject(&lot.to_string()), InvalidValue);
}

/// `json` with its top-level members in reverse order, each key written with a `\u` escape
/// for its first letter.
fn reversed_and_escaped(json: &str) -> String {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
    let members: Vec<String> = v
        .iter()
        .rev()
        .map(|(k, val)| {
            let first = k.chars().next().unwrap();
            format!(
                r#""\u{:04x}{}":{val}"#,
                first as u32,
                &k[first.len_utf8()..]
            )
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

#[test]
fn members_decode_in_any_order_with_escaped_keys_and_null_options() {
    for e in one_of_each() {
        let json = reversed_and_escaped(&e.to_json());
        assert!(json.starts_with(r#"{"\u"#), "{json}");
        let back =
            Event::from_json(json.as_bytes(), &lots()).unwrap_or_else(|r| panic!("{r}: {json}"));
        assert_eq!(back, e, "{json}");
    }
    // An optional field given as null reads as absent.
    let json = check_in_json(|v| v["reservation_id"] = serde_json::Value::Null);
    let e = Event::from_json(json.as_bytes(), &lots()).unwrap();
    let EventPayload::CheckIn(c) = e.payload else {
        panic!("{e:?}")
    };
    assert_eq!(c.reservation_id, None);
}

#[test]
fn a_key_given_twice_is_refused() {
    use RejectReason::*;
    let json = check_in_json(|_| {});
    let twice = |member: &str| format!("{},{member}}}", &json[..json.len() - 1]);
    // In the envelope: which of the two would count is not for the reader to guess.
    assert_eq!(reject(&twice(r#""lot_id":1"#)), MalformedJson);
    assert_eq!(reject(&twice(r#""type":"exit""#)), MalformedJson);
    // In the payload.
    let session = serde_json::to_string(&serde_json::Value::String(uuid_text())).unwrap();
    assert_eq!(
        reject(&twice(&format!(r#""session_id":{session}"#))),
        InvalidValue
    );
    // A key nothing reads is ignored, once or twice, as before.
    let extra = twice(r#""note":"a","note":"b""#);
    assert!(
        Event::from_json(extra.as_bytes(), &lots()).is_ok(),
        "{extra}"
    );
}

fn uuid_text() -> String {
    "0190f5d4-3b2a-7c3e-9a1b-2c3d4e5f6a7b".into()
}

#[test]
fn lot_registration_defines_the_lot() {
    let mut e = one_of_each().remove(0);
    e.lot_id = LotId(42);
    assert!(Event::from_json(e.to_json().as_bytes(), &lots()).is_ok());
}

#[test]
fn times_with_offsets_are_normalised_to_utc() {
    let json = check_in_json(|v| v["occurred_at"] = "2026-03-29T02:30:00.5+02:00".into());
    let e = Event::from_json(json.as_bytes(), &lots()).unwrap();
    assert_eq!(e.occurred_at, t("2026-03-29T00:30:00.500Z"));
}

proptest! {
    #[test]
    fn random_stays_round_trip_through_arrow(
        offsets in proptest::collection::vec((0i64..10_000_000, 0i64..200_000, 0i64..100_000, 1i64..3), 1..50)
    ) {
        let base = t("2026-01-01T00:00:00Z");
        let events: Vec<Event> = offsets
            .iter()
            .flat_map(|(at, dur, cents, lot)| {
                let s = SessionId::new();
                let entry = base + Duration::milliseconds(*at);
                [
                    Event::new(entry, LotId(*lot), EventPayload::CheckIn(CheckIn {
                        session_id: s, user_id: None, reservation_id: None, spot_id: None,
                        vehicle_type: VehicleType::Car, method: EntryMethod::Nfc,
                        monthly_pass_id: None,
                    })),
                    Event::new(entry + Duration::seconds(*dur), LotId(*lot), EventPayload::Exit(Exit {
                        session_id: s, duration_s: *dur, amount_cents: Cents(*cents), currency: "USD".into(),
                    })),
                ]
            })
            .collect();
        let batch = events_to_batch(&events).unwrap();
        prop_assert_eq!(batch_to_events(&batch).unwrap(), events);
    }
}

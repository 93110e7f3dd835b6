//! The JSON Schemas of the values the server checks beyond their Rust type — free text, plates,
//! time zones, money, gateway tokens — for the OpenAPI document the types derive
//! (`#[schema(schema_with = …)]`). Each states what the check in `text.rs`, `accounts.rs` or
//! the service refuses, so a value valid per the document is one the server takes.

use super::{MAX_CENTS_PER_HOUR, MAX_SPOTS_PER_LOT, TOP_UP_CENTS};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
}

/// Rust's `char::is_control` (Unicode Cc: U+0000–U+001F, U+007F–U+009F) is what `text::line`
/// refuses; at least one character is not white space (the value is trimmed).
const LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// `text::paragraphs`: line breaks and tabs allowed, no other control character.
const PARAGRAPHS: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";

fn line(max: usize) -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(LINE))
        .description(Some(
            "no control characters, not only spaces; surrounding spaces are trimmed",
        ))
        .build()
}

pub fn line_200() -> Object {
    line(200)
}

pub fn line_8() -> Object {
    line(8)
}

pub fn paragraphs_4000() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(4000))
        .pattern(Some(PARAGRAPHS))
        .description(Some(
            "line breaks and tabs allowed, no other control character, not only spaces",
        ))
        .build()
}

pub fn plate() -> Object {
    string()
        .pattern(Some("^[ .\\-]*([A-Za-z0-9ÄÖÜäöü][ .\\-]*){1,16}$"))
        .description(Some(
            "1 to 16 letters and digits, with spaces, dashes and dots between them that are dropped (stored upper-cased)",
        ))
        .build()
}

pub fn nullable_plate() -> RefOr<Schema> {
    nullable(plate())
}

pub fn email() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254))
        .description(Some("trimmed and lower-cased; the domain has a dot"))
        .build()
}

pub fn password() -> Object {
    string().min_length(Some(10)).max_length(Some(256)).build()
}

pub fn time_zone() -> Object {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    string()
        .enum_values(Some(names))
        .description(Some("IANA, e.g. Europe/Berlin"))
        .build()
}

pub fn currency() -> Object {
    string().pattern(Some("^[A-Z]{3}$")).build()
}

/// A rate or a default rate, in cents per hour.
pub fn cents() -> Object {
    integer(0, MAX_CENTS_PER_HOUR).build()
}

pub fn top_up_cents() -> Object {
    integer(*TOP_UP_CENTS.start(), *TOP_UP_CENTS.end()).build()
}

pub fn latitude() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(-90.0))
        .maximum(Some(90.0))
        .build()
}

pub fn longitude() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(-180.0))
        .maximum(Some(180.0))
        .build()
}

/// A lot or spot id a client sends.
pub fn id() -> Object {
    integer(1, i64::MAX).build()
}

pub fn nullable_id() -> RefOr<Schema> {
    nullable(id())
}

pub fn card_token() -> Object {
    token("tok_")
}

pub fn wallet_token() -> Object {
    token("wal_")
}

fn token(prefix: &str) -> Object {
    string()
        .pattern(Some(format!("^{prefix}[A-Za-z0-9_-]{{0,60}}$")))
        .max_length(Some(64))
        .build()
}

pub fn last4() -> Object {
    string().pattern(Some("^[0-9]{4}$")).build()
}

/// A non-empty string (a pass, a gateway event id).
pub fn non_empty() -> Object {
    string().min_length(Some(1)).build()
}

pub fn nullable_non_empty() -> RefOr<Schema> {
    nullable(non_empty())
}

fn nullable(schema: Object) -> RefOr<Schema> {
    RefOr::T(Schema::OneOf(
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(schema)
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    ))
}

fn names(names: Vec<&'static str>) -> Object {
    string().enum_values(Some(names)).build()
}

pub fn vehicle_type() -> Object {
    names(
        warehouse_schema::VehicleType::ALL
            .iter()
            .map(|v| v.as_str())
            .collect(),
    )
}

pub fn nullable_vehicle_type() -> RefOr<Schema> {
    nullable(vehicle_type())
}

pub fn band() -> Object {
    names(
        warehouse_schema::TimeBand::ALL
            .iter()
            .map(|b| b.as_str())
            .collect(),
    )
}

pub fn day_kind() -> Object {
    names(
        warehouse_schema::DayKind::ALL
            .iter()
            .map(|d| d.as_str())
            .collect(),
    )
}

pub fn entry_method() -> Object {
    names(
        warehouse_schema::EntryMethod::ALL
            .iter()
            .map(|m| m.as_str())
            .collect(),
    )
}

/// Spots per vehicle type of a new lot.
pub fn spot_counts() -> Object {
    let mut counts = ObjectBuilder::new()
        .min_properties(Some(1))
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .description(Some(format!(
            "spots per vehicle type: each 0 to {MAX_SPOTS_PER_LOT}, 1 to {MAX_SPOTS_PER_LOT} in all"
        )));
    for vt in warehouse_schema::VehicleType::ALL {
        counts = counts.property(vt.as_str(), integer(0, MAX_SPOTS_PER_LOT.into()));
    }
    counts.build()
}

pub fn uuid() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}

pub fn nullable_uuid() -> RefOr<Schema> {
    nullable(uuid())
}

/// A payment a top-up is made with: a card or a wallet (a top-up of the balance from the
/// balance is refused).
pub fn top_up_payment() -> RefOr<Schema> {
    let method = |name: &'static str| names(vec![name]);
    let strict = |b: ObjectBuilder| {
        b.additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .build()
    };
    RefOr::T(Schema::OneOf(
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(strict(
                ObjectBuilder::new()
                    .property("method", method("card"))
                    .property("token", card_token())
                    .property("last4", last4())
                    .required("method")
                    .required("token")
                    .required("last4"),
            ))
            .item(strict(
                ObjectBuilder::new()
                    .property("method", method("wallet"))
                    .property("token", wallet_token())
                    .required("method")
                    .required("token"),
            ))
            .build(),
    ))
}

pub fn nullable_currency() -> RefOr<Schema> {
    nullable(currency())
}

/// The gateway webhook events handled.
pub fn webhook_kind() -> Object {
    names(vec!["payment.reversed"])
}

/// The weekdays a monthly pass covers.
pub fn pass_days() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(names(super::monthly::DAY_NAMES.to_vec()))
        .min_items(Some(1))
        .max_items(Some(super::monthly::MAX_DAY_ENTRIES))
        .description(Some("weekdays covered; repeats count once"))
        .build()
}

pub fn from_hour() -> Object {
    integer(0, 23)
        .description(Some("first local hour covered"))
        .build()
}

pub fn until_hour() -> Object {
    integer(1, 24)
        .description(Some(
            "local hour the rights end (exclusive, later than fromHour; 24 = midnight)",
        ))
        .build()
}

pub fn pass_price() -> Object {
    let (low, high) = (
        *super::monthly::PRICE_CENTS.start(),
        *super::monthly::PRICE_CENTS.end(),
    );
    integer(low, high).build()
}

pub fn pass_spots() -> Object {
    integer(1, MAX_SPOTS_PER_LOT.into())
        .description(Some("passes held at once; at most the lot's open spots"))
        .build()
}

pub fn vehicle_types() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(vehicle_type())
        .min_items(Some(1))
        .max_items(Some(super::monthly::MAX_VEHICLE_TYPE_ENTRIES))
        .build()
}

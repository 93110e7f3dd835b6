//! Bytes into an [`Event`]: [`Event::from_json`], the one way an event is read.
//!
//! The object is lexed once into its members, each value kept as its JSON text
//! ([`RawValue`], a slice of the input); the envelope is read field by field from those, and the
//! payload of the type its tag names from the other members. No intermediate JSON tree is
//! built (parsing into a `serde_json::Value` first, then the payload from it through serde's
//! internally tagged enum, cost 2.8 µs an event, the largest share of the Kafka consumer's
//! batch; see BENCHMARKS.md).

use super::{Event, EventPayload, LotDirectory, RejectReason, Rejection};
use crate::ids::{EventId, LotId};
use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use serde::de::value::MapDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The envelope's keys; the payload's fields are all the others.
const ENVELOPE: [&str; 5] = [
    "event_id",
    "schema_version",
    "type",
    "occurred_at",
    "lot_id",
];

/// The fields that hold a time, in the envelope or a payload: checked to be RFC 3339 with an
/// offset before the types are read, so a bad time is refused as such.
const TIMES: [&str; 4] = ["occurred_at", "start_at", "end_at", "effective_from"];

impl Event {
    /// Decode and validate one event. The envelope is checked field by field first so that the
    /// rejection names the actual problem rather than serde's first complaint. A key given
    /// twice is refused when the event reads it (the envelope's here, a payload's by serde).
    pub fn from_json(bytes: &[u8], lots: &dyn LotDirectory) -> Result<Event, Rejection> {
        use RejectReason::*;
        let members: Members = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::new(MalformedJson, e.to_string()))?;
        let mut envelope = [None; ENVELOPE.len()];
        for (slot, field) in envelope.iter_mut().zip(ENVELOPE) {
            match members.get(field)? {
                Some(v) if v.get() != "null" => *slot = Some(v),
                _ => {
                    return Err(Rejection::new(
                        MissingField,
                        format!("missing field `{field}`"),
                    ));
                }
            }
        }
        let [
            Some(event_id),
            Some(version),
            Some(tag),
            Some(_),
            Some(lot_id),
        ] = envelope
        else {
            unreachable!("every envelope field was found above")
        };
        let tag = Text::deserialize(tag)
            .map_err(|_| Rejection::new(InvalidValue, "`type` must be a string"))?
            .0;
        if !super::EVENT_TYPES.contains(&tag.as_ref()) {
            return Err(Rejection::new(
                UnknownType,
                format!("unknown event type `{tag}`"),
            ));
        }
        let version = u64::deserialize(version)
            .map_err(|_| Rejection::new(InvalidValue, "`schema_version` must be an integer"))?;
        let version = u16::try_from(version)
            .ok()
            .filter(|v| super::SUPPORTED_VERSIONS.contains(v))
            .ok_or_else(|| {
                Rejection::new(
                    UnsupportedVersion,
                    format!(
                        "schema_version {version} is not supported (supported: {:?})",
                        super::SUPPORTED_VERSIONS
                    ),
                )
            })?;
        let mut occurred = None;
        for field in TIMES {
            if let Some(v) = members.get(field)? {
                let at = check_time(field, v)?;
                if field == "occurred_at" {
                    occurred = Some(at.with_timezone(&Utc));
                }
            }
        }
        let occurred_at = occurred.expect("the envelope has `occurred_at`, checked above");
        let payload_fields = MapDeserializer::<_, serde_json::Error>::new(
            members
                .0
                .iter()
                .filter(|(key, _)| !ENVELOPE.contains(&key.as_ref()))
                .map(|(key, value)| (key.as_ref(), *value)),
        );
        let payload = EventPayload::of_type(&tag, payload_fields)
            .expect("the tag is one of EVENT_TYPES")
            .map_err(typed)?;
        let event = Event {
            event_id: EventId::deserialize(event_id).map_err(typed)?,
            schema_version: version,
            occurred_at: occurred_at.trunc_subsecs(3),
            lot_id: LotId::deserialize(lot_id).map_err(typed)?,
            payload,
        };
        event.validate(lots)?;
        Ok(event)
    }
}

/// A field's value that did not read as its type: missing (serde's "missing field") or invalid.
fn typed(e: serde_json::Error) -> Rejection {
    let msg = e.to_string();
    let reason = if msg.starts_with("missing field") {
        RejectReason::MissingField
    } else {
        RejectReason::InvalidValue
    };
    Rejection::new(reason, msg)
}

/// The time in `v`, which must be an RFC 3339 string with an offset.
fn check_time(field: &str, v: &RawValue) -> Result<DateTime<FixedOffset>, Rejection> {
    let s = Text::deserialize(v)
        .map_err(|_| {
            Rejection::new(
                RejectReason::BadTime,
                format!("`{field}` must be an RFC 3339 string"),
            )
        })?
        .0;
    DateTime::parse_from_rfc3339(&s).map_err(|e| {
        Rejection::new(
            RejectReason::BadTime,
            format!("`{field}` = {s:?} is not RFC 3339 with an offset: {e}"),
        )
    })
}

/// The members of the event's object in their order, each value as its JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The value of `key`, refusing a key given twice.
    fn get(&self, key: &str) -> Result<Option<&'a RawValue>, Rejection> {
        let mut found = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| *v);
        let first = found.next();
        if found.next().is_some() {
            return Err(Rejection::new(
                RejectReason::MalformedJson,
                format!("duplicate key `{key}`"),
            ));
        }
        Ok(first)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event as a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Text(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A JSON string, borrowed from the input unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Str)
    }
}

//! The `POST /api/notify` body read without a JSON tree: each item's `data` stays a span of the body.
//!
//! A body of 5,000 notifications used to become 5,000 `serde_json::Value` maps (an allocation per
//! string, an `IndexMap` per object), each serialized again into its frame and then dropped: in a
//! profile of sparse fan-out that was ≈ 12 % of the server's CPU. Now the body is checked once as
//! JSON by a walk that builds nothing, and a notification's frame is `{"type":…,"data":` + the
//! publisher's own `data` text + `}`. A layer that leaves the process still gets a Channels
//! message, parsed from that span ([`Notification::message`]).
//!
//! What is accepted is exactly what `serde_json::from_slice::<Value>` accepts (its parser, its
//! nesting limit of 128, lone surrogates refused): the walk is that parse minus the tree. The
//! frame's `data` is JSON-equal to the message's, though not byte-equal (the publisher's spacing
//! and number spelling are kept).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::ApiError;
use crate::auth::UserId;
use crate::layer::GroupName;
use crate::notify::{notify_kind, Notification};

/// The body — one `{"user_id","type","data"}` object, or an array of them — as the batch to
/// publish, in order. All or nothing: one bad item refuses the whole body, naming its index.
pub(crate) fn notify_batch(body: &[u8]) -> Result<Vec<Notification<'_>>, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    Check
        .deserialize(&mut json)
        .and_then(|()| json.end())
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    // Checked above: these borrowing parses of the same bytes cannot fail.
    let invalid = |e: serde_json::Error| ApiError::BadRequest(format!("invalid JSON: {e}"));
    let items: Vec<&RawValue> = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body).map_err(invalid)?,
        _ => vec![serde_json::from_slice(body).map_err(invalid)?],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            parse_item(item).map_err(|e| ApiError::BadRequest(format!("item {i}: {e}")))
        })
        .collect()
}

fn parse_item(item: &RawValue) -> Result<Notification<'_>, String> {
    if !item.get().starts_with('{') {
        return Err("each notification must be an object".into());
    }
    let fields: Fields<'_> = serde_json::from_str(item.get()).map_err(|e| e.to_string())?;
    let user_id = fields
        .user_id
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
        .as_ref()
        .and_then(UserId::from_claim)
        .ok_or("\"user_id\" must be an integer or an id string")?;
    let kind = fields
        .kind
        .and_then(|v| serde_json::from_str::<Cow<'_, str>>(v.get()).ok())
        .filter(|t| !t.is_empty())
        .ok_or("\"type\" must be a non-empty string")?;
    let group =
        GroupName::for_user(&user_id).ok_or("\"user_id\" does not make a valid group name")?;
    Ok(Notification::new(group, notify_kind(&kind), fields.data))
}

/// The three fields an item is read for; others are skipped. A repeated key keeps its last
/// value, as a JSON object parsed into a map does.
#[derive(Default)]
struct Fields<'a> {
    user_id: Option<&'a RawValue>,
    kind: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a notification object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match &*key {
                        "user_id" => &mut fields.user_id,
                        "type" => &mut fields.kind,
                        "data" => &mut fields.data,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(fields)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A JSON value walked as `Value` would parse it — strings decoded, numbers parsed, nesting
/// counted by serde_json — with nothing built.
#[derive(Clone, Copy)]
struct Check;

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Check)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Check)?.is_some() {
            map.next_value_seed(Check)?;
        }
        Ok(())
    }
}

//! JSON release files: one object or an array of them, read item by item with every
//! string bounded.

use super::*;

pub(super) fn strip_comments(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("$comment");
            map.values_mut().for_each(strip_comments);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_comments),
        _ => {}
    }
}

/// One item of a release file.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Dataset(Dataset),
    Release(ReleaseDraft),
}

/// Parses a JSON release file.
pub fn parse_json(file: &str, bytes: &[u8]) -> Result<Batch, ImportError> {
    let mut batch = Batch::default();
    for_each_json_item(file, bytes, |i, item| {
        match item {
            Item::Dataset(d) => batch.datasets.push(d),
            Item::Release(r) => {
                batch.releases.push(r);
                batch.origins.push(json_origin(file, i));
            }
        }
        Ok(())
    })?;
    Ok(batch)
}

/// Calls `each` with the position and contents of every item of a JSON release file in order,
/// holding one item at a time
/// in memory rather than the whole document (whose tree takes some 15 times the file's size).
/// Stops at the first error, from the file or from `each`.
pub fn for_each_json_item(
    file: &str,
    bytes: &[u8],
    each: impl FnMut(usize, Item) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    use serde::de::Deserializer as _;
    let mut visitor = ItemVisitor {
        file,
        each,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = (&mut de).deserialize_any(&mut visitor).and_then(|()| de.end());
    if let Some(e) = visitor.failed {
        return Err(e);
    }
    parsed.map_err(|e| ImportError {
        file: file.to_owned(),
        at: format!("line {}", e.line()),
        message: brief(&e.to_string()),
    })
}

pub(super) struct ItemVisitor<'f, F> {
    pub(super) file: &'f str,
    pub(super) each: F,
    /// The error `each` (or an item's conversion) returned, which stopped the parse.
    pub(super) failed: Option<ImportError>,
}

impl<F: FnMut(usize, Item) -> Result<(), ImportError>> ItemVisitor<'_, F> {
    pub(super) fn take<E: serde::de::Error>(&mut self, i: usize, value: Value) -> Result<(), E> {
        let result = item_from_value(self.file, format!("item {i}"), value).and_then(|item| (self.each)(i, item));
        result.map_err(|e| {
            self.failed = Some(e);
            E::custom("stopped")
        })
    }
}

impl<'de, F: FnMut(usize, Item) -> Result<(), ImportError>> serde::de::Visitor<'de> for &mut ItemVisitor<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object or an array of objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(value) = seq.next_element_seed(BoundedValue)? {
            self.take(i, value)?;
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        use serde::de::DeserializeSeed as _;
        let value = BoundedValue.deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.take(0, value)
    }

    /// Not serde's default, which quotes the whole string.
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        Err(E::custom(format_args!(
            "expected an object or an array of objects, not a string of {} bytes",
            v.len()
        )))
    }
}

/// Deserializes a JSON value as `serde_json::Value` does, but refuses a string or a member
/// name longer than [`MAX_JSON_STRING_BYTES`] before copying it.
pub(super) struct BoundedValue;

pub(super) fn too_long<E: serde::de::Error>(what: &str, len: usize) -> E {
    E::custom(format_args!(
        "a JSON {what} of {len} bytes is longer than the limit of {MAX_JSON_STRING_BYTES} bytes"
    ))
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedValue {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("string", v.len()));
        }
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("string", v.len()));
        }
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(BoundedValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(BoundedKey)? {
            let value = map.next_value_seed(BoundedValue)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// A member name, refused beyond [`MAX_JSON_STRING_BYTES`] as strings are.
pub(super) struct BoundedKey;

impl<'de> serde::de::DeserializeSeed<'de> for BoundedKey {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for BoundedKey {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("member name", v.len()));
        }
        Ok(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        if v.len() > MAX_JSON_STRING_BYTES {
            return Err(too_long("member name", v.len()));
        }
        Ok(v)
    }
}

pub(super) fn item_from_value(file: &str, at: String, mut item: Value) -> Result<Item, ImportError> {
    let fail = |at: String, message: String| ImportError {
        file: file.to_owned(),
        at,
        message,
    };
    strip_comments(&mut item);
    let Value::Object(map) = &item else {
        return Err(fail(at, "expected an object".into()));
    };
    if map.contains_key("dimensions") {
        serde_json::from_value(item)
            .map(Item::Dataset)
            .map_err(|e| fail(at, format!("dataset: {}", brief(&e.to_string()))))
    } else if map.contains_key("observations") {
        serde_json::from_value(item)
            .map(Item::Release)
            .map_err(|e| fail(at, format!("release: {}", brief(&e.to_string()))))
    } else {
        Err(fail(
            at,
            "neither a dataset (no `dimensions`) nor a release (no `observations`)".into(),
        ))
    }
}

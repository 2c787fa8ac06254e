//! OpenClaw's config file: JSON5 in, plain JSON out. [`Json`] keeps the order of object keys (and
//! duplicates) as the file has them, so a rewrite changes only what authtap meant to change.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON5 value, objects in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    /// `NaN`, `Infinity` or `-Infinity`: JSON5 allows them, JSON cannot hold them.
    NonFinite(&'static str),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of `key` in an object (the last one when the key is repeated, as JSON5 readers do).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of object keys.
    pub fn at(&self, path: &[&str]) -> Option<&Json> {
        path.iter().try_fold(self, |v, key| v.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An object's fields in file order; empty for anything else.
    pub fn fields(&self) -> &[(String, Json)] {
        match self {
            Json::Object(fields) => fields,
            _ => &[],
        }
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) | Json::NonFinite(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Set the value at a path of object keys, creating missing objects on the way. Fails when a
    /// value on the way is not an object.
    pub fn set(&mut self, path: &[&str], value: Json) -> Result<(), String> {
        let Some((last, parents)) = path.split_last() else {
            *self = value;
            return Ok(());
        };
        let mut node = self;
        let mut walked = Vec::new();
        for key in parents {
            walked.push(*key);
            node = child_mut(node, key, &walked)?;
        }
        let Json::Object(fields) = node else {
            return Err(format!(
                "`{}` is {}, not an object",
                parents.join("."),
                node.kind()
            ));
        };
        match fields.iter_mut().rev().find(|(k, _)| k == last) {
            Some((_, v)) => *v = value,
            None => fields.push(((*last).to_string(), value)),
        }
        Ok(())
    }

    /// Whether a `NaN` or `Infinity` is anywhere inside.
    pub fn has_non_finite(&self) -> bool {
        match self {
            Json::NonFinite(_) => true,
            Json::Array(items) => items.iter().any(Json::has_non_finite),
            Json::Object(fields) => fields.iter().any(|(_, v)| v.has_non_finite()),
            _ => false,
        }
    }

    /// Whether an object anywhere inside has the key `key`.
    pub fn has_key_anywhere(&self, key: &str) -> bool {
        match self {
            Json::Array(items) => items.iter().any(|v| v.has_key_anywhere(key)),
            Json::Object(fields) => fields
                .iter()
                .any(|(k, v)| k == key || v.has_key_anywhere(key)),
            _ => false,
        }
    }

    /// Pretty JSON with a 2-space indent and a final newline.
    pub fn to_pretty(&self) -> Result<String, String> {
        if self.has_non_finite() {
            return Err("the file holds NaN or Infinity, which JSON cannot hold".into());
        }
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        Ok(text)
    }
}

fn child_mut<'a>(node: &'a mut Json, key: &str, walked: &[&str]) -> Result<&'a mut Json, String> {
    let kind = node.kind();
    let Json::Object(fields) = node else {
        let parent = &walked[..walked.len() - 1];
        return Err(format!("`{}` is {kind}, not an object", parent.join(".")));
    };
    let i = match fields.iter().rposition(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            fields.push((key.to_string(), Json::Object(Vec::new())));
            fields.len() - 1
        }
    };
    Ok(&mut fields[i].1)
}

/// Why the file is not JSON5, with a 1-based line and column when the parser gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// Parse JSON5 text (a leading byte-order mark is allowed).
pub fn parse(text: &str) -> Result<Json, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    json5::from_str::<Json>(text).map_err(|e| {
        let position = e.position();
        let mut message = e.to_string();
        if let Some(p) = position {
            let suffix = format!(" at {p}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        ParseError {
            line: position.map(|p| p.line + 1),
            column: position.map(|p| p.column + 1),
            message,
        }
    })
}

/// Whether JSON5 text has a `//` or `/* */` comment (outside strings).
pub fn has_comments(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        s if s == c => break,
                        _ => {}
                    }
                }
            }
            '/' if matches!(chars.peek(), Some('/' | '*')) => return true,
            _ => {}
        }
    }
    false
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON5 value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(match serde_json::Number::from_f64(v) {
            Some(n) => Json::Number(n),
            None if v.is_nan() => Json::NonFinite("NaN"),
            None if v > 0.0 => Json::NonFinite("Infinity"),
            None => Json::NonFinite("-Infinity"),
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::NonFinite(_) => Err(serde::ser::Error::custom(
                "NaN and Infinity cannot be written as JSON",
            )),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_reads_json5() {
        let doc = parse(
            "// c\n{ z: 1, a: 'two', /* x */ m: [true, null, 1.5, 0x10,], \"q\": {b: 2, a: 1}, }",
        )
        .expect("json5");
        let out = doc.to_pretty().expect("json");
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": \"two\",\n  \"m\": [\n    true,\n    null,\n    1.5,\n    16\n  ],\n  \"q\": {\n    \"b\": 2,\n    \"a\": 1\n  }\n}\n"
        );
        assert_eq!(parse(&out).expect("round trip"), doc);
    }

    #[test]
    fn set_creates_objects_and_replaces_the_last_duplicate() {
        let mut doc = parse("{a: {b: 1, b: 2}}").expect("json5");
        doc.set(&["a", "b"], Json::Number(3.into())).expect("set");
        assert_eq!(
            doc.to_pretty().expect("json"),
            "{\n  \"a\": {\n    \"b\": 1,\n    \"b\": 3\n  }\n}\n"
        );
        doc.set(&["x", "y", "z"], Json::Bool(true)).expect("create");
        assert_eq!(doc.at(&["x", "y", "z"]), Some(&Json::Bool(true)));
        let mut bad = parse("{a: 1}").expect("json5");
        assert!(bad.set(&["a", "b"], Json::Null).is_err());
    }

    #[test]
    fn errors_have_line_and_column() {
        let err = parse("{\n  a: 1,\n  b: ]\n}").expect_err("invalid");
        assert_eq!((err.line, err.column), (Some(3), Some(6)), "{err}");
        assert!(!err.message.contains(" at line"), "{err}");
    }

    #[test]
    fn comments_are_found_outside_strings_only() {
        assert!(has_comments("{a: 1 // x\n}"));
        assert!(has_comments("/* x */ {}"));
        assert!(!has_comments(r#"{"u": "http://x/y", 'v': 'a\'//b'}"#));
    }

    #[test]
    fn non_finite_numbers_are_kept_but_not_written() {
        let doc = parse("{a: NaN, b: -Infinity}").expect("json5");
        assert!(doc.has_non_finite());
        assert!(doc.to_pretty().is_err());
    }
}

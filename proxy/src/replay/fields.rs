//! A capture line's fields into an [`Exchange`], as replay needs them: field names matched without
//! copying them, the stored findings skipped without being built (replay recomputes them), each
//! distinct `auth` object parsed once, and the names of fields this authtap does not know collected
//! on the way (top level and inside the nested objects) instead of wrapping every value to find
//! them.
//!
//! It reads the same records the derived `Deserialize` of [`Exchange`] reads (the tests check the
//! two agree), and the same code reads a line already parsed into a `serde_json::Value`, so the
//! slow path that explains a bad line gives the same answer as the fast one.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use authtap_inspector::auth::AuthShape;
use authtap_inspector::record::{Exchange, RecordKind};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Distinct `auth` objects kept parsed. A capture has one per key and client; past this many the
/// cache starts over, which costs speed, never memory or correctness.
const AUTH_CACHE: usize = 1024;

/// What reading records remembers from one to the next.
#[derive(Default)]
pub(crate) struct FieldReader {
    /// `auth` objects by their exact text in the file.
    auth: HashMap<Box<str>, Arc<AuthShape>>,
}

impl FieldReader {
    /// A record from `deserializer`, and the names of fields it had that this authtap does not
    /// know (`foo`, `auth.foo`). `borrowed` says the deserializer reads from text (a `&str`
    /// deserializer), so `auth` objects can be looked up by their text.
    pub(crate) fn read<'de, D: Deserializer<'de>>(
        &mut self,
        deserializer: D,
        borrowed: bool,
        unknown: &mut Vec<String>,
    ) -> Result<Exchange, D::Error> {
        deserializer.deserialize_map(RecordVisitor {
            auth: borrowed.then_some(&mut self.auth),
            unknown,
        })
    }
}

/// The record's top-level fields: one list gives the enum, each name as the file spells it, and the
/// lookup from a name.
macro_rules! fields {
    ($($field:ident = $name:literal,)*) => {
        /// A record's top-level field.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Field {
            $($field,)*
        }

        impl Field {
            #[cfg(test)]
            const ALL: &[Field] = &[$(Field::$field,)*];

            fn name(self) -> &'static str {
                match self {
                    $(Field::$field => $name,)*
                }
            }

            fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$field),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    V = "v",
    Id = "id",
    Kind = "kind",
    Mode = "mode",
    Ts = "ts",
    Route = "route",
    Provider = "provider",
    Region = "region",
    Method = "method",
    Host = "host",
    Path = "path",
    Auth = "auth",
    OtherAuth = "other_auth",
    UserAgent = "user_agent",
    Model = "model",
    Stream = "stream",
    UpstreamVersion = "upstream_version",
    Status = "status",
    ContentType = "content_type",
    Error = "error",
    Failure = "failure",
    TtfbMs = "ttfb_ms",
    DurationMs = "duration_ms",
    BytesUp = "bytes_up",
    BytesDown = "bytes_down",
    Outcome = "outcome",
    Findings = "findings",
    ProbeOf = "probe_of",
}

impl Field {
    /// Fields a record must have (as the derived `Deserialize` requires them: every one that is
    /// not an `Option` and has no default).
    const REQUIRED: [Field; 13] = [
        Field::V,
        Field::Id,
        Field::Kind,
        Field::Mode,
        Field::Ts,
        Field::Method,
        Field::Path,
        Field::Auth,
        Field::DurationMs,
        Field::BytesUp,
        Field::BytesDown,
        Field::Outcome,
        Field::Findings,
    ];

    /// Its bit in a set of fields seen (there are fewer than 32).
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A top-level key: a known field, or the name of an unknown one (copied only then).
enum Key {
    Known(Field),
    Unknown(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match Field::from_name(name) {
                    Some(field) => Key::Known(field),
                    None => Key::Unknown(name.to_owned()),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct RecordVisitor<'r> {
    auth: Option<&'r mut HashMap<Box<str>, Arc<AuthShape>>>,
    unknown: &'r mut Vec<String>,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = Exchange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an authtap record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Exchange, A::Error> {
        let mut r = Exchange::new(
            String::new(),
            RecordKind::Exchange,
            String::new(),
            String::new(),
            String::new(),
        );
        let mut seen = 0u32;
        while let Some(key) = map.next_key::<Key>()? {
            let field = match key {
                Key::Known(field) => field,
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    self.unknown.push(name);
                    continue;
                }
            };
            if seen & field.bit() != 0 {
                return Err(de::Error::duplicate_field(field.name()));
            }
            seen |= field.bit();
            let nested = Nested {
                name: field.name(),
                unknown: &mut *self.unknown,
            };
            match field {
                Field::V => r.v = map.next_value()?,
                Field::Id => r.id = map.next_value()?,
                Field::Kind => r.kind = map.next_value()?,
                Field::Mode => r.mode = map.next_value()?,
                Field::Ts => r.ts = map.next_value()?,
                Field::Route => r.route = map.next_value()?,
                Field::Provider => r.provider = map.next_value()?,
                Field::Region => r.region = map.next_value()?,
                Field::Method => r.method = map.next_value()?,
                Field::Host => r.host = map.next_value()?,
                Field::Path => r.path = map.next_value()?,
                Field::Auth => {
                    r.auth = match self.auth.as_deref_mut() {
                        Some(cache) => {
                            let text: &'de RawValue = map.next_value()?;
                            cached_auth(cache, text.get(), nested).map_err(de::Error::custom)?
                        }
                        None => map.next_value_seed(nested.of())?,
                    }
                }
                Field::OtherAuth => r.other_auth = map.next_value_seed(nested.of())?,
                Field::UserAgent => r.user_agent = map.next_value()?,
                Field::Model => r.model = map.next_value()?,
                Field::Stream => r.stream = map.next_value()?,
                Field::UpstreamVersion => r.upstream_version = map.next_value()?,
                Field::Status => r.status = map.next_value()?,
                Field::ContentType => r.content_type = map.next_value()?,
                Field::Error => r.error = map.next_value_seed(nested.of())?,
                Field::Failure => r.failure = map.next_value_seed(nested.of())?,
                Field::TtfbMs => r.ttfb_ms = map.next_value()?,
                Field::DurationMs => r.duration_ms = map.next_value()?,
                Field::BytesUp => r.bytes_up = map.next_value()?,
                Field::BytesDown => r.bytes_down = map.next_value()?,
                Field::Outcome => r.outcome = map.next_value()?,
                // Replay recomputes findings; the stored ones are only skipped over.
                Field::Findings => {
                    map.next_value::<IgnoredAny>()?;
                }
                Field::ProbeOf => r.probe_of = map.next_value()?,
            }
        }
        if let Some(missing) = Field::REQUIRED.iter().find(|f| seen & f.bit() == 0) {
            return Err(de::Error::missing_field(missing.name()));
        }
        Ok(r)
    }
}

/// An `auth` object from its text: the one parsed before when the same text came before.
fn cached_auth(
    cache: &mut HashMap<Box<str>, Arc<AuthShape>>,
    text: &str,
    nested: Nested<'_>,
) -> serde_json::Result<Arc<AuthShape>> {
    if let Some(shape) = cache.get(text) {
        return Ok(shape.clone());
    }
    let shape: Arc<AuthShape> = nested
        .of()
        .deserialize(&mut serde_json::Deserializer::from_str(text))?;
    if cache.len() >= AUTH_CACHE {
        cache.clear();
    }
    cache.insert(text.into(), shape.clone());
    Ok(shape)
}

/// A nested object read with the names of its unknown fields collected as `name.field`. Only the
/// few nested fields pay for the tracking.
struct Nested<'u> {
    name: &'static str,
    unknown: &'u mut Vec<String>,
}

impl<'u> Nested<'u> {
    /// The seed that reads a `T`.
    fn of<T>(self) -> Tracked<'u, T> {
        Tracked(self, PhantomData)
    }
}

struct Tracked<'u, T>(Nested<'u>, PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Tracked<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        let Nested { name, unknown } = self.0;
        serde_ignored::deserialize(deserializer, |path| {
            let mut named = name.to_owned();
            push_path(&mut named, &path);
            unknown.push(named);
        })
    }
}

/// `.field` or `.0` per step of `path`; the steps into an `Option` or a newtype are not in the
/// file, so they are left out (serde_ignored shows them as `?`).
fn push_path(named: &mut String, path: &serde_ignored::Path) {
    use serde_ignored::Path;
    let (parent, step) = match path {
        Path::Root => return,
        Path::Seq { parent, index } => (parent, index.to_string()),
        Path::Map { parent, key } => (parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => {
            return push_path(named, parent);
        }
    };
    push_path(named, parent);
    named.push('.');
    named.push_str(&step);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A record with every field set, as a capture line.
    const FULL: &str = r#"{"v":1,"id":"a-1","kind":"probe","mode":"forward","ts":"2026-11-25T01:54:08.457Z",
        "route":"moonshot","provider":"moonshot","region":"global","method":"POST",
        "host":"api.moonshot.ai","path":"/v1/chat/completions",
        "auth":{"header":"authorization","scheme":"Bearer","present":true,"len":51,"prefix":"sk-",
          "last4":"wxyz","fingerprint":"hmac:0011223344556677","shape":"sk-generic",
          "shape_providers":["moonshot","openai"],"defects":["newline"]},
        "other_auth":[{"header":"x-api-key","scheme":null,"present":true,"len":10,"prefix":"abc",
          "last4":null,"fingerprint":"hmac:8899aabbccddeeff","shape":"unknown","defects":[]}],
        "user_agent":"openclaw/1.0","model":"kimi-k2","stream":true,"upstream_version":"HTTP/2",
        "status":401,"content_type":"application/json",
        "error":{"type":"invalid_authentication_error","code":"401","message":"Invalid Authentication"},
        "failure":{"stage":"body","message":"the upstream closed the connection"},
        "ttfb_ms":12.5,"duration_ms":13.25,"bytes_up":120,"bytes_down":200,"outcome":"upstream-failed",
        "findings":[{"code":"region-mismatch","severity":"error","title":"t","detail":"d","fix":"f",
          "evidence":["a-0"]}],"probe_of":"a-0"}"#;

    fn read_str(
        reader: &mut FieldReader,
        line: &str,
    ) -> (serde_json::Result<Exchange>, Vec<String>) {
        let mut unknown = Vec::new();
        let record = reader.read(
            &mut serde_json::Deserializer::from_str(line),
            true,
            &mut unknown,
        );
        (record, unknown)
    }

    fn read_value(line: &str) -> (serde_json::Result<Exchange>, Vec<String>) {
        let mut unknown = Vec::new();
        let value: Value = serde_json::from_str(line).expect("JSON");
        let record = FieldReader::default().read(value, false, &mut unknown);
        (record, unknown)
    }

    #[test]
    fn reads_what_the_derived_reader_reads_but_the_findings() {
        let mut expected: Exchange = serde_json::from_str(FULL).expect("derived");
        assert!(
            !expected.findings.is_empty(),
            "the line must have findings to skip"
        );
        expected.findings.clear();
        for (record, unknown) in [
            read_str(&mut FieldReader::default(), FULL),
            read_value(FULL),
        ] {
            assert_eq!(record.expect("read"), expected);
            assert!(unknown.is_empty(), "{unknown:?}");
        }
    }

    #[test]
    fn the_fields_are_the_records_fields() {
        let record: Exchange = serde_json::from_str(FULL).expect("record");
        let value = serde_json::to_value(&record).expect("serialize");
        let mut written: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut read: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        written.sort_unstable();
        read.sort_unstable();
        assert_eq!(written, read);
        for &field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
    }

    #[test]
    fn unknown_fields_are_named_at_the_top_and_inside() {
        let line = FULL
            .replacen(r#""v":1,"#, r#""v":1,"foo":{"x":[1,2]},"#, 1)
            .replacen(
                r#""header":"authorization","#,
                r#""header":"authorization","bar":1,"#,
                1,
            )
            .replacen(r#""code":"401","#, r#""code":"401","baz":null,"#, 1)
            .replacen(
                r#""header":"x-api-key","#,
                r#""header":"x-api-key","qux":"","#,
                1,
            );
        for (record, mut unknown) in [
            read_str(&mut FieldReader::default(), &line),
            read_value(&line),
        ] {
            assert_eq!(record.expect("read").id, "a-1");
            // In file order from text; a `Value` has them sorted.
            unknown.sort_unstable();
            assert_eq!(
                unknown,
                ["auth.bar", "error.baz", "foo", "other_auth.0.qux"]
            );
        }
    }

    #[test]
    fn an_auth_object_seen_before_is_shared_and_a_new_one_is_read() {
        let mut reader = FieldReader::default();
        let first = read_str(&mut reader, FULL).0.expect("first");
        let again = read_str(&mut reader, &FULL.replacen("a-1", "a-2", 1))
            .0
            .expect("again");
        assert!(Arc::ptr_eq(&first.auth, &again.auth));
        let other = read_str(&mut reader, &FULL.replacen("wxyz", "WXYZ", 1))
            .0
            .expect("other");
        assert_eq!(other.auth.last4.as_deref(), Some("WXYZ"));
        assert_eq!(first.auth.last4.as_deref(), Some("wxyz"));
    }

    #[test]
    fn a_missing_or_repeated_field_is_an_error_that_names_it() {
        let missing = FULL.replacen(r#""bytes_up":120,"#, "", 1);
        let repeated = FULL.replacen(r#""v":1,"#, r#""v":1,"v":1,"#, 1);
        let error = |(record, _): (serde_json::Result<Exchange>, Vec<String>)| {
            record.expect_err("not a record").to_string()
        };
        for error in [
            error(read_str(&mut FieldReader::default(), &missing)),
            error(read_value(&missing)),
        ] {
            assert!(error.contains("missing field `bytes_up`"), "{error}");
        }
        // A JSON object parsed into a `Value` keeps one of repeated keys: only text shows them.
        let error = error(read_str(&mut FieldReader::default(), &repeated));
        assert!(error.contains("duplicate field `v`"), "{error}");
    }
}

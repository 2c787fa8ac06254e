//! Finds `model` and `stream` in a JSON request body while the body streams past.
//!
//! The proxy forwards request bodies chunk by chunk and must not buffer them (they can be
//! hundreds of kilobytes, with `model` after a large `messages` array), yet a diagnosis needs to
//! know which model was asked for and whether the answer streams. This scanner is a byte-level
//! state machine over the top-level object only: it keeps a nesting counter, the current key and
//! the current `model` value, each capped, so its memory does not grow with the body.
//!
//! It is deliberately forgiving rather than validating: it stops quietly at the first thing it
//! cannot make sense of, because a wrong guess about a malformed body is worse than no guess.

/// The two request fields a diagnosis cares about.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: Option<String>,
    pub stream: Option<bool>,
}

/// Longest `model` value kept, in characters; real model ids are far shorter, and the cap keeps
/// a hostile body from making us allocate.
const MODEL_CAP: usize = 200;
/// Longest key kept, in characters: one more than `stream`, so that longer keys can never
/// compare equal to a field we want.
const KEY_CAP: usize = 7;
/// Longest bare literal kept: `false`.
const LITERAL_CAP: usize = 5;
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`; counts how many BOM bytes were seen.
    #[default]
    Start,
    StartBom(u8),
    /// Right after `{`: a key or `}`.
    KeyOrEnd,
    /// After `,`: a key only.
    Key,
    InKey,
    Colon,
    Value,
    /// Decoding the string value of the first `model`.
    InModel,
    /// Reading the bare literal of the first `stream`.
    Literal,
    /// Skipping a number or literal we do not care about.
    SkipScalar,
    /// Skipping a nested value; `depth` counts open brackets inside it (0 while skipping a
    /// top-level string value).
    Skip {
        depth: u64,
        in_str: bool,
        esc: bool,
    },
    AfterValue,
    Finished,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Field {
    #[default]
    Other,
    Model,
    Stream,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Esc {
    #[default]
    None,
    Backslash,
    Unicode {
        digits: u8,
        acc: u16,
    },
}

enum StrStep {
    More,
    End,
    Invalid,
}

/// Decodes one JSON string into at most `cap` characters, tolerating any chunk boundary: raw
/// UTF-8 bytes are stored as they come (a split multi-byte sequence simply completes on the next
/// chunk) and escapes keep their progress in `esc`.
#[derive(Debug, Default)]
struct StrDecoder {
    buf: Vec<u8>,
    chars: usize,
    truncated: bool,
    esc: Esc,
    pending_high: Option<u16>,
}

impl StrDecoder {
    fn reset(&mut self) {
        self.buf.clear();
        self.chars = 0;
        self.truncated = false;
        self.esc = Esc::None;
        self.pending_high = None;
    }

    fn push_char(&mut self, c: char, cap: usize) {
        if self.truncated || self.chars >= cap {
            self.truncated = true;
            return;
        }
        let mut tmp = [0u8; 4];
        self.buf
            .extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        self.chars += 1;
    }

    fn push_raw(&mut self, b: u8, cap: usize) {
        if self.truncated {
            return;
        }
        let starts_char = b & 0xC0 != 0x80;
        if starts_char {
            if self.chars >= cap {
                self.truncated = true;
                return;
            }
            self.chars += 1;
        }
        self.buf.push(b);
    }

    /// Bytes of the string that are neither a quote nor a backslash, as [`StrDecoder::byte`]
    /// would take them one by one.
    fn push_run(&mut self, run: &[u8], cap: usize) {
        let Some(&first) = run.first() else {
            return;
        };
        if self.pending_high.is_some() {
            self.flush_high(cap);
            self.push_raw(first, cap);
            return self.push_run(&run[1..], cap);
        }
        let chars = run.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        if self.truncated || self.chars + chars > cap {
            for &b in run {
                self.push_raw(b, cap);
            }
            return;
        }
        self.buf.extend_from_slice(run);
        self.chars += chars;
    }

    /// An unpaired high surrogate becomes U+FFFD as soon as something other than its low half
    /// follows, as lenient decoders do.
    fn flush_high(&mut self, cap: usize) {
        if self.pending_high.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER, cap);
        }
    }

    fn code_unit(&mut self, unit: u16, cap: usize) {
        if let Some(high) = self.pending_high.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let cp = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                self.push_char(
                    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER),
                    cap,
                );
                return;
            }
            self.push_char(char::REPLACEMENT_CHARACTER, cap);
        }
        if (0xD800..=0xDBFF).contains(&unit) {
            self.pending_high = Some(unit);
        } else {
            let c = char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER);
            self.push_char(c, cap);
        }
    }

    fn byte(&mut self, b: u8, cap: usize) -> StrStep {
        match self.esc {
            Esc::None => match b {
                b'"' => {
                    self.flush_high(cap);
                    StrStep::End
                }
                b'\\' => {
                    self.esc = Esc::Backslash;
                    StrStep::More
                }
                _ => {
                    self.flush_high(cap);
                    self.push_raw(b, cap);
                    StrStep::More
                }
            },
            Esc::Backslash => {
                let c = match b {
                    b'u' => {
                        self.esc = Esc::Unicode { digits: 0, acc: 0 };
                        return StrStep::More;
                    }
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    _ => return StrStep::Invalid,
                };
                self.esc = Esc::None;
                self.flush_high(cap);
                self.push_char(c, cap);
                StrStep::More
            }
            Esc::Unicode { digits, acc } => {
                let Some(d) = char::from(b).to_digit(16) else {
                    return StrStep::Invalid;
                };
                // `d` < 16, so the cast cannot truncate.
                let acc = (acc << 4) | d as u16;
                if digits == 3 {
                    self.esc = Esc::None;
                    self.code_unit(acc, cap);
                } else {
                    self.esc = Esc::Unicode {
                        digits: digits + 1,
                        acc,
                    };
                }
                StrStep::More
            }
        }
    }
}

/// Streaming extractor of the top-level `model` and `stream` fields of a JSON object.
#[derive(Debug, Default)]
pub struct JsonFieldScanner {
    state: State,
    key: StrDecoder,
    value: StrDecoder,
    field: Field,
    literal: [u8; LITERAL_CAP],
    literal_len: usize,
    /// Set on the first occurrence of each key, whatever its value: the first occurrence wins,
    /// even when its value has the wrong type.
    model_settled: bool,
    stream_settled: bool,
    fields: RequestFields,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

impl JsonFieldScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk. Chunks may split tokens, escapes or UTF-8 sequences anywhere.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some((&b, rest)) = chunk.split_first() {
            if self.done() {
                return;
            }
            // Runs of bytes that cannot change the state (inside a string, or inside a skipped
            // value, which is most of a body) are taken whole instead of stepped through one by
            // one; this runs on every request.
            let plain = match self.state {
                State::Skip {
                    in_str: true,
                    esc: false,
                    ..
                } => memchr::memchr2(b'"', b'\\', chunk).unwrap_or(chunk.len()),
                State::Skip { in_str: false, .. } => chunk
                    .iter()
                    .position(|b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']'))
                    .unwrap_or(chunk.len()),
                State::InKey | State::InModel => {
                    let (decoder, cap) = if self.state == State::InKey {
                        (&mut self.key, KEY_CAP)
                    } else {
                        (&mut self.value, MODEL_CAP)
                    };
                    let run = if decoder.esc == Esc::None {
                        memchr::memchr2(b'"', b'\\', chunk).unwrap_or(chunk.len())
                    } else {
                        0
                    };
                    decoder.push_run(&chunk[..run], cap);
                    run
                }
                _ => 0,
            };
            if plain > 0 {
                chunk = &chunk[plain..];
                continue;
            }
            if let State::Skip { depth, in_str, esc } = self.state {
                self.skip(b, depth, in_str, esc);
            } else {
                self.step(b);
            }
            chunk = rest;
        }
    }

    /// True once both fields are settled, the top-level value ended, or the input turned out
    /// not to be a JSON object (or to be malformed); further input is ignored.
    pub fn done(&self) -> bool {
        self.state == State::Finished || (self.model_settled && self.stream_settled)
    }

    pub fn fields(&self) -> &RequestFields {
        &self.fields
    }

    /// The fields found, keeping them (for when the scanner is done with).
    pub fn into_fields(self) -> RequestFields {
        self.fields
    }

    fn stop(&mut self) {
        self.state = State::Finished;
        self.key.reset();
        self.value.reset();
        self.value.buf.shrink_to_fit();
    }

    fn step(&mut self, b: u8) {
        match self.state {
            State::Start => match b {
                b'{' => self.state = State::KeyOrEnd,
                _ if is_ws(b) => {}
                _ if b == BOM[0] => self.state = State::StartBom(1),
                _ => self.stop(),
            },
            State::StartBom(n) => {
                let n = usize::from(n);
                if BOM.get(n) == Some(&b) {
                    self.state = if n + 1 == BOM.len() {
                        State::Start
                    } else {
                        // n + 1 < 3, so it fits in a u8.
                        State::StartBom((n + 1) as u8)
                    };
                } else {
                    self.stop();
                }
            }
            State::KeyOrEnd | State::Key => match b {
                b'"' => {
                    self.key.reset();
                    self.state = State::InKey;
                }
                b'}' if self.state == State::KeyOrEnd => self.stop(),
                _ if is_ws(b) => {}
                _ => self.stop(),
            },
            State::InKey => match self.key.byte(b, KEY_CAP) {
                StrStep::More => {}
                StrStep::Invalid => self.stop(),
                StrStep::End => {
                    self.field = if self.key.truncated {
                        Field::Other
                    } else {
                        match self.key.buf.as_slice() {
                            b"model" if !self.model_settled => Field::Model,
                            b"stream" if !self.stream_settled => Field::Stream,
                            _ => Field::Other,
                        }
                    };
                    self.state = State::Colon;
                }
            },
            State::Colon => match b {
                b':' => self.state = State::Value,
                _ if is_ws(b) => {}
                _ => self.stop(),
            },
            State::Value => self.start_value(b),
            State::InModel => match self.value.byte(b, MODEL_CAP) {
                StrStep::More => {}
                StrStep::Invalid => self.stop(),
                StrStep::End => {
                    // The buffer becomes the String when it is valid UTF-8 (nearly always).
                    let model = String::from_utf8(std::mem::take(&mut self.value.buf))
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    self.fields.model = Some(model);
                    self.model_settled = true;
                    self.value.reset();
                    self.state = State::AfterValue;
                }
            },
            State::Literal => {
                if is_scalar_byte(b) {
                    if let Some(slot) = self.literal.get_mut(self.literal_len) {
                        *slot = b;
                    }
                    self.literal_len = self.literal_len.saturating_add(1);
                } else {
                    self.fields.stream = match self.literal.get(..self.literal_len) {
                        Some(b"true") => Some(true),
                        Some(b"false") => Some(false),
                        _ => None,
                    };
                    self.stream_settled = true;
                    self.state = State::AfterValue;
                    self.step(b);
                }
            }
            State::SkipScalar => {
                if !is_scalar_byte(b) {
                    self.state = State::AfterValue;
                    self.step(b);
                }
            }
            State::Skip { depth, in_str, esc } => self.skip(b, depth, in_str, esc),
            State::AfterValue => match b {
                b',' => self.state = State::Key,
                b'}' => self.stop(),
                _ if is_ws(b) => {}
                _ => self.stop(),
            },
            State::Finished => {}
        }
    }

    fn start_value(&mut self, b: u8) {
        if is_ws(b) {
            return;
        }
        let field = std::mem::take(&mut self.field);
        match b {
            b'"' if field == Field::Model => {
                self.value.reset();
                self.state = State::InModel;
                return;
            }
            b'"' => {
                self.state = State::Skip {
                    depth: 0,
                    in_str: true,
                    esc: false,
                };
            }
            b'{' | b'[' => {
                self.state = State::Skip {
                    depth: 1,
                    in_str: false,
                    esc: false,
                };
            }
            _ if is_scalar_byte(b) && field == Field::Stream => {
                self.literal_len = 0;
                self.state = State::Literal;
                self.step(b);
                return;
            }
            _ if is_scalar_byte(b) => self.state = State::SkipScalar,
            _ => {
                self.stop();
                return;
            }
        }
        // Any value that is not the expected type still settles the field: first one wins.
        match field {
            Field::Model => self.model_settled = true,
            Field::Stream => self.stream_settled = true,
            Field::Other => {}
        }
    }

    fn skip(&mut self, b: u8, depth: u64, in_str: bool, esc: bool) {
        let (depth, in_str, esc) = if in_str {
            match (esc, b) {
                (true, _) => (depth, true, false),
                (false, b'\\') => (depth, true, true),
                (false, b'"') => (depth, false, false),
                _ => (depth, true, false),
            }
        } else {
            match b {
                b'"' => (depth, true, false),
                b'{' | b'[' => (depth.saturating_add(1), false, false),
                b'}' | b']' => (depth.saturating_sub(1), false, false),
                _ => (depth, false, false),
            }
        };
        self.state = if depth == 0 && !in_str {
            State::AfterValue
        } else {
            State::Skip { depth, in_str, esc }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_chunks(doc: &[u8], size: usize) -> JsonFieldScanner {
        let mut s = JsonFieldScanner::new();
        for chunk in doc.chunks(size.max(1)) {
            if s.done() {
                break;
            }
            s.feed(chunk);
        }
        s
    }

    fn scan(doc: &[u8]) -> RequestFields {
        scan_chunks(doc, doc.len().max(1)).fields().clone()
    }

    fn fields(model: Option<&str>, stream: Option<bool>) -> RequestFields {
        RequestFields {
            model: model.map(str::to_owned),
            stream,
        }
    }

    use crate::test_rng::SplitMix;

    #[test]
    fn model_after_large_messages_in_small_chunks() {
        let filler = "x".repeat(1000);
        let messages: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                serde_json::json!({
                    "role": "user",
                    "content": format!("{filler} \"model\": \"decoy-{i}\" {{[\\\""),
                    "model": "nested-decoy",
                })
            })
            .collect();
        let doc = format!(
            "{{\"messages\":{},\"stream\":true,\"model\":\"kimi-k2\"}}",
            serde_json::to_string(&messages).expect("serialize")
        );
        assert!(doc.len() > 100_000);
        let s = scan_chunks(doc.as_bytes(), 7);
        assert!(s.done());
        assert_eq!(s.fields(), &fields(Some("kimi-k2"), Some(true)));
    }

    #[test]
    fn nested_model_is_ignored() {
        let doc = br#"{"metadata":{"model":"inner","stream":true},"messages":[{"model":"m"}]}"#;
        let s = scan_chunks(doc, doc.len());
        assert!(s.done());
        assert_eq!(s.fields(), &RequestFields::default());
    }

    #[test]
    fn escapes_split_across_chunks() {
        let doc = "{\"model\":\"a\\u00e9\\ud83d\\ude00\\n\\\"q\\\"\u{e9}z\",\"stream\":false}";
        let want = fields(Some("a\u{e9}\u{1F600}\n\"q\"\u{e9}z"), Some(false));
        for size in 1..=doc.len() {
            assert_eq!(
                scan_chunks(doc.as_bytes(), size).fields(),
                &want,
                "chunk {size}"
            );
        }
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let doc = "\u{feff} \n{ \"mod\\u0065l\" : \"gl\u{e9}m-4.\\u0035\\/x\" , \"n\":[1,{\"a\":\"}\"}],\"stream\" :true }";
        let want = fields(Some("gl\u{e9}m-4.5/x"), Some(true));
        let bytes = doc.as_bytes();
        assert_eq!(scan(bytes), want);
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut s = JsonFieldScanner::new();
                s.feed(&bytes[..i]);
                s.feed(&bytes[i..j]);
                s.feed(&bytes[j..]);
                assert_eq!(s.fields(), &want, "split at {i}/{j}");
                assert!(s.done());
            }
        }
    }

    #[test]
    fn non_object_input_stops_immediately() {
        for doc in [
            &b"[{\"model\":\"x\"}]"[..],
            b"\"model\"",
            b"model=x&stream=true",
            b"\xEF\xBB{\"model\":\"x\"}",
        ] {
            let mut s = JsonFieldScanner::new();
            s.feed(doc);
            assert!(s.done());
            assert_eq!(s.fields(), &RequestFields::default());
        }
    }

    #[test]
    fn stream_false_and_wrong_types() {
        assert_eq!(
            scan(br#"{"stream":false,"model":"m"}"#),
            fields(Some("m"), Some(false))
        );
        assert_eq!(
            scan(br#"{"stream":"true","model":7}"#),
            RequestFields::default()
        );
        assert_eq!(scan(br#"{"stream":truex}"#), RequestFields::default());
        assert_eq!(
            scan(br#"{"model":null,"stream":1}"#),
            RequestFields::default()
        );
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(
            scan(br#"{"model":"a","model":"b","stream":true,"stream":false}"#),
            fields(Some("a"), Some(true))
        );
        assert_eq!(
            scan(br#"{"model":null,"model":"b"}"#),
            RequestFields::default()
        );
    }

    #[test]
    fn done_only_when_settled_or_ended() {
        let mut s = JsonFieldScanner::new();
        s.feed(br#"{"model":"a","#);
        assert!(!s.done());
        s.feed(br#""x":1}"#);
        assert!(s.done());
        assert_eq!(s.fields(), &fields(Some("a"), None));
        let mut s = JsonFieldScanner::new();
        s.feed(br#"{"model":"a","stream":true"#);
        assert!(
            !s.done(),
            "a literal needs its delimiter: `truex` is not `true`"
        );
        s.feed(b" ");
        assert!(s.done(), "both found before the closing brace");
    }

    #[test]
    fn model_is_capped() {
        let long: String = "\u{e9}".repeat(300);
        let doc = format!(r#"{{"model":"{long}","stream":true}}"#);
        let got = scan_chunks(doc.as_bytes(), 3).fields().clone();
        assert_eq!(got.model.as_deref(), Some("\u{e9}".repeat(200).as_str()));
        assert_eq!(got.stream, Some(true));
    }

    #[test]
    fn long_keys_do_not_match() {
        assert_eq!(
            scan(br#"{"models":"a","streaming":true,"modelx":"b"}"#),
            RequestFields::default()
        );
    }

    #[test]
    fn invalid_json_stops_without_panic() {
        for doc in [
            &br#"{"model" "x"}"#[..],
            br#"{"model":"\q"}"#,
            br#"{"model":"\u12G4"}"#,
            br#"{,}"#,
            br#"{"a":1 "model":"x"}"#,
            br#"{"a":}"#,
        ] {
            let mut s = JsonFieldScanner::new();
            s.feed(doc);
            assert!(s.done(), "{:?}", String::from_utf8_lossy(doc));
            assert_eq!(s.fields().model, None);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = SplitMix(0x5EED);
        let alphabet = b"{}[]\":,\\u0123456789abcdefnrtl \n\xEF\xBB\xBF\xC3\xA9\xFF";
        for _ in 0..3000 {
            let len = rng.below(80);
            let mut doc: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.chance(20) {
                        (rng.next() & 0xFF) as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            if rng.chance(50) {
                doc.insert(0, b'{');
            }
            let s = scan_chunks(&doc, 1 + rng.below(9));
            if let Some(m) = &s.fields().model {
                assert!(m.chars().count() <= MODEL_CAP);
            }
        }
    }

    fn random_string(rng: &mut SplitMix, max: usize) -> String {
        const PIECES: [&str; 14] = [
            "a",
            "Z",
            "9",
            "-",
            ".",
            "/",
            "\"",
            "\\",
            "\n",
            "\u{e9}",
            "\u{4e2d}",
            "\u{1F600}",
            "model",
            "\u{1}",
        ];
        (0..rng.below(max + 1))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect()
    }

    fn random_value(rng: &mut SplitMix, depth: usize) -> serde_json::Value {
        use serde_json::Value;
        match rng.below(if depth > 2 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.chance(50)),
            2 => serde_json::json!(rng.next() as i64 / 3),
            3 => Value::String(random_string(rng, 12)),
            4 => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..rng.below(4) {
                    let k = if rng.chance(30) {
                        ["model", "stream"][rng.below(2)].to_owned()
                    } else {
                        random_string(rng, 6)
                    };
                    m.insert(k, random_value(rng, depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    /// Rewrites every non-ASCII character as `\uXXXX` (surrogate pairs above the BMP), which
    /// serde_json never does itself, to exercise the escape decoder.
    fn escape_non_ascii(json: &str) -> String {
        let mut out = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out
    }

    #[test]
    fn agrees_with_serde_json_on_random_documents() {
        let mut rng = SplitMix(42);
        for case in 0..1500 {
            let mut obj = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                obj.insert(random_string(&mut rng, 8), random_value(&mut rng, 0));
            }
            match rng.below(4) {
                0 => {}
                1 => {
                    obj.insert("model".into(), random_value(&mut rng, 0));
                }
                _ => {
                    let len = if rng.chance(10) { 250 } else { 30 };
                    obj.insert("model".into(), random_string(&mut rng, len).into());
                }
            }
            match rng.below(4) {
                0 => {}
                1 => {
                    obj.insert("stream".into(), random_value(&mut rng, 0));
                }
                _ => {
                    obj.insert("stream".into(), rng.chance(50).into());
                }
            }
            let value = serde_json::Value::Object(obj);
            let mut doc = if rng.chance(50) {
                serde_json::to_string_pretty(&value).expect("serialize")
            } else {
                serde_json::to_string(&value).expect("serialize")
            };
            if rng.chance(40) {
                doc = escape_non_ascii(&doc);
            }
            let want = RequestFields {
                model: value["model"]
                    .as_str()
                    .map(|m| m.chars().take(MODEL_CAP).collect()),
                stream: value["stream"].as_bool(),
            };
            for size in [1, 2, 3, 5, 7, 64, doc.len()] {
                let s = scan_chunks(doc.as_bytes(), size);
                assert_eq!(s.fields(), &want, "case {case}, chunk {size}: {doc}");
                assert!(s.done(), "case {case}");
            }
        }
    }
}

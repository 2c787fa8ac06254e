//! Turns the start of a provider's error response into a small, comparable [`ProviderError`],
//! and scrubs key material out of any text before it is recorded or shown.
//!
//! The proxy only keeps a bounded prefix of a response body, possibly compressed and possibly cut
//! mid-stream, so decoding is best effort. Each provider shapes its errors differently (see
//! `shared/providers.md`, sections 1, 11 and 12); `parse` folds those shapes into one `type` /
//! `code` / `message` triple. Some providers echo the key that was sent (OpenAI, DeepSeek, older
//! xAI, or whatever a misconfigured client put in the header), so every field `parse` returns
//! must go through [`scrub`] before it is recorded. `parse` does not scrub itself: only the
//! caller knows which keys were sent.

use std::borrow::Cow;
use std::io::Read;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::secret::Secret;

/// What a provider said went wrong, as far as its error body tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderError {
    /// The error class: `error.type` (OpenAI, Anthropic; Z.AI's Anthropic path puts its numeric
    /// business code here), Google's `status`, xAI's `code` text, or `html` for an HTML page.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// A machine code, always as a string (`"1000"`, `"401"`, `"invalid_api_key"`,
    /// `"API_KEY_INVALID"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// The human-readable text, at most [`MESSAGE_CAP`] characters plus an ellipsis.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

impl ProviderError {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.code.is_none() && self.message.is_none()
    }
}

/// Longest field kept from an error body, in characters; error messages are short, and anything
/// longer is more likely a page of junk than a diagnosis.
pub const MESSAGE_CAP: usize = 500;
/// How much of an HTML page's text or of a plain-text body stands in for a message.
const SNIPPET_CAP: usize = 200;
/// Output cap for the inner stages of a stacked `Content-Encoding` (`gzip, br`): the final stage
/// is bounded by the caller's limit, the inner ones only need to feed it.
const INNER_STAGE_CAP: usize = 4 << 20;
const REDACTED: &str = "[redacted]";
/// Shorter fragments of a key than this are left alone: they cannot be told apart from ordinary
/// words, and they are all a masked echo (`****fcc2`) shows.
const MIN_RUN: usize = crate::secret::RUN;
/// Providers echo the last four characters of a key as a masked hint; keeping them lets a user
/// see which key was sent.
const TAIL_KEPT: usize = 4;

// ---------------------------------------------------------------------------------------------
// Content-Encoding

/// Undoes `Content-Encoding` on a possibly truncated prefix of a body and returns at most
/// `limit` decoded bytes: as many as the prefix yields.
///
/// Understands `gzip`, `x-gzip`, `deflate` (zlib-wrapped or raw), `br`, `identity`/`none` and
/// a comma-separated stack of those. Returns `None` for an unknown coding; bytes that are not in
/// the named coding decode to nothing.
pub fn decode(content_encoding: Option<&str>, bytes: &[u8], limit: usize) -> Option<Vec<u8>> {
    let codings: Vec<String> = content_encoding
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity" && c != "none")
        .collect();
    let mut data = Cow::Borrowed(bytes);
    // Codings are listed in the order they were applied, so they are undone from the last.
    for (i, coding) in codings.iter().enumerate().rev() {
        let stage_limit = if i == 0 {
            limit
        } else {
            limit.max(INNER_STAGE_CAP)
        };
        let input: &[u8] = &data;
        let reader: Box<dyn Read + '_> = match coding.as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(input)),
            // `deflate` is meant to be zlib-wrapped, but some servers send raw deflate; the zlib
            // header is recognisable (method 8, header checksum divisible by 31).
            "deflate" if is_zlib(input) => Box::new(flate2::read::ZlibDecoder::new(input)),
            "deflate" => Box::new(flate2::read::DeflateDecoder::new(input)),
            "br" => Box::new(brotli::Decompressor::new(input, 4096)),
            _ => return None,
        };
        data = Cow::Owned(read_prefix(reader, stage_limit));
    }
    let mut out = data.into_owned();
    out.truncate(limit);
    Some(out)
}

fn is_zlib(data: &[u8]) -> bool {
    matches!(data, [cmf, flg, ..] if cmf & 0x0F == 8 && cmf >> 4 <= 7 && u16::from_be_bytes([*cmf, *flg]) % 31 == 0)
}

/// Read until the end, an error (a truncated prefix ends in one), or `limit` bytes.
fn read_prefix(mut reader: impl Read, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8 * 1024];
    while out.len() < limit {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n.min(limit - out.len())]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Reads a provider error out of a decoded body prefix; `None` when nothing error-like is there
/// (an empty body, a success payload, binary data, or JSON cut off before anything useful).
///
/// The result is NOT scrubbed: pass each field through [`scrub`] before recording it.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Option<ProviderError> {
    let body = body
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(body);
    let body = body.trim_ascii_start();
    let &first = body.first()?;
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let found = if first == b'{' || first == b'[' || (ct.contains("json") && first != b'<') {
        match first_json_value(body) {
            Some(v) => from_json(&v),
            None if first == b'{' || first == b'[' => salvage_truncated_json(body),
            None => from_text(body),
        }
    } else if ct.contains("html") || first == b'<' {
        Some(from_html(body))
    } else if ct.contains("event-stream")
        || body.starts_with(b"data:")
        || body.starts_with(b"event:")
    {
        from_sse(body)
    } else {
        from_text(body)
    };
    found.map(|e| ProviderError {
        kind: e.kind.map(|s| cap_chars(&s, MESSAGE_CAP)),
        code: e.code.map(|s| cap_chars(&s, MESSAGE_CAP)),
        message: e.message.map(|s| cap_chars(&s, MESSAGE_CAP)),
    })
}

/// The first JSON value in `body`, ignoring anything after it (some servers append a newline
/// or a second document).
fn first_json_value(body: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
}

/// A code as a string: strings as they are, numbers and booleans printed, null and empty as
/// nothing.
fn code_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn from_json(v: &Value) -> Option<ProviderError> {
    match v {
        Value::Object(o) => from_object(o),
        // Google's streaming endpoints wrap the error object in an array.
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_object)
            .find_map(from_object),
        Value::String(_) => text(v).map(|message| ProviderError {
            message: Some(message),
            ..ProviderError::default()
        }),
        _ => None,
    }
}

fn from_object(o: &Map<String, Value>) -> Option<ProviderError> {
    let base_resp_code = o
        .get("base_resp")
        .and_then(|b| b.get("status_code"))
        .and_then(code_string);

    match o.get("error") {
        // OpenAI, Anthropic, Kimi, Z.AI, OpenRouter, Google, MiniMax token plan.
        Some(Value::Object(e)) => {
            let google_reason = e
                .get("details")
                .and_then(Value::as_array)
                .and_then(|d| d.iter().find_map(|x| x.get("reason").and_then(code_string)));
            let found = ProviderError {
                kind: e
                    .get("type")
                    .and_then(code_string)
                    .or_else(|| e.get("status").and_then(code_string)),
                code: google_reason
                    .or_else(|| e.get("code").and_then(code_string))
                    .or_else(|| base_resp_code.clone().filter(|c| c != "0")),
                message: e
                    .get("message")
                    .and_then(text)
                    .or_else(|| o.get("message").and_then(text)),
            };
            if !found.is_empty() {
                return Some(found);
            }
        }
        Some(Value::String(s)) if !s.trim().is_empty() => {
            // OAuth servers put a code in `error` and the text in `error_description`.
            if let Some(desc) = o.get("error_description").and_then(text) {
                return Some(ProviderError {
                    kind: None,
                    code: Some(s.trim().to_owned()),
                    message: Some(desc),
                });
            }
            // xAI puts the status text in `code`; Hugging Face has no code at all.
            let (kind, code) = match o.get("code") {
                Some(Value::String(c)) if !c.trim().is_empty() => (Some(c.trim().to_owned()), None),
                Some(n @ Value::Number(_)) => (None, code_string(n)),
                _ => (None, None),
            };
            return Some(ProviderError {
                kind,
                code,
                message: Some(s.trim().to_owned()),
            });
        }
        _ => {}
    }

    // MiniMax native: a status code of 0 is success.
    if let Some(code) = base_resp_code {
        if code == "0" {
            return None;
        }
        return Some(ProviderError {
            kind: None,
            code: Some(code),
            message: o
                .get("base_resp")
                .and_then(|b| b.get("status_msg"))
                .and_then(text),
        });
    }

    let flag = |k: &str, want: bool| o.get(k) == Some(&Value::Bool(want));
    let says_error = flag("success", false)
        || o.get("object").and_then(Value::as_str) == Some("error")
        || o.get("type").and_then(Value::as_str) == Some("error");
    let status_ok = o
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|st| st.eq_ignore_ascii_case("ok") || st.eq_ignore_ascii_case("success"));
    if flag("success", true) || flag("status", true) || status_ok {
        return None;
    }
    if !says_error && looks_like_success(o) {
        return None;
    }

    let code = o.get("code").and_then(code_string);
    if !says_error
        && let Some(c) = &code
        && ["0", "200", "success", "ok"]
            .iter()
            .any(|s| c.eq_ignore_ascii_case(s))
    {
        return None;
    }
    let mut found = ProviderError {
        kind: o.get("type").and_then(code_string).filter(|t| t != "error"),
        code,
        // DashScope native and Mistral use `message`, Z.AI monitor `msg`, FastAPI `detail`.
        message: ["message", "msg", "detail"]
            .iter()
            .find_map(|k| o.get(*k).and_then(text)),
    };
    // FastAPI validation errors: `{"detail":[{"loc":..,"msg":..,"type":..}]}`.
    if found.message.is_none()
        && let Some(first) = o
            .get("detail")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
    {
        found.message = first.get("msg").and_then(text);
        found.kind = found
            .kind
            .or_else(|| first.get("type").and_then(code_string));
    }
    // A `type` alone is not enough: event objects such as `{"type":"message_start"}` have one.
    (says_error || found.message.is_some() || found.code.is_some()).then_some(found)
}

/// Keys that only success payloads carry at the top level: chat completions, lists, Gemini
/// candidates, Anthropic messages.
fn looks_like_success(o: &Map<String, Value>) -> bool {
    [
        "choices",
        "candidates",
        "data",
        "object",
        "models",
        "content",
        "usage",
        "output",
    ]
    .iter()
    .any(|k| o.contains_key(*k))
}

static SALVAGE_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(?:message|msg|status_msg|detail)"\s*:\s*("(?:[^"\\]|\\.)*")"#)
        .expect("static regex")
});
static SALVAGE_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(?:type|status)"\s*:\s*("(?:[^"\\]|\\.)*")"#).expect("static regex")
});
static SALVAGE_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""(?:code|status_code)"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9]+)"#)
        .expect("static regex")
});

/// A JSON error cut off by the capture limit (or sent truncated) still usually has its short
/// fields near the start. Only bodies that name an error are salvaged, so a cut-off success
/// payload is not mistaken for one.
fn salvage_truncated_json(body: &[u8]) -> Option<ProviderError> {
    let s = String::from_utf8_lossy(body);
    if !s.contains("\"error\"") && !s.contains("\"base_resp\"") {
        return None;
    }
    let decode = |lit: &str| {
        serde_json::from_str::<Value>(lit)
            .ok()
            .as_ref()
            .and_then(code_string)
    };
    let found = ProviderError {
        kind: SALVAGE_TYPE
            .captures_iter(&s)
            .filter_map(|c| c.get(1).and_then(|m| decode(m.as_str())))
            .find(|t| t != "error"),
        code: SALVAGE_CODE
            .captures(&s)
            .and_then(|c| c.get(1))
            .and_then(|m| decode(m.as_str())),
        message: SALVAGE_MESSAGE
            .captures(&s)
            .and_then(|c| c.get(1))
            .and_then(|m| decode(m.as_str())),
    };
    (found.message.is_some() || found.code.is_some()).then_some(found)
}

/// An error that arrives inside an event stream (HTTP 200, then `event: error`) is found in the
/// first `data:` line that parses as an error; a stream without one is a success.
fn from_sse(body: &[u8]) -> Option<ProviderError> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find_map(|v| {
            let has_error = v.get("error").is_some_and(|e| !e.is_null())
                || v.get("type").and_then(Value::as_str) == Some("error");
            has_error.then(|| from_json(&v)).flatten()
        })
}

fn from_html(body: &[u8]) -> ProviderError {
    let page = String::from_utf8_lossy(body);
    let message = html_title(&page).filter(|t| !t.is_empty()).or_else(|| {
        let text = html_text(&page);
        (!text.is_empty()).then(|| cap_chars(&text, SNIPPET_CAP))
    });
    ProviderError {
        kind: Some("html".to_owned()),
        code: None,
        message,
    }
}

fn html_title(page: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets, so indexes found in `lower` are valid in `page`.
    let lower = page.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower.get(open..)?.find('>')? + 1;
    let len = lower.get(start..)?.find('<').unwrap_or(lower.len() - start);
    Some(collapse_ws(&decode_entities(page.get(start..start + len)?)))
}

/// The visible text of a page: tags dropped, `<script>` and `<style>` bodies skipped.
fn html_text(page: &str) -> String {
    let lower = page.to_ascii_lowercase();
    let mut out = String::new();
    let mut pos = 0;
    while let Some(rest) = page.get(pos..) {
        let Some(lt) = rest.find('<') else {
            out.push_str(rest);
            break;
        };
        out.push_str(rest.get(..lt).unwrap_or_default());
        out.push(' ');
        let tag_start = pos + lt;
        let Some(gt) = page.get(tag_start..).and_then(|r| r.find('>')) else {
            break;
        };
        pos = tag_start + gt + 1;
        for skipped in ["script", "style"] {
            if lower
                .get(tag_start + 1..)
                .is_some_and(|t| t.starts_with(skipped))
            {
                let close = format!("</{skipped}");
                pos = lower
                    .get(pos..)
                    .and_then(|r| r.find(&close))
                    .map_or(page.len(), |i| pos + i);
            }
        }
    }
    collapse_ws(&decode_entities(&out))
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text: the first non-empty line. Bytes that are not text (NUL, invalid UTF-8, i.e. most
/// likely a body whose encoding was not undone) give `None` rather than mojibake.
fn from_text(body: &[u8]) -> Option<ProviderError> {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        // A capture limit can cut a multi-byte character in half; that is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(body.get(..e.valid_up_to()).unwrap_or_default()).ok()?
        }
        Err(_) => return None,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
    {
        return None;
    }
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(ProviderError {
        message: Some(cap_chars(line, SNIPPET_CAP)),
        ..ProviderError::default()
    })
}

/// The first `cap` characters of `s`, with `…` appended when something was cut.
fn cap_chars(s: &str, cap: usize) -> String {
    match s.char_indices().nth(cap) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Scrubbing

/// Removes key material from `text` before it is recorded or shown.
///
/// Two rules, and deliberately only these two, so that what is removed is predictable and a
/// diagnosis never loses words to a guess:
///
/// 1. For each secret (the key as sent, read as lossy UTF-8), every maximal run of at least
///    five characters of `text` that also occurs in the secret becomes `[redacted]`, unless the
///    run lies wholly within the secret's public part: a listed public prefix that the secret
///    starts with, its last four characters, or the whitespace and quotes around it. Masking
///    characters (`*`, `•`, `●`, `…`) never count as key material, so runs break at them. So `sk-proj-****1234` survives,
///    a full echo does not, and no more of a secret than its public prefix plus its last four
///    characters can come through. Secrets shorter than five characters (after trimming
///    whitespace and quotes) are not keys and are ignored.
/// 2. Every match of a `key_patterns` regex (the catalog's key shapes) becomes `[redacted]`,
///    which catches echoes of keys other than the ones sent.
///
/// There is no third rule for "long opaque tokens" without a known secret: request ids, hashes
/// and URLs look the same, and redacting them would hide exactly what a user needs to quote to
/// a provider's support.
pub fn scrub<'t>(
    text: &'t str,
    secrets: &[&Secret],
    public_prefixes: &[&str],
    key_patterns: &[&Regex],
) -> Cow<'t, str> {
    // Most texts share nothing with the key (a user agent, a model name, an error message that
    // does not echo it): a check of byte windows skips the character-by-character search.
    let secrets: Vec<&Secret> = secrets
        .iter()
        .copied()
        .filter(|secret| secret.shares_run_with(text.as_bytes()))
        .collect();
    if secrets.is_empty() && key_patterns.is_empty() {
        return Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut mask = vec![false; chars.len()];
    for secret in &secrets {
        mark_secret(&chars, secret, public_prefixes, &mut mask);
    }
    if !key_patterns.is_empty() {
        let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for re in key_patterns {
            for m in re.find_iter(text).filter(|m| !m.is_empty()) {
                let from = starts.partition_point(|&s| s < m.start());
                let to = starts.partition_point(|&s| s < m.end());
                if let Some(span) = mask.get_mut(from..to) {
                    span.fill(true);
                }
            }
        }
    }
    if !mask.contains(&true) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_redaction = false;
    for (&c, &hidden) in chars.iter().zip(&mask) {
        if hidden {
            if !in_redaction {
                out.push_str(REDACTED);
            }
        } else {
            out.push(c);
        }
        in_redaction = hidden;
    }
    Cow::Owned(out)
}

/// Characters that surround a key by accident (a pasted newline, quotes from a config file) and
/// carry no key material.
fn is_wrapping(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`')
}

/// Masking characters are never key material: a key the user pasted from a dashboard that
/// shows `sk-proj-****1234` is not secret, and matching on them would redact a provider's own
/// masked echo.
fn is_mask_char(c: char) -> bool {
    matches!(c, '*' | '•' | '●' | '…')
}

fn mark_secret(text: &[char], secret: &Secret, public_prefixes: &[&str], mask: &mut [bool]) {
    let (raw, occurs) = secret.chars();
    let lead = raw.iter().take_while(|c| is_wrapping(**c)).count();
    let trail = raw
        .get(lead..)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|c| is_wrapping(**c))
        .count();
    let core_end = raw.len() - trail;
    let Some(core) = raw.get(lead..core_end) else {
        return;
    };
    if core.len() < MIN_RUN {
        return;
    }
    let core_str: String = core.iter().collect();
    let prefix_len = public_prefixes
        .iter()
        .filter(|p| !p.is_empty() && core_str.starts_with(**p))
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0);
    // The trimmed variant is a substring of the raw one, so matching against the raw secret finds
    // every run either would; the wrapping characters only widen the public head and tail.
    let head = raw.get(..lead + prefix_len).unwrap_or_default();
    let tail = raw.get(core_end - TAIL_KEPT..).unwrap_or_default();

    let best = longest_matches(text, raw, occurs);
    for (i, &len) in best.iter().enumerate() {
        if len < MIN_RUN {
            continue;
        }
        // A run starting one character earlier and one longer contains this one: not maximal.
        if i > 0 && best.get(i - 1) == Some(&(len + 1)) {
            continue;
        }
        let Some(run) = text.get(i..i + len) else {
            continue;
        };
        if !contains_seq(head, run)
            && !contains_seq(tail, run)
            && let Some(span) = mask.get_mut(i..i + len)
        {
            span.fill(true);
        }
    }
}

/// For each position of `text`, the length of the longest substring of `secret` that starts
/// there, where masking characters never match. The rows of the classic longest-common-substring
/// table, but only their non-zero cells: a character of the text is looked up where it occurs in
/// the secret, so a text that shares little with the key (most of an error message) costs little;
/// O(text × secret) at worst, O(secret) extra memory.
fn longest_matches(text: &[char], secret: &[char], occurs: &[u64]) -> Vec<usize> {
    // `next` holds the row after the current one, `cur` the one before that until it is cleared;
    // the `_set` lists say which cells are non-zero.
    let mut next = vec![0usize; secret.len() + 1];
    let mut cur = vec![0usize; secret.len() + 1];
    let (mut next_set, mut cur_set) = (Vec::new(), Vec::new());
    let mut best = vec![0usize; text.len()];
    for (i, &t) in text.iter().enumerate().rev() {
        for j in cur_set.drain(..) {
            cur[j] = 0;
        }
        let mut longest = 0;
        if !is_mask_char(t) {
            let key = u64::from(t) << 32;
            let from = occurs.partition_point(|&o| o < key);
            for &o in occurs[from..].iter().take_while(|&&o| o >> 32 == key >> 32) {
                let j = (o & 0xFFFF_FFFF) as usize;
                cur[j] = next[j + 1] + 1;
                cur_set.push(j);
                longest = longest.max(cur[j]);
            }
        }
        best[i] = longest;
        std::mem::swap(&mut cur, &mut next);
        std::mem::swap(&mut cur_set, &mut next_set);
    }
    best
}

fn contains_seq(hay: &[char], needle: &[char]) -> bool {
    needle.is_empty()
        || (needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pe(kind: Option<&str>, code: Option<&str>, message: Option<&str>) -> Option<ProviderError> {
        Some(ProviderError {
            kind: kind.map(str::to_owned),
            code: code.map(str::to_owned),
            message: message.map(str::to_owned),
        })
    }

    fn json(body: &str) -> Option<ProviderError> {
        parse(Some("application/json"), body.as_bytes())
    }

    // --- decode -----------------------------------------------------------------------------

    fn sample_body() -> Vec<u8> {
        (0..4000)
            .map(|i| format!("{{\"i\":{i},\"error\":\"line {}\"}}\n", i * 7919 % 1000))
            .collect::<String>()
            .into_bytes()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        w.write_all(data).expect("write");
        w.flush().expect("flush");
        w.into_inner()
    }

    #[test]
    fn decode_identity_and_unknown() {
        assert_eq!(decode(None, b"hello", 3), Some(b"hel".to_vec()));
        assert_eq!(
            decode(Some("identity"), b"hello", 99),
            Some(b"hello".to_vec())
        );
        assert_eq!(
            decode(Some(" None "), b"hello", 99),
            Some(b"hello".to_vec())
        );
        assert_eq!(decode(Some("zstd"), b"hello", 99), None);
        assert_eq!(decode(Some("gzip, compress"), b"hello", 99), None);
    }

    #[test]
    fn decode_complete_bodies() {
        let body = sample_body();
        let cases: [(&str, Vec<u8>); 5] = [
            ("gzip", gzip(&body)),
            ("X-GZIP", gzip(&body)),
            ("deflate", zlib(&body)),
            ("deflate", raw_deflate(&body)),
            ("br", br(&body)),
        ];
        for (coding, encoded) in cases {
            assert_eq!(
                decode(Some(coding), &encoded, usize::MAX).as_deref(),
                Some(body.as_slice()),
                "{coding}"
            );
            assert_eq!(
                decode(Some(coding), &encoded, 1000).as_deref(),
                Some(&body[..1000]),
                "{coding} limited"
            );
        }
    }

    #[test]
    fn decode_truncated_prefixes() {
        let body = sample_body();
        let cases: [(&str, Vec<u8>); 4] = [
            ("gzip", gzip(&body)),
            ("deflate", zlib(&body)),
            ("deflate", raw_deflate(&body)),
            ("br", br(&body)),
        ];
        for (coding, encoded) in cases {
            let mut longest = 0;
            for cut in [
                0,
                1,
                2,
                5,
                9,
                10,
                11,
                20,
                64,
                300,
                encoded.len() / 2,
                encoded.len() - 1,
            ] {
                let got = decode(Some(coding), &encoded[..cut], usize::MAX)
                    .unwrap_or_else(|| panic!("{coding} cut at {cut} gave None"));
                assert!(
                    body.starts_with(&got),
                    "{coding} cut at {cut} is not a prefix"
                );
                longest = longest.max(got.len());
            }
            assert!(
                longest > body.len() / 4,
                "{coding}: only {longest} bytes from half a body"
            );
        }
    }

    #[test]
    fn decode_gzip_members_and_garbage() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(
            decode(Some("gzip"), &two, 100),
            Some(b"first second".to_vec())
        );
        let mut trailing = gzip(b"only");
        trailing.extend_from_slice(b"\0\0junk");
        assert_eq!(decode(Some("gzip"), &trailing, 100), Some(b"only".to_vec()));
        assert_eq!(decode(Some("gzip"), b"{\"error\":1}", 100), Some(vec![]));
        assert_eq!(decode(Some("br"), &[0xFF; 32], 100), Some(vec![]));
        assert_eq!(decode(Some("deflate"), &[0xFF; 32], 100), Some(vec![]));
        assert_eq!(decode(Some("gzip"), b"", 100), Some(Vec::new()));
    }

    #[test]
    fn decode_stacked_codings() {
        let body = sample_body();
        let encoded = br(&gzip(&body));
        assert_eq!(
            decode(Some("gzip, br"), &encoded, 500).as_deref(),
            Some(&body[..500])
        );
    }

    // --- parse: one test per shape in providers.md -----------------------------------------

    #[test]
    fn openai_style_bodies() {
        assert_eq!(
            json(
                r#"{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}"#
            ),
            pe(
                Some("invalid_authentication_error"),
                None,
                Some("Invalid Authentication")
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            pe(
                Some("invalid_request_error"),
                Some("invalid_api_key"),
                Some(
                    "Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error"
                )
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"You didn't provide an API key. … Authorization: Bearer YOUR_KEY). ","type":"invalid_request_error","code":null}}"#
            ),
            pe(
                Some("invalid_request_error"),
                None,
                Some("You didn't provide an API key. … Authorization: Bearer YOUR_KEY).")
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"Authentication Fails, Your api key: ****fcc2 is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#
            ),
            pe(
                Some("authentication_error"),
                Some("invalid_request_error"),
                Some("Authentication Fails, Your api key: ****fcc2 is invalid")
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"Incorrect API key provided: sk-proj-****…GDYA. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
            ),
            pe(
                Some("invalid_request_error"),
                Some("invalid_api_key"),
                Some(
                    "Incorrect API key provided: sk-proj-****…GDYA. You can find your API key at https://platform.openai.com/account/api-keys."
                )
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            pe(
                Some("invalid_request_error"),
                Some("invalid_api_key"),
                Some("Invalid API Key")
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"message":"Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc.","type":"access_terminated_error"}}"#
            ),
            pe(
                Some("access_terminated_error"),
                None,
                Some(
                    "Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc."
                )
            )
        );
    }

    #[test]
    fn anthropic_style_bodies() {
        assert_eq!(
            json(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#
            ),
            pe(
                Some("authentication_error"),
                None,
                Some("invalid x-api-key")
            )
        );
        assert_eq!(
            json(
                r#"{"error":{"type":"authentication_error","message":"The API Key appears to be invalid or may have expired. Please verify your credentials and try again."},"type":"error"}"#
            ),
            pe(
                Some("authentication_error"),
                None,
                Some(
                    "The API Key appears to be invalid or may have expired. Please verify your credentials and try again."
                )
            )
        );
        assert_eq!(
            json(
                r#"{"type":"error","error":{"type":"1113","message":"Insufficient balance or no resource package. Please recharge."},"request_id":"20251009174412abc"}"#
            ),
            pe(
                Some("1113"),
                None,
                Some("Insufficient balance or no resource package. Please recharge.")
            )
        );
    }

    #[test]
    fn zai_and_openrouter_bodies() {
        assert_eq!(
            json(r#"{"error":{"code":"1000","message":"Authentication Failed"}}"#),
            pe(None, Some("1000"), Some("Authentication Failed"))
        );
        assert_eq!(
            json(r#"{"error":{"code":"1000","message":"身份验证失败。"}}"#),
            pe(None, Some("1000"), Some("身份验证失败。"))
        );
        assert_eq!(
            json(r#"{"error":{"message":"No auth credentials found","code":401}}"#),
            pe(None, Some("401"), Some("No auth credentials found"))
        );
        assert_eq!(
            json(
                r#"{"error":{"code":"FORBIDDEN","message":"Fire Pass API keys are not authorized for this route."}}"#
            ),
            pe(
                None,
                Some("FORBIDDEN"),
                Some("Fire Pass API keys are not authorized for this route.")
            )
        );
    }

    #[test]
    fn google_bodies() {
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
        let want = pe(
            Some("INVALID_ARGUMENT"),
            Some("API_KEY_INVALID"),
            Some("API key not valid. Please pass a valid API key."),
        );
        assert_eq!(json(body), want);
        assert_eq!(
            json(&format!("[{body}]")),
            want,
            "streaming endpoints wrap it in an array"
        );
        assert_eq!(
            json(
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#
            ),
            pe(
                Some("UNAUTHENTICATED"),
                Some("401"),
                Some("Request had invalid authentication credentials.")
            )
        );
    }

    #[test]
    fn minimax_bodies() {
        assert_eq!(
            json(r#"{"base_resp":{"status_code":2049,"status_msg":"invalid api key"}}"#),
            pe(None, Some("2049"), Some("invalid api key"))
        );
        assert_eq!(
            json(r#"{"id":"1","choices":[],"base_resp":{"status_code":0,"status_msg":"success"}}"#),
            None
        );
        assert_eq!(
            json(r#"{"base_resp":{"status_code":0,"status_msg":""}}"#),
            None
        );
        assert_eq!(
            json(
                r#"{"base_resp":{"status_code":2056},"error":{"message":"usage limit exceeded, 5-hour usage limit reached for Token Plan (2056)"}}"#
            ),
            pe(
                None,
                Some("2056"),
                Some("usage limit exceeded, 5-hour usage limit reached for Token Plan (2056)")
            )
        );
        assert_eq!(
            json(
                r#"{"type":"error","error":{"type":"api_error","message":"insufficient balance (1008)"}}"#
            ),
            pe(Some("api_error"), None, Some("insufficient balance (1008)"))
        );
    }

    #[test]
    fn dashscope_native_bodies() {
        assert_eq!(
            json(
                r#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"5f0a7c1e-0000-4d5e-9c1b-2f6b4a0f8e21"}"#
            ),
            pe(
                None,
                Some("InvalidApiKey"),
                Some("Invalid API-key provided.")
            )
        );
        assert_eq!(
            json(
                r#"{"code":"Arrearage","message":"Access denied, please make sure your account has enough balance"}"#
            ),
            pe(
                None,
                Some("Arrearage"),
                Some("Access denied, please make sure your account has enough balance")
            )
        );
    }

    #[test]
    fn xai_bodies() {
        assert_eq!(
            json(
                r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: gs***UQ. You can obtain an API key from https://console.x.ai."}"#
            ),
            pe(
                Some("Client specified an invalid argument"),
                None,
                Some(
                    "Incorrect API key provided: gs***UQ. You can obtain an API key from https://console.x.ai."
                )
            )
        );
        assert_eq!(
            json(
                r#"{"code":"invalid-argument","error":"Incorrect API key provided. You can obtain an API key from https://console.x.ai."}"#
            ),
            pe(
                Some("invalid-argument"),
                None,
                Some(
                    "Incorrect API key provided. You can obtain an API key from https://console.x.ai."
                )
            )
        );
    }

    #[test]
    fn zai_monitor_bodies() {
        assert_eq!(
            json(r#"{"code":1000,"msg":"Authentication Failed","success":false}"#),
            pe(None, Some("1000"), Some("Authentication Failed"))
        );
        assert_eq!(
            json(r#"{"code":401,"msg":"token expired or incorrect","success":false}"#),
            pe(None, Some("401"), Some("token expired or incorrect"))
        );
        assert_eq!(
            json(r#"{"code":200,"msg":"ok","success":true,"data":{}}"#),
            None
        );
        assert_eq!(
            json(r#"{"code":0,"data":{"available_balance":1.0},"scode":"0x0","status":true}"#),
            None,
            "Moonshot's balance endpoint"
        );
    }

    #[test]
    fn huggingface_mistral_and_oauth_bodies() {
        assert_eq!(
            json(r#"{"error":"Invalid credentials in Authorization header"}"#),
            pe(
                None,
                None,
                Some("Invalid credentials in Authorization header")
            )
        );
        assert_eq!(
            json(r#"{"detail":"Unauthorized"}"#),
            pe(None, None, Some("Unauthorized"))
        );
        assert_eq!(
            json(r#"{"message":"Unauthorized","request_id":"a1b2c3"}"#),
            pe(None, None, Some("Unauthorized"))
        );
        assert_eq!(
            json(
                r#"{"object":"error","message":"Unauthorized","type":"invalid_request_error","param":null,"code":null}"#
            ),
            pe(Some("invalid_request_error"), None, Some("Unauthorized"))
        );
        assert_eq!(
            json(
                r#"{"detail":[{"loc":["body","model"],"msg":"field required","type":"value_error.missing"}]}"#
            ),
            pe(Some("value_error.missing"), None, Some("field required"))
        );
        assert_eq!(
            json(r#"{"error":"invalid_grant","error_description":"Refresh token expired"}"#),
            pe(None, Some("invalid_grant"), Some("Refresh token expired"))
        );
    }

    #[test]
    fn html_bodies() {
        let page = b"<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(
            parse(Some("text/html"), page),
            pe(Some("html"), None, Some("401 Authorization Required"))
        );
        assert_eq!(
            parse(None, page),
            pe(Some("html"), None, Some("401 Authorization Required"))
        );
        assert_eq!(
            parse(
                Some("text/html; charset=UTF-8"),
                b"<!DOCTYPE html><html><head><style>p{color:red}</style><script>var a='<b>';</script></head><body><p>Please enable cookies &amp; retry.</p>\n<p>Ray ID: 1</p></body></html>"
            ),
            pe(Some("html"), None, Some("Please enable cookies & retry. Ray ID: 1"))
        );
        let long = format!("<html><body>{}</body></html>", "word ".repeat(100));
        let got = parse(Some("text/html"), long.as_bytes())
            .and_then(|e| e.message)
            .expect("message");
        assert_eq!(got.chars().count(), SNIPPET_CAP + 1);
        assert!(got.ends_with('…'));
        assert_eq!(
            parse(None, b"<html><head><title>  Access\n Denied "),
            pe(Some("html"), None, Some("Access Denied")),
            "a truncated title still counts"
        );
    }

    #[test]
    fn plain_text_bodies() {
        assert_eq!(
            parse(Some("text/plain"), b"Authentication Fails (governor)"),
            pe(None, None, Some("Authentication Fails (governor)"))
        );
        assert_eq!(
            parse(
                None,
                b"\n\n  upstream connect error  \nreset reason: overflow"
            ),
            pe(None, None, Some("upstream connect error"))
        );
        let long = "x".repeat(300);
        let got = parse(None, long.as_bytes())
            .and_then(|e| e.message)
            .expect("message");
        assert_eq!(got, format!("{}…", "x".repeat(SNIPPET_CAP)));
        assert_eq!(parse(None, b""), None);
        assert_eq!(parse(Some("text/plain"), b"  \n "), None);
        assert_eq!(
            parse(None, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe"),
            None
        );
        assert_eq!(
            parse(
                None,
                "Fehler: ungültig \u{e9}"
                    .as_bytes()
                    .split_last()
                    .map(|(_, b)| b)
                    .expect("bytes")
            ),
            pe(None, None, Some("Fehler: ungültig")),
            "a character cut by the capture limit is not binary"
        );
        assert_eq!(
            parse(Some("application/json"), b"Unauthorized"),
            pe(None, None, Some("Unauthorized"))
        );
    }

    #[test]
    fn success_payloads_are_not_errors() {
        for body in [
            r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{}}"#,
            r#"{"object":"list","data":[{"id":"gpt-4o"}]}"#,
            r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{}}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#,
            r#"{"data":[],"has_more":false,"first_id":null}"#,
            r#"{"id":"1","error":null,"choices":[]}"#,
            r#"[1,2,3]"#,
            r#"42"#,
            r#"{}"#,
            r#"{"type":"message_start","message":{"id":"msg_1"}}"#,
            r#"{"status":"ok","message":"pong"}"#,
        ] {
            assert_eq!(json(body), None, "{body}");
        }
        assert_eq!(
            parse(
                Some("text/event-stream"),
                b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
            ),
            None
        );
    }

    #[test]
    fn errors_inside_event_streams() {
        let body = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(
            parse(Some("text/event-stream"), body),
            pe(Some("overloaded_error"), None, Some("Overloaded"))
        );
    }

    #[test]
    fn truncated_json_is_salvaged_or_ignored() {
        assert_eq!(
            json(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_"#
            ),
            pe(
                Some("authentication_error"),
                None,
                Some("invalid x-api-key")
            )
        );
        assert_eq!(
            json(r#"{"error":{"code":"1000","message":"Authentication Failed"},"extra":[1,2"#),
            pe(None, Some("1000"), Some("Authentication Failed"))
        );
        assert_eq!(
            json(r#"{"error":{"message":"Incorrect API key provided: sk-pro"#),
            None
        );
        assert_eq!(
            json(r#"{"id":"chatcmpl-1","choices":[{"message":{"content":"the error message is"#),
            None
        );
    }

    #[test]
    fn fields_are_capped_on_a_char_boundary() {
        let long = "é".repeat(600);
        let got = json(&format!(r#"{{"error":{{"message":"{long}"}}}}"#))
            .and_then(|e| e.message)
            .expect("message");
        assert_eq!(got, format!("{}…", "é".repeat(MESSAGE_CAP)));
    }

    #[test]
    fn serde_shape() {
        let e = ProviderError {
            kind: Some("authentication_error".into()),
            code: None,
            message: Some("m".into()),
        };
        let s = serde_json::to_string(&e).expect("serialize");
        assert_eq!(s, r#"{"type":"authentication_error","message":"m"}"#);
        assert_eq!(
            serde_json::from_str::<ProviderError>(&s).expect("deserialize"),
            e
        );
        assert_eq!(
            serde_json::from_str::<ProviderError>("{}").expect("deserialize"),
            ProviderError::default()
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_in_parse() {
        let mut rng = SplitMix(7);
        let pieces: [&[u8]; 16] = [
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"error\"",
            b":",
            b",",
            b"\"message\"",
            b"\"x\\u12",
            b"<title>",
            b"</",
            b"data:",
            b"\n",
            b"\xC3",
            b"\xFF",
            b"\"",
        ];
        for _ in 0..3000 {
            let body: Vec<u8> = (0..rng.below(30))
                .flat_map(|_| pieces[rng.below(pieces.len())].iter().copied())
                .collect();
            let ct = [
                None,
                Some("application/json"),
                Some("text/html"),
                Some("text/event-stream"),
            ][rng.below(4)];
            if let Some(e) = parse(ct, &body) {
                for field in [e.kind, e.code, e.message].into_iter().flatten() {
                    assert!(field.chars().count() <= MESSAGE_CAP + 1);
                }
            }
            let coding = ["gzip", "deflate", "br"][rng.below(3)];
            if let Some(out) = decode(Some(coding), &body, 64) {
                assert!(out.len() <= 64);
            }
        }
    }

    // --- scrub --------------------------------------------------------------------------------

    const OPENAI_KEY: &str = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234";
    const PREFIXES: [&str; 6] = [
        "sk-",
        "sk-proj-",
        "sk-ant-api03-",
        "gsk_",
        "xai-",
        "sk-or-v1-",
    ];

    fn scrub1(text: &str, secret: &str) -> String {
        scrub(text, &[&Secret::new(secret.as_bytes())], &PREFIXES, &[]).into_owned()
    }

    #[test]
    fn openai_full_echo_is_redacted() {
        assert_eq!(
            scrub1(
                &format!("Incorrect API key provided: {OPENAI_KEY}."),
                OPENAI_KEY
            ),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(
            scrub1("You sent sk-proj-ABCDE and later JKLMNOPQ.", OPENAI_KEY),
            "You sent [redacted] and later [redacted]."
        );
    }

    #[test]
    fn masked_echoes_are_kept() {
        for text in [
            "Incorrect API key provided: sk-proj-****1234.",
            "Incorrect API key provided: sk-proj-********************1234. You can find your API key at https://platform.openai.com/account/api-keys.",
            "Incorrect API key provided: sk-proj-****…1234.",
            "Incorrect API key provided: sk-****1234",
        ] {
            assert_eq!(scrub1(text, OPENAI_KEY), text);
        }
        let deepseek = "sk-0123456789abcdef0123456789abfcc2";
        let text = "Authentication Fails, Your api key: ****fcc2 is invalid";
        assert_eq!(scrub1(text, deepseek), text);
        let xai =
            "xai-gAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMgA";
        let text = "Incorrect API key provided: sk***gA. You can obtain an API key from https://console.x.ai.";
        assert_eq!(scrub1(text, xai), text);
    }

    #[test]
    fn a_masking_secret_does_not_eat_the_mask() {
        let sent = "sk-proj-************************1234";
        let text = "Incorrect API key provided: sk-proj-************************1234.";
        assert_eq!(scrub1(text, sent), text);
    }

    #[test]
    fn quotes_around_keys() {
        assert_eq!(
            scrub1(
                &format!("Incorrect API key provided: \"{OPENAI_KEY}\"."),
                OPENAI_KEY
            ),
            "Incorrect API key provided: \"[redacted]\"."
        );
        let quoted = format!("\"{OPENAI_KEY}\"");
        assert_eq!(
            scrub1(&format!("Incorrect API key provided: {quoted}."), &quoted),
            "Incorrect API key provided: [redacted]."
        );
        let text = "Incorrect API key provided: \"sk-proj****…1234\".";
        assert_eq!(scrub1(text, &quoted), text);
    }

    #[test]
    fn short_secrets() {
        assert_eq!(
            scrub1("Incorrect API key provided: hunter. See docs.", "hunter"),
            "Incorrect API key provided: [redacted]. See docs."
        );
        assert_eq!(scrub1("the test key", "test"), "the test key");
        assert_eq!(scrub1("the  key", " key "), "the  key");
        assert_eq!(scrub("abc", &[&Secret::new(b"")], &PREFIXES, &[]), "abc");
    }

    #[test]
    fn secret_with_trailing_newline() {
        let sent = format!("{OPENAI_KEY}\n");
        assert_eq!(
            scrub1(
                &format!("Invalid header value b'Bearer {OPENAI_KEY}\\n'"),
                &sent
            ),
            "Invalid header value b'Bearer [redacted]\\n'"
        );
        assert_eq!(
            scrub1(
                &format!("Invalid header value: Bearer {OPENAI_KEY}\n(end)"),
                &sent
            ),
            "Invalid header value: Bearer [redacted](end)"
        );
        let masked = "Incorrect API key provided: sk-proj-****1234\nnext line";
        assert_eq!(scrub1(masked, &sent), masked);
    }

    #[test]
    fn multibyte_text_around_a_key() {
        assert_eq!(
            scrub1(&format!("认证失败：{OPENAI_KEY}。密钥 é🔑"), OPENAI_KEY),
            "认证失败：[redacted]。密钥 é🔑"
        );
        let odd_key = "kéy-ünïcødé-秘密-0123456789";
        assert_eq!(scrub1(&format!("«{odd_key}»"), odd_key), "«[redacted]»");
        assert_eq!(
            scrub(
                "x \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD} y",
                &[&Secret::new(b"\xFF\xFE\xFD\xFC\xFB\xFA")],
                &[],
                &[]
            ),
            "x [redacted] y"
        );
    }

    #[test]
    fn key_patterns_catch_other_keys() {
        let re = Regex::new(r"sk-ant-api03-[\w-]{90,}").expect("regex");
        let other = format!("sk-ant-api03-{}AA", "x1_-".repeat(24));
        assert_eq!(
            scrub(&format!("leaked: {other} done ü"), &[], &[], &[&re]),
            "leaked: [redacted] done ü"
        );
        let empty = Regex::new(r"z*").expect("regex");
        assert_eq!(scrub("héllo", &[], &[], &[&empty]), "héllo");
    }

    #[test]
    fn several_secrets_and_adjacent_runs() {
        let a = "gsk_0123456789abcdefghijABCDEFGHIJ0123456789abcdefgh";
        let b = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            scrub(
                &format!("{a}{b} and {b}"),
                &[&Secret::new(a.as_bytes()), &Secret::new(b.as_bytes())],
                &PREFIXES,
                &[]
            ),
            "[redacted] and [redacted]"
        );
    }

    #[test]
    fn large_text_is_handled() {
        let key: String = (0..512)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let mut text = "lorem ipsum dolor ".repeat(3600);
        text.insert_str(30_000, &key);
        let out = scrub(&text, &[&Secret::new(key.as_bytes())], &[], &[]);
        assert_eq!(out.len(), text.len() - key.len() + REDACTED.len());
    }

    use crate::test_rng::SplitMix;

    /// The sparse table gives what the full longest-common-substring table gives, over a small
    /// alphabet (with a masking character) so that matches are dense.
    #[test]
    fn longest_matches_agree_with_the_full_table() {
        fn full(text: &[char], secret: &[char]) -> Vec<usize> {
            (0..text.len())
                .map(|i| {
                    (0..secret.len())
                        .map(|j| {
                            text[i..]
                                .iter()
                                .zip(&secret[j..])
                                .take_while(|(a, b)| a == b && !is_mask_char(**a))
                                .count()
                        })
                        .max()
                        .unwrap_or(0)
                })
                .collect()
        }
        let mut rng = SplitMix(0x5eed_0006);
        for _ in 0..2000 {
            let word = |rng: &mut SplitMix, len: usize| -> Vec<char> {
                (0..len)
                    .map(|_| ['a', 'b', 'c', '*'][rng.below(4)])
                    .collect()
            };
            let text_len = rng.below(60);
            let text = word(&mut rng, text_len);
            let secret_len = rng.below(30);
            let secret = word(&mut rng, secret_len);
            let packed = Secret::new(secret.iter().collect::<String>().as_bytes());
            let (chars, occurs) = packed.chars();
            assert_eq!(chars, &secret[..]);
            assert_eq!(longest_matches(&text, chars, occurs), full(&text, &secret));
        }
    }

    /// The quick check that a text may hold a secret agrees with the obvious search, over a small
    /// alphabet so that shared runs are common.
    #[test]
    fn shared_runs_agree_with_a_plain_search() {
        let mut rng = SplitMix(0x5eed_0005);
        for _ in 0..3000 {
            let word = |rng: &mut SplitMix, len: usize| -> Vec<u8> {
                (0..len).map(|_| b"abc"[rng.below(3)]).collect()
            };
            let text_len = rng.below(150);
            let text = word(&mut rng, text_len);
            let secret_len = rng.below(40);
            let secret = word(&mut rng, secret_len);
            let plain = text
                .windows(MIN_RUN)
                .any(|w| secret.windows(MIN_RUN).any(|s| s == w));
            assert_eq!(Secret::new(&secret).shares_run_with(&text), plain);
        }
    }

    const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

    fn random_key_body(rng: &mut SplitMix, len: usize) -> String {
        (0..len)
            .map(|_| char::from(KEY_ALPHABET[rng.below(KEY_ALPHABET.len())]))
            .collect()
    }

    fn random_filler(rng: &mut SplitMix, max: usize) -> String {
        const PIECES: [&str; 12] = [
            " ",
            "Incorrect API key provided: ",
            ". ",
            "\"",
            "'",
            "\n",
            "é",
            "认证",
            "🔑",
            "****",
            "…",
            "a",
        ];
        (0..rng.below(max + 1))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect()
    }

    #[test]
    fn randomized_keys_never_survive() {
        let mut rng = SplitMix(2024);
        for case in 0..3000 {
            let prefix = if rng.chance(50) {
                PREFIXES[rng.below(PREFIXES.len())]
            } else {
                ""
            };
            let body_len = 5 + rng.below(116);
            let key = format!("{prefix}{}", random_key_body(&mut rng, body_len));
            let key_chars: Vec<char> = key.chars().collect();
            let last4: String = key_chars[key_chars.len() - 4..].iter().collect();

            let mut text = random_filler(&mut rng, 6);
            for _ in 0..1 + rng.below(3) {
                let piece = match rng.below(4) {
                    0 => key.clone(),
                    1 => format!("{prefix}****{last4}"),
                    2 => {
                        let from = rng.below(key_chars.len());
                        let to = from + rng.below(key_chars.len() - from + 1);
                        key_chars[from..to].iter().collect()
                    }
                    _ => format!("\"{key}\""),
                };
                text.push_str(&piece);
                text.push_str(&random_filler(&mut rng, 6));
            }

            let sent = if rng.chance(20) {
                format!(" {key}\r\n")
            } else {
                key.clone()
            };
            let out = scrub(&text, &[&Secret::new(sent.as_bytes())], &PREFIXES, &[]);

            // What may survive: pieces of the public prefix, and fragments shorter than MIN_RUN
            // (the last four characters among them).
            for segment in out.split(REDACTED) {
                let seg: Vec<char> = segment.chars().collect();
                for w in seg.windows(MIN_RUN) {
                    let w: String = w.iter().collect();
                    assert!(
                        !key.contains(&w) || prefix.contains(&w),
                        "case {case}: {w:?} of key {key:?} survived in {out:?}"
                    );
                }
            }
            if text.contains(&format!("{prefix}****{last4}")) && !prefix.is_empty() {
                assert!(
                    out.contains(&format!("****{last4}")),
                    "case {case}: masked echo lost in {out:?}"
                );
            }
        }
    }

    #[test]
    fn scrub_never_panics_on_arbitrary_strings() {
        let mut rng = SplitMix(99);
        let re = Regex::new(r"[A-Za-z0-9]{8,}").expect("regex");
        for _ in 0..2000 {
            let text: String = (0..rng.below(60))
                .map(|_| char::from_u32(rng.below(0x2_0000) as u32).unwrap_or('?'))
                .collect();
            let secret: Vec<u8> = if rng.chance(50) && !text.is_empty() {
                let bytes = text.as_bytes();
                let from = rng.below(bytes.len());
                bytes[from..from + rng.below(bytes.len() - from + 1)].to_vec()
            } else {
                (0..rng.below(20))
                    .map(|_| (rng.next() & 0xFF) as u8)
                    .collect()
            };
            let prefix = String::from_utf8_lossy(&secret[..secret.len().min(3)]).into_owned();
            let out = scrub(&text, &[&Secret::new(&secret)], &[&prefix, ""], &[&re]);
            assert!(out.len() <= text.len() * REDACTED.len() + 1);
        }
    }
}

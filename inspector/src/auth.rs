//! From the auth headers of a request to an [`AuthShape`]: everything a user needs to recognise the
//! key that was sent (scheme, length, public prefix, last 4, a keyed fingerprint, which provider's key
//! it looks like, and what is wrong with it) and nothing that would let anyone use it.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::{Arc, Mutex, MutexGuard};

use authtap_config::Catalog;
use serde::{Deserialize, Serialize};

use crate::secret::{FingerprintKey, Secret};

/// Headers that carry API keys, lower case, in the order they are reported.
pub const AUTH_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Query parameters whose values are secrets: redacted from recorded paths; `key` is also a
/// credential (Gemini's `?key=`).
const SECRET_QUERY_PARAMS: [&str; 12] = [
    "key",
    "api_key",
    "apikey",
    "api-key",
    "x-goog-api-key",
    "token",
    "access_token",
    "auth",
    "password",
    "secret",
    "client_secret",
    "signature",
];

/// Auth schemes recognised in `Authorization` (compared case-insensitively).
const SCHEMES: [&str; 4] = ["Bearer", "Basic", "Token", "ApiKey"];

/// One credential found in a request: where it was and its raw value (after the scheme).
pub struct Credential {
    /// `authorization`, `x-api-key`, `api-key`, `x-goog-api-key` or `query:key`.
    pub place: String,
    /// The scheme as written (`Bearer`), for `Authorization` only.
    pub scheme: Option<String>,
    /// Set when `Authorization` had no scheme or a second one (`Bearer Bearer sk-…`).
    scheme_defect: Option<Defect>,
    pub value: Secret,
}

/// Something wrong with a key as sent. Stable kebab-case names; docs/capture-format.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// The header is there but holds nothing after the scheme.
    Empty,
    LeadingWhitespace,
    TrailingWhitespace,
    /// A space or tab inside the key: usually two values pasted together or a wrapped line.
    InnerWhitespace,
    /// CR or LF: a terminal paste or a CRLF `.env` file.
    Newline,
    /// Another control character.
    ControlCharacter,
    /// Straight or typographic quotes around the key, kept from a `.env` or shell line.
    Quoted,
    /// Bytes outside ASCII: a BOM, a no-break space, smart quotes, an em dash.
    NonAscii,
    /// A placeholder or redaction marker instead of a key (`${VAR}`, `undefined`, `__…_REDACTED__`).
    Placeholder,
    /// `Bearer Bearer …`: the scheme was added twice.
    DoubledScheme,
    /// `Authorization: sk-…` with no scheme.
    MissingScheme,
}

/// The shape of the auth a request carried. Never holds more of a key than the catalog's public
/// prefix and the last 4 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthShape {
    /// Where the key was: a header name or `query:key`; None when no credential was sent.
    pub header: Option<String>,
    pub scheme: Option<String>,
    pub present: bool,
    /// Length in characters of the value as sent (after the scheme).
    pub len: usize,
    /// The catalog's public prefix (`sk-kimi-`) when one matches, else at most 3 characters.
    pub prefix: Option<String>,
    /// The last 4 characters, for keys of 16 or more characters (after trimming whitespace and quotes).
    pub last4: Option<String>,
    /// Keyed hash of the exact bytes sent (`hmac:…`): equal values mean the same key.
    pub fingerprint: Option<String>,
    /// The catalog key shape this looks like (`kimi-coding`, `zai`, `sk-generic`), or `unknown`, or
    /// `none` when no key was sent.
    pub shape: String,
    /// Providers whose keys have this shape (empty when unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape_providers: Vec<String>,
    pub defects: Vec<Defect>,
}

impl AuthShape {
    /// The shape of a request that carried no credential (one, shared).
    pub fn absent() -> Arc<Self> {
        static ABSENT: std::sync::LazyLock<Arc<AuthShape>> = std::sync::LazyLock::new(|| {
            Arc::new(AuthShape {
                shape: "none".into(),
                ..AuthShape::default()
            })
        });
        ABSENT.clone()
    }
}

/// Find every credential in a request's headers (name, raw value) and query string.
pub fn credentials<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    query: Option<&str>,
) -> Vec<Credential> {
    let mut found: Vec<(usize, Credential)> = header_credentials(headers)
        .map(|(rank, value)| (rank, header_credential(rank, value)))
        .collect();
    found.extend(query_credentials(query).map(|c| (AUTH_HEADERS.len(), c)));
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().map(|(_, c)| c).collect()
}

/// The raw values of the auth headers in `headers`, with their rank in [`AUTH_HEADERS`].
fn header_credentials<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> impl Iterator<Item = (usize, &'a [u8])> {
    headers.into_iter().filter_map(|(name, value)| {
        AUTH_HEADERS
            .iter()
            .position(|h| name.eq_ignore_ascii_case(h))
            .map(|rank| (rank, value))
    })
}

fn header_credential(rank: usize, value: &[u8]) -> Credential {
    if rank == 0 {
        split_scheme(value)
    } else {
        Credential {
            place: AUTH_HEADERS[rank].to_string(),
            scheme: None,
            scheme_defect: None,
            value: Secret::new(value),
        }
    }
}

/// Gemini-style `?key=` credentials.
fn query_credentials(query: Option<&str>) -> impl Iterator<Item = Credential> + '_ {
    query
        .into_iter()
        .flat_map(query_pairs)
        .filter(|(name, _)| *name == "key")
        .map(|(_, value)| Credential {
            place: "query:key".into(),
            scheme: None,
            scheme_defect: None,
            value: Secret::new(&percent_decode(value)),
        })
}

/// A credential and its shape.
pub struct Measured {
    pub credential: Credential,
    pub shape: Arc<AuthShape>,
    /// The header value as it came (scheme included), to know the credential again.
    raw: Secret,
    rank: usize,
}

/// Measures the credentials of requests, each distinct one once: a gateway sends the same key with
/// every request, and measuring a key (an HMAC for its fingerprint, the catalog's key shapes) cost
/// more than all the rest of an exchange's record (bench/). Holds keys only as [`Secret`]s, which
/// are wiped when forgotten; remembers at most [`Measurer::REMEMBERED`] of them, then starts over.
pub struct Measurer {
    catalog: Arc<Catalog>,
    fingerprints: FingerprintKey,
    known: Mutex<HashMap<u64, Vec<Arc<Measured>>>>,
    hasher: RandomState,
}

impl Measurer {
    /// More distinct keys than any gateway sends; past it the memory is cleared and refilled.
    pub const REMEMBERED: usize = 1024;

    pub fn new(catalog: Arc<Catalog>, fingerprints: FingerprintKey) -> Self {
        Measurer {
            catalog,
            fingerprints,
            known: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }

    /// Every credential in a request's headers and query string, measured, in the order of
    /// [`credentials`].
    pub fn measure<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        query: Option<&str>,
    ) -> Vec<Arc<Measured>> {
        let mut found: Vec<Arc<Measured>> = header_credentials(headers)
            .map(|(rank, value)| self.header(rank, value))
            .collect();
        // A key in the URL is rare and not remembered.
        found.extend(query_credentials(query).map(|credential| {
            Arc::new(Measured {
                shape: Arc::new(shape(&credential, &self.catalog, &self.fingerprints)),
                credential,
                raw: Secret::new(b""),
                rank: AUTH_HEADERS.len(),
            })
        }));
        found.sort_by_key(|m| m.rank);
        found
    }

    fn header(&self, rank: usize, value: &[u8]) -> Arc<Measured> {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one((rank, value));
        let same = |m: &&Arc<Measured>| m.rank == rank && m.raw.expose() == value;
        if let Some(known) = self
            .lock()
            .get(&hash)
            .and_then(|list| list.iter().find(same).cloned())
        {
            return known;
        }
        let credential = header_credential(rank, value);
        let measured = Arc::new(Measured {
            shape: Arc::new(shape(&credential, &self.catalog, &self.fingerprints)),
            credential,
            raw: Secret::new(value),
            rank,
        });
        let mut known = self.lock();
        if known.len() >= Self::REMEMBERED {
            known.clear();
        }
        known.entry(hash).or_default().push(measured.clone());
        measured
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Vec<Arc<Measured>>>> {
        // The map stays whole whatever a panicking holder did: it only ever gains whole entries.
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn split_scheme(value: &[u8]) -> Credential {
    let place = "authorization".to_string();
    let scheme_of = |v: &[u8]| -> Option<(String, usize)> {
        let end = v.iter().position(|&b| b == b' ')?;
        let word = std::str::from_utf8(&v[..end]).ok()?;
        SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(word))
            .then(|| (word.to_string(), end))
    };
    match scheme_of(value) {
        Some((scheme, end)) => {
            let mut rest = &value[end..];
            while let [b' ', tail @ ..] = rest {
                rest = tail;
            }
            // A second scheme: keep the key after it so the shape is still recognised.
            let (rest, scheme_defect) = match scheme_of(rest) {
                Some((_, end2)) => (&rest[end2 + 1..], Some(Defect::DoubledScheme)),
                None => (rest, None),
            };
            Credential {
                place,
                scheme: Some(scheme),
                scheme_defect,
                value: Secret::new(rest),
            }
        }
        // `Bearer` alone, or a bare key.
        None if value.eq_ignore_ascii_case(b"bearer") => Credential {
            place,
            scheme: Some(String::from_utf8_lossy(value).into_owned()),
            scheme_defect: None,
            value: Secret::new(b""),
        },
        None => Credential {
            place,
            scheme: None,
            scheme_defect: (!value.is_empty()).then_some(Defect::MissingScheme),
            value: Secret::new(value),
        },
    }
}

/// Measure a credential. `catalog` supplies key shapes and public prefixes; `fingerprints` the
/// per-install HMAC key.
pub fn shape(
    credential: &Credential,
    catalog: &Catalog,
    fingerprints: &FingerprintKey,
) -> AuthShape {
    let raw = credential.value.expose();
    let text = String::from_utf8_lossy(raw);
    let mut defects = Vec::new();
    if let Some(d) = credential.scheme_defect {
        defects.push(d);
    }
    if raw.is_empty() {
        defects.push(Defect::Empty);
    }
    if raw.first().is_some_and(|b| b.is_ascii_whitespace()) {
        defects.push(Defect::LeadingWhitespace);
    }
    if raw.last().is_some_and(|b| b.is_ascii_whitespace()) {
        defects.push(Defect::TrailingWhitespace);
    }
    if raw.iter().any(|&b| b == b'\r' || b == b'\n') {
        defects.push(Defect::Newline);
    }
    if raw
        .iter()
        .any(|&b| b.is_ascii_control() && !matches!(b, b'\r' | b'\n' | b'\t'))
    {
        defects.push(Defect::ControlCharacter);
    }
    let cleaned = clean(&text);
    if cleaned.len() != text.trim().len() {
        defects.push(Defect::Quoted);
    }
    if cleaned.contains([' ', '\t']) {
        defects.push(Defect::InnerWhitespace);
    }
    if !raw.is_ascii() {
        defects.push(Defect::NonAscii);
    }
    if is_placeholder(cleaned) {
        defects.push(Defect::Placeholder);
    }

    let key_shape = catalog.key_shape(cleaned);
    let chars = cleaned.chars().count();
    let prefix = match catalog.public_prefix(cleaned) {
        Some(p) => Some(p.to_string()),
        None if chars >= 12 => Some(cleaned.chars().take(3).collect()),
        None => None,
    };
    let last4 = (chars >= 16).then(|| cleaned.chars().skip(chars - 4).collect());
    AuthShape {
        header: Some(credential.place.clone()),
        scheme: credential.scheme.clone(),
        present: !raw.is_empty(),
        len: text.chars().count(),
        prefix,
        last4,
        fingerprint: (!raw.is_empty()).then(|| fingerprints.fingerprint(&credential.value)),
        shape: key_shape.map_or("unknown", |s| s.id.as_str()).to_string(),
        shape_providers: key_shape.map(|s| s.providers.clone()).unwrap_or_default(),
        defects,
    }
}

/// The key without surrounding whitespace and quotes: what the user meant to send.
fn clean(text: &str) -> &str {
    const QUOTES: [char; 8] = ['"', '\'', '`', '“', '”', '‘', '’', '\u{feff}'];
    text.trim_matches(|c: char| c.is_whitespace() || QUOTES.contains(&c))
}

/// Placeholders and redaction markers that configs and daemons send in place of a key.
fn is_placeholder(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let env_ref = (key.starts_with("${") && key.ends_with('}'))
        || (key.starts_with('$')
            && key.len() > 1
            && key[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
    let bracketed = (key.starts_with('<') && key.ends_with('>'))
        || (key.starts_with("{{") && key.ends_with("}}"));
    let masked = !key.is_empty() && key.chars().all(|c| matches!(c, '*' | '•' | '.'));
    let words = [
        "undefined",
        "null",
        "none",
        "nil",
        "changeme",
        "placeholder",
        "dummy",
        "xxx",
        "sk-xxx",
        "sk-...",
        "api_key",
        "apikey",
        "your_api_key",
        "your-api-key",
        "yourapikey",
    ];
    env_ref
        || bracketed
        || masked
        || words.contains(&lower.as_str())
        || lower.contains("redacted")
        || (lower.starts_with("your") && lower.contains("key"))
        || (lower.len() >= 3 && lower.chars().all(|c| c == 'x'))
}

/// A request path with the values of secret-looking query parameters replaced by `REDACTED`.
pub fn redact_path(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if SECRET_QUERY_PARAMS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&percent_decode_str(name))) =>
            {
                format!("{name}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", redacted.join("&"))
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter_map(|pair| pair.split_once('='))
}

fn percent_decode_str(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(s)).into_owned()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use authtap_config::Config;

    fn shape_of(headers: &[(&str, &[u8])], query: Option<&str>) -> Vec<AuthShape> {
        let catalog = Config::builtin().catalog;
        let fp = FingerprintKey::new(&[7; 32]);
        credentials(headers.iter().copied(), query)
            .iter()
            .map(|c| shape(c, &catalog, &fp))
            .collect()
    }

    fn one(value: &[u8]) -> AuthShape {
        shape_of(&[("Authorization", value)], None).remove(0)
    }

    // Built from pieces so no key-shaped literal sits in the source.
    const CANARY_KIMI: &str = concat!(
        "sk-kimi-",
        "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "Ab7dEf0hIj3kLm6nOp9qRs2tUv5wXy8z"
    );

    #[test]
    fn kimi_key_shows_prefix_and_last4_only() {
        let s = one(format!("Bearer {CANARY_KIMI}").as_bytes());
        assert_eq!(s.scheme.as_deref(), Some("Bearer"));
        assert_eq!(s.shape, "kimi-coding");
        assert_eq!(s.prefix.as_deref(), Some("sk-kimi-"));
        assert_eq!(s.last4.as_deref(), Some("Xy8z"));
        assert_eq!(s.len, CANARY_KIMI.len());
        assert!(s.defects.is_empty(), "{:?}", s.defects);
        assert!(
            s.fingerprint
                .as_deref()
                .is_some_and(|f| f.starts_with("hmac:"))
        );
        let json = serde_json::to_string(&s).expect("json");
        assert!(!json.contains(&CANARY_KIMI[8..20]), "{json}");
    }

    #[test]
    fn defects_are_named() {
        let quoted = one(format!("Bearer \"{CANARY_KIMI}\"").as_bytes());
        assert_eq!(quoted.defects, vec![Defect::Quoted]);
        assert_eq!(
            quoted.shape, "kimi-coding",
            "shape is judged on the cleaned key"
        );
        let smart = one(format!("Bearer “{CANARY_KIMI}”").as_bytes());
        assert!(
            smart.defects.contains(&Defect::Quoted) && smart.defects.contains(&Defect::NonAscii)
        );
        let doubled = one(format!("Bearer Bearer {CANARY_KIMI}").as_bytes());
        assert_eq!(doubled.defects, vec![Defect::DoubledScheme]);
        assert_eq!(doubled.shape, "kimi-coding");
        let bare = one(CANARY_KIMI.as_bytes());
        assert_eq!(bare.defects, vec![Defect::MissingScheme]);
        let trailing = one(format!("Bearer {CANARY_KIMI}\t").as_bytes());
        assert_eq!(trailing.defects, vec![Defect::TrailingWhitespace]);
        let newline = one(format!("Bearer {CANARY_KIMI}\r").as_bytes());
        assert!(newline.defects.contains(&Defect::Newline));
        let bom = one(format!("Bearer \u{feff}{CANARY_KIMI}").as_bytes());
        assert!(bom.defects.contains(&Defect::NonAscii));
        let empty = one(b"Bearer ");
        assert!(!empty.present && empty.defects.contains(&Defect::Empty));
        let lone = one(b"Bearer");
        assert!(!lone.present && lone.defects.contains(&Defect::Empty));
    }

    #[test]
    fn placeholders_are_recognised() {
        for p in [
            "${MOONSHOT_API_KEY}",
            "$ZAI_API_KEY",
            "<your key>",
            "undefined",
            "null",
            "YOUR_API_KEY",
            "__OPENCLAW_REDACTED__",
            "***",
            "{{api_key}}",
        ] {
            let s = one(format!("Bearer {p}").as_bytes());
            assert!(
                s.defects.contains(&Defect::Placeholder),
                "{p}: {:?}",
                s.defects
            );
        }
        assert!(
            !one(format!("Bearer {CANARY_KIMI}").as_bytes())
                .defects
                .contains(&Defect::Placeholder)
        );
    }

    #[test]
    fn short_values_reveal_nothing() {
        let s = one(b"Bearer hunter2");
        assert_eq!((s.prefix, s.last4), (None, None));
        let mid = one(b"Bearer abcdefghijklm"); // 13 chars: prefix only
        assert_eq!((mid.prefix.as_deref(), mid.last4), (Some("abc"), None));
    }

    #[test]
    fn all_auth_places_are_found_in_order() {
        let shapes = shape_of(
            &[
                ("x-api-key", CANARY_KIMI.as_bytes()),
                ("Authorization", format!("Bearer {CANARY_KIMI}").as_bytes()),
                ("cookie", b"session=abc"),
            ],
            Some("alt=sse&key=AIzaSyA1234567890abcdefghijklmnopqrstuv"),
        );
        let places: Vec<_> = shapes
            .iter()
            .map(|s| s.header.clone().unwrap_or_default())
            .collect();
        assert_eq!(places, ["authorization", "x-api-key", "query:key"]);
        assert_eq!(shapes[2].shape, "gemini-legacy");
        assert_eq!(shapes[0].fingerprint, shapes[1].fingerprint);
    }

    #[test]
    fn paths_lose_secret_query_values() {
        assert_eq!(
            redact_path("/v1beta/models/g:generateContent?alt=sse&key=AIzaSecret&x=1"),
            "/v1beta/models/g:generateContent?alt=sse&key=REDACTED&x=1"
        );
        assert_eq!(redact_path("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(redact_path("/x?%6Bey=abc"), "/x?%6Bey=REDACTED");
    }

    #[test]
    fn arbitrary_header_bytes_never_panic_or_reveal_more_than_prefix_and_last4() {
        use crate::test_rng::SplitMix;
        let catalog = Config::builtin().catalog;
        let fp = FingerprintKey::new(&[9; 32]);
        let longest_prefix = catalog
            .key_shapes
            .iter()
            .filter_map(|s| s.prefix.as_ref().map(|p| p.chars().count()))
            .max()
            .unwrap_or(0)
            .max(3);
        let mut rng = SplitMix(0xA17A);
        let pieces: [&[u8]; 10] = [
            b"Bearer ",
            b"bearer",
            b"Basic ",
            b" ",
            b"\t",
            b"\"",
            "\u{201c}".as_bytes(),
            b"sk-",
            b"sk-kimi-",
            "\u{feff}".as_bytes(),
        ];
        for _ in 0..5_000 {
            let mut value = Vec::new();
            for _ in 0..rng.below(6) {
                if rng.chance(50) {
                    value.extend_from_slice(pieces[rng.below(pieces.len())]);
                } else {
                    for _ in 0..rng.below(40) {
                        value.push(rng.below(256) as u8);
                    }
                }
            }
            let query = String::from_utf8_lossy(&value).replace(['&', '#'], "");
            let query = format!("key={query}&x=1");
            let headers: [(&str, &[u8]); 3] = [
                ("authorization", &value),
                ("x-api-key", &value),
                ("x-goog-api-key", &value),
            ];
            for credential in credentials(headers, Some(&query)) {
                let shape = shape(&credential, &catalog, &fp);
                let prefix = shape.prefix.as_deref().map_or(0, |p| p.chars().count());
                assert!(prefix <= longest_prefix, "{:?}", shape.prefix);
                assert!(
                    shape
                        .last4
                        .as_deref()
                        .is_none_or(|l| l.chars().count() == 4)
                );
                if shape.len < 16 {
                    assert!(shape.last4.is_none());
                }
                let json = serde_json::to_string(&shape).expect("serializes");
                assert!(!json.is_empty());
            }
        }
    }
}

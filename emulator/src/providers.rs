//! Per-provider routing, key checks and answers. Pure functions from a request to a [`Reply`]; the
//! server in `lib.rs` turns a reply into HTTP (gzip, streaming, recording).

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::bodies::*;

/// Whether a registered key belongs to a provider's general plan or its coding plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    General,
    Coding,
}

/// The key table and answer options, fixed at start.
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// Host (lowercase) → registered keys.
    pub keys: HashMap<String, Vec<(Vec<u8>, Plan)>>,
    pub sse_chunks: usize,
    pub echo_full_keys: bool,
    /// (host, path prefix) → (status, body): fixed answers that take precedence, for provider
    /// states a key table cannot express (outages, balances, terminated accounts).
    pub canned: Vec<(String, String, u16, String)>,
}

impl Config {
    fn has(&self, host: &str, key: &[u8], plan: Plan) -> bool {
        self.keys
            .get(host)
            .is_some_and(|ks| ks.iter().any(|(k, p)| k == key && *p == plan))
    }
}

/// One request, as the router sees it.
pub(crate) struct Ctx<'a> {
    pub host: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub cfg: &'a Config,
}

/// What to send back.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub payload: Payload,
}

pub(crate) enum Payload {
    /// One body. `error` marks bodies that `gzip_errors` may compress.
    Full {
        body: Bytes,
        content_type: &'static str,
        error: bool,
    },
    /// A streamed body, one HTTP frame per element (SSE events or JSON-array pieces).
    Frames {
        frames: Vec<Bytes>,
        content_type: &'static str,
    },
}

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";

impl Reply {
    fn error(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            payload: Payload::Full {
                body: Bytes::from(body.into()),
                content_type: JSON,
                error: true,
            },
        }
    }

    fn ok_json(body: String) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            payload: Payload::Full {
                body: Bytes::from(body),
                content_type: JSON,
                error: false,
            },
        }
    }

    fn stream(frames: Vec<String>, content_type: &'static str) -> Self {
        Reply {
            status: 200,
            headers: vec![("cache-control", "no-cache")],
            payload: Payload::Frames {
                frames: frames.into_iter().map(Bytes::from).collect(),
                content_type,
            },
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Every host the emulator answers for.
pub(crate) const HOSTS: &[&str] = &[
    "api.moonshot.ai",
    "api.moonshot.cn",
    "api.kimi.com",
    "api.z.ai",
    "open.bigmodel.cn",
    "api.minimax.io",
    "api.minimaxi.com",
    "dashscope.aliyuncs.com",
    "dashscope-intl.aliyuncs.com",
    "coding.dashscope.aliyuncs.com",
    "coding-intl.dashscope.aliyuncs.com",
    "api.deepseek.com",
    "api.openai.com",
    "api.anthropic.com",
    "openrouter.ai",
    "api.groq.com",
    "api.x.ai",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
];

/// The API shape of an endpoint, which decides the success answer.
enum Api {
    Chat,
    Messages,
    Models,
    Gemini { model: String, stream: bool },
}

/// Answer one request.
pub(crate) fn respond(ctx: &Ctx<'_>) -> Reply {
    if let Some((_, _, status, body)) = ctx
        .cfg
        .canned
        .iter()
        .find(|(host, prefix, _, _)| host == ctx.host && ctx.path.starts_with(prefix.as_str()))
    {
        return Reply::error(*status, body.clone());
    }
    let post = ctx.method == Method::POST;
    let get = ctx.method == Method::GET;
    let p = ctx.path;
    match ctx.host {
        "api.moonshot.ai" | "api.moonshot.cn" => {
            let api = match () {
                _ if post && p == "/v1/chat/completions" => Api::Chat,
                _ if get && p == "/v1/models" => Api::Models,
                // The Anthropic-compatible path reads Bearer only (kimi-cc #35).
                _ if post && p == "/anthropic/v1/messages" => Api::Messages,
                _ => return not_found(),
            };
            let key = match api {
                Api::Messages => ctx.bearer(),
                _ => ctx.bearer_or_api_key(),
            };
            let reply = if key.is_some_and(|k| ctx.general(k)) {
                success(ctx, api, "kimi-k2-0905-preview")
            } else {
                Reply::error(401, MOONSHOT_INVALID_AUTHENTICATION)
            };
            reply.header("server", "nginx").header("msh-cache", "miss")
        }
        "api.kimi.com" => kimi(ctx, post, get),
        "api.z.ai" | "open.bigmodel.cn" => zai(ctx, post),
        "api.minimax.io" | "api.minimaxi.com" => minimax(ctx, post),
        "dashscope.aliyuncs.com"
        | "dashscope-intl.aliyuncs.com"
        | "coding.dashscope.aliyuncs.com"
        | "coding-intl.dashscope.aliyuncs.com" => dashscope(ctx, post, get),
        "api.deepseek.com" => {
            if !(post && (p == "/chat/completions" || p == "/v1/chat/completions")) {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Chat, "deepseek-chat"),
                k => {
                    let last4 = last_chars(&lossy(k.unwrap_or_default()), 4);
                    Reply::error(401, fill(DEEPSEEK_INVALID_KEY_TEMPLATE, "<LAST4>", &last4))
                }
            }
        }
        "api.openai.com" => {
            let api = match () {
                _ if post && p == "/v1/chat/completions" => Api::Chat,
                _ if get && p == "/v1/models" => Api::Models,
                _ => return not_found(),
            };
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, api, "gpt-4o-mini"),
                Some(k) => {
                    let key = lossy(k);
                    let echo = if ctx.cfg.echo_full_keys {
                        key
                    } else {
                        openai_mask(&key)
                    };
                    Reply::error(401, fill(OPENAI_INVALID_KEY_TEMPLATE, "<ECHO>", &echo))
                }
                None => Reply::error(401, OPENAI_MISSING_KEY),
            }
        }
        "api.anthropic.com" => {
            if !(post && p == "/v1/messages") {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Messages, "claude-sonnet-4-5"),
                _ => Reply::error(401, ANTHROPIC_INVALID_KEY),
            }
        }
        "openrouter.ai" => {
            if !(post && p == "/api/v1/chat/completions") {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Chat, "openai/gpt-4o-mini"),
                Some(_) => Reply::error(401, OPENROUTER_USER_NOT_FOUND),
                None => Reply::error(401, OPENROUTER_NO_CREDENTIALS),
            }
        }
        "api.groq.com" => {
            if !(post && p == "/openai/v1/chat/completions") {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Chat, "llama-3.3-70b-versatile"),
                _ => Reply::error(401, GROQ_INVALID_KEY),
            }
        }
        "api.x.ai" => {
            if !(post && p == "/v1/chat/completions") {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Chat, "grok-4"),
                k => {
                    let key = lossy(k.unwrap_or_default());
                    let echo = format!("{}***{}", first_chars(&key, 2), last_chars(&key, 2));
                    Reply::error(400, fill(XAI_INVALID_KEY_TEMPLATE, "<ECHO>", &echo))
                }
            }
        }
        "generativelanguage.googleapis.com" => gemini(ctx, post),
        "api.mistral.ai" => {
            if !(post && p == "/v1/chat/completions") {
                return not_found();
            }
            match ctx.bearer_or_api_key() {
                Some(k) if ctx.general(k) => success(ctx, Api::Chat, "mistral-small-latest"),
                _ => Reply::error(401, MISTRAL_UNAUTHORIZED),
            }
        }
        other => Reply::error(421, fill(MISDIRECTED_TEMPLATE, "<HOST>", other)),
    }
}

fn not_found() -> Reply {
    Reply::error(404, NO_SUCH_PATH)
}

/// Kimi Code: auth first, then the User-Agent gate on chat and messages (not on models).
fn kimi(ctx: &Ctx<'_>, post: bool, get: bool) -> Reply {
    let (api, gated) = match ctx.path {
        "/coding/v1/messages" if post => (Api::Messages, true),
        "/coding/v1/chat/completions" if post => (Api::Chat, true),
        "/coding/v1/models" if get => (Api::Models, false),
        _ => return not_found(),
    };
    let valid = ctx
        .bearer_or_api_key()
        .is_some_and(|k| ctx.general(k) || ctx.coding(k));
    if !valid {
        return Reply::error(401, KIMI_INVALID_KEY);
    }
    if gated && !kimi_agent(ctx.headers) {
        return Reply::error(403, KIMI_NOT_A_CODING_AGENT);
    }
    success(ctx, api, "kimi-for-coding")
}

/// The Kimi Code User-Agent allowlist (case-sensitive prefixes).
fn kimi_agent(headers: &HeaderMap) -> bool {
    const ALLOWED: [&[u8]; 4] = [b"claude-code/", b"KimiCLI/", b"RooCode/", b"Kilo-Code/"];
    headers
        .get(http::header::USER_AGENT)
        .is_some_and(|ua| ALLOWED.iter().any(|p| ua.as_bytes().starts_with(p)))
}

/// Z.AI (api.z.ai) and BigModel (open.bigmodel.cn): general vs coding endpoints.
fn zai(ctx: &Ctx<'_>, post: bool) -> Reply {
    let cn = ctx.host == "open.bigmodel.cn";
    let (missing, failed) = if cn {
        (ZAI_MISSING_AUTH_CN, ZAI_AUTH_FAILED_CN)
    } else {
        (ZAI_MISSING_AUTH_EN, ZAI_AUTH_FAILED_EN)
    };
    let key = ctx.bearer_or_api_key();
    match ctx.path {
        "/api/paas/v4/chat/completions" if post => match key {
            None => Reply::error(401, missing),
            Some(k) if ctx.general(k) => success(ctx, Api::Chat, "glm-4.6"),
            Some(k) if ctx.coding(k) => Reply::error(429, ZAI_INSUFFICIENT_BALANCE),
            Some(_) => Reply::error(401, failed),
        },
        "/api/coding/paas/v4/chat/completions" if post => match key {
            None => Reply::error(401, missing),
            Some(k) if ctx.coding(k) => success(ctx, Api::Chat, "glm-4.6"),
            Some(_) => Reply::error(401, failed),
        },
        // UNVERIFIED endpoint (see the zai probe in config/catalog.toml): answers like the chat
        // endpoints' auth check.
        "/api/paas/v4/models" if ctx.method == Method::GET => match key {
            None => Reply::error(401, missing),
            Some(k) if ctx.general(k) || ctx.coding(k) => success(ctx, Api::Models, "glm-4.6"),
            Some(_) => Reply::error(401, failed),
        },
        "/api/anthropic/v1/messages" if post => match key {
            Some(k) if ctx.general(k) || ctx.coding(k) => success(ctx, Api::Messages, "glm-4.6"),
            _ => Reply::error(401, ZAI_ANTHROPIC_AUTH_FAILED),
        },
        _ => not_found(),
    }
}

/// MiniMax: native 2049 shape on the OpenAI-style paths, Anthropic shape on /anthropic, and the CN
/// `x-api-key` quirk (HTTP 500 for a valid key).
fn minimax(ctx: &Ctx<'_>, post: bool) -> Reply {
    if !post {
        return not_found();
    }
    let key = ctx.bearer_or_api_key();
    let valid = key.is_some_and(|k| ctx.general(k));
    match ctx.path {
        "/v1/text/chatcompletion_v2" if valid => success(ctx, Api::Chat, "MiniMax-M2"),
        "/v1/text/chatcompletion_v2" => Reply::error(200, MINIMAX_INVALID_API_KEY),
        "/v1/chat/completions" if valid => success(ctx, Api::Chat, "MiniMax-M2"),
        "/v1/chat/completions" => Reply::error(401, MINIMAX_INVALID_API_KEY),
        "/anthropic/v1/messages" if !valid => Reply::error(401, MINIMAX_ANTHROPIC_INVALID_KEY),
        "/anthropic/v1/messages" => {
            if ctx.host == "api.minimaxi.com" && ctx.bearer().is_none() {
                Reply::error(500, MINIMAX_CN_X_API_KEY_SYSTEM_ERROR)
            } else {
                success(ctx, Api::Messages, "MiniMax-M2")
            }
        }
        _ => not_found(),
    }
}

/// DashScope: general hosts serve /compatible-mode/v1, coding hosts serve /v1. A coding host
/// accepts keys registered on it and coding keys registered on its paired general host.
fn dashscope(ctx: &Ctx<'_>, post: bool, get: bool) -> Reply {
    let paired_general = match ctx.host {
        "coding.dashscope.aliyuncs.com" => Some("dashscope.aliyuncs.com"),
        "coding-intl.dashscope.aliyuncs.com" => Some("dashscope-intl.aliyuncs.com"),
        _ => None,
    };
    let api = match (paired_general, ctx.path) {
        (None, "/compatible-mode/v1/chat/completions") if post => Api::Chat,
        (None, "/compatible-mode/v1/models") if get => Api::Models,
        (Some(_), "/v1/chat/completions") if post => Api::Chat,
        _ => return not_found(),
    };
    let Some(k) = ctx.bearer_or_api_key() else {
        return Reply::error(401, DASHSCOPE_MISSING_KEY);
    };
    let valid = match paired_general {
        None => ctx.general(k),
        Some(general) => ctx.general(k) || ctx.coding(k) || ctx.cfg.has(general, k, Plan::Coding),
    };
    if valid {
        success(ctx, api, "qwen-plus")
    } else {
        Reply::error(401, DASHSCOPE_INVALID_KEY)
    }
}

/// Gemini: `/v1beta/models/{model}:generateContent` and `:streamGenerateContent` (also `/v1/`),
/// key in `x-goog-api-key` or `?key=`.
fn gemini(ctx: &Ctx<'_>, post: bool) -> Reply {
    let rest = ctx
        .path
        .strip_prefix("/v1beta/models/")
        .or_else(|| ctx.path.strip_prefix("/v1/models/"));
    let api = match rest.and_then(|r| r.rsplit_once(':')) {
        Some((model, "generateContent")) if post && !model.is_empty() => Api::Gemini {
            model: model.to_owned(),
            stream: false,
        },
        Some((model, "streamGenerateContent")) if post && !model.is_empty() => Api::Gemini {
            model: model.to_owned(),
            stream: true,
        },
        _ => return not_found(),
    };
    let key = ctx
        .headers
        .get("x-goog-api-key")
        .map(|v| v.as_bytes().to_vec())
        .or_else(|| query_param(ctx.query, "key"))
        .filter(|k| !k.is_empty());
    match key {
        Some(k) if ctx.general(&k) => success(ctx, api, "gemini-2.5-flash"),
        _ => Reply::error(400, GEMINI_API_KEY_INVALID),
    }
}

impl Ctx<'_> {
    /// The key of `Authorization: Bearer <k>`; an empty token counts as no key.
    fn bearer(&self) -> Option<&[u8]> {
        let value = self.headers.get(http::header::AUTHORIZATION)?.as_bytes();
        let scheme = value.get(..6)?;
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        match value.get(6..) {
            Some([b' ', key @ ..]) if !key.is_empty() => Some(key),
            _ => None,
        }
    }

    /// The key sent: Bearer first, then `x-api-key`, then `x-goog-api-key`. Empty means none.
    fn bearer_or_api_key(&self) -> Option<&[u8]> {
        self.bearer().or_else(|| {
            ["x-api-key", "x-goog-api-key"]
                .iter()
                .filter_map(|h| self.headers.get(*h))
                .map(|v| v.as_bytes())
                .find(|k| !k.is_empty())
        })
    }

    fn general(&self, key: &[u8]) -> bool {
        self.cfg.has(self.host, key, Plan::General)
    }

    fn coding(&self, key: &[u8]) -> bool {
        self.cfg.has(self.host, key, Plan::Coding)
    }
}

/// The success answer for `api`; `default_model` is used when the request names none.
fn success(ctx: &Ctx<'_>, api: Api, default_model: &str) -> Reply {
    let request: serde_json::Value = serde_json::from_slice(ctx.body).unwrap_or_default();
    let model = request
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or(default_model)
        .to_owned();
    let stream = request.get("stream").and_then(|s| s.as_bool()) == Some(true);
    let m = json_string(&model);
    let n = ctx.cfg.sse_chunks;
    match api {
        Api::Chat if stream => {
            let mut frames: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        r#"data: {{"id":"chatcmpl-emu","object":"chat.completion.chunk","model":{m},"choices":[{{"index":0,"delta":{{"content":"tok{i} "}}}}]}}"#
                    ) + "\n\n"
                })
                .collect();
            frames.push("data: [DONE]\n\n".to_owned());
            Reply::stream(frames, SSE)
        }
        Api::Chat => Reply::ok_json(format!(
            r#"{{"id":"chatcmpl-emu","object":"chat.completion","created":1700000000,"model":{m},"choices":[{{"index":0,"message":{{"role":"assistant","content":"OK"}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}},"system_fingerprint":"fp_emu"}}"#
        )),
        Api::Messages if stream => {
            let event = |name: &str, data: String| format!("event: {name}\ndata: {data}\n\n");
            let mut frames = vec![
                event(
                    "message_start",
                    format!(
                        r#"{{"type":"message_start","message":{{"id":"msg_emu","type":"message","role":"assistant","model":{m},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":10,"output_tokens":0}}}}}}"#
                    ),
                ),
                event(
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
                ),
            ];
            frames.extend((0..n).map(|i| {
                event(
                    "content_block_delta",
                    format!(
                        r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"tok{i} "}}}}"#
                    ),
                )
            }));
            frames.push(event(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#.to_owned(),
            ));
            frames.push(event(
                "message_delta",
                format!(
                    r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{n}}}}}"#
                ),
            ));
            frames.push(event(
                "message_stop",
                r#"{"type":"message_stop"}"#.to_owned(),
            ));
            Reply::stream(frames, SSE)
        }
        Api::Messages => Reply::ok_json(format!(
            r#"{{"id":"msg_emu","type":"message","role":"assistant","model":{m},"content":[{{"type":"text","text":"OK"}}],"stop_reason":"end_turn","usage":{{"input_tokens":10,"output_tokens":1}}}}"#
        )),
        Api::Models => Reply::ok_json(format!(
            r#"{{"object":"list","data":[{{"id":{},"object":"model"}}]}}"#,
            json_string(default_model)
        )),
        Api::Gemini { model, stream } => {
            let m = json_string(&model);
            let candidate = |text: &str| {
                format!(
                    r#"{{"candidates":[{{"content":{{"parts":[{{"text":{}}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11}},"modelVersion":{m}}}"#,
                    json_string(text)
                )
            };
            if !stream {
                return Reply::ok_json(candidate("OK"));
            }
            let sse = query_param(ctx.query, "alt").is_some_and(|a| a == b"sse");
            let chunks = (0..n).map(|i| candidate(&format!("tok{i} ")));
            if sse {
                // Gemini ends SSE events with CRLF CRLF.
                Reply::stream(chunks.map(|c| format!("data: {c}\r\n\r\n")).collect(), SSE)
            } else {
                // Without alt=sse Gemini streams one JSON array, element by element.
                let mut frames: Vec<String> = chunks
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 0 {
                            format!("[{c}")
                        } else {
                            format!(",\r\n{c}")
                        }
                    })
                    .collect();
                if frames.is_empty() {
                    frames.push("[".to_owned());
                }
                frames.push("]".to_owned());
                Reply::stream(frames, JSON)
            }
        }
    }
}

/// `s` as a JSON string literal, quotes included.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Replace `placeholder` in an error template with `echo`, JSON-escaped (a provider escapes what it
/// echoes).
fn fill(template: &str, placeholder: &str, echo: &str) -> String {
    let quoted = json_string(echo);
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted);
    template.replace(placeholder, inner)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

/// OpenAI's echo: a key shorter than 8 characters whole, else the first 3, `*` for the middle and
/// the last 4 (same length as the key).
pub(crate) fn openai_mask(key: &str) -> String {
    let count = key.chars().count();
    if count < 8 {
        return key.to_owned();
    }
    format!(
        "{}{}{}",
        first_chars(key, 3),
        "*".repeat(count - 7),
        last_chars(key, 4)
    )
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: Option<&str>, name: &str) -> Option<Vec<u8>> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    while let Some(&b) = bytes.get(i) {
        match (b, hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_mask_matches_observed_shape() {
        assert_eq!(openai_mask("short"), "short");
        assert_eq!(openai_mask("sk-abcdefghWXYZ"), "sk-********WXYZ");
        assert_eq!(openai_mask("12345678").len(), 8);
    }

    #[test]
    fn echoes_are_json_escaped() {
        assert_eq!(fill("<E>", "<E>", "a\"b"), "a\\\"b");
    }

    #[test]
    fn query_keys_are_percent_decoded() {
        assert_eq!(
            query_param(Some("alt=sse&key=AQ.a%2Bb"), "key").as_deref(),
            Some(&b"AQ.a+b"[..])
        );
    }
}

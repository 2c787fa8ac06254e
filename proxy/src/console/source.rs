//! Following a running authtap through its admin API, for `authtap console` and `authtap tail`:
//! open the event stream (`/_authtap/api/events`), then fetch the backlog (`/api/exchanges`), so no
//! record can fall between the two; pass on each record once (by id); and when the connection fails
//! or is lost, say so and try again with a growing pause (1 s, 2 s, 4 s, 8 s, then every 10 s),
//! fetching the backlog again to fill the gap.
//!
//! Plain HTTP/1.1 to the listener, with hyper's client; the Server-Sent Events are parsed here, line
//! by line (the admin API sends `event:` and `data:` lines and `: keepalive` comments).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use anyhow::bail;
use authtap_inspector::record::Exchange;
use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming as Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::value::RawValue;
use tokio::sync::mpsc::UnboundedSender;

use crate::sink::plain;

/// Where authtap listens when `--connect` is not given.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:7401";
/// The most records `/api/exchanges` returns (the admin API keeps this many).
const BACKLOG_LIMIT: usize = 1000;
/// Record ids remembered to pass each record on once: more than a backlog and what can arrive
/// while it is fetched.
const SEEN_IDS: usize = 8192;
/// A TCP connect to a local listener is instant; this only bounds a black-holed address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed for response headers and for the backlog's body.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// authtap sends a keepalive comment every 15 s; three missed ones mean the link is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The pause before the next attempt doubles from the first up to the last.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// An event longer than this is not one of authtap's (records are a few KiB).
const MAX_EVENT: usize = 4 << 20;

/// A running authtap's admin API, as `--connect` and the admin token name it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `http://host:port`: where requests go, and what messages show (never with the token).
    pub(crate) shown: String,
    token: Option<String>,
}

impl Target {
    /// `url` is what `--connect` got (default [`DEFAULT_URL`]): a scheme is optional, a path is
    /// ignored (so the consoles URL authtap prints works as is), and a `token=` in its query is the
    /// admin token, before `token` (`--admin-token` or `AUTHTAP_ADMIN_TOKEN`).
    pub(crate) fn parse(url: Option<&str>, token: Option<&str>) -> anyhow::Result<Target> {
        let given = url.unwrap_or(DEFAULT_URL).trim();
        let with_scheme = if given.contains("://") {
            given.to_string()
        } else {
            format!("http://{given}")
        };
        let uri: Uri = with_scheme.parse().map_err(|_| {
            anyhow::anyhow!(
                "--connect {}: not a URL; give authtap's address, e.g. {DEFAULT_URL}",
                plain(given)
            )
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!(
                "--connect {}: authtap's admin API is plain HTTP on its listen address ({other}:// is not supported); e.g. {DEFAULT_URL}",
                plain(given)
            ),
            None => bail!("--connect {}: not a URL", plain(given)),
        }
        let Some(authority) = uri.authority() else {
            bail!(
                "--connect {}: no host and port; e.g. {DEFAULT_URL}",
                plain(given)
            );
        };
        // The authority, without any `user:password@`.
        let host_port = authority
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or(authority.as_str())
            .to_string();
        let from_url = uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "token")
                .map(|(_, v)| v.to_string())
        });
        let token = from_url
            .or_else(|| token.map(str::to_string))
            .filter(|t| !t.is_empty());
        Ok(Target {
            shown: format!("http://{host_port}"),
            token,
        })
    }

    fn uri(&self, path: &str) -> Result<Uri, LinkError> {
        format!("{}{path}", self.shown)
            .parse()
            .map_err(|_| LinkError::new(format!("{} is not a usable address", self.shown), None))
    }
}

/// A record as it came from authtap: the JSON text exactly as received, and the record it holds.
pub(crate) struct Incoming {
    pub(crate) raw: String,
    pub(crate) record: Box<Exchange>,
}

/// What the follower reports, in order.
pub(crate) enum FeedEvent {
    /// Connected (again): the backlog's unseen records follow, oldest first, then live ones.
    Connected,
    /// A record not passed on before.
    Record(Incoming),
    /// authtap dropped `missed` records for this subscriber, which fell behind; `recovered` of
    /// them were then found in the backlog and passed on.
    Lagged { missed: u64, recovered: u64 },
    /// A record this authtap cannot read (from a newer authtap?): why.
    Unreadable(String),
    /// The connection failed or was lost; the next attempt is in `retry_in`.
    Lost {
        error: LinkError,
        retry_in: Duration,
        /// Whether a connection ever succeeded.
        was_connected: bool,
    },
}

/// Why the link to authtap failed, in the user's words, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkError {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl LinkError {
    fn new(message: String, hint: Option<String>) -> Self {
        LinkError { message, hint }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{}. {hint}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn admin_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// `GET /_authtap/healthz` at `target`: whether an authtap answers there (with the admin token,
/// when one is given), for `authtap exec --attach`.
pub(crate) async fn health(target: Target) -> Result<serde_json::Value, LinkError> {
    // Nobody reads the follower's events: it is used only for its GET.
    let (events, _) = tokio::sync::mpsc::unbounded_channel();
    let follower = Follower {
        client: admin_client(),
        target,
        seen: Seen::default(),
        events,
    };
    let response = follower
        .get("/_authtap/healthz", "application/json")
        .await?;
    let body = tokio::time::timeout(ANSWER_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| follower.no_answer())?
        .map_err(|e| LinkError::new(reason(&e), None))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        LinkError::new(
            format!(
                "{} answered, but not as authtap does: {e}",
                follower.target.shown
            ),
            None,
        )
    })
}

/// Follow `target` until `events` is dropped. Of the first connection's backlog only the newest
/// `first_backlog` records are passed on (the rest are only remembered as seen); after a
/// reconnection every unseen backlog record is.
pub(crate) async fn follow(
    target: Target,
    first_backlog: usize,
    events: UnboundedSender<FeedEvent>,
) {
    let mut follower = Follower {
        client: admin_client(),
        target,
        seen: Seen::default(),
        events,
    };
    let mut was_connected = false;
    let mut retry = FIRST_RETRY;
    loop {
        let backlog = if was_connected {
            BACKLOG_LIMIT
        } else {
            first_backlog
        };
        let mut connected = false;
        let error = match follower.session(backlog, &mut connected).await {
            Ok(()) => return, // nobody listens any more
            Err(error) => error,
        };
        if connected {
            // A link that worked and broke: try again soon.
            was_connected = true;
            retry = FIRST_RETRY;
        }
        let lost = FeedEvent::Lost {
            error,
            retry_in: retry,
            was_connected,
        };
        if follower.events.send(lost).is_err() {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
        if follower.events.is_closed() {
            return;
        }
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

struct Follower {
    client: HttpClient,
    target: Target,
    seen: Seen,
    events: UnboundedSender<FeedEvent>,
}

impl Follower {
    /// One connection: events, backlog, then live records until the link fails (`Err`) or
    /// nobody listens (`Ok`). `connected` is set once the event stream is open.
    async fn session(&mut self, backlog: usize, connected: &mut bool) -> Result<(), LinkError> {
        let stream = self
            .get("/_authtap/api/events", "text/event-stream")
            .await?;
        *connected = true;
        if self.events.send(FeedEvent::Connected).is_err() {
            return Ok(());
        }
        if self.backlog(backlog).await?.is_none() {
            return Ok(());
        }
        let mut body = stream.into_body();
        let mut parser = SseParser::default();
        let mut parsed = Vec::new();
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Err(_) => {
                    return Err(LinkError::new(
                        format!(
                            "no word from authtap at {} for {}s",
                            self.target.shown,
                            IDLE_TIMEOUT.as_secs()
                        ),
                        None,
                    ));
                }
                Ok(None) => {
                    return Err(LinkError::new(
                        format!(
                            "authtap at {} closed the event stream (stopped?)",
                            self.target.shown
                        ),
                        None,
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Err(LinkError::new(
                        format!(
                            "lost the connection to authtap at {}: {}",
                            self.target.shown,
                            reason(&e)
                        ),
                        None,
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            parser.push(&data, &mut parsed).map_err(|e| {
                LinkError::new(format!("authtap at {}: {e}", self.target.shown), None)
            })?;
            for (event, data) in parsed.drain(..) {
                let sent = match event.as_str() {
                    "record" => self.pass_on(data).is_some(),
                    "lagged" => {
                        let missed = serde_json::from_str::<serde_json::Value>(&data)
                            .ok()
                            .and_then(|v| v["missed"].as_u64())
                            .unwrap_or(0);
                        let Some(recovered) = self.backlog(BACKLOG_LIMIT).await? else {
                            return Ok(());
                        };
                        self.events
                            .send(FeedEvent::Lagged { missed, recovered })
                            .is_ok()
                    }
                    // Events a later authtap may add.
                    _ => true,
                };
                if !sent {
                    return Ok(());
                }
            }
        }
    }

    /// Fetch the backlog and pass on its unseen records, oldest first, at most the newest `show`
    /// of them (the others are remembered as seen). How many were passed on; `None` when nobody
    /// listens any more.
    async fn backlog(&mut self, show: usize) -> Result<Option<u64>, LinkError> {
        let path = format!("/_authtap/api/exchanges?limit={BACKLOG_LIMIT}");
        let response = self.get(&path, "application/json").await?;
        let body = tokio::time::timeout(ANSWER_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| self.no_answer())?
            .map_err(|e| {
                LinkError::new(
                    format!(
                        "lost the connection to authtap at {}: {}",
                        self.target.shown,
                        reason(&e)
                    ),
                    None,
                )
            })?
            .to_bytes();
        let records: Vec<Box<RawValue>> = serde_json::from_slice(&body).map_err(|e| {
            LinkError::new(
                format!(
                    "authtap at {} sent a backlog that is not JSON: {e}",
                    self.target.shown
                ),
                None,
            )
        })?;
        let first_shown = records.len().saturating_sub(show);
        let mut passed = 0;
        // Newest first on the wire; oldest first to the reader.
        for (i, raw) in records.iter().rev().enumerate() {
            if i < first_shown {
                if let Ok(id) = serde_json::from_str::<RecordId>(raw.get()) {
                    self.seen.insert(id.id);
                }
                continue;
            }
            match self.pass_on(raw.get().to_string()) {
                None => return Ok(None),
                Some(true) => passed += 1,
                Some(false) => {}
            }
        }
        Ok(Some(passed))
    }

    /// Pass a record on unless it was already: whether it was; `None` when nobody listens any
    /// more.
    fn pass_on(&mut self, raw: String) -> Option<bool> {
        let event = match serde_json::from_str::<Exchange>(&raw) {
            Ok(record) => {
                if !self.seen.insert(record.id.clone()) {
                    return Some(false);
                }
                FeedEvent::Record(Incoming {
                    raw,
                    record: Box::new(record),
                })
            }
            Err(e) => FeedEvent::Unreadable(format!(
                "a record this authtap cannot read ({})",
                plain(&e.to_string())
            )),
        };
        self.events.send(event).ok().map(|()| true)
    }

    /// GET `path`, expecting a 200 with `content_type`.
    async fn get(&self, path: &str, content_type: &str) -> Result<http::Response<Body>, LinkError> {
        let mut request = http::Request::get(self.target.uri(path)?);
        if let Some(token) = &self.target.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::new()).map_err(|_| {
            LinkError::new("the admin token is not a valid header value".into(), None)
        })?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| self.no_answer())?
            .map_err(|e| self.unreachable(&e))?;
        let shown = &self.target.shown;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(LinkError::new(
                    format!(
                        "authtap at {shown} wants its admin token (it listens on a non-loopback address)"
                    ),
                    Some(
                        "Give the token authtap printed at start: --admin-token TOKEN, AUTHTAP_ADMIN_TOKEN, or the consoles URL with ?token="
                            .into(),
                    ),
                ));
            }
            StatusCode::FORBIDDEN => {
                return Err(LinkError::new(
                    format!("authtap at {shown} serves its admin API to its own machine only"),
                    Some("Run this on the machine authtap runs on".into()),
                ));
            }
            status => {
                return Err(LinkError::new(
                    format!("{shown} answered {status} to {path}"),
                    Some("Is it authtap? (--connect URL to point elsewhere)".into()),
                ));
            }
        }
        let got = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !got.starts_with(content_type) {
            return Err(LinkError::new(
                format!(
                    "{shown} answered {path} with {}, not {content_type}",
                    if got.is_empty() {
                        "no content type"
                    } else {
                        got
                    }
                ),
                Some("Is it authtap? (--connect URL to point elsewhere)".into()),
            ));
        }
        Ok(response)
    }

    fn no_answer(&self) -> LinkError {
        LinkError::new(
            format!(
                "authtap at {} did not answer within {}s",
                self.target.shown,
                ANSWER_TIMEOUT.as_secs()
            ),
            None,
        )
    }

    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> LinkError {
        LinkError::new(
            format!(
                "cannot reach authtap at {}: {}",
                self.target.shown,
                reason(e)
            ),
            Some("Is `authtap run` running? (--connect URL to point elsewhere)".into()),
        )
    }
}

/// The innermost cause of a client error, in plain words ("connection refused").
fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                // What a stopped authtap looks like in the middle of the event stream.
                std::io::ErrorKind::UnexpectedEof => "connection closed (authtap stopped?)".into(),
                std::io::ErrorKind::TimedOut => "timed out".into(),
                _ => plain(&io.to_string()),
            };
        }
        innermost = err.to_string();
        source = err.source();
    }
    plain(&innermost)
}

#[derive(serde::Deserialize)]
struct RecordId {
    id: String,
}

/// The ids of the last [`SEEN_IDS`] records passed on.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// False when `id` was seen already.
    fn insert(&mut self, id: String) -> bool {
        if self.ids.contains(&id) {
            return false;
        }
        if self.order.len() == SEEN_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.clone());
        self.order.push_back(id);
        true
    }
}

/// Server-Sent Events, chunk by chunk: complete events out, the rest kept for the next chunk.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    /// Whether the current event has a `data` line (an empty one counts).
    has_data: bool,
}

impl SseParser {
    /// Add a chunk; push each event it completes as (event name, data).
    fn push(&mut self, chunk: &[u8], out: &mut Vec<(String, String)>) -> Result<(), String> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(at) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + at;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            self.line(&line, out);
        }
        self.buf.drain(..start);
        if self.buf.len() + self.data.len() > MAX_EVENT {
            return Err(format!(
                "an event longer than {} MiB is not authtap's",
                MAX_EVENT >> 20
            ));
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<(String, String)>) {
        if line.is_empty() {
            if self.has_data {
                let event = if self.event.is_empty() {
                    "message".to_string()
                } else {
                    std::mem::take(&mut self.event)
                };
                out.push((event, std::mem::take(&mut self.data)));
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // a comment: `: keepalive`
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_parsed_across_chunks_with_comments_and_crlf() {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        let text = b": keepalive\n\nevent: record\ndata: {\"id\":\"a-1\"}\n\nevent: lagged\r\ndata: {\"missed\":3}\r\n\r\ndata: x\ndata: y\n\n";
        // Byte by byte: every split point is a chunk boundary somewhere.
        for byte in text {
            parser.push(&[*byte], &mut out).expect("parse");
        }
        assert_eq!(
            out,
            vec![
                ("record".to_string(), "{\"id\":\"a-1\"}".to_string()),
                ("lagged".to_string(), "{\"missed\":3}".to_string()),
                ("message".to_string(), "x\ny".to_string()),
            ]
        );
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut out = Vec::new();
        let mut result = Ok(());
        for _ in 0..5 {
            result = parser.push(&chunk, &mut out);
        }
        assert!(result.is_err());
    }

    #[test]
    fn connect_urls_take_the_consoles_url_and_its_token() {
        let t = Target::parse(None, None).expect("default");
        assert_eq!(t.shown, "http://127.0.0.1:7401");
        assert_eq!(t.token, None);
        let t = Target::parse(
            Some("http://10.0.0.5:7401/_authtap/?token=abc"),
            Some("env"),
        )
        .expect("url");
        assert_eq!(t.shown, "http://10.0.0.5:7401");
        assert_eq!(t.token.as_deref(), Some("abc"));
        let t = Target::parse(Some("127.0.0.1:9000"), Some("env")).expect("no scheme");
        assert_eq!(t.shown, "http://127.0.0.1:9000");
        assert_eq!(t.token.as_deref(), Some("env"));
        assert!(Target::parse(Some("https://127.0.0.1:7401"), None).is_err());
        assert!(Target::parse(Some("http://"), None).is_err());
    }

    #[test]
    fn seen_ids_are_bounded() {
        let mut seen = Seen::default();
        assert!(seen.insert("a-1".into()));
        assert!(!seen.insert("a-1".into()));
        for n in 0..SEEN_IDS {
            seen.insert(format!("b-{n}"));
        }
        assert_eq!(seen.ids.len(), SEEN_IDS);
        assert!(seen.insert("a-1".into()), "the oldest id was forgotten");
    }
}

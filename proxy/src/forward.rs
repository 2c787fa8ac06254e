//! Forwarding. Base-URL mode: `http://LISTEN/<route>/<rest>` goes to `<route's upstream>/<rest>`.
//! HTTPS_PROXY mode (see `intercept.rs`) hands requests in here too, with the real host. Either
//! way bodies stream both ways and one record is made per exchange, however it ends.

use std::borrow::Cow;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use authtap_config::{Catalog, Route};
use authtap_inspector::auth::{self, AuthShape, Measured, Measurer};
use authtap_inspector::error_body::{self, ProviderError};
use authtap_inspector::record::{Exchange, Failure, FailureStage, Mode, Outcome, RecordKind};
use authtap_inspector::secret::{FingerprintKey, Secret};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sink::Recorder;
use crate::tee::{RequestSide, RequestTee, ResponseTee};
use crate::upstream::{self, Dialer, UpstreamClient};

/// The body authtap answers with: the upstream's, streamed, or one of its own (a JSON error, the
/// web console, an event stream).
pub type ProxyBody = Either<ResponseTee, UnsyncBoxBody<Bytes, Infallible>>;

/// A body of authtap's own.
pub fn own_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Either::Right(Full::new(bytes.into()).boxed_unsync())
}

/// How much of a response body is kept to read the provider's error from.
pub const ERROR_PREFIX_LIMIT: usize = 16 * 1024;

/// Everything the handler shares across requests. Read-only but for counters and caches.
pub struct Shared {
    pub catalog: Arc<Catalog>,
    pub client: UpstreamClient,
    pub dialer: Arc<Dialer>,
    /// Measures the keys requests carry (each distinct one once).
    pub keys: Measurer,
    pub recorder: Recorder,
    pub response_timeout: Duration,
    /// Prefix of record ids, unique per run.
    pub session: String,
    seq: AtomicU64,
    /// Compiled once: public key prefixes, for scrubbing error bodies.
    public_prefixes: Vec<String>,
    /// Whether refused keys are probed at the provider's other regions.
    pub probe: bool,
    /// (key fingerprint, route) pairs already probed this run.
    pub probed: Mutex<HashSet<(String, String)>>,
    /// Probe and tunnel tasks, waited for at shutdown so no record is lost.
    pub tasks: TaskTracker,
    /// HTTPS_PROXY mode's settings and CA.
    pub forward: crate::intercept::ForwardMode,
    /// Finished records for the admin API.
    pub feed: Arc<crate::admin::Feed>,
    pub admin: crate::admin::Access,
    /// Cancelled when authtap starts shutting down: ends long-lived admin event streams.
    pub shutdown: CancellationToken,
    /// Client connections served at once; more get 503.
    pub max_connections: usize,
    /// One permit per open client connection, `max_connections` in all.
    pub connections: Arc<tokio::sync::Semaphore>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
}

/// What [`Shared::new`] is made from.
pub struct SharedParts {
    pub catalog: Arc<Catalog>,
    pub client: UpstreamClient,
    pub dialer: Arc<Dialer>,
    pub fingerprints: FingerprintKey,
    pub recorder: Recorder,
    pub response_timeout: Duration,
    pub session: String,
    pub probe: bool,
    pub forward: crate::intercept::ForwardMode,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub feed: Arc<crate::admin::Feed>,
    pub admin: crate::admin::Access,
}

impl Shared {
    pub fn new(parts: SharedParts) -> Self {
        let public_prefixes: Vec<String> = parts
            .catalog
            .key_shapes
            .iter()
            .filter_map(|s| s.prefix.clone())
            .collect();
        Shared {
            keys: Measurer::new(parts.catalog.clone(), parts.fingerprints),
            catalog: parts.catalog,
            client: parts.client,
            dialer: parts.dialer,
            recorder: parts.recorder,
            response_timeout: parts.response_timeout,
            session: parts.session,
            seq: AtomicU64::new(0),
            public_prefixes,
            probe: parts.probe,
            probed: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
            forward: parts.forward,
            feed: parts.feed,
            admin: parts.admin,
            shutdown: CancellationToken::new(),
            max_connections: parts.max_connections.max(1),
            connections: Arc::new(tokio::sync::Semaphore::new(parts.max_connections.max(1))),
            header_read_timeout: parts.header_read_timeout,
        }
    }

    pub fn next_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut id = String::with_capacity(self.session.len() + 12);
        id.push_str(&self.session);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        id
    }

    /// The provider's error from the first bytes of its body, scrubbed.
    pub fn provider_error(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        prefix: &[u8],
        secrets: &[Arc<Measured>],
    ) -> Option<ProviderError> {
        if prefix.is_empty() {
            return None;
        }
        let body = error_body::decode(content_encoding, prefix, ERROR_PREFIX_LIMIT)?;
        let e = error_body::parse(content_type, &body)?;
        let s = |v: Option<String>| v.map(|v| self.scrub(v, secrets));
        Some(ProviderError {
            kind: s(e.kind),
            code: s(e.code),
            message: s(e.message),
        })
    }

    /// Remove key material (the request's own keys, and anything key-shaped) from text that came
    /// from a provider.
    pub fn scrub(&self, text: String, secrets: &[Arc<Measured>]) -> String {
        self.scrub_with(text, secrets, true)
    }

    /// Remove the request's own keys from text the client sent (user agent, model): the key-shape
    /// patterns are skipped there, since they cost a regex pass per field on every request.
    fn scrub_sent(&self, text: String, secrets: &[Arc<Measured>]) -> String {
        self.scrub_with(text, secrets, false)
    }

    /// `text` as it is (not copied) when it holds no key material, which is nearly always.
    fn scrub_with(&self, text: String, secrets: &[Arc<Measured>], shapes: bool) -> String {
        let shapes = shapes && self.catalog.may_hold_key(&text);
        let echoes = |m: &Arc<Measured>| m.credential.value.shares_run_with(text.as_bytes());
        if !shapes && !secrets.iter().any(echoes) {
            return text;
        }
        let secrets: Vec<&Secret> = secrets.iter().map(|m| &m.credential.value).collect();
        let prefixes: Vec<&str> = self.public_prefixes.iter().map(String::as_str).collect();
        let patterns: Vec<&regex::Regex> = if shapes {
            self.catalog.key_shapes.iter().map(|s| &s.search).collect()
        } else {
            Vec::new()
        };
        if let Cow::Owned(scrubbed) = error_body::scrub(&text, &secrets, &prefixes, &patterns) {
            return scrubbed;
        }
        text
    }
}

/// A record being built. Finished exactly once: by the response body's end, or by the guard when
/// the exchange ends early.
pub struct Draft {
    shared: Arc<Shared>,
    record: Exchange,
    /// The request's credentials, the one the provider reads first.
    secrets: Vec<Arc<Measured>>,
    started: Instant,
    request: Arc<RequestSide>,
    content_encoding: Option<String>,
}

impl Draft {
    pub fn finish(
        self: Box<Self>,
        outcome: Outcome,
        failure: Option<(FailureStage, String)>,
        prefix: Vec<u8>,
        bytes_down: u64,
    ) {
        let Draft {
            shared,
            mut record,
            secrets,
            started,
            request,
            content_encoding,
        } = *self;
        record.duration_ms = millis(started.elapsed());
        record.outcome = outcome;
        if let Some((stage, message)) = failure {
            record.failure = Some(Failure {
                stage,
                message: shared.scrub(message, &secrets),
            });
        }
        record.bytes_down = bytes_down;
        record.bytes_up = request.bytes.load(Ordering::Relaxed);
        // The request body is done with by now, so its fields are usually ours to move.
        let fields = match Arc::try_unwrap(request) {
            Ok(side) => side.fields.into_inner(),
            Err(shared_side) => shared_side.fields.get().cloned(),
        };
        if let Some(fields) = fields {
            record.model = fields.model.map(|m| shared.scrub_sent(m, &secrets));
            record.stream = fields.stream;
        }
        // A 2xx body is read only when it may be an error in disguise (Z.AI's monitor endpoints
        // answer 200 with `success:false`, MiniMax's native API with `base_resp`), and only when
        // it is not compressed (those are small JSON answers); a healthy body is not parsed.
        let success = record.status.is_some_and(|s| (200..300).contains(&s));
        static ERROR_WORDS: LazyLock<[memchr::memmem::Finder<'static>; 3]> = LazyLock::new(|| {
            [&b"\"error\""[..], b"\"success\"", b"\"base_resp\""].map(memchr::memmem::Finder::new)
        });
        let may_be_error = !success
            || ERROR_WORDS.iter().any(|word| word.find(&prefix).is_some())
            || content_encoding.is_some();
        if may_be_error {
            record.error = shared.provider_error(
                record.content_type.as_deref(),
                content_encoding.as_deref(),
                &prefix,
                &secrets,
            );
        }
        crate::probe::record_after_probes(shared, record, secrets);
    }
}

/// Finishes the draft as `client-aborted` if the handler is dropped before the response starts
/// (the client hung up while the upstream was still thinking).
pub struct Guard(pub Option<Box<Draft>>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(draft) = self.0.take() {
            draft.finish(Outcome::ClientAborted, None, Vec::new(), 0);
        }
    }
}

pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Serve one request from the listener.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() == Method::CONNECT {
        return Ok(crate::intercept::connect(shared, peer, req).await);
    }
    if req.uri().scheme().is_some() {
        // Absolute form: a client using authtap as its HTTP_PROXY.
        return Ok(crate::intercept::absolute(shared, peer, req).await);
    }
    if req.uri().path().starts_with("/_authtap") {
        return Ok(crate::admin::handle(shared, peer, req).await);
    }
    Ok(base_url(shared, req).await)
}

/// Where a request goes, once its mode has been worked out.
pub struct Target<'a> {
    pub mode: Mode,
    /// The catalog route it belongs to, if any.
    pub route: Option<&'a Route>,
    pub host: Cow<'a, str>,
    /// The upstream URL, `scheme://authority/path?query`, built in one string.
    pub url: String,
    /// Where the path (and query) starts in `url`.
    pub path_at: usize,
}

impl Target<'_> {
    /// Upstream path and query.
    pub fn path(&self) -> &str {
        &self.url[self.path_at..]
    }
}

/// Base-URL mode: the first path segment names the route.
async fn base_url(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let ts = now_rfc3339();
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = req.uri().path();
    if path == "/" {
        return index(&shared.catalog);
    }
    if !path.starts_with('/') {
        let body = serde_json::json!({"error": {
            "type": "authtap_bad_request",
            "message": "authtap takes base-URL requests such as POST http://127.0.0.1:7401/moonshot/v1/chat/completions, or CONNECT as an HTTPS proxy",
        }});
        return json_response(StatusCode::BAD_REQUEST, &body);
    }
    let route_name = path[1..].split('/').next().unwrap_or("");
    let Some(route) = shared.catalog.route(route_name) else {
        let (mut record, _) = new_record(&shared, &req, None, Mode::BaseUrl, path_and_query, ts);
        record.status = Some(404);
        record.outcome = Outcome::UnknownRoute;
        record.duration_ms = millis(started.elapsed());
        shared.recorder.record(record);
        return unknown_route(&shared.catalog, route_name);
    };
    // Where it goes: the route's upstream base, then the rest of the path and the query.
    let tail = &path_and_query[1 + route_name.len()..];
    let mut url = String::with_capacity(route.upstream.host.len() + 16 + path_and_query.len());
    route.upstream.push_origin(&mut url, true);
    let path_at = url.len();
    url.push_str(&route.upstream.base);
    if url.len() == path_at && !tail.starts_with('/') {
        url.push('/');
    }
    url.push_str(tail);
    let target = Target {
        mode: Mode::BaseUrl,
        host: Cow::Borrowed(&route.upstream.host),
        url,
        path_at,
        route: Some(route),
    };
    forward(shared.clone(), req, target, started, ts).await
}

/// A record for `req` with its auth measured, and the credentials (the one the provider reads
/// first) for scrubbing and probing.
pub fn new_record(
    shared: &Shared,
    req: &Request<Incoming>,
    route: Option<&Route>,
    mode: Mode,
    path: &str,
    ts: String,
) -> (Exchange, Vec<Arc<Measured>>) {
    let mut credentials = shared.keys.measure(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        req.uri().query(),
    );
    let (auth, other_auth) = shapes(shared, route, &mut credentials);
    let mut record = Exchange::new(
        shared.next_id(),
        RecordKind::Exchange,
        ts,
        req.method().to_string(),
        auth::redact_path(path),
    );
    record.mode = mode;
    record.auth = auth;
    record.other_auth = other_auth;
    record.user_agent = req.headers().get(header::USER_AGENT).map(|v| {
        shared.scrub_sent(
            cap(&String::from_utf8_lossy(v.as_bytes()), 256),
            &credentials,
        )
    });
    if let Some(route) = route {
        record.route = Some(route.name.clone());
        record.provider = Some(route.provider.clone());
        record.region = Some(route.region.clone());
    }
    (record, credentials)
}

/// Send `req` to `target`, stream the answer back, and record the exchange.
pub async fn forward(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    target: Target<'_>,
    started: Instant,
    ts: String,
) -> Response<ProxyBody> {
    let (mut record, secrets) =
        new_record(&shared, &req, target.route, target.mode, target.path(), ts);
    record.host = Some(target.host.to_string());

    let request_side = Arc::new(RequestSide::default());
    let mut guard = Guard(Some(Box::new(Draft {
        shared: shared.clone(),
        record,
        secrets,
        started,
        request: request_side.clone(),
        content_encoding: None,
    })));

    let (mut parts, body) = req.into_parts();
    // From the String itself: the URL is not copied again.
    let uri = match http::Uri::try_from(target.url) {
        Ok(uri) => uri,
        Err(e) => {
            let message = format!("the path does not make a valid upstream URL: {e}");
            return own_error(
                guard,
                StatusCode::BAD_REQUEST,
                "authtap_bad_request",
                None,
                message,
            );
        }
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    let upstream_req = Request::from_parts(
        parts,
        Either::Left(RequestTee::new(body, request_side.clone(), true)),
    );

    let host: &str = &target.host;
    let sent =
        tokio::time::timeout(shared.response_timeout, shared.client.request(upstream_req)).await;
    let response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(_)) if request_side.client_failed.load(Ordering::Relaxed) => {
            // The client went away mid-upload; nobody reads this answer.
            if let Some(draft) = guard.0.take() {
                draft.finish(Outcome::ClientAborted, None, Vec::new(), 0);
            }
            let body = serde_json::json!({"error": {
                "type": "authtap_client_aborted",
                "message": "the request body broke off before it was complete",
            }});
            return json_response(StatusCode::BAD_REQUEST, &body);
        }
        Ok(Err(e)) => {
            let failure = upstream::classify(&e, host);
            let status = if failure.stage == FailureStage::Timeout {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            return own_error(
                guard,
                status,
                "authtap_upstream_error",
                Some(failure.stage),
                failure.message,
            );
        }
        Err(_) => {
            let message = format!(
                "{host} sent no response headers within {}s (raise --response-timeout if the model is slow)",
                shared.response_timeout.as_secs()
            );
            return own_error(
                guard,
                StatusCode::GATEWAY_TIMEOUT,
                "authtap_upstream_error",
                Some(FailureStage::Timeout),
                message,
            );
        }
    };

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let Some(mut draft) = guard.0.take() else {
        unreachable!("the guard holds the draft until here")
    };
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let streaming = content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/event-stream"));
    // Errors are read from non-2xx bodies and from 2xx JSON (some providers answer auth failures
    // with 200 and `success:false`); a healthy stream is never copied.
    let keep = if !parts.status.is_success() || !streaming {
        ERROR_PREFIX_LIMIT
    } else {
        0
    };
    draft.record.status = Some(parts.status.as_u16());
    draft.record.upstream_version = Some(version_name(parts.version).to_string());
    draft.record.content_type = content_type;
    draft.record.ttfb_ms = Some(millis(started.elapsed()));
    draft.content_encoding = header_str(&parts.headers, header::CONTENT_ENCODING);
    // The client gets the version it spoke, whatever the upstream spoke.
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, Either::Left(ResponseTee::new(body, draft, keep)))
}

/// The shapes of the primary credential (the one the provider reads, moved to the front of
/// `credentials`) and of any others.
fn shapes(
    shared: &Shared,
    route: Option<&Route>,
    credentials: &mut [Arc<Measured>],
) -> (Arc<AuthShape>, Vec<Arc<AuthShape>>) {
    let expected = route
        .and_then(|r| shared.catalog.provider(&r.provider))
        .map(|p| p.auth.header());
    if let Some(primary) = credentials
        .iter()
        .position(|m| Some(m.credential.place.as_str()) == expected)
    {
        credentials[..=primary].rotate_right(1);
    }
    let mut shapes = credentials.iter().map(|m| m.shape.clone());
    match shapes.next() {
        Some(main) => (main, shapes.collect()),
        None => (AuthShape::absent(), Vec::new()),
    }
}

/// Answer with authtap's own JSON error and finish the record with it.
pub fn own_error(
    mut guard: Guard,
    status: StatusCode,
    kind: &str,
    stage: Option<FailureStage>,
    message: String,
) -> Response<ProxyBody> {
    let mut error = serde_json::json!({ "type": kind, "message": message });
    if let Some(stage) = stage {
        error["stage"] = serde_json::to_value(stage).unwrap_or_default();
    }
    if let Some(mut draft) = guard.0.take() {
        draft.record.status = Some(status.as_u16());
        let outcome = if stage.is_some() {
            Outcome::UpstreamFailed
        } else {
            Outcome::Complete
        };
        draft.finish(outcome, stage.map(|s| (s, message)), Vec::new(), 0);
    }
    json_response(status, &serde_json::json!({ "error": error }))
}

fn unknown_route(catalog: &Catalog, name: &str) -> Response<ProxyBody> {
    let routes: Vec<&str> = catalog.routes.iter().map(|r| r.name.as_str()).collect();
    let body = serde_json::json!({
        "error": {
            "type": "authtap_unknown_route",
            "message": format!(
                "authtap has no route named `{name}`: a base URL through authtap looks like http://127.0.0.1:7401/<route>/v1; known routes: {}",
                routes.join(", ")
            ),
            "routes": routes,
        }
    });
    json_response(StatusCode::NOT_FOUND, &body)
}

fn index(catalog: &Catalog) -> Response<ProxyBody> {
    let routes: Vec<_> = catalog
        .routes
        .iter()
        .map(|r| {
            serde_json::json!({
                "route": r.name, "provider": r.provider, "region": r.region,
                "upstream": r.upstream.url(), "base_paths": r.base_paths,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "authtap": env!("CARGO_PKG_VERSION"), "routes": routes }),
    )
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(own_body(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Headers that belong to one connection (RFC 9110 section 7.6.1), and Proxy-Authorization and
/// Proxy-Authenticate, which are for a proxy and never passed on.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Remove the hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests and answers carry none: one look at the names, nothing removed.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| cap(v, 200))
}

fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Now, RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    thread_local! {
        /// The last second formatted on this thread: formatting a date is most of the cost, and
        /// under load many records share a second.
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (second, millis) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let at = i64::try_from(second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            *text = at.format(FORMAT).unwrap_or_default();
            *cached = second;
        }
        let mut out = String::with_capacity(text.len() + 5);
        out.push_str(text);
        out.push('.');
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
        out.push('Z');
        out
    })
}

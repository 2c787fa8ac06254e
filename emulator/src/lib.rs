//! **Test fixture, not a product component**: an HTTPS server on 127.0.0.1 that answers as the real
//! LLM providers do, so authtap's tests and benchmarks never contact a real host.
//!
//! It answers for every host in [`Emulator::hosts`] (Moonshot, Kimi Code, Z.AI/BigModel, MiniMax,
//! DashScope, DeepSeek, OpenAI, Anthropic, OpenRouter, Groq, xAI, Gemini) with one leaf certificate
//! signed by a throwaway CA made at start ([`Emulator::ca_pem`]), over HTTP/1.1 or h2 (ALPN). It
//! dispatches on the `Host` header / `:authority`, checks the key against the table given to the
//! [`EmulatorBuilder`], and sends either a success answer (JSON or SSE, streamed frame by frame) or the
//! provider's real error body. The error bodies are copied byte for byte from the auth catalog
//! `shared/providers.md`; each lives in one constant in [`bodies`] citing its source there.
//!
//! Everything received and the exact body bytes sent are recorded ([`Emulator::requests`],
//! [`Emulator::sent_bodies`]). The server stops when the [`Emulator`] is dropped.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emu = authtap_emulator::Emulator::builder()
//!     .key("api.moonshot.ai", "sk-good")
//!     .start()
//!     .await?;
//! println!("{} trusts {}", emu.addr(), emu.ca_pem().len());
//! # Ok(()) }
//! ```

pub mod bodies;
mod providers;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use providers::{Config, Ctx, Payload, Plan, Reply};

/// Configures an [`Emulator`]; get one from [`Emulator::builder`].
#[derive(Debug)]
pub struct EmulatorBuilder {
    listen: SocketAddr,
    config: Config,
    sse_chunk_delay: Duration,
    hold_streams: bool,
    gzip_errors: bool,
}

impl EmulatorBuilder {
    /// `key` is a valid general-plan key on `host` (exact bytes). Valid nowhere else, not even on the
    /// same provider's other region.
    pub fn key(mut self, host: &str, key: &str) -> Self {
        self.add(host, key, Plan::General);
        self
    }

    /// `key` is a coding-plan key of `host`: valid only on its coding endpoints. Z.AI/BigModel: the
    /// `/api/coding/paas/v4` endpoint (on the general endpoint it gets 429 code 1113) and the
    /// Anthropic endpoint. DashScope: registered on `dashscope(-intl).aliyuncs.com` or on
    /// `coding(-intl).dashscope.aliyuncs.com`, it is valid on the coding host. Kimi Code accepts it
    /// like a general key; other providers have no coding plan and reject it.
    pub fn coding_key(mut self, host: &str, key: &str) -> Self {
        self.add(host, key, Plan::Coding);
        self
    }

    /// Delay between SSE frames (default 20 ms).
    pub fn sse_chunk_delay(mut self, d: Duration) -> Self {
        self.sse_chunk_delay = d;
        self
    }

    /// Number of content chunks in a streamed answer (default 5).
    pub fn sse_chunks(mut self, n: usize) -> Self {
        self.config.sse_chunks = n;
        self
    }

    /// After the first frame of every streamed answer, wait for [`Emulator::release_streams`].
    pub fn hold_streams(mut self, yes: bool) -> Self {
        self.hold_streams = yes;
        self
    }

    /// Gzip error bodies (`Content-Encoding: gzip`) when the request's `accept-encoding` allows it.
    pub fn gzip_errors(mut self, yes: bool) -> Self {
        self.gzip_errors = yes;
        self
    }

    /// Make OpenAI echo the whole invalid key sent instead of its masked form (default false), so
    /// tests can prove authtap scrubs echoed keys.
    /// Answer requests to `host` whose path starts with `path_prefix` with `status` and `body`
    /// (JSON), whatever the key: for provider states a key table cannot express, such as an
    /// outage, an exhausted balance or a terminated account.
    pub fn canned(mut self, host: &str, path_prefix: &str, status: u16, body: &str) -> Self {
        self.config.canned.push((
            host.to_ascii_lowercase(),
            path_prefix.to_string(),
            status,
            body.to_string(),
        ));
        self
    }

    pub fn echo_full_keys(mut self, yes: bool) -> Self {
        self.config.echo_full_keys = yes;
        self
    }

    /// Listen on `addr` instead of 127.0.0.1:0 (for the binary).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    fn add(&mut self, host: &str, key: &str, plan: Plan) {
        self.config
            .keys
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push((key.as_bytes().to_vec(), plan));
    }

    /// Make the CA and leaf, bind, and serve in the background.
    pub async fn start(self) -> std::io::Result<Emulator> {
        let ca = authtap_certs::CertificateAuthority::generate("authtap emulator test CA")
            .map_err(std::io::Error::other)?;
        let mut names: Vec<&str> = providers::HOSTS.to_vec();
        names.extend(["localhost", "127.0.0.1"]);
        let tls = ca
            .server_config(&names, &[b"h2", b"http/1.1"])
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let (release, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: self.config,
            sse_chunk_delay: self.sse_chunk_delay,
            hold_streams: self.hold_streams,
            gzip_errors: self.gzip_errors,
            log: Mutex::new(Log::default()),
            release,
        });
        let task = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(tls),
            shared.clone(),
        ));
        Ok(Emulator {
            addr,
            ca_pem: ca.cert_pem().to_owned(),
            shared,
            task,
        })
    }
}

/// A running emulator. Dropping it stops the server and its connections.
pub struct Emulator {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Emulator {
    /// A builder with no valid keys, 5 SSE chunks 20 ms apart, no holding, no gzip.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            config: Config {
                keys: HashMap::new(),
                sse_chunks: 5,
                echo_full_keys: false,
                canned: Vec::new(),
            },
            sse_chunk_delay: Duration::from_millis(20),
            hold_streams: false,
            gzip_errors: false,
        }
    }

    /// The address it listens on (127.0.0.1 and the port the OS assigned).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the test CA that signed the server's leaf certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every provider host it answers for (the leaf also names `localhost` and `127.0.0.1`).
    pub fn hosts() -> &'static [&'static str] {
        providers::HOSTS
    }

    /// Let held streams continue. Sticky: streams that reach the hold point later do not wait.
    pub fn release_streams(&self) {
        self.shared.release.send_replace(true);
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().requests.clone()
    }

    /// The body bytes sent for each request, in the same order as [`Emulator::requests`]: exactly what
    /// went on the wire (gzipped if it was; for streams, the concatenation of the frames sent so
    /// far).
    pub fn sent_bodies(&self) -> Vec<Bytes> {
        self.shared
            .lock()
            .bodies
            .iter()
            .map(|b| Bytes::copy_from_slice(b))
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish()
    }
}

/// One request as the emulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// Host from `:authority` or `Host`, lowercase, port stripped.
    pub host: String,
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Lowercase names, values as lossy UTF-8, in received order (grouped by name).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// `HTTP/1.1` or `HTTP/2` (or `HTTP/1.0`).
    pub http_version: String,
}

struct Shared {
    config: Config,
    sse_chunk_delay: Duration,
    hold_streams: bool,
    gzip_errors: bool,
    log: Mutex<Log>,
    release: watch::Sender<bool>,
}

#[derive(Default)]
struct Log {
    requests: Vec<SeenRequest>,
    bodies: Vec<Vec<u8>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("emulator log lock poisoned")
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    // Connections live in the JoinSet so aborting this task (Emulator::drop) ends them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(serve_connection(tcp, acceptor.clone(), shared.clone()));
                }
                // Out of descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(req, shared).await) }
    });
    // Errors here are the client going away; nothing to report to anyone.
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<EmuBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let host = request_host(&parts.uri, &parts.headers);
    let seen = SeenRequest {
        host: host.clone(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
        http_version: version_name(parts.version).to_owned(),
    };
    let index = {
        let mut log = shared.lock();
        log.requests.push(seen);
        log.bodies.push(Vec::new());
        log.bodies.len() - 1
    };
    let reply = providers::respond(&Ctx {
        host: &host,
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        cfg: &shared.config,
    });
    into_response(reply, &parts.headers, index, shared)
}

fn into_response(
    reply: Reply,
    req_headers: &HeaderMap,
    index: usize,
    shared: Arc<Shared>,
) -> Response<EmuBody> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    let body = match reply.payload {
        Payload::Full {
            body,
            content_type,
            error,
        } => {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
            let body = match gzip(&body) {
                Some(gz) if error && shared.gzip_errors && accepts_gzip(req_headers) => {
                    builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
                    gz
                }
                _ => body,
            };
            shared.lock().bodies[index] = body.to_vec();
            EmuBody::Full(Some(body))
        }
        Payload::Frames {
            frames,
            content_type,
        } => {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
            // Capacity 1: a frame is handed over only when hyper has taken the previous one.
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(stream_frames(frames, tx, index, shared));
            EmuBody::Stream(rx)
        }
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(EmuBody::Full(None));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// Send `frames` one by one, `sse_chunk_delay` apart, holding after the first if asked.
async fn stream_frames(
    frames: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
    index: usize,
    shared: Arc<Shared>,
) {
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(shared.sse_chunk_delay).await;
        }
        if tx.send(frame.clone()).await.is_err() {
            return; // The client went away.
        }
        shared.lock().bodies[index].extend_from_slice(&frame);
        if i == 0 && shared.hold_streams {
            let mut released = shared.release.subscribe();
            tokio::select! {
                _ = released.wait_for(|r| *r) => {}
                _ = tx.closed() => return,
            }
        }
    }
}

/// The response body: one buffer, or frames from a channel (each its own HTTP frame).
enum EmuBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            EmuBody::Full(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            EmuBody::Stream(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, EmuBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
            EmuBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// The host asked for: `:authority` (h2, absolute-form) or `Host`, lowercase, without port.
fn request_host(uri: &http::Uri, headers: &HeaderMap) -> String {
    let raw = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let raw = raw.rsplit_once('@').map_or(raw.as_str(), |(_, h)| h);
    let host = if raw.starts_with('[') {
        raw.split_once(']')
            .map_or(raw, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        raw.split_once(':').map_or(raw, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// Whether `accept-encoding` allows gzip (an explicit `gzip`/`x-gzip` entry wins over `*`;
/// `q=0` refuses).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = None;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let allowed = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .all(|q| q.trim().parse::<f32>().map_or(true, |q| q > 0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => return allowed,
                "*" => star = Some(allowed),
                _ => {}
            }
        }
    }
    star.unwrap_or(false)
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn host_strips_port_and_case() {
        let uri: http::Uri = "/v1/models".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_static("API.Moonshot.AI:443"),
        );
        assert_eq!(request_host(&uri, &headers), "api.moonshot.ai");
        let uri: http::Uri = "https://[::1]:8443/x".parse().expect("uri");
        assert_eq!(request_host(&uri, &HeaderMap::new()), "::1");
    }

    #[test]
    fn accept_encoding_parsing() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(with("*"));
        assert!(!with("*, gzip;q=0"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}

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
//! ## Faults
//!
//! [`EmulatorBuilder::fault`] makes the requests to one host and path prefix misbehave as a broken
//! provider or network does, after the whole request has been read (and recorded) and whatever the
//! key:
//!
//! - [`Fault::ResetBeforeHeaders`]: no answer at all; the TCP connection is reset (RST) instead.
//! - [`Fault::ResetAfterFirstChunk`]: status, headers and the first frame of the answer, then, where
//!   the second frame would follow, a reset: the body breaks off without its end.
//! - [`Fault::StallAfterFirstChunk`]: status, headers and the first frame, then nothing, for as
//!   long as the client waits; the body never ends.
//! - [`Fault::DelayHeaders`]: the normal answer, but only after a delay.
//!
//! A reset (RST, not an orderly close) ends the whole connection, and with it every request on it
//! (h2). The "first frame" of an answer that is not streamed is the first half of its body: for the
//! two `...AfterFirstChunk` faults such a body is sent in two frames, without `Content-Length`.
//!
//! The other side of a fault is a client that gives up: [`Emulator::cancelled`] counts the exchanges
//! a client abandoned before the emulator's answer was complete (a request body that broke off, an
//! h2 stream reset or a connection closed during a delay, a stall, a held stream or a stream still
//! being sent), so a test can tell that a proxy cancelled its upstream request. The emulator's own
//! resets are not counted. [`EmulatorBuilder::leaf_hosts`] makes a certificate that does not name
//! the host a client asks for, to test name checks, and [`EmulatorBuilder::alpn`] limits the HTTP
//! versions offered, since clients break and cancel differently on HTTP/1.1 and h2.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
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
    faults: Vec<(String, String, Fault)>,
    leaf_hosts: Option<Vec<String>>,
    alpn: Vec<Vec<u8>>,
}

/// A way for the emulator to misbehave, set per host and path prefix with
/// [`EmulatorBuilder::fault`]. Each takes effect once the whole request has been read and recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Send nothing: reset the TCP connection (RST, not an orderly close), which ends every other
    /// request on it too (h2). The request is in [`Emulator::requests`]; its sent body is empty.
    ResetBeforeHeaders,
    /// Send the status, the headers and the first frame of the answer, then, where the second frame
    /// would follow (after [`EmulatorBuilder::sse_chunk_delay`], once the first has been handed to
    /// the connection), reset the connection: the body breaks off without its end. A body that is
    /// not streamed is sent as two halves for this, without `Content-Length`.
    ResetAfterFirstChunk,
    /// Send the status, the headers and the first frame of the answer (as for
    /// [`Fault::ResetAfterFirstChunk`]), then nothing more and never end the body, for as long as
    /// the client keeps the stream open. A client that leaves is counted in
    /// [`Emulator::cancelled`].
    StallAfterFirstChunk,
    /// Wait this long before answering (before the status and headers), then answer as usual. A
    /// client that leaves during the wait is counted in [`Emulator::cancelled`].
    DelayHeaders(Duration),
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

    /// Make the requests to `host` whose path starts with `path_prefix` misbehave as `fault` says
    /// (see [`Fault`]), whatever the key; the answer they would have had (canned or not) is the one
    /// that is delayed, cut or stalled. The first matching fault applies.
    pub fn fault(mut self, host: &str, path_prefix: &str, fault: Fault) -> Self {
        self.faults
            .push((host.to_ascii_lowercase(), path_prefix.to_string(), fault));
        self
    }

    /// Name only `hosts` (DNS names or IP addresses) in the leaf certificate, instead of every host
    /// in [`Emulator::hosts`] plus `localhost` and `127.0.0.1`: a client asking for another name
    /// must refuse the certificate even though it trusts the CA ([`Emulator::ca_pem`]).
    pub fn leaf_hosts(mut self, hosts: &[&str]) -> Self {
        self.leaf_hosts = Some(hosts.iter().map(|h| (*h).to_owned()).collect());
        self
    }

    /// The protocols offered by ALPN, in order of preference (default `h2`, then `http/1.1`):
    /// `&[b"http/1.1"]` makes every client speak HTTP/1.1.
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Make OpenAI echo the whole invalid key sent instead of its masked form (default false), so
    /// tests can prove authtap scrubs echoed keys.
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
        let names: Vec<&str> = match &self.leaf_hosts {
            Some(hosts) => hosts.iter().map(String::as_str).collect(),
            None => {
                let mut names = providers::HOSTS.to_vec();
                names.extend(["localhost", "127.0.0.1"]);
                names
            }
        };
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let tls = ca
            .server_config(&names, &alpn)
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let (release, _) = watch::channel(false);
        let (cancelled, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config: self.config,
            sse_chunk_delay: self.sse_chunk_delay,
            hold_streams: self.hold_streams,
            gzip_errors: self.gzip_errors,
            faults: self.faults,
            log: Mutex::new(Log::default()),
            release,
            cancelled,
            body_bytes: AtomicU64::new(0),
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
    /// A builder with no valid keys, 5 SSE chunks 20 ms apart, no holding, no gzip, no faults.
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
            faults: Vec::new(),
            leaf_hosts: None,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
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

    /// Every provider host it answers for (by default the leaf also names `localhost` and
    /// `127.0.0.1`; see [`EmulatorBuilder::leaf_hosts`]).
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

    /// How many exchanges the client abandoned before the emulator's answer was complete: the
    /// request body broke off, or the client closed the connection or reset the h2 stream while the
    /// emulator delayed its headers ([`Fault::DelayHeaders`]), stalled
    /// ([`Fault::StallAfterFirstChunk`]), held a stream ([`EmulatorBuilder::hold_streams`]) or was
    /// still sending one. Resets the emulator makes itself are not counted. A proxy that cancels
    /// its upstream request when its own client leaves shows up here.
    pub fn cancelled(&self) -> usize {
        *self.shared.cancelled.borrow()
    }

    /// Wait until [`Emulator::cancelled`] reaches `n`, for at most `within`; whether it did.
    pub async fn wait_cancelled(&self, n: usize, within: Duration) -> bool {
        let mut count = self.shared.cancelled.subscribe();
        tokio::time::timeout(within, count.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Request body bytes read so far, over all requests, counted as they arrive (before a body is
    /// complete, unlike [`Emulator::requests`]): shows an upload in progress.
    pub fn body_bytes_received(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::Relaxed)
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
    faults: Vec<(String, String, Fault)>,
    log: Mutex<Log>,
    release: watch::Sender<bool>,
    /// Exchanges the client abandoned (see [`Emulator::cancelled`]).
    cancelled: watch::Sender<usize>,
    /// Request body bytes read, over all requests.
    body_bytes: AtomicU64,
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

    fn fault(&self, host: &str, path: &str) -> Option<Fault> {
        self.faults
            .iter()
            .find(|(h, prefix, _)| h == host && path.starts_with(prefix.as_str()))
            .map(|(_, _, fault)| *fault)
    }
}

/// One exchange's end, shared by its handler, its response body and the task feeding a stream.
/// Dropped by all of them before [`Ending::done`] was called, the client abandoned the exchange:
/// it counts in [`Emulator::cancelled`].
struct Ending {
    shared: Arc<Shared>,
    done: AtomicBool,
}

impl Ending {
    fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Ending {
            shared,
            done: AtomicBool::new(false),
        })
    }

    /// The answer was handed over whole, or the emulator cut it on purpose (a fault).
    fn done(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Relaxed) {
            self.shared.cancelled.send_modify(|c| *c += 1);
        }
    }
}

/// Ends one connection with a TCP reset, on request of a fault.
#[derive(Default)]
struct Reset {
    requested: AtomicBool,
    notify: Notify,
}

impl Reset {
    fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }
}

/// The TCP stream under a connection. Dropped after [`Reset::request`], it closes with SO_LINGER 0,
/// so the peer gets an RST instead of a FIN.
struct Tcp {
    stream: TcpStream,
    reset: Arc<Reset>,
}

impl Drop for Tcp {
    fn drop(&mut self) {
        if self.reset.requested.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
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
    // As servers do; without it Nagle could hold a small frame back until the client's delayed
    // ACK, so a fault's reset right after that frame would discard it unsent.
    let _ = tcp.set_nodelay(true);
    let reset = Arc::new(Reset::default());
    let tcp = Tcp {
        stream: tcp,
        reset: reset.clone(),
    };
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let on_reset = reset.clone();
    let service = service_fn(move |req| {
        let (shared, reset) = (shared.clone(), reset.clone());
        async move { Ok::<_, Infallible>(handle(req, shared, reset).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    // Errors here are the client going away; nothing to report to anyone. A fault's reset drops the
    // connection unfinished: no close_notify, no GOAWAY, and an RST on the wire (see `Tcp`).
    tokio::select! {
        _ = connection => {}
        () = on_reset.notify.notified() => {}
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    reset: Arc<Reset>,
) -> Response<EmuBody> {
    // Counts the exchange as abandoned if this handler is dropped (the client left) or returns
    // before the answer is made.
    let ending = Ending::new(shared.clone());
    let (parts, mut body) = req.into_parts();
    // Frame by frame, so an upload in progress shows in `body_bytes` and a broken one keeps what came.
    let mut received = Vec::new();
    let mut broken = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    shared
                        .body_bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    received.extend_from_slice(data);
                }
            }
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    let body = Bytes::from(received);
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
    if broken {
        // The client abandoned its upload; nobody reads an answer. `ending` counts it.
        return empty_response(StatusCode::BAD_REQUEST);
    }
    let fault = shared.fault(&host, parts.uri.path());
    match fault {
        Some(Fault::DelayHeaders(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ResetBeforeHeaders) => {
            ending.done();
            reset.request();
            // The connection is dropped, and this handler with it.
            return std::future::pending().await;
        }
        _ => {}
    }
    let reply = providers::respond(&Ctx {
        host: &host,
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        cfg: &shared.config,
    });
    let cut = match fault {
        Some(Fault::ResetAfterFirstChunk) => Some(Cut::Reset(reset)),
        Some(Fault::StallAfterFirstChunk) => Some(Cut::Stall),
        _ => None,
    };
    into_response(reply, &parts.headers, index, shared, cut, ending)
}

/// How a fault cuts an answer after its first frame.
enum Cut {
    Reset(Arc<Reset>),
    Stall,
}

fn empty_response(status: StatusCode) -> Response<EmuBody> {
    let mut response = Response::new(EmuBody::Full(None));
    *response.status_mut() = status;
    response
}

fn into_response(
    reply: Reply,
    req_headers: &HeaderMap,
    index: usize,
    shared: Arc<Shared>,
    cut: Option<Cut>,
    ending: Arc<Ending>,
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
            match cut {
                None => {
                    shared.lock().bodies[index] = body.to_vec();
                    ending.done();
                    EmuBody::Full(Some(body))
                }
                // Two halves, so there is a first frame to cut after.
                Some(cut) => {
                    let half = body.len().div_ceil(2);
                    let frames = vec![body.slice(..half), body.slice(half..)];
                    streamed(frames, index, shared, Some(cut), ending)
                }
            }
        }
        Payload::Frames {
            frames,
            content_type,
        } => {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
            streamed(frames, index, shared, cut, ending)
        }
    };
    builder
        .body(body)
        .unwrap_or_else(|_| empty_response(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A body fed frame by frame by a task.
fn streamed(
    frames: Vec<Bytes>,
    index: usize,
    shared: Arc<Shared>,
    cut: Option<Cut>,
    ending: Arc<Ending>,
) -> EmuBody {
    // Capacity 1: a frame is handed over only when hyper has taken the previous one.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(stream_frames(
        frames,
        tx,
        index,
        shared,
        cut,
        ending.clone(),
    ));
    EmuBody::Stream { rx, ending }
}

/// Send `frames` one by one, `sse_chunk_delay` apart, holding after the first if asked, or cut
/// after the first by a fault.
async fn stream_frames(
    frames: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
    index: usize,
    shared: Arc<Shared>,
    cut: Option<Cut>,
    ending: Arc<Ending>,
) {
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            match &cut {
                Some(Cut::Reset(reset)) => {
                    // Once hyper has taken the first frame, where the next would follow.
                    if tx.reserve().await.is_err() {
                        return; // The client went away first.
                    }
                    tokio::time::sleep(shared.sse_chunk_delay).await;
                    ending.done();
                    reset.request();
                    // Keep the body open: dropping `tx` would end it cleanly before the reset.
                    tx.closed().await;
                    return;
                }
                Some(Cut::Stall) => {
                    tx.closed().await;
                    return; // The client went away; `ending` counts it.
                }
                None => tokio::time::sleep(shared.sse_chunk_delay).await,
            }
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
    /// `ending` is done when the channel ends: a body dropped before that was abandoned.
    Stream {
        rx: mpsc::Receiver<Bytes>,
        ending: Arc<Ending>,
    },
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
            EmuBody::Stream { rx, ending } => {
                let polled = rx.poll_recv(cx);
                if let Poll::Ready(None) = polled {
                    ending.done();
                }
                polled.map(|b| b.map(|b| Ok(Frame::data(b))))
            }
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
            EmuBody::Stream { .. } => SizeHint::default(),
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

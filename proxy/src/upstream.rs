//! The client side: a pooled HTTP/1.1 + HTTP/2 client to the providers over rustls, with
//! certificate verification always on, curl-style `--connect-to`, and failures sorted by stage
//! (DNS, connect, TLS, timeout) so a user reads which one happened.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use authtap_config::ConnectTo;
use authtap_inspector::record::{Failure, FailureStage};
use http::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use crate::tee::RequestTee;

/// A request body upstream: the client's, streamed, or none (authtap's own probes).
pub type UpstreamBody = http_body_util::Either<RequestTee, http_body_util::Empty<bytes::Bytes>>;

/// One pooled client (hyper-util's), as one serving thread uses it.
type ThreadClient = Client<Connector, UpstreamBody>;

/// The client every forwarded request and probe goes through: a pool of upstream connections per
/// serving thread, made on first use by the one shared [`Connector`]. A request then goes out on a
/// connection owned by the thread that serves it, so no request wakes another thread (see `serve`
/// in lib.rs).
pub struct UpstreamClient {
    connector: Connector,
    /// Tells this client's pools apart from another's on the same thread (tests start several).
    id: usize,
    /// Idle connections each thread's pool keeps per host.
    idle_per_host: usize,
}

/// Idle upstream connections kept per host, shared out among the serving threads: enough for a
/// gateway's pool of connections, and no more (an idle TLS connection holds tens of KiB; the
/// 1,000-connection soak ended 5 MiB higher with 64 per thread than with 64 in all).
const IDLE_PER_HOST: usize = 64;

thread_local! {
    static POOLS: std::cell::RefCell<Vec<(usize, ThreadClient)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl UpstreamClient {
    fn new(connector: Connector, threads: usize) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        UpstreamClient {
            connector,
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            idle_per_host: (IDLE_PER_HOST / threads.max(1)).max(8),
        }
    }

    /// Send `request` on this thread's pool.
    pub fn request(&self, request: http::Request<UpstreamBody>) -> ResponseFuture {
        POOLS.with_borrow_mut(|pools| {
            let at = match pools.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    pools.push((self.id, self.pool()));
                    pools.len() - 1
                }
            };
            pools[at].1.request(request)
        })
    }

    fn pool(&self) -> ThreadClient {
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(self.idle_per_host)
            // Should HTTP/2 be offered again: every client that hangs up mid-stream makes h2 reset
            // that stream on the upstream connection, and h2 counts those for the connection's
            // whole life; at its default limit (1024) it closes the connection and fails every
            // other request on it (found by the soak test). Users stopping answers is normal, so
            // no limit.
            .http2_max_local_error_reset_streams(None)
            .build(self.connector.clone())
    }
}

/// The answer to [`UpstreamClient::request`].
pub type ResponseFuture = hyper_util::client::legacy::ResponseFuture;

/// What the client needs to know.
pub struct UpstreamOptions {
    /// How many threads serve connections (each has a pool of its own).
    pub threads: usize,
    pub connect_to: Vec<ConnectTo>,
    /// Extra trusted roots (PEM files), added to the platform's and webpki's.
    pub extra_roots: Vec<PathBuf>,
    pub connect_timeout: Duration,
}

/// Build the client and the dialer it connects with (shared with CONNECT tunnels). Fails only on
/// unreadable `--upstream-ca` files.
pub fn client(options: UpstreamOptions) -> anyhow::Result<(UpstreamClient, Arc<Dialer>)> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The platform's store adds corporate roots a user may rely on; a broken store is not fatal
    // because webpki's roots already cover the providers.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for path in &options.extra_roots {
        for cert in authtap_certs::read_pem_certs(path)? {
            roots.add(cert).map_err(|e| {
                anyhow::anyhow!("--upstream-ca {}: not a usable CA: {e}", path.display())
            })?;
        }
    }
    let mut tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    // HTTP/1.1 to the providers, as their own SDKs speak it (openai-node, httpx): every provider
    // serves it, streams are unaffected, and in bench/ it cost about 25% less CPU per request
    // than HTTP/2 (fewer wake-ups between the request and the connection task).
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    let dialer = Arc::new(Dialer {
        connect_to: options.connect_to,
        timeout: options.connect_timeout,
    });
    let connector = Connector {
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        dialer: dialer.clone(),
    };
    Ok((UpstreamClient::new(connector, options.threads), dialer))
}

/// A connect failure with its stage; the forwarder finds it in the client error's source chain.
#[derive(Debug)]
pub struct ConnectError(pub Failure);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ConnectError {}

fn fail(stage: FailureStage, message: String) -> ConnectError {
    ConnectError(Failure { stage, message })
}

/// Opens TCP connections: resolves (or redirects, per `--connect-to`) and connects, with a timeout
/// and failures sorted by stage.
pub struct Dialer {
    connect_to: Vec<ConnectTo>,
    timeout: Duration,
}

impl Dialer {
    /// Connect to `host:port`. The returned string names the target in messages.
    pub async fn dial(&self, host: &str, port: u16) -> Result<(TcpStream, String), ConnectError> {
        let (target_host, target_port) = self
            .connect_to
            .iter()
            .find(|c| c.host == host && c.port == port)
            .map_or((host, port), |c| (c.target_host.as_str(), c.target_port));
        let shown = if (target_host, target_port) == (host, port) {
            format!("{host}:{port}")
        } else {
            format!("{host}:{port} (via --connect-to {target_host}:{target_port})")
        };
        let timeout = self.timeout;
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(
            timeout,
            tokio::net::lookup_host((target_host, target_port)),
        )
        .await
        {
            Err(_) => {
                return Err(fail(
                    FailureStage::Timeout,
                    format!("looking up {shown} took longer than {}s", timeout.as_secs()),
                ));
            }
            Ok(Err(e)) => {
                return Err(fail(
                    FailureStage::Dns,
                    format!("could not resolve {shown}: {e}"),
                ));
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
        let mut last = fail(FailureStage::Dns, format!("{shown} resolved to no address"));
        for addr in &addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, shown));
                }
                Ok(Err(e)) => {
                    last = fail(
                        FailureStage::Connect,
                        format!("could not connect to {shown} at {addr}: {e}"),
                    )
                }
                Err(_) => {
                    last = fail(
                        FailureStage::Timeout,
                        format!(
                            "connecting to {shown} at {addr} took longer than {}s",
                            timeout.as_secs()
                        ),
                    )
                }
            }
        }
        Err(last)
    }
}

/// Dials, then does the TLS handshake with SNI set to the original host.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    dialer: Arc<Dialer>,
}

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await })
    }
}

impl Connector {
    async fn connect(&self, uri: Uri) -> Result<Stream, ConnectError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| fail(FailureStage::Connect, format!("no host in {uri}")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let (tcp, shown) = self.dialer.dial(&host, port).await?;
        let io = TokioIo::new(tcp);
        if !https {
            return Ok(MaybeHttpsStream::Http(io));
        }
        let name = ServerName::try_from(host.clone()).map_err(|_| {
            fail(
                FailureStage::Tls,
                format!("`{host}` is not a name TLS can verify"),
            )
        })?;
        let timeout = self.dialer.timeout;
        match tokio::time::timeout(timeout, self.tls.connect(name, TokioIo::new(io))).await {
            Ok(Ok(tls)) => Ok(MaybeHttpsStream::from(tls)),
            Ok(Err(e)) => Err(fail(
                FailureStage::Tls,
                format!("TLS handshake with {shown} failed: {}", tls_words(&e)),
            )),
            Err(_) => Err(fail(
                FailureStage::Timeout,
                format!(
                    "TLS handshake with {shown} took longer than {}s",
                    timeout.as_secs()
                ),
            )),
        }
    }
}

/// rustls's error, with the common certificate cases said plainly.
fn tls_words(e: &std::io::Error) -> String {
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .cloned();
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            use rustls::CertificateError as C;
            match &cert {
                C::UnknownIssuer => {
                    "its certificate is signed by an issuer authtap does not trust (add it with --upstream-ca)".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "its certificate is for another host name".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "its certificate has expired".to_string(),
                other => format!("its certificate was rejected ({other:?})"),
            }
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// Sort a client error into a stage and plain words.
pub fn classify(err: &hyper_util::client::legacy::Error, host: &str) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ConnectError(failure)) = e.downcast_ref::<ConnectError>() {
            return failure.clone();
        }
        source = e.source();
    }
    // Not a connect failure: the connection broke or the upstream spoke bad HTTP.
    let words = error_chain(err);
    Failure {
        stage: FailureStage::Protocol,
        message: format!("{host} broke off the exchange: {words}"),
    }
}

/// An error and its causes, `outer: inner: innermost`, so the words that say what happened
/// ("connection reset") are not lost behind a generic outer message.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut words = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !words.ends_with(&text) {
            words.push_str(": ");
            words.push_str(&text);
        }
        source = e.source();
    }
    words
}

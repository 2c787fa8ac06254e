//! HTTPS_PROXY mode. A client that cannot (or will not) change a base URL points `HTTPS_PROXY` at
//! authtap. `CONNECT host:443` to a provider host in the catalog (or in the config's `intercept`
//! list) is answered with authtap's own certificate for that host, signed by the local CA, and each
//! request inside is forwarded to the real host and recorded exactly as in base-URL mode, with
//! `mode: "forward"`. Any other host is tunnelled untouched (or refused, as the config says) and
//! recorded as a tunnel. Only clients on this machine are served: authtap is not an open relay.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use authtap_certs::{CertificateAuthority, LeafCache};
use authtap_config::OtherHosts;
use authtap_inspector::record::{Exchange, Failure, FailureStage, Mode, Outcome, RecordKind};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::AlertDescription;

use crate::forward::{
    ProxyBody, Shared, Target, forward, json_response, millis, now_rfc3339, own_body,
};

/// How long a client gets to finish the TLS handshake with authtap's certificate.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS_PROXY mode's settings, and the CA, made or loaded on first use so base-URL users never
/// get one they do not need.
pub struct ForwardMode {
    /// Where authtap keeps its own CA.
    pub ca_dir: PathBuf,
    /// A CA of the user's (certificate, key) to use instead.
    pub ca_files: Option<(PathBuf, PathBuf)>,
    /// Hosts intercepted besides the catalog's route hosts.
    pub intercept: Vec<String>,
    pub other_hosts: OtherHosts,
    leaves: OnceLock<Result<Arc<LeafCache>, String>>,
}

impl ForwardMode {
    pub fn new(
        ca_dir: PathBuf,
        ca_files: Option<(PathBuf, PathBuf)>,
        intercept: Vec<String>,
        other_hosts: OtherHosts,
    ) -> Self {
        ForwardMode {
            ca_dir,
            ca_files,
            intercept,
            other_hosts,
            leaves: OnceLock::new(),
        }
    }

    /// The leaf cache over the CA, loading or creating the CA on first call.
    pub fn leaves(&self) -> Result<Arc<LeafCache>, String> {
        self.leaves
            .get_or_init(|| {
                load_ca(&self.ca_dir, self.ca_files.as_ref())
                    .map(|ca| Arc::new(LeafCache::new(ca, &[b"h2", b"http/1.1"])))
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
    }
}

/// The user's CA from config, or authtap's own in `dir` (created on first use, key 0600).
pub fn load_ca(
    dir: &std::path::Path,
    files: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<CertificateAuthority> {
    Ok(match files {
        Some((cert, key)) => CertificateAuthority::load(cert, key)?,
        None => CertificateAuthority::load_or_create(dir, "authtap local CA")?,
    })
}

fn intercepts(shared: &Shared, host: &str) -> bool {
    shared.catalog.has_host(host) || shared.forward.intercept.iter().any(|h| h == host)
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(own_body(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn refusal(status: StatusCode, message: String) -> Response<ProxyBody> {
    json_response(
        status,
        &serde_json::json!({"error": {"type": "authtap_refused", "message": message}}),
    )
}

/// A record for something that happened in forward mode outside an HTTP exchange.
fn forward_record(shared: &Shared, kind: RecordKind, host: &str, port: u16) -> Exchange {
    let mut record = Exchange::new(
        shared.next_id(),
        kind,
        now_rfc3339(),
        "CONNECT".into(),
        format!("{host}:{port}"),
    );
    record.mode = Mode::Forward;
    record.host = Some(host.to_string());
    record
}

/// Split `host[:port]` from a CONNECT target or an absolute URI.
fn host_port(authority: &http::uri::Authority, default_port: u16) -> (String, u16) {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    (host, authority.port_u16().unwrap_or(default_port))
}

/// `CONNECT host:port`: intercept a provider host, tunnel (or refuse) anything else.
pub async fn connect(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let Some(authority) = req.uri().authority().cloned() else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "CONNECT needs a host:port target".into(),
        );
    };
    let (host, port) = host_port(&authority, 443);
    if !peer.ip().is_loopback() {
        let mut record = forward_record(&shared, RecordKind::Tunnel, &host, port);
        record.outcome = Outcome::Refused;
        record.status = Some(403);
        shared.recorder.record(record);
        return refusal(
            StatusCode::FORBIDDEN,
            format!("authtap's HTTPS_PROXY mode serves clients on this machine only, not {peer}"),
        );
    }

    if intercepts(&shared, &host) {
        let leaves = match shared.forward.leaves() {
            Ok(leaves) => leaves,
            Err(e) => {
                tracing::error!("cannot intercept {host}: the authtap CA is not usable: {e}");
                return refusal(
                    StatusCode::BAD_GATEWAY,
                    format!("authtap cannot intercept {host}: its CA is not usable: {e}"),
                );
            }
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => intercepted(shared, upgraded, host, port, leaves).await,
                Err(e) => tracing::debug!("CONNECT {host}:{port} was not upgraded: {e}"),
            }
        });
        return empty(StatusCode::OK);
    }

    let mut record = forward_record(&shared, RecordKind::Tunnel, &host, port);
    if shared.forward.other_hosts == OtherHosts::Refuse {
        record.outcome = Outcome::Refused;
        record.status = Some(403);
        shared.recorder.record(record);
        return refusal(
            StatusCode::FORBIDDEN,
            format!(
                "authtap passes on only provider hosts (other_hosts = \"refuse\"), and {host} is not one"
            ),
        );
    }
    let (mut upstream, _) = match shared.dialer.dial(&host, port).await {
        Ok(connected) => connected,
        Err(e) => {
            record.outcome = Outcome::UpstreamFailed;
            record.status = Some(502);
            record.failure = Some(e.0.clone());
            record.duration_ms = millis(started.elapsed());
            shared.recorder.record(record);
            return refusal(StatusCode::BAD_GATEWAY, e.0.message);
        }
    };
    tokio::spawn(async move {
        let copied = match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await
            }
            Err(e) => Err(std::io::Error::other(e)),
        };
        match copied {
            Ok((up, down)) => {
                record.bytes_up = up;
                record.bytes_down = down;
            }
            Err(e) => {
                record.outcome = Outcome::UpstreamAborted;
                record.failure = Some(Failure {
                    stage: FailureStage::Protocol,
                    message: format!("the tunnel to {host}:{port} broke: {e}"),
                });
            }
        }
        record.status = Some(200);
        record.duration_ms = millis(started.elapsed());
        shared.recorder.record(record);
    });
    empty(StatusCode::OK)
}

/// Terminate the client's TLS with a leaf for `host`, then serve its requests.
async fn intercepted(
    shared: Arc<Shared>,
    upgraded: hyper::upgrade::Upgraded,
    host: String,
    port: u16,
    leaves: Arc<LeafCache>,
) {
    let started = Instant::now();
    let config = match leaves.server_config(&host) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("cannot make a certificate for {host}: {e}");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(TokioIo::new(upgraded))).await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let mut record = forward_record(&shared, RecordKind::Exchange, &host, port);
            record.duration_ms = millis(started.elapsed());
            record.route = shared
                .catalog
                .route_for_host(&host, port, "/")
                .map(|r| r.name.clone());
            let alert = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .and_then(|e| match e {
                    rustls::Error::AlertReceived(alert) => Some(*alert),
                    _ => None,
                });
            let distrust = matches!(
                alert,
                Some(
                    AlertDescription::UnknownCA
                        | AlertDescription::BadCertificate
                        | AlertDescription::CertificateUnknown
                        | AlertDescription::UnsupportedCertificate
                )
            );
            let message = if distrust {
                format!(
                    "the client rejected authtap's certificate for {host}: it does not trust the authtap CA (the TLS alert was {})",
                    alert.map_or_else(String::new, |a| format!("{a:?}"))
                )
            } else {
                format!("the client's TLS handshake with authtap for {host} failed: {e}")
            };
            tracing::warn!("{message}");
            record.outcome = if distrust {
                Outcome::ClientRejectedCertificate
            } else {
                Outcome::ClientTlsFailed
            };
            record.failure = Some(Failure {
                stage: FailureStage::Tls,
                message,
            });
            shared.recorder.record(record);
            return;
        }
        Err(_) => {
            tracing::debug!(
                "a client opened a tunnel to {host} but never finished the TLS handshake"
            );
            return;
        }
    };
    let name = host.clone();
    let service = service_fn(move |req| {
        let (shared, host) = (shared.clone(), name.clone());
        async move {
            Ok::<_, std::convert::Infallible>(intercepted_request(shared, host, port, req).await)
        }
    });
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!("intercepted connection to {host} ended: {e}");
    }
}

/// One request inside an intercepted tunnel: forward it to the real host.
async fn intercepted_request(
    shared: Arc<Shared>,
    host: String,
    port: u16,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let ts = now_rfc3339();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let authority = if port == 443 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    let target = Target {
        mode: Mode::Forward,
        route: shared.catalog.route_for_host(&host, port, path),
        url: format!("https://{authority}{path}"),
        path_at: "https://".len() + authority.len(),
        host: host.into(),
    };
    forward(shared.clone(), req, target, started, ts).await
}

/// An absolute-form request (`GET http://host/path`): a client using authtap as HTTP_PROXY.
pub async fn absolute(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let ts = now_rfc3339();
    let https = req.uri().scheme_str() == Some("https");
    let Some(authority) = req.uri().authority().cloned() else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "the request URL has no host".into(),
        );
    };
    let (host, port) = host_port(&authority, if https { 443 } else { 80 });
    if !peer.ip().is_loopback() {
        return refusal(
            StatusCode::FORBIDDEN,
            format!("authtap's proxy mode serves clients on this machine only, not {peer}"),
        );
    }
    if !intercepts(&shared, &host) && shared.forward.other_hosts == OtherHosts::Refuse {
        return refusal(
            StatusCode::FORBIDDEN,
            format!(
                "authtap passes on only provider hosts (other_hosts = \"refuse\"), and {host} is not one"
            ),
        );
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let scheme = if https { "https://" } else { "http://" };
    let target = Target {
        mode: Mode::Forward,
        route: shared.catalog.route_for_host(&host, port, path),
        url: format!("{scheme}{authority}{path}"),
        path_at: scheme.len() + authority.as_str().len(),
        host: host.into(),
    };
    forward(shared.clone(), req, target, started, ts).await
}

//! The SSE timing client: sends streamed chat-completion requests and timestamps every event as it
//! arrives, measured from the moment the request is handed to the connection. `--concurrency`
//! connections are opened (HTTP/1.1, kept alive) and warmed with one stream each before timing, so
//! connection setup is not counted; then `--streams` streams are spread over them.
//!
//! Prints one JSON object: `{"streams":[{"ttfc_us":..,"offsets_us":[..]}],"errors":N}`, where
//! `offsets_us[i]` is when event `i` (one `\n\n`-terminated block) was complete at the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// The streamed request every client sends.
pub const STREAM_BODY: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count to twenty."}]}"#;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// http:// or https:// URL of the chat completions endpoint
    #[arg(long)]
    pub url: String,
    /// Connect here instead of the URL's host:port (TLS keeps the URL's host for SNI)
    #[arg(long)]
    pub connect: Option<SocketAddr>,
    /// CA certificate (PEM) to trust for an https:// URL
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
    /// Streams to time (after one warm-up stream per connection)
    #[arg(long, default_value_t = 12)]
    pub streams: usize,
    /// Connections used at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Bearer key to send
    #[arg(
        long,
        default_value = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD"
    )]
    pub key: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct StreamTiming {
    pub ttfc_us: u64,
    pub offsets_us: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct SseOutput {
    pub streams: Vec<StreamTiming>,
    pub errors: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(measure(args))?;
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

async fn measure(args: Args) -> anyhow::Result<SseOutput> {
    let uri: Uri = args.url.parse().context("--url")?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!("--url must be http:// or https://"),
    };
    let host = uri.host().context("--url has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = match args.connect {
        Some(a) => a,
        None => tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .context("cannot resolve --url host")?,
    };
    let tls = if https {
        Some(tls_connector(args.ca.as_deref())?)
    } else {
        None
    };
    let authority = uri.authority().context("--url")?.to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();

    let per_conn = args.streams.div_ceil(args.concurrency.max(1));
    let mut tasks = Vec::new();
    for c in 0..args.concurrency.max(1) {
        let n = per_conn.min(args.streams.saturating_sub(c * per_conn));
        let (tls, host, authority, path, key) = (
            tls.clone(),
            host.clone(),
            authority.clone(),
            path.clone(),
            args.key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = SseOutput::default();
            let mut sender = match connect_to(addr, tls, &host).await {
                Ok(s) => s,
                Err(_) => {
                    out.errors += n;
                    return out;
                }
            };
            // Warm-up stream: pools, TLS sessions and caches on the path get filled.
            if one_stream(&mut sender, &authority, &path, &key)
                .await
                .is_err()
            {
                out.errors += 1;
            }
            for _ in 0..n {
                match one_stream(&mut sender, &authority, &path, &key).await {
                    Ok(t) => out.streams.push(t),
                    Err(_) => out.errors += 1,
                }
            }
            out
        }));
    }
    let mut all = SseOutput::default();
    for t in tasks {
        let o = t.await?;
        all.streams.extend(o.streams);
        all.errors += o.errors;
    }
    Ok(all)
}

fn tls_connector(ca: Option<&std::path::Path>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca).context("--ca")? {
            roots.add(cert?)?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn connect_to(
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    host: &str,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let sender = match tls {
        Some(tls) => {
            let name = ServerName::try_from(host.to_owned())?;
            let stream = tls.connect(name, tcp).await?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender
        }
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            sender
        }
    };
    Ok(sender)
}

async fn one_stream(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
    key: &str,
) -> anyhow::Result<StreamTiming> {
    sender.ready().await?;
    let req = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Full::new(Bytes::from_static(STREAM_BODY.as_bytes())))?;
    let t0 = Instant::now();
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("status {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut offsets = Vec::with_capacity(crate::upstream::SSE_EVENTS);
    // Bytes after the last complete event, to find `\n\n` across frame boundaries.
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let at = t0.elapsed().as_micros() as u64;
        if let Some(data) = frame.data_ref() {
            tail.extend_from_slice(data);
            while let Some(end) = tail.windows(2).position(|w| w == b"\n\n") {
                offsets.push(at);
                tail.drain(..end + 2);
            }
        }
    }
    let Some(&ttfc_us) = offsets.first() else {
        bail!("no event");
    };
    Ok(StreamTiming {
        ttfc_us,
        offsets_us: offsets,
    })
}

/// One request and its whole answer (status, body), for the smoke checks before the load runs.
pub fn fetch(
    url: &str,
    connect: Option<SocketAddr>,
    ca: Option<&std::path::Path>,
    key: &str,
    body: &'static str,
) -> anyhow::Result<(u16, Bytes)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let uri: Uri = url.parse()?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().context("no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = match connect {
            Some(a) => a,
            None => format!("{host}:{port}").parse()?,
        };
        let tls = if https {
            Some(tls_connector(ca)?)
        } else {
            None
        };
        let mut sender = connect_to(addr, tls, &host).await?;
        let req = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, uri.authority().context("authority")?.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        })
        .await
        .context("no answer within 10 s")??;
        Ok(resp)
    })
}

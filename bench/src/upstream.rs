//! The fake LLM upstream: answers like an OpenAI-compatible API, fast enough not to be the
//! bottleneck. One listener speaks plain HTTP/1.1, the other TLS (ALPN `h2` and `http/1.1`, as real
//! providers offer) with a certificate for `bench.test`, `localhost` and `127.0.0.1` signed by a CA
//! made at start and written to `--ca-out`.
//!
//! Any path ending in `/chat/completions` (any prefix, so mitmdump's unstripped `/bench/...` works):
//! - no `Authorization`, or a key containing `invalid`: 401 with OpenAI's invalid-key body;
//! - a body with `"stream":true`: `text/event-stream`, 20 events 25 ms apart (19 deltas, `[DONE]`);
//! - otherwise: a ~300-byte chat completion.
//!
//! Everything else is a 404.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, channel::Channel};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// Number of events in one SSE answer, and the gap between them.
pub const SSE_EVENTS: usize = 20;
pub const SSE_GAP: Duration = Duration::from_millis(25);

/// A chat completion of about 300 bytes, as OpenAI answers a short non-streamed request.
pub const CHAT_JSON: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1764035646,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#;

/// OpenAI's answer to a wrong key (the key echo is what authtap scrubs).
const INVALID_KEY_JSON: &str = r#"{"error":{"message":"Incorrect API key provided: sk-bench***************************alid. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

type Body = BoxBody<Bytes, Infallible>;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port for plain HTTP (0: any free port)
    #[arg(long, default_value_t = 0)]
    http_port: u16,
    /// Port for HTTPS (0: any free port)
    #[arg(long, default_value_t = 0)]
    https_port: u16,
    /// Where to write the CA certificate (PEM) that signed the HTTPS listener's certificate
    #[arg(long)]
    ca_out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let tls = Arc::new(tls_config(&args.ca_out)?);
    let plain = TcpListener::bind((Ipv4Addr::LOCALHOST, args.http_port)).await?;
    let secure = TcpListener::bind((Ipv4Addr::LOCALHOST, args.https_port)).await?;
    // The orchestrator reads this one line to learn the ports.
    println!(
        "{{\"http\":{},\"https\":{}}}",
        plain.local_addr()?.port(),
        secure.local_addr()?.port()
    );

    let plain_task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = plain.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service_fn(handle))
                    .await;
            });
        }
    });
    let tls_task = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((tcp, _)) = secure.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
    tokio::select! {
        _ = plain_task => {}
        _ = tls_task => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// A CA and a leaf for `bench.test`, `localhost` and 127.0.0.1; the CA goes to `ca_out`.
fn tls_config(ca_out: &std::path::Path) -> anyhow::Result<rustls::ServerConfig> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "authtap bench upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    std::fs::write(ca_out, ca_cert.pem())
        .with_context(|| format!("writing {}", ca_out.display()))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["bench.test".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "bench.test");
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let chain = vec![
        CertificateDer::from(leaf_cert.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path_ok = req.uri().path().ends_with("/chat/completions");
    let key_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.contains("invalid"));
    // Read the whole (small) request body, as a real API does before answering.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !path_ok {
        return Ok(json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"message":"not found"}}"#,
        ));
    }
    if !key_ok {
        return Ok(json(StatusCode::UNAUTHORIZED, INVALID_KEY_JSON));
    }
    if contains(&body, b"\"stream\":true") || contains(&body, b"\"stream\": true") {
        return Ok(sse());
    }
    Ok(json(StatusCode::OK, CHAT_JSON))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Headers at once, then one event every [`SSE_GAP`] on a fixed schedule (no drift).
fn sse() -> Response<Body> {
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for i in 0..SSE_EVENTS {
            tokio::time::sleep_until(start + SSE_GAP * (i as u32 + 1)).await;
            let event = if i + 1 == SSE_EVENTS {
                Bytes::from_static(b"data: [DONE]\n\n")
            } else {
                Bytes::from(format!(
                    "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764035646,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
                ))
            };
            if tx.send_data(event).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(body.boxed());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    resp
}

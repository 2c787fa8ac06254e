//! The floor: a bare hyper reverse proxy that records nothing, built the way authtap serves (one
//! single-threaded runtime per CPU, each with its own pooled HTTP/1.1 upstream client, rustls for
//! the TLS upstream). Its numbers are what any proxy on hyper and tokio costs on this machine before
//! it does anything of its own, so the gap between it and authtap is what recording and inspection
//! cost, and the gap between it and nginx is the stack's.
//!
//! `/bench/...` goes to `--plain`, `/bench-tls/...` to `--tls` (its certificate checked against
//! `--ca`), the first path segment dropped, as authtap's routes and the nginx config do.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port to listen on (127.0.0.1)
    #[arg(long)]
    port: u16,
    /// The plain upstream, `http://127.0.0.1:PORT`
    #[arg(long)]
    plain: String,
    /// The TLS upstream, `https://127.0.0.1:PORT`
    #[arg(long)]
    tls: String,
    /// The CA (PEM) that signed the TLS upstream's certificate
    #[arg(long)]
    ca: PathBuf,
}

type Body = BoxBody<Bytes, hyper::Error>;

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&args.ca).context("reading --ca")?;
    for cert in rustls_pemfile_certs(&pem)? {
        roots.add(cert)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = Connector(tokio_rustls::TlsConnector::from(Arc::new(tls)));
    let upstreams: Arc<(String, String)> = Arc::new((args.plain, args.tls));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (connector, upstreams) = (connector.clone(), upstreams.clone());
            let port = args.port;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(serve(port, connector, upstreams))
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a floor thread panicked"))??;
    }
    Ok(())
}

/// One thread: its own listening socket on the shared port (the kernel spreads connections over
/// them) and its own upstream pool.
async fn serve(
    port: u16,
    connector: Connector,
    upstreams: Arc<(String, String)>,
) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(1024)?;
    let client: Client<Connector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(connector);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (client, upstreams) = (client.clone(), upstreams.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(client.clone(), upstreams.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn forward(
    client: Client<Connector, Incoming>,
    upstreams: Arc<(String, String)>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let (base, rest) = if let Some(rest) = path.strip_prefix("/bench-tls") {
        (&upstreams.1, rest)
    } else if let Some(rest) = path.strip_prefix("/bench") {
        (&upstreams.0, rest)
    } else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let Ok(uri) = format!("{base}{rest}").parse::<Uri>() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove(http::header::HOST);
    Ok(match client.request(req).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    })
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

/// Plain TCP, or TLS for `https` URIs.
#[derive(Clone)]
struct Connector(tokio_rustls::TlsConnector);

enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or("127.0.0.1").to_string();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            if !https {
                return Ok(Stream::Plain(TokioIo::new(tcp)));
            }
            let name = ServerName::try_from(host).map_err(std::io::Error::other)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The certificates in a PEM file.
fn rustls_pemfile_certs(
    pem: &[u8],
) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.context("a certificate in --ca"))
        .collect()
}

//! The emulator's faults ([`Fault`]) and its count of abandoned exchanges
//! ([`Emulator::cancelled`]), over real TLS on 127.0.0.1, on HTTP/1.1 and h2.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authtap_emulator::{Emulator, Fault};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const KEY: &str = "sk-good-openai-key";
const CHAT: &str = r#"{"model":"m-1","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"m-1","stream":true,"messages":[]}"#;
const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];

async fn tls(emu: &Emulator, host: &str, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(emu.ca_pem().as_bytes()).expect("CA PEM parses");
    roots.add(ca).expect("CA accepted as root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(emu.addr()).await?;
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One client connection. Dropping it closes the connection.
struct Conn {
    sender: Sender,
    host: String,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(emu: &Emulator, host: &str, alpn: &[&[u8]]) -> Conn {
    let tls = tls(emu, host, alpn).await.expect("TLS handshake");
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let (sender, task) = if h2 {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        (
            Sender::H2(send),
            tokio::spawn(async move {
                let _ = conn.await;
            }),
        )
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        (
            Sender::H1(send),
            tokio::spawn(async move {
                let _ = conn.await;
            }),
        )
    };
    Conn {
        sender,
        host: host.to_owned(),
        task,
    }
}

impl Conn {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let mut req = Request::builder()
            .method(method)
            .header("authorization", format!("Bearer {KEY}"));
        req = match self.sender {
            Sender::H2(_) => req.uri(format!("https://{}{path}", self.host)),
            Sender::H1(_) => req.uri(path).header("host", &self.host),
        };
        let req = req
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        match &mut self.sender {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// Whether an error or one of its sources says the connection was reset (not closed in order).
fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionReset
        {
            return true;
        }
        if e.to_string().to_ascii_lowercase().contains("reset") {
            return true;
        }
        source = e.source();
    }
    false
}

fn protocols() -> [(&'static str, &'static [&'static [u8]]); 2] {
    [("HTTP/1.1", H1), ("HTTP/2", H2)]
}

async fn emulator(fault: Fault) -> Emulator {
    Emulator::builder()
        .key("api.openai.com", KEY)
        .key("api.moonshot.ai", KEY)
        .sse_chunk_delay(Duration::from_millis(20))
        .fault("api.openai.com", "/v1/chat/", fault)
        .start()
        .await
        .expect("start")
}

#[tokio::test]
async fn reset_before_headers_resets_only_the_matching_requests() {
    for (version, alpn) in protocols() {
        let emu = emulator(Fault::ResetBeforeHeaders).await;
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let err = conn
            .send("POST", "/v1/chat/completions", CHAT)
            .await
            .expect_err("no answer");
        assert!(is_reset(&err), "{version}: not a reset: {err:?}");
        let seen = emu.requests();
        assert_eq!(seen.len(), 1, "{version}");
        assert_eq!(seen[0].body, CHAT.as_bytes(), "{version}: read whole");
        assert_eq!(seen[0].http_version, version);
        assert!(emu.sent_bodies()[0].is_empty(), "{version}");
        assert_eq!(emu.cancelled(), 0, "{version}: the emulator's own reset");

        // Another path on the same host, and the same path on another host, are answered.
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let ok = conn.send("GET", "/v1/models", "").await.expect("answer");
        assert_eq!(ok.status(), 200, "{version}");
        let mut conn = connect(&emu, "api.moonshot.ai", alpn).await;
        let ok = conn
            .send("POST", "/v1/chat/completions", CHAT)
            .await
            .expect("answer");
        assert_eq!(ok.status(), 200, "{version}");
        ok.into_body().collect().await.expect("whole body");
        assert_eq!(emu.cancelled(), 0, "{version}");
    }
}

#[tokio::test]
async fn reset_after_first_chunk_breaks_streamed_and_whole_bodies() {
    for (version, alpn) in protocols() {
        let emu = emulator(Fault::ResetAfterFirstChunk).await;
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let resp = conn
            .send("POST", "/v1/chat/completions", CHAT_STREAM)
            .await
            .expect("headers");
        assert_eq!(resp.status(), 200, "{version}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        let first = body.frame().await.expect("a frame").expect("first frame");
        let first = first.into_data().expect("data");
        assert!(first.starts_with(b"data: "), "{version}: {first:?}");
        let next = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the reset comes");
        let err = match next {
            Some(Err(e)) => e,
            other => panic!("{version}: expected a broken body, got {other:?}"),
        };
        assert!(is_reset(&err), "{version}: not a reset: {err:?}");
        assert_eq!(
            emu.sent_bodies()[0],
            first,
            "{version}: only the first frame"
        );

        // A body that is not streamed: its first half, then the reset, and no Content-Length.
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let resp = conn
            .send("POST", "/v1/chat/completions", CHAT)
            .await
            .expect("headers");
        assert_eq!(resp.status(), 200, "{version}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(resp.headers().get("content-length").is_none(), "{version}");
        let mut body = resp.into_body();
        let first = body.frame().await.expect("a frame").expect("first half");
        let first = first.into_data().expect("data");
        assert!(first.starts_with(b"{"), "{version}: {first:?}");
        assert!(
            matches!(body.frame().await, Some(Err(_))),
            "{version}: the body breaks off"
        );
        assert_eq!(emu.sent_bodies()[1], first, "{version}");
        assert_eq!(emu.cancelled(), 0, "{version}: the emulator's own reset");
    }
}

#[tokio::test]
async fn stall_after_first_chunk_never_ends_and_counts_the_client_leaving() {
    for (version, alpn) in protocols() {
        let emu = emulator(Fault::StallAfterFirstChunk).await;
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let resp = conn
            .send("POST", "/v1/chat/completions", CHAT_STREAM)
            .await
            .expect("headers");
        assert_eq!(resp.status(), 200, "{version}");
        let mut body = resp.into_body();
        let first = body.frame().await.expect("a frame").expect("first frame");
        assert_eq!(emu.sent_bodies()[0], first.into_data().expect("data"));
        // Ten times the gap between frames: nothing more, and no end.
        let waited = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
        assert!(
            waited.is_err(),
            "{version}: stalled stream moved: {waited:?}"
        );
        assert_eq!(emu.cancelled(), 0, "{version}");
        // h2: resetting the stream is enough; HTTP/1.1: the connection closes.
        drop(body);
        if version == "HTTP/1.1" {
            drop(conn);
        }
        assert!(
            emu.wait_cancelled(1, Duration::from_secs(5)).await,
            "{version}: the client leaving a stalled stream is seen"
        );
    }
}

#[tokio::test]
async fn delay_headers_waits_then_answers_and_counts_a_client_that_leaves() {
    for (version, alpn) in protocols() {
        let emu = emulator(Fault::DelayHeaders(Duration::from_millis(300))).await;
        let mut conn = connect(&emu, "api.openai.com", alpn).await;
        let started = Instant::now();
        let resp = conn
            .send("POST", "/v1/chat/completions", CHAT)
            .await
            .expect("answer");
        assert!(started.elapsed() >= Duration::from_millis(300), "{version}");
        assert_eq!(resp.status(), 200, "{version}");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(emu.sent_bodies()[0], body, "{version}: the usual answer");
        assert_eq!(emu.cancelled(), 0, "{version}");

        // A client that gives up during the delay: h2 resets the stream, HTTP/1.1 closes.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            conn.send("POST", "/v1/chat/completions", CHAT),
        )
        .await;
        assert!(gave_up.is_err(), "{version}: answered within the delay");
        drop(conn);
        assert!(
            emu.wait_cancelled(1, Duration::from_secs(5)).await,
            "{version}: the client leaving during the delay is seen"
        );
        assert_eq!(emu.requests().len(), 2, "{version}");
        assert!(emu.sent_bodies()[1].is_empty(), "{version}: no answer sent");
    }
}

#[tokio::test]
async fn held_streams_and_abandoned_uploads_count_as_cancelled() {
    let emu = Emulator::builder()
        .key("api.openai.com", KEY)
        .hold_streams(true)
        .start()
        .await
        .expect("start");
    // Whole answers are not cancellations.
    let mut conn = connect(&emu, "api.openai.com", H2).await;
    let resp = conn
        .send("POST", "/v1/chat/completions", CHAT)
        .await
        .expect("answer");
    resp.into_body().collect().await.expect("body");
    assert_eq!(emu.cancelled(), 0);

    // A held stream whose client resets it after the first frame.
    let resp = conn
        .send("POST", "/v1/chat/completions", CHAT_STREAM)
        .await
        .expect("answer");
    let mut body = resp.into_body();
    body.frame().await.expect("a frame").expect("first frame");
    drop(body);
    assert!(emu.wait_cancelled(1, Duration::from_secs(5)).await);

    // An upload that stops part way: what arrived is counted as it arrives, then kept.
    let mut tls = tls(&emu, "api.openai.com", H1).await.expect("TLS");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    let part = vec![b' '; 3000];
    tls.write_all(&part).await.expect("write");
    tls.flush().await.expect("flush");
    let before = emu.body_bytes_received();
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.body_bytes_received() < 3000 {
        assert!(Instant::now() < deadline, "upload did not arrive: {before}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(emu.requests().len() < 3, "listed only once its body ends");
    drop(tls);
    assert!(emu.wait_cancelled(2, Duration::from_secs(5)).await);
    let seen = emu.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].body.len(), 3000, "the part that arrived");
    assert!(emu.sent_bodies()[2].is_empty());
}

#[tokio::test]
async fn leaf_hosts_names_only_the_given_hosts() {
    let emu = Emulator::builder()
        .key("api.openai.com", KEY)
        .leaf_hosts(&["localhost"])
        .start()
        .await
        .expect("start");
    let err = tls(&emu, "api.openai.com", H1)
        .await
        .expect_err("a leaf for localhost only is refused for api.openai.com");
    let rustls_error = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert!(
        matches!(
            rustls_error,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
    tls(&emu, "localhost", H1)
        .await
        .expect("the named host is accepted");
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn alpn_limits_the_versions_offered() {
    let emu = Emulator::builder()
        .key("api.openai.com", KEY)
        .alpn(&[b"http/1.1"])
        .start()
        .await
        .expect("start");
    let mut conn = connect(&emu, "api.openai.com", &[b"h2", b"http/1.1"]).await;
    assert!(matches!(conn.sender, Sender::H1(_)), "h2 was not offered");
    let ok = conn.send("GET", "/v1/models", "").await.expect("answer");
    assert_eq!(ok.status(), 200);
    assert_eq!(emu.requests()[0].http_version, "HTTP/1.1");
}

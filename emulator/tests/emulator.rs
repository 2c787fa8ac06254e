//! End-to-end tests of the emulator over real TLS on 127.0.0.1 (never a real host).

use std::sync::Arc;
use std::time::Duration;

use authtap_emulator::{Emulator, bodies};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A client connection to the emulator with SNI and Host set to a provider host.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

struct Conn {
    client: Client,
    host: String,
}

async fn connect(emu: &Emulator, host: &str, alpn: &[&[u8]]) -> Conn {
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
    let tcp = TcpStream::connect(emu.addr()).await.expect("connect");
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the test CA");
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let client = if h2 {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        Client::H2(send)
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        Client::H1(send)
    };
    Conn {
        client,
        host: host.to_owned(),
    }
}

impl Conn {
    fn is_h2(&self) -> bool {
        matches!(self.client, Client::H2(_))
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response<Incoming> {
        let mut req = Request::builder().method(method);
        req = if self.is_h2() {
            req.uri(format!("https://{}{path}", self.host))
        } else {
            req.uri(path).header("host", &self.host)
        };
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        match &mut self.client {
            Client::H1(s) => s.send_request(req).await.expect("h1 response"),
            Client::H2(s) => s.send_request(req).await.expect("h2 response"),
        }
    }
}

async fn call(
    emu: &Emulator,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, Bytes) {
    let mut conn = connect(emu, host, &[b"http/1.1"]).await;
    let resp = conn.send(method, path, headers, body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, body)
}

const CHAT: &str = r#"{"model":"m-1","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"m-1","stream":true,"messages":[]}"#;

#[tokio::test]
async fn moonshot_401_is_byte_exact_and_region_locked() {
    let emu = Emulator::builder()
        .key("api.moonshot.cn", "sk-cn-key")
        .start()
        .await
        .expect("start");
    let expected =
        r#"{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}"#;
    for auth in [None, Some("Bearer sk-wrong"), Some("Bearer sk-cn-key")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, h, body) = call(
            &emu,
            "api.moonshot.ai",
            "POST",
            "/v1/chat/completions",
            &headers,
            CHAT,
        )
        .await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body, expected.as_bytes());
        assert_eq!(body.len(), 84, "mi-gpt #18 saw content-length 84");
        assert_eq!(h["msh-cache"], "miss");
        assert_eq!(h["server"], "nginx");
    }
    let (status, _, body) = call(
        &emu,
        "api.moonshot.cn",
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-cn-key")],
        CHAT,
    )
    .await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["model"], "m-1");
    assert_eq!(json["object"], "chat.completion");
    let seen = emu.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].host, "api.moonshot.cn");
    assert_eq!(seen[3].path, "/v1/chat/completions");
    assert_eq!(seen[3].body, CHAT.as_bytes());
    assert_eq!(seen[3].http_version, "HTTP/1.1");
    assert_eq!(emu.sent_bodies()[0], expected.as_bytes());
    assert_eq!(emu.sent_bodies()[3], body);
}

#[tokio::test]
async fn streaming_sends_one_frame_per_chunk() {
    let emu = Emulator::builder()
        .key("api.openai.com", "sk-good-openai-key")
        .sse_chunks(4)
        .sse_chunk_delay(Duration::from_millis(15))
        .start()
        .await
        .expect("start");
    let mut conn = connect(&emu, "api.openai.com", &[b"http/1.1"]).await;
    let resp = conn
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-good-openai-key")],
            CHAT_STREAM,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            frames.push(data);
        }
    }
    assert!(
        frames.len() >= 4,
        "expected separate frames, got {}",
        frames.len()
    );
    let all: Vec<u8> = frames.concat();
    let text = String::from_utf8(all.clone()).expect("utf8");
    assert!(text.starts_with(
        r#"data: {"id":"chatcmpl-emu","object":"chat.completion.chunk","model":"m-1","choices":[{"index":0,"delta":{"content":"tok0 "}}]}"#
    ));
    assert_eq!(text.matches("chat.completion.chunk").count(), 4);
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(emu.sent_bodies()[0], all);
}

#[tokio::test]
async fn hold_streams_holds_after_first_chunk_until_release() {
    let emu = Emulator::builder()
        .key("api.anthropic.com", "sk-ant-good")
        .sse_chunk_delay(Duration::from_millis(1))
        .hold_streams(true)
        .start()
        .await
        .expect("start");
    let mut conn = connect(&emu, "api.anthropic.com", &[b"h2", b"http/1.1"]).await;
    let resp = conn
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-ant-good")],
            CHAT_STREAM,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("first frame").expect("ok");
    let first = first.into_data().expect("data");
    assert!(first.starts_with(b"event: message_start\n"));
    let waited = tokio::time::timeout(Duration::from_millis(150), body.frame()).await;
    assert!(waited.is_err(), "second frame arrived before release");
    assert_eq!(emu.sent_bodies()[0], first);
    emu.release_streams();
    let rest = tokio::time::timeout(Duration::from_secs(2), body.collect())
        .await
        .expect("stream finishes after release")
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("content_block_delta"));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));

    // Released before the next stream reaches its hold point: it must not wait.
    let resp = conn
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-ant-good")],
            CHAT_STREAM,
        )
        .await;
    tokio::time::timeout(Duration::from_secs(2), resp.into_body().collect())
        .await
        .expect("no hold after release")
        .expect("body");
}

#[tokio::test]
async fn deepseek_echoes_last_four_of_sent_key() {
    let emu = Emulator::builder().start().await.expect("start");
    let (status, _, body) = call(
        &emu,
        "api.deepseek.com",
        "POST",
        "/chat/completions",
        &[(
            "authorization",
            "Bearer sk-0123456789abcdef0123456789abfcc2",
        )],
        CHAT,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        r#"{"error":{"message":"Authentication Fails, Your api key: ****fcc2 is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#
            .as_bytes()
    );
}

#[tokio::test]
async fn h2_is_negotiated_by_alpn() {
    let emu = Emulator::builder()
        .key("api.groq.com", "gsk_good")
        .start()
        .await
        .expect("start");
    let mut conn = connect(&emu, "api.groq.com", &[b"h2", b"http/1.1"]).await;
    assert!(conn.is_h2(), "server must pick h2");
    let resp = conn
        .send(
            "POST",
            "/openai/v1/chat/completions",
            &[("authorization", "Bearer gsk_good")],
            CHAT,
        )
        .await;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let resp = conn
        .send("POST", "/openai/v1/chat/completions", &[], CHAT)
        .await;
    assert_eq!(resp.status(), 401);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, bodies::GROQ_INVALID_KEY.as_bytes());
    let seen = emu.requests();
    assert_eq!(seen[0].http_version, "HTTP/2");
    assert_eq!(seen[0].host, "api.groq.com");
}

#[tokio::test]
async fn openai_masks_or_echoes_whole_key() {
    let masked = Emulator::builder().start().await.expect("start");
    let auth = [("authorization", "Bearer sk-proj-abcdefGDYA")];
    let (status, _, body) = call(
        &masked,
        "api.openai.com",
        "POST",
        "/v1/chat/completions",
        &auth,
        CHAT,
    )
    .await;
    assert_eq!(status, 401);
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(
        text.contains("Incorrect API key provided: sk-***********GDYA. You can"),
        "{text}"
    );
    let (_, _, body) = call(&masked, "api.openai.com", "GET", "/v1/models", &[], "").await;
    assert_eq!(body, bodies::OPENAI_MISSING_KEY.as_bytes());

    let full = Emulator::builder()
        .echo_full_keys(true)
        .start()
        .await
        .expect("start");
    let (_, _, body) = call(
        &full,
        "api.openai.com",
        "POST",
        "/v1/chat/completions",
        &auth,
        CHAT,
    )
    .await;
    assert!(String::from_utf8_lossy(&body).contains("provided: sk-proj-abcdefGDYA."));
}

#[tokio::test]
async fn coding_plans_and_client_gates() {
    let emu = Emulator::builder()
        .coding_key("api.z.ai", "zcode.key")
        .key("api.z.ai", "zgeneral.key")
        .key("api.kimi.com", "sk-kimi-good")
        .coding_key("dashscope-intl.aliyuncs.com", "sk-sp-coding")
        .start()
        .await
        .expect("start");
    let bearer = |k: &'static str| [("authorization", format!("Bearer {k}"))];
    let z = |p: &'static str, k: &'static str| {
        let emu = &emu;
        async move {
            let h = bearer(k);
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
            call(emu, "api.z.ai", "POST", p, &h, CHAT).await
        }
    };
    let general = "/api/paas/v4/chat/completions";
    let coding = "/api/coding/paas/v4/chat/completions";
    let (s, _, b) = z(general, "zcode.key").await;
    assert_eq!(
        (s, &b[..]),
        (429, bodies::ZAI_INSUFFICIENT_BALANCE.as_bytes())
    );
    assert_eq!(z(coding, "zcode.key").await.0, 200);
    assert_eq!(z(general, "zgeneral.key").await.0, 200);
    let (s, _, b) = z(coding, "zgeneral.key").await;
    assert_eq!((s, &b[..]), (401, bodies::ZAI_AUTH_FAILED_EN.as_bytes()));
    let (s, _, b) = call(&emu, "open.bigmodel.cn", "POST", general, &[], CHAT).await;
    assert_eq!((s, &b[..]), (401, bodies::ZAI_MISSING_AUTH_CN.as_bytes()));

    let kimi = [
        ("x-api-key", "sk-kimi-good"),
        ("user-agent", "openclaw/2026.4.27"),
    ];
    let (s, _, b) = call(
        &emu,
        "api.kimi.com",
        "POST",
        "/coding/v1/messages",
        &kimi,
        CHAT,
    )
    .await;
    assert_eq!(
        (s, &b[..]),
        (403, bodies::KIMI_NOT_A_CODING_AGENT.as_bytes())
    );
    let (s, _, _) = call(&emu, "api.kimi.com", "GET", "/coding/v1/models", &kimi, "").await;
    assert_eq!(s, 200, "models never checks the UA");
    let ok = [
        ("x-api-key", "sk-kimi-good"),
        ("user-agent", "claude-code/0.1.0"),
    ];
    let (s, _, _) = call(
        &emu,
        "api.kimi.com",
        "POST",
        "/coding/v1/messages",
        &ok,
        CHAT,
    )
    .await;
    assert_eq!(s, 200);

    let ds = [("authorization", "Bearer sk-sp-coding")];
    let path = "/v1/chat/completions";
    let (s, _, _) = call(
        &emu,
        "coding-intl.dashscope.aliyuncs.com",
        "POST",
        path,
        &ds,
        CHAT,
    )
    .await;
    assert_eq!(s, 200);
    let path = "/compatible-mode/v1/chat/completions";
    let (s, _, b) = call(&emu, "dashscope-intl.aliyuncs.com", "POST", path, &ds, CHAT).await;
    assert_eq!((s, &b[..]), (401, bodies::DASHSCOPE_INVALID_KEY.as_bytes()));
}

#[tokio::test]
async fn quirks_unknown_hosts_paths_and_gzip() {
    let emu = Emulator::builder()
        .key("api.minimaxi.com", "mm-good")
        .key("generativelanguage.googleapis.com", "AQ.good")
        .gzip_errors(true)
        .start()
        .await
        .expect("start");
    let mm = "/anthropic/v1/messages";
    let (s, _, b) = call(
        &emu,
        "api.minimaxi.com",
        "POST",
        mm,
        &[("x-api-key", "mm-good")],
        CHAT,
    )
    .await;
    assert_eq!(
        (s, &b[..]),
        (500, bodies::MINIMAX_CN_X_API_KEY_SYSTEM_ERROR.as_bytes())
    );
    let bearer = [("authorization", "Bearer mm-good")];
    assert_eq!(
        call(&emu, "api.minimaxi.com", "POST", mm, &bearer, CHAT)
            .await
            .0,
        200
    );
    let v2 = "/v1/text/chatcompletion_v2";
    let (s, _, b) = call(&emu, "api.minimaxi.com", "POST", v2, &[], CHAT).await;
    assert_eq!(
        (s, &b[..]),
        (200, bodies::MINIMAX_INVALID_API_KEY.as_bytes())
    );

    let gem = "/v1beta/models/gemini-2.5-flash:generateContent?key=AQ.good";
    let (s, _, b) = call(
        &emu,
        "generativelanguage.googleapis.com",
        "POST",
        gem,
        &[],
        "{}",
    )
    .await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&b).contains("\"candidates\""));

    // TLS to "localhost" (in the leaf), then ask for a host the emulator does not serve.
    let mut conn = connect(&emu, "localhost", &[b"http/1.1"]).await;
    conn.host = "example.com:443".to_owned();
    let resp = conn.send("GET", "/", &[], "").await;
    let s = resp.status().as_u16();
    let b = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(s, 421);
    assert!(String::from_utf8_lossy(&b).contains("does not serve host example.com"));
    let (s, _, b) = call(&emu, "api.x.ai", "GET", "/nope", &[], "").await;
    assert_eq!((s, &b[..]), (404, bodies::NO_SUCH_PATH.as_bytes()));

    let xai = [
        ("authorization", "Bearer gsABCDEFUQ"),
        ("accept-encoding", "gzip"),
    ];
    let (s, h, b) = call(&emu, "api.x.ai", "POST", "/v1/chat/completions", &xai, CHAT).await;
    assert_eq!(s, 400);
    assert_eq!(h["content-encoding"], "gzip");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&b[..]), &mut plain)
        .expect("gunzip");
    assert!(
        plain.contains("Incorrect API key provided: gs***UQ."),
        "{plain}"
    );
    assert_eq!(
        emu.sent_bodies().last().expect("recorded"),
        &b,
        "gzip bytes recorded"
    );
}

#[tokio::test]
async fn drop_stops_the_server() {
    let emu = Emulator::builder().start().await.expect("start");
    let addr = emu.addr();
    drop(emu);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

//! Faults on either side of an exchange. Upstream: a certificate for another name or from an
//! untrusted issuer, a reset before the headers or in the middle of a stream, a stream that stalls, a
//! provider slower than `--response-timeout`. Client: gone in the middle of its upload or of the
//! stream. Each time the client gets what a faithful proxy gives (authtap's 502/504 with a JSON body
//! before the headers; after them, a body that ends in an error rather than a clean end), the record
//! says what happened (`outcome`, `failure`, bytes so far), an abandoned upstream request is
//! cancelled (the emulator sees it end), and the next request works.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authtap_emulator::{Emulator, Fault};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Authtap, CHAT, CHAT_STREAM, Start, client, request, send};

const KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";
/// A key for the host whose certificate is refused: it never reaches it.
const WRONG_KEY: &str = "sk-Zq8Xw3Lp9Rt2Vn6Mb4Kc7Hd1Jf5Gs0Ty";
const CHAT_PATH: &str = "/moonshot/v1/chat/completions";

fn bearer() -> String {
    format!("Bearer {KEY}")
}

/// What a provider may offer authtap (the emulator's ALPN), and the version authtap then speaks:
/// HTTP/1.1 either way (upstream.rs offers only HTTP/1.1), so a provider that prefers HTTP/2 is
/// covered too.
const UPSTREAMS: [(&str, &[&[u8]]); 2] = [
    ("HTTP/1.1", &[b"h2", b"http/1.1"]),
    ("HTTP/1.1", &[b"http/1.1"]),
];

/// An emulator speaking `alpn` where `KEY` is valid on Moonshot.
fn moonshot(alpn: &[&[u8]]) -> authtap_emulator::EmulatorBuilder {
    Emulator::builder().key("api.moonshot.ai", KEY).alpn(alpn)
}

async fn healthy(alpn: &[&[u8]]) -> Emulator {
    moonshot(alpn).start().await.expect("emulator")
}

/// An emulator speaking `alpn` where `KEY` is valid on Moonshot, and Moonshot's chat completions
/// have `fault`.
async fn faulty(fault: Fault, alpn: &[&[u8]]) -> Emulator {
    moonshot(alpn)
        .fault("api.moonshot.ai", "/v1/chat/completions", fault)
        .start()
        .await
        .expect("emulator")
}

fn write_ca(dir: &Path, emulator: &Emulator, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, emulator.ca_pem()).expect("write CA");
    path
}

/// authtap answers a request to Moonshot's models list, forwarded to the provider: it kept serving.
async fn next_request_works(authtap: &Authtap) {
    let next = send(
        &client(),
        "GET",
        &authtap.url("/moonshot/v1/models"),
        &[("authorization", &bearer())],
        "",
    )
    .await;
    assert_eq!(next.status, 200, "authtap kept serving");
}

/// authtap's own error answer: the status, and `error.stage` and `error.message` of its JSON body.
fn own_error(reply: &crate::harness::Reply, status: u16, stage: &str) -> String {
    assert_eq!(reply.status, status);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["error"]["type"], "authtap_upstream_error", "{body}");
    assert_eq!(body["error"]["stage"], stage, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

/// A failure before any response: the record matches what the client was told.
fn assert_upstream_failed(record: &serde_json::Value, status: u16, stage: &str, message: &str) {
    assert_eq!(record["outcome"], "upstream-failed", "{record}");
    assert_eq!(record["status"], status, "{record}");
    assert_eq!(record["failure"]["stage"], stage, "{record}");
    assert_eq!(record["failure"]["message"], message, "{record}");
    assert_eq!(record["bytes_down"], 0, "{record}");
    assert!(record["ttfb_ms"].is_null(), "{record}");
    assert!(record["error"].is_null(), "{record}");
}

/// Read a response body frame by frame until it ends or fails: the data, and the error if any.
async fn read_until_end(body: &mut Incoming) -> (Vec<u8>, Option<hyper::Error>) {
    let mut data = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the body ends or fails within 10s");
        match frame {
            None => return (data, None),
            Some(Err(e)) => return (data, Some(e)),
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// A raw HTTP/1.1 connection to authtap, so a test decides exactly when the client goes away.
struct RawClient {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawClient {
    async fn connect(authtap: &Authtap) -> RawClient {
        RawClient {
            stream: TcpStream::connect(authtap.addr).await.expect("connect"),
            received: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Read until what was received contains `needle`.
    async fn read_until(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 16 * 1024];
        while !String::from_utf8_lossy(&self.received).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {needle:?} within 10s: {}",
                        String::from_utf8_lossy(&self.received)
                    )
                })
                .expect("read");
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&self.received)
            );
            self.received.extend_from_slice(&buf[..n]);
        }
    }

    /// Whether anything (data or the end of the connection) arrives within `window`.
    async fn quiet_for(&mut self, window: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(window, self.stream.read(&mut buf))
            .await
            .is_err()
    }
}

fn stream_request() -> String {
    format!(
        "POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CHAT_STREAM}",
        bearer(),
        CHAT_STREAM.len()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_certificate_for_another_name_is_a_tls_failure_that_says_so() {
    let good = healthy(UPSTREAMS[0].1).await;
    // Signed by a CA authtap trusts, but for `localhost` only.
    let wrong = Emulator::builder()
        .key("api.openai.com", WRONG_KEY)
        .leaf_hosts(&["localhost"])
        .start()
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&good),
        extra_args: vec![
            "--upstream-ca".into(),
            write_ca(dir.path(), &wrong, "wrong-ca.pem")
                .display()
                .to_string(),
            "--connect-to".into(),
            format!("api.openai.com:443:127.0.0.1:{}", wrong.addr().port()),
        ],
        ..Start::default()
    });
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/openai/v1/chat/completions"),
        &[("authorization", &format!("Bearer {WRONG_KEY}"))],
        CHAT,
    )
    .await;
    let message = own_error(&reply, 502, "tls");
    assert!(
        message.contains("TLS handshake with api.openai.com:443")
            && message.contains("its certificate is for another host name"),
        "{message}"
    );
    assert!(!message.contains("issuer"), "{message}");
    assert!(
        wrong.requests().is_empty(),
        "no request after a failed handshake"
    );
    next_request_works(&authtap).await;

    let records = authtap.records(2);
    assert_upstream_failed(&records[0], 502, "tls", &message);
    assert_eq!(records[0]["host"], "api.openai.com");
    assert_eq!(records[1]["outcome"], "complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_untrusted_issuer_is_a_tls_failure_that_points_at_upstream_ca() {
    let emulator = healthy(UPSTREAMS[0].1).await;
    // No --upstream-ca: the emulator's CA is trusted by nobody.
    let authtap = Authtap::start_with(Start {
        extra_args: vec![
            "--connect-to".into(),
            format!("api.moonshot.ai:443:127.0.0.1:{}", emulator.addr().port()),
        ],
        ..Start::default()
    });
    let client = client();
    let mut messages = Vec::new();
    // Twice: a failed handshake leaves nothing behind that changes the next answer.
    for _ in 0..2 {
        let reply = send(
            &client,
            "POST",
            &authtap.url(CHAT_PATH),
            &[("authorization", &bearer())],
            CHAT,
        )
        .await;
        let message = own_error(&reply, 502, "tls");
        assert!(
            message.contains("TLS handshake with api.moonshot.ai:443")
                && message.contains(
                    "its certificate is signed by an issuer authtap does not trust (add it with --upstream-ca)"
                ),
            "{message}"
        );
        messages.push(message);
    }
    assert!(emulator.requests().is_empty());
    let index = send(&client, "GET", &authtap.url("/"), &[], "").await;
    assert_eq!(index.status, 200, "authtap kept serving");

    let records = authtap.records(2);
    for (record, message) in records.iter().zip(&messages) {
        assert_upstream_failed(record, 502, "tls", message);
        assert_eq!(record["host"], "api.moonshot.ai");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_before_headers_gives_502_protocol_and_the_next_request_works() {
    for (version, alpn) in UPSTREAMS {
        let emulator = faulty(Fault::ResetBeforeHeaders, alpn).await;
        let authtap = Authtap::start(&emulator);
        let reply = send(
            &client(),
            "POST",
            &authtap.url(CHAT_PATH),
            &[("authorization", &bearer())],
            CHAT,
        )
        .await;
        let message = own_error(&reply, 502, "protocol");
        assert!(
            message.contains("api.moonshot.ai broke off the exchange"),
            "{version}: {message}"
        );
        assert!(
            message.to_lowercase().contains("reset"),
            "{version}: {message}"
        );
        let seen = emulator.requests();
        assert_eq!(seen[0].http_version, version);
        assert_eq!(
            seen[0].body,
            CHAT.as_bytes(),
            "{version}: the request went whole"
        );
        next_request_works(&authtap).await;

        let records = authtap.records(2);
        assert_upstream_failed(&records[0], 502, "protocol", &message);
        assert_eq!(records[0]["bytes_up"], CHAT.len());
        assert_eq!(records[0]["model"], "kimi-k2.5");
        assert_eq!(records[1]["outcome"], "complete");
    }
}

/// A stream, then an answer that is not streamed (cut after its first half), both reset by
/// Moonshot speaking `alpn` after their first chunk: the records of the two, and what was sent of
/// each.
async fn reset_mid_stream(alpn: &[&[u8]]) -> (Vec<serde_json::Value>, Vec<usize>) {
    let emulator = moonshot(alpn)
        .sse_chunk_delay(Duration::from_millis(50))
        .fault(
            "api.moonshot.ai",
            "/v1/chat/completions",
            Fault::ResetAfterFirstChunk,
        )
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();
    for (i, body) in [CHAT_STREAM, CHAT].into_iter().enumerate() {
        let response = client
            .request(request(
                "POST",
                &authtap.url(CHAT_PATH),
                &[("authorization", &bearer())],
                body,
            ))
            .await
            .expect("response headers");
        assert_eq!(response.status(), 200, "the headers had been sent");
        let (data, error) = read_until_end(&mut response.into_body()).await;
        assert!(
            error.is_some(),
            "the client must see the body fail, not end cleanly: {}",
            String::from_utf8_lossy(&data)
        );
        assert!(!data.is_empty(), "the first chunk arrived");
        assert_eq!(data, emulator.sent_bodies()[i], "the bytes sent, unchanged");
    }
    next_request_works(&authtap).await;
    let records = authtap.records(3);
    assert_eq!(records[2]["outcome"], "complete");
    let sent = emulator.sent_bodies().iter().map(|b| b.len()).collect();
    (records, sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_mid_stream_cuts_the_client_body_and_records_upstream_aborted() {
    for (version, alpn) in UPSTREAMS {
        let (records, sent) = reset_mid_stream(alpn).await;
        for (i, stream) in [Some(true), None].into_iter().enumerate() {
            let record = &records[i];
            assert_eq!(record["upstream_version"], version, "{record}");
            assert_eq!(record["outcome"], "upstream-aborted", "{record}");
            assert_eq!(record["status"], 200, "{record}");
            assert_eq!(record["stream"], serde_json::json!(stream), "{record}");
            assert_eq!(record["failure"]["stage"], "body", "{record}");
            let message = record["failure"]["message"].as_str().expect("message");
            assert!(
                message.contains(&format!(
                    "the response body broke off after {} bytes",
                    sent[i]
                )),
                "{message}"
            );
            assert_eq!(record["bytes_down"], sent[i], "{record}");
            assert!(record["ttfb_ms"].is_number(), "{record}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_mid_stream_failure_message_says_the_connection_was_reset() {
    for (_, alpn) in UPSTREAMS {
        let (records, _) = reset_mid_stream(alpn).await;
        for record in &records[..2] {
            let message = record["failure"]["message"].as_str().expect("message");
            assert!(
                message.to_lowercase().contains("connection reset"),
                "{message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_stream_stays_open_past_the_response_timeout_until_the_client_leaves() {
    for (version, alpn) in UPSTREAMS {
        let emulator = faulty(Fault::StallAfterFirstChunk, alpn).await;
        let authtap = Authtap::start_with(Start {
            emulator: Some(&emulator),
            extra_args: vec!["--response-timeout".into(), "1".into()],
            ..Start::default()
        });
        let mut raw = RawClient::connect(&authtap).await;
        raw.write(stream_request().as_bytes()).await;
        raw.read_until("tok0").await;
        // --response-timeout is for the headers: a pause in a stream (a model thinking) is passed
        // on as it is, neither cut nor ended, past the timeout.
        assert!(
            raw.quiet_for(Duration::from_millis(1500)).await,
            "{version}: the stalled stream was cut or continued: {}",
            String::from_utf8_lossy(&raw.received)
        );
        assert_eq!(emulator.cancelled(), 0, "{version}");
        drop(raw);
        assert!(
            emulator.wait_cancelled(1, Duration::from_secs(10)).await,
            "{version}: the client left: authtap must cancel the upstream stream"
        );
        next_request_works(&authtap).await;

        let records = authtap.records(2);
        let record = &records[0];
        assert_eq!(record["outcome"], "client-aborted", "{record}");
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["upstream_version"], version, "{record}");
        assert!(record["failure"].is_null(), "{record}");
        assert_eq!(
            record["bytes_down"],
            emulator.sent_bodies()[0].len(),
            "the first chunk, no more: {record}"
        );
        assert_eq!(records[1]["outcome"], "complete");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_slower_than_the_response_timeout_gives_504_and_is_cancelled() {
    for (version, alpn) in UPSTREAMS {
        let emulator = faulty(Fault::DelayHeaders(Duration::from_secs(30)), alpn).await;
        let authtap = Authtap::start_with(Start {
            emulator: Some(&emulator),
            extra_args: vec!["--response-timeout".into(), "1".into()],
            ..Start::default()
        });
        let started = Instant::now();
        let reply = send(
            &client(),
            "POST",
            &authtap.url(CHAT_PATH),
            &[("authorization", &bearer())],
            CHAT,
        )
        .await;
        let waited = started.elapsed();
        let message = own_error(&reply, 504, "timeout");
        assert!(
            message.contains("api.moonshot.ai sent no response headers within 1s"),
            "{version}: {message}"
        );
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
            "{version}: {waited:?}"
        );
        assert!(
            emulator.wait_cancelled(1, Duration::from_secs(10)).await,
            "{version}: authtap gave up: the upstream request must be cancelled"
        );
        next_request_works(&authtap).await;

        let records = authtap.records(2);
        assert_upstream_failed(&records[0], 504, "timeout", &message);
        assert!(records[0]["duration_ms"].as_f64().expect("duration") >= 1000.0);
        assert_eq!(records[1]["outcome"], "complete");
    }
}

/// A client that sends the head of a 10 MB JSON upload, then pieces of it, each reaching the provider
/// (speaking `alpn`) before the next is sent, then goes away: the record, and the body bytes sent.
async fn abandoned_upload(alpn: &[&[u8]]) -> (serde_json::Value, u64) {
    let emulator = healthy(alpn).await;
    let authtap = Authtap::start(&emulator);
    let mut raw = RawClient::connect(&authtap).await;
    raw.write(
        format!(
            "POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
            bearer()
        )
        .as_bytes(),
    )
    .await;
    let mut sent = 0u64;
    let opening = br#"{"model":"kimi-k2.5","messages":[{"role":"user","content":""#;
    let pieces = [&opening[..], &[b'a'; 16 * 1024][..], &[b'b'; 16 * 1024][..]];
    for piece in pieces {
        raw.write(piece).await;
        sent += piece.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while emulator.body_bytes_received() < sent {
            assert!(
                Instant::now() < deadline,
                "upload not streamed: {} of {sent} bytes arrived",
                emulator.body_bytes_received()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    drop(raw);
    assert!(
        emulator.wait_cancelled(1, Duration::from_secs(10)).await,
        "the client left: authtap must cancel the upstream request"
    );
    assert_eq!(emulator.requests()[0].body.len() as u64, sent);
    next_request_works(&authtap).await;
    let records = authtap.records(2);
    assert_eq!(records[1]["outcome"], "complete");
    (records[0].clone(), sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_gone_mid_upload_cancels_the_upstream_request_with_the_bytes_so_far() {
    for (_, alpn) in UPSTREAMS {
        let (record, sent) = abandoned_upload(alpn).await;
        assert_eq!(record["bytes_up"], sent, "{record}");
        assert_eq!(record["bytes_down"], 0, "{record}");
        assert_eq!(record["model"], "kimi-k2.5", "{record}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_gone_mid_upload_is_recorded_as_client_aborted() {
    for (_, alpn) in UPSTREAMS {
        let (record, _) = abandoned_upload(alpn).await;
        assert_eq!(record["outcome"], "client-aborted", "{record}");
        assert!(record["status"].is_null(), "no response was sent: {record}");
        assert!(record["failure"].is_null(), "{record}");
        assert_eq!(record["findings"], serde_json::json!([]), "{record}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_gone_mid_stream_cancels_the_upstream_stream_and_records_client_aborted() {
    for (version, alpn) in UPSTREAMS {
        let emulator = moonshot(alpn)
            .hold_streams(true)
            .start()
            .await
            .expect("emulator");
        let authtap = Authtap::start(&emulator);
        let mut raw = RawClient::connect(&authtap).await;
        raw.write(stream_request().as_bytes()).await;
        raw.read_until("tok0").await;
        drop(raw);
        assert!(
            emulator.wait_cancelled(1, Duration::from_secs(10)).await,
            "{version}: the client left: authtap must cancel the upstream stream"
        );
        next_request_works(&authtap).await;

        let records = authtap.records(2);
        let record = &records[0];
        assert_eq!(record["outcome"], "client-aborted", "{record}");
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["upstream_version"], version, "{record}");
        assert!(record["failure"].is_null(), "{record}");
        assert_eq!(record["stream"], true, "{record}");
        assert_eq!(
            record["bytes_down"],
            emulator.sent_bodies()[0].len(),
            "the first chunk: {record}"
        );
        assert_eq!(records[1]["outcome"], "complete");
    }
}

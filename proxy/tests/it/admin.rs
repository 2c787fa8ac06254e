//! The admin API the consoles read: recent exchanges, the live event stream (which must never slow
//! forwarding down), health, and the token that guards it off loopback.

use std::time::{Duration, Instant};

use authtap_emulator::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Authtap, CHAT, client, send};

const KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";

#[tokio::test(flavor = "multi_thread")]
async fn recent_exchanges_and_the_event_stream_carry_the_records() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();

    // Subscribe first, then make an exchange: it must arrive as an event.
    let mut events = tokio::net::TcpStream::connect(authtap.addr)
        .await
        .expect("connect");
    events
        .write_all(b"GET /_authtap/api/events HTTP/1.1\r\nHost: authtap\r\n\r\n")
        .await
        .expect("subscribe");
    let health = send(&client, "GET", &authtap.url("/_authtap/healthz"), &[], "").await;
    assert_eq!(health.json()["status"], "ok");
    let reply = send(
        &client,
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[("authorization", &format!("Bearer {KEY}"))],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 200);

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains("event: record") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline.into(), events.read(&mut buf))
            .await
            .expect("an event within 5 s")
            .expect("read");
        assert!(n > 0, "stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("text/event-stream"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let record: serde_json::Value = serde_json::from_str(data).expect("record JSON");
    assert_eq!(record["route"], "moonshot");
    assert_eq!(record["status"], 200);

    let recent = send(
        &client,
        "GET",
        &authtap.url("/_authtap/api/exchanges?limit=5"),
        &[],
        "",
    )
    .await;
    let recent = recent.json();
    assert_eq!(recent[0]["id"], record["id"], "newest first, same record");
    let page = send(&client, "GET", &authtap.url("/_authtap/"), &[], "").await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("<html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_stall_forwarding() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    // Several subscribers that ask for the stream and then never read a byte.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(authtap.addr)
            .await
            .expect("connect");
        s.write_all(b"GET /_authtap/api/events HTTP/1.1\r\nHost: authtap\r\n\r\n")
            .await
            .expect("subscribe");
        stuck.push(s);
    }
    let client = client();
    let url = authtap.url("/moonshot/v1/chat/completions");
    let bearer = format!("Bearer {KEY}");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..20 {
        let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
        tasks.spawn(async move {
            let mut ok = 0;
            for _ in 0..50 {
                let reply = send(&client, "POST", &url, &[("authorization", &bearer)], CHAT).await;
                ok += usize::from(reply.status == 200);
            }
            let _ = chunk;
            ok
        });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        ok += done.expect("task");
    }
    assert_eq!(ok, 1000, "every request was answered");
    // Not a performance assertion: a stalled writer would hang, not slow down.
    eprintln!(
        "1000 requests with 3 stuck subscribers: {:?}",
        started.elapsed()
    );
    let records = authtap.records(1000);
    assert_eq!(records.len(), 1000);
    drop(stuck);
}

#[test]
fn off_loopback_the_admin_api_needs_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authtap"))
        .args(["run", "--listen", "0.0.0.0:0", "--allow-remote", "--json"])
        .args(["--admin-token", "s3cret-admin-token"])
        .env("AUTHTAP_HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).expect("read") > 0,
            "authtap exited"
        );
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr: std::net::SocketAddr = rest.trim().parse().expect("addr");
            break addr.port();
        }
    };
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::io::Write::write_all(
            &mut s,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .expect("write");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).expect("read");
        answer
    };
    assert!(get("/_authtap/healthz").starts_with("HTTP/1.1 401"));
    assert!(get("/_authtap/healthz?token=wrong").starts_with("HTTP/1.1 401"));
    assert!(get("/_authtap/healthz?token=s3cret-admin-token").starts_with("HTTP/1.1 200"));
    let _ = child.kill();
    let _ = child.wait();
}

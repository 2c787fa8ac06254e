//! Hostile input and resource limits: oversized headers, too many headers, a client trickling its
//! headers, more connections than allowed, a capture that cannot be written, a crash mid-run, and a
//! bounded soak of mixed traffic. authtap answers clearly, keeps serving, and loses no record.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use authtap_emulator::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Authtap, CHAT, CHAT_STREAM, Start, client, request, send};

const KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";

/// Send raw bytes on a fresh connection and read what comes back until close (or 5 s).
fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn ok_request(authtap: &Authtap) -> String {
    raw(
        authtap.addr,
        format!(
            "POST /moonshot/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_too_many_headers_get_431_and_authtap_keeps_serving() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let big = "a".repeat(80 * 1024);
    let answer = raw(
        authtap.addr,
        format!("GET /moonshot/v1/models HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw(
        authtap.addr,
        format!("GET /moonshot/v1/models HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(
        ok_request(&authtap).starts_with("HTTP/1.1 200"),
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_its_headers_is_cut_off() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--header-read-timeout".into(), "1".into()],
        ..Start::default()
    });
    let mut slow = tokio::net::TcpStream::connect(authtap.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /moonshot/v1/models HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    // One more header line a second would keep a naive server waiting forever.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                n = slow.read_buf(&mut buf) => if n.unwrap_or(0) == 0 { break },
                () = tokio::time::sleep(Duration::from_millis(700)) => {
                    if slow.write_all(b"X-Slow: 1\r\n").await.is_err() { break }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickling connection was closed");
    eprintln!("slowloris connection closed after {:?}", started.elapsed());
    assert!(
        ok_request(&authtap).starts_with("HTTP/1.1 200"),
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_get_503_not_a_hang() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--max-connections".into(), "2".into()],
        ..Start::default()
    });
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(authtap.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = ok_request(&authtap);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("authtap_busy") && answer.contains("--max-connections"),
        "{answer}"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = ok_request(&authtap);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "served again once connections closed: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_that_cannot_be_written_is_said_once_and_counted() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    // /dev/full opens, and every write fails with "no space left on device": a full disk.
    let mut authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--capture".into(), "/dev/full".into()],
        ..Start::default()
    });
    let client = client();
    for _ in 0..5 {
        let reply = send(
            &client,
            "POST",
            &authtap.url("/moonshot/v1/chat/completions"),
            &[("authorization", &format!("Bearer {KEY}"))],
            CHAT,
        )
        .await;
        assert_eq!(reply.status, 200, "forwarding goes on");
    }
    // The records still reach --json output.
    let deadline = Instant::now() + Duration::from_secs(10);
    while authtap.stdout().lines().count() < 5 {
        assert!(
            Instant::now() < deadline,
            "records printed: {}",
            authtap.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(authtap.stop().success());
    let stderr = authtap.stderr();
    assert_eq!(
        stderr.matches("cannot write the capture file").count(),
        1,
        "said loudly, once: {stderr}"
    );
    assert!(
        stderr.contains("write(s) to the capture file failed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_no_finished_record() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();
    for _ in 0..30 {
        send(
            &client,
            "POST",
            &authtap.url("/moonshot/v1/chat/completions"),
            &[("authorization", &format!("Bearer {KEY}"))],
            CHAT,
        )
        .await;
    }
    // Finished exchanges are on disk as soon as they are written: no clean shutdown needed.
    authtap.records(30);
    let pid = authtap.pid();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&authtap.capture).expect("capture");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 30);
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is a whole record");
    }
}

/// A bounded soak: many connections at once, mixed traffic (plain, streamed, refused, clients that
/// give up mid-stream), in two rounds. Every request gets a record, nothing panics, and the second
/// round runs in the memory the first one left: what a finished exchange held is freed and reused.
#[tokio::test(flavor = "multi_thread")]
async fn soak_mixed_traffic_keeps_every_record() {
    let connections: usize = std::env::var("AUTHTAP_SOAK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let requests: usize = std::env::var("AUTHTAP_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .sse_chunk_delay(Duration::from_millis(2))
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--no-probe".into()],
        ..Start::default()
    });
    let rss = |field: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", authtap.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    let rss_start = rss("VmRSS:");
    let url = authtap.url("/moonshot/v1/chat/completions");
    let started = Instant::now();
    let mut tally = soak_round(&url, connections, requests).await;
    let rss_first = rss("VmRSS:");
    for (all, second) in tally
        .iter_mut()
        .zip(soak_round(&url, connections, requests).await)
    {
        *all += second;
    }
    let requests = requests * 2;
    let sent = requests - tally[4] - tally[5];
    let elapsed = started.elapsed();
    let records = authtap.records(sent);
    let rss_peak = rss("VmHWM:");
    std::thread::sleep(Duration::from_millis(500));
    let rss_end = rss("VmRSS:");
    let mut by_outcome = std::collections::BTreeMap::new();
    for r in &records {
        *by_outcome
            .entry(r["outcome"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    eprintln!(
        "soak: {connections} connections, 2 rounds, {requests} requests in {elapsed:?}; answered plain/stream/refused/aborted/not-sent/busy-503 {tally:?}; records {}, by outcome {by_outcome:?}; RSS start {rss_start} KiB, after round 1 {rss_first} KiB, peak {rss_peak} KiB, end {rss_end} KiB",
        records.len()
    );
    assert_eq!(records.len(), sent, "one record per request sent");
    assert!(
        sent * 10 >= requests * 9,
        "most requests were sent: {tally:?}"
    );
    assert!(
        !authtap.stderr().contains("panicked"),
        "{}",
        authtap.stderr()
    );
    assert!(
        by_outcome.get("client-aborted").copied().unwrap_or(0) > 0,
        "the clients that left mid-stream are recorded as such"
    );
    // The emulator never fails: any other outcome is authtap failing other clients' requests.
    assert!(
        by_outcome
            .keys()
            .all(|o| o == "complete" || o == "client-aborted"),
        "{by_outcome:?}"
    );
    // The second round fits in what the first left: a leak would grow with every exchange. What
    // the first round takes depends on the connections (buffers, TLS, allocator slack), so the
    // allowance is a share of it.
    let first_growth = rss_first.saturating_sub(rss_start);
    assert!(
        rss_end <= rss_first + (first_growth / 4).max(4 * 1024),
        "RSS start {rss_start} KiB, after round 1 {rss_first} KiB, end {rss_end} KiB"
    );
}

/// One round of the soak: `connections` clients, each on a connection of its own, sending
/// `requests` between them. Counts answered plain/streamed/refused/abandoned, not sent, and 503.
async fn soak_round(url: &str, connections: usize, requests: usize) -> [usize; 6] {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, next) = (client(), url.to_string(), next.clone());
        workers.spawn(async move {
            let mut tally = [0usize; 6];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return tally;
                }
                let (key, body) = match i % 4 {
                    0 => (KEY.to_string(), CHAT),
                    1 => (KEY.to_string(), CHAT_STREAM),
                    2 => (format!("sk-wrong{:040}", i % 7), CHAT),
                    _ => (KEY.to_string(), CHAT_STREAM),
                };
                let req = request(
                    "POST",
                    &url,
                    &[("authorization", &format!("Bearer {key}"))],
                    body,
                );
                let Ok(response) = client.request(req).await else {
                    // Not sent, or the connection broke: no record is owed.
                    tally[4] += 1;
                    continue;
                };
                if response.status() == 503 {
                    // authtap's connection cap answered before reading the request.
                    tally[5] += 1;
                    continue;
                }
                if i % 4 == 3 {
                    // Give up after the first chunk: a client that goes away mid-stream.
                    use http_body_util::BodyExt;
                    let mut body = response.into_body();
                    let _ = body.frame().await;
                    tally[3] += 1;
                } else {
                    let status = response.status().as_u16();
                    use http_body_util::BodyExt;
                    let _ = response.into_body().collect().await;
                    tally[(i % 4).min(2)] += usize::from(matches!(status, 200 | 401));
                }
            }
        });
    }
    let mut tally = [0usize; 6];
    while let Some(done) = workers.join_next().await {
        let t = done.expect("worker");
        for k in 0..6 {
            tally[k] += t[k];
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capture_rotates_by_size_and_keeps_every_record() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    // About 2 KiB: a record is about 1 KiB, so the capture rotates every few exchanges.
    let mut authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--capture-max-mb".into(), "0.002".into()],
        ..Start::default()
    });
    let client = client();
    for _ in 0..12 {
        let reply = send(
            &client,
            "POST",
            &authtap.url("/moonshot/v1/chat/completions"),
            &[("authorization", &format!("Bearer {KEY}"))],
            CHAT,
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while authtap.stdout().lines().count() < 12 {
        assert!(Instant::now() < deadline, "12 records printed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(authtap.stop().success());
    let mut ids = Vec::new();
    let mut files = 0;
    for suffix in ["", ".1", ".2", ".3", ".4", ".5"] {
        let path = format!("{}{suffix}", authtap.capture.display());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        files += 1;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{path}");
        assert!(
            text.len() < 2 * 2098 + 4096,
            "{path} is about the limit: {}",
            text.len()
        );
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).expect("whole record");
            ids.push(record["id"].as_str().expect("id").to_string());
        }
    }
    assert!(files >= 3, "the capture rotated: {files} files");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every record is in one of the files, once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_path_that_cannot_be_opened_does_not_stop_forwarding() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    // /proc refuses new files: like a read-only capture path.
    let mut authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--capture".into(), "/proc/authtap-capture.jsonl".into()],
        ..Start::default()
    });
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[("authorization", &format!("Bearer {KEY}"))],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 200, "forwarding goes on");
    let deadline = Instant::now() + Duration::from_secs(10);
    while authtap.stdout().lines().count() < 1 {
        assert!(
            Instant::now() < deadline,
            "the record still reaches --json output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(authtap.stop().success());
    let stderr = authtap.stderr();
    assert!(
        stderr.contains("cannot open the capture file /proc/authtap-capture.jsonl"),
        "{stderr}"
    );
    assert!(stderr.contains("records are not saved"), "{stderr}");
    assert!(
        stderr.contains("1 write(s) to the capture file failed"),
        "{stderr}"
    );
}

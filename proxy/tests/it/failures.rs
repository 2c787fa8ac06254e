//! Failures are answers: a dead upstream gives a clear 502 and a record, and authtap keeps serving;
//! many requests at once give as many records; stopping loses none.

use authtap_emulator::Emulator;

use crate::harness::{Authtap, CHAT, Start, client, send};

const KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";

#[tokio::test(flavor = "multi_thread")]
async fn dead_upstream_gives_502_a_record_and_authtap_keeps_serving() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        // The first matching --connect-to wins, and these come first: OpenAI goes nowhere.
        extra_args: vec![
            "--connect-to".into(),
            format!("api.openai.com:443:127.0.0.1:{dead_port}"),
        ],
        ..Start::default()
    });
    let client = client();
    let reply = send(
        &client,
        "POST",
        &authtap.url("/openai/v1/chat/completions"),
        &[("authorization", "Bearer sk-nothing-will-answer-this-one")],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["error"]["type"], "authtap_upstream_error");
    assert_eq!(body["error"]["stage"], "connect");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("api.openai.com"), "{message}");
    assert!(message.contains("could not connect"), "{message}");

    let next = send(
        &client,
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[("authorization", &format!("Bearer {KEY}"))],
        CHAT,
    )
    .await;
    assert_eq!(next.status, 200, "authtap kept serving");

    let records = authtap.records(2);
    assert_eq!(records[0]["outcome"], "upstream-failed");
    assert_eq!(records[0]["status"], 502);
    assert_eq!(records[0]["failure"]["stage"], "connect");
    assert_eq!(records[0]["host"], "api.openai.com");
    assert_eq!(records[1]["outcome"], "complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn unresolvable_upstream_is_a_dns_failure() {
    let emulator = Emulator::builder().start().await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authtap.toml");
    std::fs::write(
        &config,
        "[[route]]\nname = \"nowhere\"\nprovider = \"openai\"\nregion = \"lab\"\nupstream = \"https://no-such-host.invalid\"\n",
    )
    .expect("config");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..Start::default()
    });
    let reply = send(
        &client(),
        "GET",
        &authtap.url("/nowhere/v1/models"),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"]["stage"], "dns");
    let record = &authtap.records(1)[0];
    assert_eq!(record["failure"]["stage"], "dns");
    assert!(
        record["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not resolve no-such-host.invalid")),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_concurrent_requests_give_hundred_records_and_stop_keeps_them() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    // The default (a serving thread per CPU), one thread, and more threads than CPUs: record ids,
    // the probe memory and the capture are shared by all of them.
    for threads in [None, Some("1"), Some("4")] {
        let extra_args = threads
            .map(|n| vec!["--threads".to_string(), n.to_string()])
            .unwrap_or_default();
        let authtap = Authtap::start_with(crate::harness::Start {
            emulator: Some(&emulator),
            extra_args,
            ..Default::default()
        });
        hundred_concurrent(authtap).await;
    }
}

async fn hundred_concurrent(mut authtap: Authtap) {
    let client = client();
    let url = authtap.url("/moonshot/v1/chat/completions");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            // Half valid, half not, so both answers are in flight together.
            let key = if i % 2 == 0 {
                KEY.to_string()
            } else {
                format!("sk-wrong{:040}", 7)
            };
            tokio::spawn(async move {
                send(
                    &client,
                    "POST",
                    &url,
                    &[("authorization", &format!("Bearer {key}"))],
                    crate::harness::CHAT,
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 50);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 50);

    let status = authtap.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let records = crate::harness::read_records(&authtap.capture);
    let probes = records.iter().filter(|r| r["kind"] == "probe").count();
    assert_eq!(
        probes, 1,
        "the 50 refusals share one key and one sibling region: one probe"
    );
    let records: Vec<_> = records
        .into_iter()
        .filter(|r| r["kind"] == "exchange")
        .collect();
    assert_eq!(records.len(), 100, "one record per request");
    let mut ids: Vec<_> = records.iter().map(|r| r["id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "record ids are unique");
    assert!(
        authtap.stderr().contains("101 record(s)"),
        "{}",
        authtap.stderr()
    );
}

#[test]
fn bad_config_and_remote_listen_are_refused_with_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authtap.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:7401\"\nconect_timeout_secs = 5\n",
    )
    .expect("config");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authtap"))
            .args(args)
            .env("AUTHTAP_HOME", dir.path().join("home"))
            .output()
            .expect("run authtap")
    };
    let out = run(&["run", "--config", &config.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authtap.toml"), "names the file: {stderr}");
    assert!(stderr.contains("line 2"), "names the line: {stderr}");
    assert!(
        stderr.contains("connect_timeout_secs"),
        "suggests the valid key: {stderr}"
    );

    let out = run(&["run", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");

    let out = run(&["run", "--threads", "0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--threads") && stderr.contains("1.."),
        "says which values are valid: {stderr}"
    );

    let out = run(&["routes", "--listen", "127.0.0.1:7401"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "openclaw config set models.providers.moonshot.baseUrl http://127.0.0.1:7401/moonshot/v1"
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn asterisk_form_and_garbage_get_clear_answers_and_authtap_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    for probe in [
        &b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"[..],
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage that is not HTTP\r\n\r\n"[..],
    ] {
        let mut stream = tokio::net::TcpStream::connect(authtap.addr)
            .await
            .expect("connect");
        stream.write_all(probe).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let next = send(
        &client(),
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[("authorization", &format!("Bearer {KEY}"))],
        CHAT,
    )
    .await;
    assert_eq!(next.status, 200, "authtap kept serving");
}

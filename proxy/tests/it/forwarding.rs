//! Pass-through: bodies and status reach the client unchanged, streams arrive chunk by chunk.

use std::time::Duration;

use authtap_emulator::Emulator;
use http_body_util::BodyExt;

use crate::harness::{Authtap, CHAT, CHAT_STREAM, client, request, send};

const MOONSHOT_KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";

#[tokio::test(flavor = "multi_thread")]
async fn plain_completion_is_byte_identical_and_recorded() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", MOONSHOT_KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/moonshot/v1/chat/completions?trace=1"),
        &[
            ("authorization", &format!("Bearer {MOONSHOT_KEY}")),
            ("content-type", "application/json"),
        ],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        emulator.sent_bodies()[0],
        "body changed on the way"
    );
    assert_eq!(
        reply.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );

    let seen = &emulator.requests()[0];
    assert_eq!(seen.host, "api.moonshot.ai");
    assert_eq!(
        seen.path, "/v1/chat/completions?trace=1",
        "query string kept"
    );
    assert_eq!(seen.body, CHAT.as_bytes(), "request body unchanged");

    let record = &authtap.records(1)[0];
    assert_eq!(record["v"], 1);
    assert_eq!(record["kind"], "exchange");
    assert_eq!(record["route"], "moonshot");
    assert_eq!(record["provider"], "moonshot");
    assert_eq!(record["region"], "intl");
    assert_eq!(record["host"], "api.moonshot.ai");
    assert_eq!(record["path"], "/v1/chat/completions?trace=1");
    assert_eq!(record["status"], 200);
    assert_eq!(record["model"], "kimi-k2.5");
    assert_eq!(record["outcome"], "complete");
    assert_eq!(record["bytes_up"], CHAT.len());
    assert_eq!(record["bytes_down"], reply.body.len());
    assert_eq!(record["auth"]["shape"], "sk-generic");
    assert_eq!(record["auth"]["last4"], "IjKl");
    assert_eq!(record["error"], serde_json::Value::Null);
    assert!(record["ttfb_ms"].as_f64().is_some_and(|t| t >= 0.0));
    assert_eq!(record["findings"], serde_json::json!([]));

    // The per-install fingerprint key and the capture are private to the user.
    use std::os::unix::fs::PermissionsExt;
    for file in [
        authtap.home.join("fingerprint.key"),
        authtap.capture.clone(),
    ] {
        let mode = std::fs::metadata(&file)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sse_chunk_arrives_before_the_last_is_sent() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", MOONSHOT_KEY)
        .hold_streams(true)
        .sse_chunk_delay(Duration::from_millis(5))
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let response = client()
        .request(request(
            "POST",
            &authtap.url("/moonshot/v1/chat/completions"),
            &[("authorization", &format!("Bearer {MOONSHOT_KEY}"))],
            CHAT_STREAM,
        ))
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();

    // The emulator holds every chunk after the first until released. If authtap buffered the
    // stream, this read would never finish.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk reached the client while the stream was held")
        .expect("a frame")
        .expect("no error")
        .into_data()
        .expect("data");
    assert!(
        String::from_utf8_lossy(&first).contains("tok0"),
        "{first:?}"
    );

    emulator.release_streams();
    let mut all = first.to_vec();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("rest of the stream")
    {
        if let Ok(data) = frame.expect("frame").into_data() {
            all.extend_from_slice(&data);
        }
    }
    assert_eq!(all, emulator.sent_bodies()[0], "stream changed on the way");
    let text = String::from_utf8_lossy(&all);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    let record = &authtap.records(1)[0];
    assert_eq!(record["stream"], true);
    assert_eq!(record["status"], 200);
    assert_eq!(record["outcome"], "complete");
    assert_eq!(record["content_type"], "text/event-stream");
    assert_eq!(record["bytes_down"], all.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn gzipped_error_bodies_pass_unchanged_and_are_read() {
    let emulator = Emulator::builder()
        .gzip_errors(true)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[
            ("authorization", "Bearer sk-wrongwrongwrongwrongwrongwrong"),
            ("accept-encoding", "gzip"),
        ],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.headers.get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert_eq!(
        reply.body,
        emulator.sent_bodies()[0],
        "compressed bytes unchanged"
    );
    let record = &authtap.records(1)[0];
    assert_eq!(record["error"]["type"], "invalid_authentication_error");
    assert_eq!(record["error"]["message"], "Invalid Authentication");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_lists_the_routes_and_is_recorded() {
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = Authtap::start(&emulator);
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/moonshoot/v1/chat/completions"),
        &[],
        CHAT,
    )
    .await;
    assert_eq!(reply.status, 404);
    let body = reply.json();
    assert_eq!(body["error"]["type"], "authtap_unknown_route");
    let routes = body["error"]["routes"].as_array().expect("routes");
    for name in [
        "moonshot",
        "moonshot-cn",
        "kimi-coding",
        "zai",
        "zai-cn",
        "minimax",
        "minimax-cn",
        "dashscope",
        "dashscope-intl",
        "deepseek",
        "openai",
        "anthropic",
        "openrouter",
        "groq",
        "xai",
        "gemini",
    ] {
        assert!(routes.iter().any(|r| r == name), "{name} missing");
    }
    assert!(emulator.requests().is_empty(), "nothing was forwarded");
    let record = &authtap.records(1)[0];
    assert_eq!(record["outcome"], "unknown-route");
    assert_eq!(record["status"], 404);
    assert_eq!(record["path"], "/moonshoot/v1/chat/completions");
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_coding_route_keeps_its_base_path_and_headers() {
    let key = "sk-kimi-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01";
    let emulator = Emulator::builder()
        .key("api.kimi.com", key)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let reply = send(
        &client(),
        "POST",
        &authtap.url("/kimi-coding/v1/messages"),
        &[
            ("x-api-key", key),
            ("anthropic-version", "2023-06-01"),
            ("user-agent", "claude-code/0.1.0"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "must not be forwarded"),
        ],
        r#"{"model":"kimi-for-coding","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = &emulator.requests()[0];
    assert_eq!(seen.path, "/coding/v1/messages");
    let header = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("user-agent").as_deref(), Some("claude-code/0.1.0"));
    assert_eq!(
        header("x-hop"),
        None,
        "headers named by Connection are hop-by-hop"
    );
    let record = &authtap.records(1)[0];
    assert_eq!(record["auth"]["header"], "x-api-key");
    assert_eq!(record["auth"]["shape"], "kimi-coding");
    assert_eq!(record["auth"]["prefix"], "sk-kimi-");
    assert_eq!(record["user_agent"], "claude-code/0.1.0");
    assert_eq!(record["model"], "kimi-for-coding");
}

//! A 401 (or a provider's other refusal) from every emulated provider is recorded with status, host,
//! region, the shape of the key, and the provider's error type and code.

use authtap_emulator::Emulator;
use serde_json::Value;

use crate::harness::{Authtap, CHAT, client, random_alnum, random_hex, send};

struct Case {
    route: &'static str,
    path: &'static str,
    /// (header, value prefix) the key goes in; the key follows the prefix.
    header: (&'static str, &'static str),
    key: String,
    extra: &'static [(&'static str, &'static str)],
    status: u16,
    host: &'static str,
    region: &'static str,
    shape: &'static str,
    error_type: Option<&'static str>,
    error_code: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let bearer = ("authorization", "Bearer ");
    let case = |route, path, header, key: String, status, host, region, shape, t, c| Case {
        route,
        path,
        header,
        key,
        extra: &[],
        status,
        host,
        region,
        shape,
        error_type: t,
        error_code: c,
    };
    let moonshot_key = format!("sk-{}", random_alnum(48));
    let zai_key = format!("{}.{}", random_hex(32), random_alnum(16));
    vec![
        case(
            "moonshot",
            "/v1/chat/completions",
            bearer,
            moonshot_key.clone(),
            401,
            "api.moonshot.ai",
            "intl",
            "sk-generic",
            Some("invalid_authentication_error"),
            None,
        ),
        case(
            "moonshot-cn",
            "/v1/chat/completions",
            bearer,
            moonshot_key,
            401,
            "api.moonshot.cn",
            "cn",
            "sk-generic",
            Some("invalid_authentication_error"),
            None,
        ),
        Case {
            extra: &[
                ("anthropic-version", "2023-06-01"),
                ("user-agent", "claude-code/0.1.0"),
            ],
            ..case(
                "kimi-coding",
                "/v1/messages",
                ("x-api-key", ""),
                format!("sk-kimi-{}", random_alnum(64)),
                401,
                "api.kimi.com",
                "intl",
                "kimi-coding",
                Some("authentication_error"),
                None,
            )
        },
        case(
            "zai",
            "/api/paas/v4/chat/completions",
            bearer,
            zai_key.clone(),
            401,
            "api.z.ai",
            "intl",
            "zai",
            None,
            Some("1000"),
        ),
        case(
            "zai-cn",
            "/api/paas/v4/chat/completions",
            bearer,
            zai_key,
            401,
            "open.bigmodel.cn",
            "cn",
            "zai",
            None,
            Some("1000"),
        ),
        case(
            "minimax",
            "/v1/chat/completions",
            bearer,
            format!("sk-api-{}", random_alnum(40)),
            401,
            "api.minimax.io",
            "intl",
            "minimax",
            None,
            Some("2049"),
        ),
        Case {
            extra: &[("anthropic-version", "2023-06-01")],
            ..case(
                "minimax-cn",
                "/anthropic/v1/messages",
                ("x-api-key", ""),
                format!("sk-api-{}", random_alnum(40)),
                401,
                "api.minimaxi.com",
                "cn",
                "minimax",
                Some("authentication_error"),
                None,
            )
        },
        case(
            "dashscope",
            "/compatible-mode/v1/chat/completions",
            bearer,
            format!("sk-{}", random_alnum(32)),
            401,
            "dashscope.aliyuncs.com",
            "cn",
            "sk-generic",
            Some("invalid_request_error"),
            Some("invalid_api_key"),
        ),
        case(
            "dashscope-intl",
            "/compatible-mode/v1/chat/completions",
            bearer,
            format!("sk-{}", random_alnum(32)),
            401,
            "dashscope-intl.aliyuncs.com",
            "intl",
            "sk-generic",
            Some("invalid_request_error"),
            Some("invalid_api_key"),
        ),
        case(
            "deepseek",
            "/v1/chat/completions",
            bearer,
            format!("sk-{}", random_hex(32)),
            401,
            "api.deepseek.com",
            "global",
            "sk-generic",
            Some("authentication_error"),
            Some("invalid_request_error"),
        ),
        case(
            "openai",
            "/v1/chat/completions",
            bearer,
            format!("sk-proj-{}", random_alnum(120)),
            401,
            "api.openai.com",
            "global",
            "openai-project",
            Some("invalid_request_error"),
            Some("invalid_api_key"),
        ),
        Case {
            extra: &[("anthropic-version", "2023-06-01")],
            ..case(
                "anthropic",
                "/v1/messages",
                ("x-api-key", ""),
                format!("sk-ant-api03-{}AA", random_alnum(93)),
                401,
                "api.anthropic.com",
                "global",
                "anthropic-api",
                Some("authentication_error"),
                None,
            )
        },
        case(
            "openrouter",
            "/api/v1/chat/completions",
            bearer,
            format!("sk-or-v1-{}", random_hex(64)),
            401,
            "openrouter.ai",
            "global",
            "openrouter",
            None,
            Some("401"),
        ),
        case(
            "groq",
            "/openai/v1/chat/completions",
            bearer,
            format!("gsk_{}", random_alnum(52)),
            401,
            "api.groq.com",
            "global",
            "groq",
            Some("invalid_request_error"),
            Some("invalid_api_key"),
        ),
        case(
            "xai",
            "/v1/chat/completions",
            bearer,
            format!("xai-{}", random_alnum(80)),
            400,
            "api.x.ai",
            "global",
            "xai",
            Some("Client specified an invalid argument"),
            None,
        ),
        case(
            "gemini",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            ("x-goog-api-key", ""),
            format!("AIza{}", random_alnum(35)),
            400,
            "generativelanguage.googleapis.com",
            "global",
            "gemini-legacy",
            Some("INVALID_ARGUMENT"),
            Some("API_KEY_INVALID"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_refusal_is_recorded_with_its_shape_and_error() {
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();
    let cases = cases();
    for case in &cases {
        let value = format!("{}{}", case.header.1, case.key);
        let mut headers = vec![(case.header.0, value.as_str())];
        headers.extend_from_slice(case.extra);
        let reply = send(
            &client,
            "POST",
            &authtap.url(&format!("/{}{}", case.route, case.path)),
            &headers,
            CHAT,
        )
        .await;
        assert_eq!(
            reply.status, case.status,
            "{}: {:?}",
            case.route, reply.body
        );
    }
    let records = authtap.records(cases.len());
    for (case, record) in cases.iter().zip(&records) {
        let at = |field: &str| &record[field];
        let context = format!("{}: {record}", case.route);
        assert_eq!(at("route"), case.route, "{context}");
        assert_eq!(at("status"), case.status, "{context}");
        assert_eq!(at("host"), case.host, "{context}");
        assert_eq!(at("region"), case.region, "{context}");
        assert_eq!(at("outcome"), "complete", "{context}");
        assert_eq!(record["auth"]["present"], true, "{context}");
        assert_eq!(record["auth"]["header"], case.header.0, "{context}");
        assert_eq!(record["auth"]["shape"], case.shape, "{context}");
        assert_eq!(record["auth"]["len"], case.key.len(), "{context}");
        let last4 = &case.key[case.key.len() - 4..];
        assert_eq!(record["auth"]["last4"], last4, "{context}");
        let expect = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.into()));
        assert_eq!(
            record["error"]["type"],
            expect(case.error_type),
            "{context}"
        );
        assert_eq!(
            record["error"]["code"],
            expect(case.error_code),
            "{context}"
        );
        assert!(record["error"]["message"].is_string(), "{context}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_client_gate_and_zai_plan_refusals_are_recorded() {
    let kimi = format!("sk-kimi-{}", random_alnum(64));
    let zai_coding = format!("{}.{}", random_hex(32), random_alnum(16));
    let emulator = Emulator::builder()
        .key("api.kimi.com", &kimi)
        .coding_key("api.z.ai", &zai_coding)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();
    let gated = send(
        &client,
        "POST",
        &authtap.url("/kimi-coding/v1/messages"),
        &[("x-api-key", &kimi), ("user-agent", "OpenAI/JS 7.15.0")],
        CHAT,
    )
    .await;
    assert_eq!(gated.status, 403);
    let plan = send(
        &client,
        "POST",
        &authtap.url("/zai/api/paas/v4/chat/completions"),
        &[("authorization", &format!("Bearer {zai_coding}"))],
        CHAT,
    )
    .await;
    assert_eq!(plan.status, 429);
    let records = authtap.records(2);
    assert_eq!(records[0]["error"]["type"], "access_terminated_error");
    assert_eq!(records[0]["user_agent"], "OpenAI/JS 7.15.0");
    assert_eq!(records[1]["error"]["code"], "1113");
    assert_eq!(records[1]["path"], "/api/paas/v4/chat/completions");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_malformed_keys_are_described() {
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = Authtap::start(&emulator);
    let client = client();
    let url = authtap.url("/zai/api/paas/v4/chat/completions");
    send(&client, "POST", &url, &[], CHAT).await;
    send(
        &client,
        "POST",
        &url,
        &[("authorization", "Bearer ${ZAI_API_KEY}")],
        CHAT,
    )
    .await;
    let quoted = format!("Bearer \"{}.{}\"", random_hex(32), random_alnum(16));
    send(&client, "POST", &url, &[("authorization", &quoted)], CHAT).await;
    let records = authtap.records(3);
    assert_eq!(records[0]["auth"]["present"], false);
    assert_eq!(records[0]["auth"]["shape"], "none");
    assert_eq!(records[0]["error"]["code"], "1001");
    assert_eq!(
        records[1]["auth"]["defects"],
        serde_json::json!(["placeholder"])
    );
    assert_eq!(records[2]["auth"]["defects"], serde_json::json!(["quoted"]));
    assert_eq!(records[2]["auth"]["shape"], "zai");
}

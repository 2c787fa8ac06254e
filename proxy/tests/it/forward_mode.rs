//! HTTPS_PROXY mode with real clients: curl, Node.js (undici) and Python (httpx) reach provider
//! hosts through CONNECT, trusting authtap's CA by environment variable; other hosts are tunnelled
//! untouched; a client that does not trust the CA leaves a clear record.
//!
//! Node and Python clients come from `.ci/run` (npm and a venv). Where they are missing these
//! tests skip with a message, unless AUTHTAP_REQUIRE_CLIENTS=1 (set by CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use authtap_emulator::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Authtap, Start, read_records};

const KEY: &str = "sk-CnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCnCn1234";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether an external client can run here; if not, skip (or fail in CI).
fn available(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            std::env::var_os("AUTHTAP_REQUIRE_CLIENTS").is_none(),
            "{what} is required (AUTHTAP_REQUIRE_CLIENTS is set) but not installed; .ci/run installs it"
        );
        eprintln!("skipping: {what} is not installed (bash .ci/run installs it)");
    }
    ok
}

/// authtap with the emulator behind --connect-to, and its CA created.
fn start(emulator: &Emulator, extra: &[&str]) -> Authtap {
    let authtap = Authtap::start_with(Start {
        emulator: Some(emulator),
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..Start::default()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_authtap"))
        .args(["ca", "init"])
        .env("AUTHTAP_HOME", &authtap.home)
        .output()
        .expect("authtap ca init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    authtap
}

/// The environment `authtap ca env` prints, as (name, value) pairs.
fn ca_env(authtap: &Authtap) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_authtap"))
        .args(["ca", "env", "--listen", &authtap.addr.to_string()])
        .env("AUTHTAP_HOME", &authtap.home)
        .output()
        .expect("authtap ca env");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        })
        .collect()
}

fn ca_pem(authtap: &Authtap) -> PathBuf {
    authtap.home.join("ca/ca.pem")
}

/// The client's environment: none of the machine's proxy settings, then authtap's.
fn client_command(program: &str, authtap: &Authtap) -> Command {
    let mut cmd = Command::new(program);
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env_remove(var);
    }
    cmd.envs(ca_env(authtap));
    cmd
}

fn forward_records(authtap: &Authtap, n: usize) -> Vec<serde_json::Value> {
    authtap
        .records(n)
        .into_iter()
        .filter(|r| r["mode"] == "forward")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reaches_a_provider_through_connect_and_is_recorded_with_findings() {
    let emulator = Emulator::builder()
        .key("api.moonshot.cn", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = start(&emulator, &[]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://{}", authtap.addr),
        ])
        .arg("--cacert")
        .arg(ca_pem(&authtap))
        .args([
            "-H",
            &format!("Authorization: Bearer {KEY}"),
            "-d",
            r#"{"model":"kimi-k2.5","messages":[]}"#,
            "https://api.moonshot.ai/v1/chat/completions",
        ])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("Invalid Authentication"),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = &forward_records(&authtap, 1)[0];
    assert_eq!(record["mode"], "forward");
    assert_eq!(record["host"], "api.moonshot.ai");
    assert_eq!(
        record["route"], "moonshot",
        "the route comes from the real host"
    );
    assert_eq!(record["region"], "intl");
    assert_eq!(record["status"], 401);
    assert_eq!(record["findings"][0]["code"], "region-mismatch");
    assert_eq!(emulator.requests()[0].host, "api.moonshot.ai");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_trust_the_ca_leaves_a_clear_record() {
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = start(&emulator, &[]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-x",
            &format!("http://{}", authtap.addr),
        ])
        .arg("https://api.moonshot.ai/v1/models")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("curl");
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl refuses an untrusted certificate"
    );
    let record = &forward_records(&authtap, 1)[0];
    assert_eq!(record["outcome"], "client-rejected-certificate");
    assert_eq!(record["host"], "api.moonshot.ai");
    assert_eq!(record["findings"][0]["code"], "client-distrusts-ca");
    assert!(
        authtap
            .stderr()
            .contains("the client rejected authtap's certificate for api.moonshot.ai: it does not trust the authtap CA"),
        "{}",
        authtap.stderr()
    );
    assert!(
        emulator.requests().is_empty(),
        "nothing reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_hosts_are_tunnelled_untouched() {
    // A plain TCP service that is not TLS at all: if authtap tried to intercept, nothing would
    // come back; through a tunnel the bytes return reversed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while got.len() < 4096 {
            let n = socket.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.reverse();
        socket.write_all(&got).await.expect("write");
    });
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = start(
        &emulator,
        &[
            "--connect-to",
            &format!("example.test:443:127.0.0.1:{port}"),
        ],
    );
    let mut stream = tokio::net::TcpStream::connect(authtap.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        .await
        .expect("write");
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).await.expect("read");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    let payload: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    stream.write_all(&payload).await.expect("send");
    let mut back = vec![0u8; 4096];
    stream.read_exact(&mut back).await.expect("echo");
    let mut expected = payload.clone();
    expected.reverse();
    assert_eq!(back, expected, "tunnelled bytes arrive intact");
    drop(stream);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let tunnel = loop {
        let found = read_records(&authtap.capture)
            .into_iter()
            .find(|r| r["kind"] == "tunnel");
        if let Some(t) = found {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "no tunnel record");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(tunnel["host"], "example.test");
    assert_eq!(tunnel["path"], "example.test:443");
    assert_eq!(tunnel["bytes_up"], 4096);
    assert_eq!(tunnel["bytes_down"], 4096);
    assert!(emulator.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refusing_other_hosts_is_a_config_choice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("authtap.toml");
    std::fs::write(&config, "other_hosts = \"refuse\"\n").expect("config");
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = start(&emulator, &["--config", &config.display().to_string()]);
    let mut stream = tokio::net::TcpStream::connect(authtap.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("only provider hosts"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_client_through_https_proxy_with_the_ca_trusted_by_env() {
    let ready = Command::new("node").arg("--version").output().is_ok()
        && clients_dir().join("node_modules/undici").exists();
    if !available(
        "node with undici (npm install in proxy/tests/clients)",
        ready,
    ) {
        return;
    }
    let emulator = Emulator::builder()
        .key("api.moonshot.cn", KEY)
        .start()
        .await
        .expect("emulator");
    let authtap = start(&emulator, &[]);
    let out = client_command("node", &authtap)
        .arg(clients_dir().join("fetch.mjs"))
        .arg("https://api.moonshot.cn/v1/chat/completions")
        .arg(format!("authorization:Bearer {KEY}"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("200"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = &forward_records(&authtap, 1)[0];
    assert_eq!(record["host"], "api.moonshot.cn");
    assert_eq!(record["route"], "moonshot-cn");
    assert_eq!(record["status"], 200);
    assert_eq!(record["model"], "kimi-k2.5");
    assert_eq!(record["findings"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn python_client_through_https_proxy_with_the_ca_trusted_by_env() {
    let python = std::env::var("AUTHTAP_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
        venv.display().to_string()
    });
    let ready = Command::new(&python)
        .args(["-c", "import httpx"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available("python with httpx (the venv .ci/run makes)", ready) {
        return;
    }
    let emulator = Emulator::builder().start().await.expect("emulator");
    let authtap = start(&emulator, &[]);
    let kimi = "sk-kimi-KmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKmKm01";
    let out = client_command(&python, &authtap)
        .arg(clients_dir().join("fetch.py"))
        .arg("https://api.moonshot.ai/v1/chat/completions")
        .arg(format!("authorization:Bearer {kimi}"))
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("401"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = &forward_records(&authtap, 1)[0];
    assert_eq!(record["host"], "api.moonshot.ai");
    assert_eq!(record["auth"]["shape"], "kimi-coding");
    assert_eq!(record["findings"][0]["code"], "key-provider-mismatch");
}

#[test]
fn the_ca_key_is_private_and_the_ca_commands_say_where_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let authtap = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_authtap"))
            .args(args)
            .env("AUTHTAP_HOME", dir.path())
            .output()
            .expect("authtap")
    };
    assert!(authtap(&["ca", "init"]).status.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca/ca-key.pem"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = authtap(&["ca", "init"]);
    assert!(
        !again.status.success(),
        "init does not replace a CA silently"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let path = authtap(&["ca", "path"]);
    assert_eq!(
        String::from_utf8_lossy(&path.stdout).trim(),
        dir.path().join("ca/ca.pem").display().to_string()
    );
    let show = String::from_utf8_lossy(&authtap(&["ca", "show"]).stdout).to_string();
    assert!(
        show.contains("SHA-256:") && show.contains("BEGIN CERTIFICATE"),
        "{show}"
    );
    let unset = String::from_utf8_lossy(&authtap(&["ca", "env", "--unset"]).stdout).to_string();
    assert!(unset.starts_with("unset HTTPS_PROXY"), "{unset}");
}

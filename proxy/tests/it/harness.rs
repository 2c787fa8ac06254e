//! Test harness: the real `authtap` binary as a child process, pointed with `--connect-to` at an
//! in-process provider emulator (real TLS, a CA made for the test), and a plain HTTP client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authtap_emulator::Emulator;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A running authtap with its outputs collected.
pub struct Authtap {
    child: Child,
    pub addr: SocketAddr,
    pub capture: PathBuf,
    pub home: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// How to start authtap.
pub struct Start<'a> {
    pub emulator: Option<&'a Emulator>,
    pub extra_args: Vec<String>,
    pub rust_log: Option<&'a str>,
    pub json: bool,
}

impl Default for Start<'_> {
    fn default() -> Self {
        Start {
            emulator: None,
            extra_args: Vec::new(),
            rust_log: None,
            json: true,
        }
    }
}

impl Authtap {
    /// authtap with every emulator host redirected to the emulator and its CA trusted.
    pub fn start(emulator: &Emulator) -> Authtap {
        Self::start_with(Start {
            emulator: Some(emulator),
            ..Start::default()
        })
    }

    pub fn start_with(start: Start<'_>) -> Authtap {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let capture = dir.path().join("capture.jsonl");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authtap"));
        cmd.arg("run").arg("--listen").arg("127.0.0.1:0");
        if !start.extra_args.iter().any(|a| a == "--capture") {
            cmd.arg("--capture").arg(&capture);
        }
        if start.json {
            cmd.arg("--json");
        }
        // Before the emulator's --connect-to entries, so a test's own entries win.
        cmd.args(&start.extra_args);
        if let Some(emulator) = start.emulator {
            let ca = dir.path().join("emulator-ca.pem");
            std::fs::write(&ca, emulator.ca_pem()).expect("write CA");
            cmd.arg("--upstream-ca").arg(&ca);
            for host in Emulator::hosts() {
                cmd.arg("--connect-to")
                    .arg(format!("{host}:443:127.0.0.1:{}", emulator.addr().port()));
            }
        }
        cmd.env("AUTHTAP_HOME", &home)
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match start.rust_log {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd.spawn().expect("spawn authtap");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));

        let banner = if start.json { &stderr } else { &stdout };
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = banner.lock().expect("lock").clone();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("listen address");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "authtap exited with {status} before listening:\n{}",
                    stderr.lock().expect("lock")
                );
            }
            assert!(Instant::now() < deadline, "authtap did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Authtap {
            child,
            addr,
            capture,
            home,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The capture's exchange records (probes left out), waiting until there are at least `n`
    /// (records are written just after the response ends, on another thread).
    pub fn records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records: Vec<_> = read_records(&self.capture)
                .into_iter()
                .filter(|r| r["kind"] == "exchange")
                .collect();
            if records.len() >= n {
                // Capture order is finish order; tests reason in request order.
                let mut records = records;
                records.sort_by_key(|r| seq(&r["id"]));
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} records, found {}; the last: {:?}\nstderr: {}",
                records.len(),
                records.last(),
                self.stderr().chars().take(4000).collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop with SIGTERM, as a user's Ctrl-C would, and wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(Instant::now() < deadline, "authtap did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Authtap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let out = buf.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            out.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    buf
}

/// The request sequence number in a record id `<run>-<n>`.
pub fn seq(id: &serde_json::Value) -> u64 {
    id.as_str()
        .and_then(|id| id.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .expect("record id ends with a number")
}

pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every capture line is JSON"))
        .collect()
}

/// A response as the client saw it.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Send a request and read the whole response.
pub async fn send(
    client: &TestClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let response = client
        .request(request(method, url, headers, body))
        .await
        .expect("request through authtap");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body within 20s")
        .expect("body")
        .to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        // From bytes, so tests can send what real clients do: BOMs and other non-ASCII bytes.
        let value = http::HeaderValue::from_bytes(value.as_bytes()).expect("header value");
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

/// A random alphanumeric string, for canary keys.
pub fn random_alnum(n: usize) -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).expect("random");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub fn random_hex(n: usize) -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = vec![0u8; n.div_ceil(2)];
    SystemRandom::new().fill(&mut bytes).expect("random");
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()[..n].to_string()
}

pub const CHAT: &str = r#"{"model":"kimi-k2.5","messages":[{"role":"user","content":"Reply with OK."}],"max_tokens":8}"#;
pub const CHAT_STREAM: &str = r#"{"messages":[{"role":"user","content":"Reply with OK."}],"model":"kimi-k2.5","stream":true}"#;

/// Fails if any run of `min` or more characters of the key's secret part (after its public prefix)
/// appears in `text`. Windows made only of hex digits must be longer to make a chance match with the
/// hex in fingerprints and ids negligible.
pub fn assert_no_leak(what: &str, text: &str, key: &str, public_prefix: &str) {
    let secret: Vec<char> = key[public_prefix.len()..].chars().collect();
    for start in 0..secret.len() {
        let hex_only = |w: &[char]| w.iter().all(|c| c.is_ascii_hexdigit());
        let mut len = 6;
        if start + len <= secret.len() && hex_only(&secret[start..start + len]) {
            len = 10;
        }
        if start + len > secret.len() {
            break;
        }
        let window: String = secret[start..start + len].iter().collect();
        assert!(
            !text.contains(&window),
            "{what} contains part of a canary key ({window:?} at {start})"
        );
    }
}

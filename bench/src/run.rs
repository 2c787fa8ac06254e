//! The orchestrator: starts the upstream and the proxies, runs every load interleaved over rounds
//! (each round visits the targets in a rotated order, so drift and other work on the machine land
//! on all of them alike), measures each proxy from /proc, profiles authtap, replays generated
//! captures, and hands everything to [`crate::report`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::loadgen::{self, LoadGen, Outcome, Spec};
use crate::procfs::{self, Group};
use crate::sse::{self, SseOutput};
use crate::upstream::CHAT_JSON;

/// A key shaped like an OpenAI project key; the upstream accepts it.
pub const GOOD_KEY: &str = "sk-proj-BenchKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
/// The upstream answers 401 with OpenAI's invalid-key body to any key containing `invalid`.
pub const INVALID_KEY: &str = "sk-bench-invalid-0123456789abcdefghijklmnopqrstuvw";
/// The small JSON request of every load run.
pub const JSON_BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}"#;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Rounds: each runs every load scenario against every proxy, in a rotated order
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds per load run
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Timed SSE streams per proxy, per upstream kind, per round
    #[arg(long, default_value_t = 16)]
    pub sse_streams: usize,
    /// SSE streams at once
    #[arg(long, default_value_t = 4)]
    pub sse_concurrency: usize,
    /// Records in the large replay capture (the small one has a tenth)
    #[arg(long, default_value_t = 1_000_000)]
    pub replay_records: u64,
    /// Replays of each capture size
    #[arg(long, default_value_t = 2)]
    pub replay_runs: usize,
    /// Seconds of load on authtap under callgrind (0: no profile)
    #[arg(long, default_value_t = 20.0)]
    pub profile_seconds: f64,
    /// The authtap binary
    #[arg(long)]
    pub authtap: PathBuf,
    /// The nginx binary ("" to leave nginx out)
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: String,
    /// The mitmdump binary ("" to leave mitmdump out)
    #[arg(long, default_value = "")]
    pub mitmdump: String,
    /// Load generator: oha or wrk
    #[arg(long, default_value = "oha")]
    pub loadgen: String,
    /// Its binary
    #[arg(long)]
    pub loadgen_bin: PathBuf,
    /// Working directory for configs, captures, logs (made fresh)
    #[arg(long)]
    pub work: PathBuf,
    /// Where to write the results
    #[arg(long)]
    pub out: PathBuf,
    /// The command line to show in RESULTS.md
    #[arg(long, default_value = "bench/run.sh")]
    pub command_line: String,
    /// Root of the authtap repository (for the git revision)
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Up {
    Plain,
    Tls,
}

impl Up {
    pub fn label(self) -> &'static str {
        match self {
            Up::Plain => "plain HTTP upstream",
            Up::Tls => "TLS upstream",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Scenario {
    pub id: String,
    pub label: String,
    pub up: Up,
    pub concurrency: usize,
    pub invalid_key: bool,
}

pub fn scenarios() -> Vec<Scenario> {
    let s = |id: &str, label: &str, up, concurrency, invalid_key| Scenario {
        id: id.to_owned(),
        label: label.to_owned(),
        up,
        concurrency,
        invalid_key,
    };
    vec![
        s(
            "json-plain-c1",
            "small JSON, c=1, plain HTTP upstream",
            Up::Plain,
            1,
            false,
        ),
        s(
            "json-plain-c32",
            "small JSON, c=32, plain HTTP upstream",
            Up::Plain,
            32,
            false,
        ),
        s(
            "json-tls-c1",
            "small JSON, c=1, TLS upstream",
            Up::Tls,
            1,
            false,
        ),
        s(
            "json-tls-c32",
            "small JSON, c=32, TLS upstream",
            Up::Tls,
            32,
            false,
        ),
        s(
            "401-plain-c32",
            "401 invalid key (authtap: a finding per record), c=32, plain HTTP upstream",
            Up::Plain,
            32,
            true,
        ),
    ]
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LoadSample {
    pub round: usize,
    pub scenario: String,
    pub target: String,
    pub outcome: Outcome,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub peak_rss_kib: Option<u64>,
    /// Context switches of the proxy's threads during the run.
    #[serde(default)]
    pub ctx_switches: Option<u64>,
    pub upstream_cpu_s: f64,
    /// authtap only: capture lines added during the run.
    pub records_written: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SseSample {
    pub round: usize,
    pub up: Up,
    pub target: String,
    pub out: SseOutput,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ReplaySample {
    pub records: u64,
    pub bytes: u64,
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_kib: u64,
    pub exit_ok: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub mem_gib: f64,
    pub kernel: String,
    pub os: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct OtherWork {
    pub machine_busy_cpu_s: f64,
    pub ours_cpu_s: f64,
    pub wall_s: f64,
    /// Processes not started by the benchmark that used the most CPU, (name, CPU seconds).
    pub top: Vec<(String, f64)>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Profile {
    /// Whether `perf stat -e instructions true` counted (hardware counters available).
    pub perf_instructions: bool,
    pub tool: String,
    pub command: String,
    pub requests: u64,
    pub self_top: String,
    pub inclusive_top: String,
    /// authtap's own functions (authtap, authtap_inspector, authtap_config), callees included.
    #[serde(default)]
    pub own_inclusive: String,
}

/// A `perf record -e cpu-clock` sample of the real authtap under c=32: kernel and user time alike.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct PerfProfile {
    pub command: String,
    pub load: String,
    pub by_dso: String,
    pub by_symbol: String,
    /// Call chains (from the kernel up) of the symbols above 8%.
    #[serde(default)]
    pub kernel_chains: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Results {
    pub started: String,
    pub elapsed_s: f64,
    pub command_line: String,
    pub rounds: usize,
    pub seconds: f64,
    pub sse_streams: usize,
    pub sse_concurrency: usize,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub targets: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub loads: Vec<LoadSample>,
    pub sse: Vec<SseSample>,
    pub idle_rss_kib: BTreeMap<String, u64>,
    pub idle_rss_after_kib: BTreeMap<String, u64>,
    /// The anonymous part (RssAnon) of the idle RSS at start and after the load.
    #[serde(default)]
    pub idle_rss_anon_kib: BTreeMap<String, u64>,
    #[serde(default)]
    pub idle_rss_anon_after_kib: BTreeMap<String, u64>,
    /// authtap's capture: total lines, and how many went upstream over each HTTP version.
    pub capture_lines: u64,
    pub upstream_versions: BTreeMap<String, u64>,
    pub replay: Vec<ReplaySample>,
    /// `authtap-bench scan` on the largest replay capture: serde_json parsing into nothing.
    #[serde(default)]
    pub replay_floor: Vec<ReplaySample>,
    pub profile: Option<Profile>,
    pub perf: Option<PerfProfile>,
    pub other: OtherWork,
    /// (what, command) pairs shown under "Commands".
    pub commands: Vec<(String, String)>,
}

struct Target {
    name: String,
    plain_url: String,
    tls_url: String,
    group: Option<Group>,
}

impl Target {
    fn url(&self, up: Up) -> &str {
        match up {
            Up::Plain => &self.plain_url,
            Up::Tls => &self.tls_url,
        }
    }
}

/// Processes to stop at the end, in reverse start order.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        while let Some((name, child)) = self.0.pop() {
            stop(&name, child);
        }
    }
}

fn stop(name: &str, mut child: Child) {
    let pid = child.id();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("bench: {name} (pid {pid}) did not stop on SIGTERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

fn say(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn wait_port(port: u16, within: Duration, child: &mut Child, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{name} exited ({status}) before listening on {port}; see its log");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not listen on port {port} within {within:?}")
}

fn log_file(work: &Path, name: &str) -> anyhow::Result<(Stdio, Stdio)> {
    let f = fs::File::create(work.join(format!("{name}.log")))?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

fn shell_words(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains([' ', '"', '{', '*']) {
            s += &format!(" '{a}'");
        } else {
            s += &format!(" {a}");
        }
    }
    s
}

/// Counts the lines appended to a file since the last call, reading only the new bytes.
struct LineCounter {
    path: PathBuf,
    offset: u64,
    lines: u64,
}

impl LineCounter {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            lines: 0,
        }
    }
    fn count(&mut self) -> u64 {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return self.lines;
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if f.seek(SeekFrom::Start(self.offset)).is_err() {
                break;
            }
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Count whole lines only, and read on from the start of a cut one; a line still
            // being written is counted next time.
            match buf[..n].iter().rposition(|&b| b == b'\n') {
                Some(p) => {
                    self.lines += buf[..=p].iter().filter(|&&b| b == b'\n').count() as u64;
                    self.offset += p as u64 + 1;
                }
                None => break,
            }
        }
        self.lines
    }
    /// The count once it has stopped moving (the writer may lag the last response a little).
    fn settled(&mut self) -> u64 {
        let mut last = self.count();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.count();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }
}

fn machine() -> Machine {
    let lscpu = Command::new("lscpu")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let cpu_model = String::from_utf8_lossy(&lscpu)
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let mem_kib: f64 = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0.0);
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_gib: mem_kib / 1024.0 / 1024.0,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        os,
    }
}

fn first_line(mut cmd: Command) -> String {
    cmd.output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            s.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

/// CPU seconds per process name of every process that is not ours, right now.
fn others_snapshot() -> BTreeMap<u32, (String, f64)> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if is_descendant(pid, me) {
            continue;
        }
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Some((u, s)) = procfs::cpu(pid) {
            out.insert(pid, (comm.trim().to_owned(), u + s));
        }
    }
    out
}

fn is_descendant(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(ppid) = s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().nth(1)?.parse().ok())
        else {
            return false;
        };
        if ppid <= 1 {
            return false;
        }
        pid = ppid;
    }
    false
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let t_start = Instant::now();
    let busy0 = procfs::machine_busy_cpu();
    let ours0 = procfs::self_cpu() + procfs::waited_children_cpu();
    let others0 = others_snapshot();

    if args.work.exists() {
        fs::remove_dir_all(&args.work)?;
    }
    fs::create_dir_all(&args.work)?;
    let work = fs::canonicalize(&args.work)?;
    let me = std::env::current_exe()?;
    let kind = match args.loadgen.as_str() {
        "oha" => loadgen::Kind::Oha,
        "wrk" => loadgen::Kind::Wrk,
        other => bail!("--loadgen {other}: oha or wrk"),
    };
    let ca = work.join("upstream-ca.pem");
    let gen_ = LoadGen {
        kind,
        bin: args.loadgen_bin.clone(),
        ca: ca.clone(),
        work: work.clone(),
    };

    let mut res = Results {
        started: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        command_line: args.command_line.clone(),
        rounds: args.rounds,
        seconds: args.seconds,
        sse_streams: args.sse_streams,
        sse_concurrency: args.sse_concurrency,
        machine: machine(),
        scenarios: scenarios(),
        ..Default::default()
    };
    let per_load = args.seconds + 0.4;
    // direct, authtap, nginx, the hyper floor and (unless left out) mitmdump.
    let targets = if args.mitmdump.is_empty() { 4.0 } else { 5.0 };
    let est = args.rounds as f64
        * (res.scenarios.len() as f64 * targets * per_load + 2.0 * targets * 2.0)
        + args.profile_seconds * 1.5
        + 30.0;
    say(format!(
        "{} rounds x {} scenarios x {targets} targets x {:.1} s loads, SSE, profile, replay: about {:.0} min plus replay",
        args.rounds,
        res.scenarios.len(),
        args.seconds,
        est / 60.0
    ));

    let mut procs = Procs(Vec::new());

    // 1. The upstream.
    say("starting the fake LLM upstream (plain HTTP and TLS)");
    let mut up = Command::new(&me);
    up.arg("upstream").arg("--ca-out").arg(&ca);
    up.stdout(Stdio::piped())
        .stderr(log_file(&work, "upstream")?.1);
    let mut up_child = up.spawn().context("starting the upstream")?;
    let mut line = String::new();
    BufReader::new(up_child.stdout.take().context("upstream stdout")?).read_line(&mut line)?;
    #[derive(Deserialize)]
    struct Ports {
        http: u16,
        https: u16,
    }
    let ports: Ports = serde_json::from_str(&line).context("upstream ports line")?;
    let up_group = Group {
        pids: vec![up_child.id()],
    };
    res.commands.push((
        "upstream".into(),
        format!(
            "{} (ports {} and {})",
            shell_words(&up),
            ports.http,
            ports.https
        ),
    ));
    procs.0.push(("upstream".into(), up_child));

    let mut targets = vec![Target {
        name: "direct".into(),
        plain_url: format!("http://127.0.0.1:{}/v1/chat/completions", ports.http),
        tls_url: format!("https://127.0.0.1:{}/v1/chat/completions", ports.https),
        group: None,
    }];

    // 2. authtap.
    let atp = work.join("authtap");
    fs::create_dir_all(atp.join("home"))?;
    let cfg = atp.join("bench.toml");
    fs::write(
        &cfg,
        format!(
            r#"# The bench upstream, plain and TLS, as OpenAI-compatible routes.
[[route]]
name = "bench"
provider = "openai"
region = "lab"
upstream = "http://127.0.0.1:{http}"
base_paths = ["/v1"]

[[route]]
name = "bench-tls"
provider = "openai"
region = "lab"
upstream = "https://bench.test:{https}"
base_paths = ["/v1"]
"#,
            http = ports.http,
            https = ports.https
        ),
    )?;
    let capture = atp.join("capture.jsonl");
    let authtap_cmd = |port: u16, capture: &Path, home: &Path, tool: Option<&[&str]>| {
        let mut c = match tool {
            Some(t) => {
                let mut c = Command::new(t[0]);
                c.args(&t[1..]).arg(&args.authtap);
                c
            }
            None => Command::new(&args.authtap),
        };
        c.arg("run")
            .arg("--quiet")
            .arg("--no-probe")
            .arg("--config")
            .arg(&cfg)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--capture")
            .arg(capture)
            .arg("--upstream-ca")
            .arg(&ca)
            .arg("--connect-to")
            .arg(format!("bench.test:{0}:127.0.0.1:{0}", ports.https))
            .env("AUTHTAP_HOME", home);
        c
    };
    let a_port = free_port()?;
    say(format!("starting authtap on 127.0.0.1:{a_port}"));
    let mut a = authtap_cmd(a_port, &capture, &atp.join("home"), None);
    let (o, e) = log_file(&work, "authtap")?;
    a.stdout(o).stderr(e);
    res.commands.push((
        "authtap".into(),
        format!(
            "AUTHTAP_HOME={} {}",
            atp.join("home").display(),
            shell_words(&a)
        ),
    ));
    let mut a_child = a.spawn().context("starting authtap")?;
    wait_port(a_port, Duration::from_secs(20), &mut a_child, "authtap")?;
    targets.push(Target {
        name: "authtap".into(),
        plain_url: format!("http://127.0.0.1:{a_port}/bench/v1/chat/completions"),
        tls_url: format!("http://127.0.0.1:{a_port}/bench-tls/v1/chat/completions"),
        group: Some(Group {
            pids: vec![a_child.id()],
        }),
    });
    procs.0.push(("authtap".into(), a_child));

    // 3. nginx.
    if !args.nginx.is_empty() {
        let n_port = free_port()?;
        let nx = work.join("nginx");
        fs::create_dir_all(nx.join("tmp"))?;
        let conf = nx.join("nginx.conf");
        fs::write(&conf, nginx_conf(&nx, n_port, ports.http, ports.https, &ca))?;
        say(format!("starting nginx on 127.0.0.1:{n_port}"));
        let mut n = Command::new(&args.nginx);
        n.arg("-p")
            .arg(&nx)
            .arg("-e")
            .arg(nx.join("error.log"))
            .arg("-c")
            .arg(&conf);
        let (o, e) = log_file(&work, "nginx")?;
        n.stdout(o).stderr(e);
        res.commands.push(("nginx".into(), shell_words(&n)));
        let mut n_child = n.spawn().context("starting nginx")?;
        wait_port(n_port, Duration::from_secs(20), &mut n_child, "nginx")?;
        std::thread::sleep(Duration::from_millis(300));
        let master = n_child.id();
        let mut pids = vec![master];
        pids.extend(procfs::children(master));
        targets.push(Target {
            name: "nginx".into(),
            plain_url: format!("http://127.0.0.1:{n_port}/bench/v1/chat/completions"),
            tls_url: format!("http://127.0.0.1:{n_port}/bench-tls/v1/chat/completions"),
            group: Some(Group { pids }),
        });
        procs.0.push(("nginx".into(), n_child));
        res.versions
            .insert("nginx".into(), first_line(with_arg(&args.nginx, "-v")));
    }

    // 4. The floor: a bare hyper proxy that records nothing (floor.rs).
    {
        let f_port = free_port()?;
        say(format!(
            "starting the hyper floor proxy on 127.0.0.1:{f_port}"
        ));
        let mut f = Command::new(std::env::current_exe()?);
        f.arg("floor")
            .arg("--port")
            .arg(f_port.to_string())
            .arg("--plain")
            .arg(format!("http://127.0.0.1:{}", ports.http))
            .arg("--tls")
            .arg(format!("https://127.0.0.1:{}", ports.https))
            .arg("--ca")
            .arg(&ca);
        let (o, e) = log_file(&work, "floor")?;
        f.stdout(o).stderr(e);
        res.commands.push(("hyper-floor".into(), shell_words(&f)));
        let mut f_child = f.spawn().context("starting the floor proxy")?;
        wait_port(f_port, Duration::from_secs(20), &mut f_child, "hyper-floor")?;
        targets.push(Target {
            name: "hyper-floor".into(),
            plain_url: format!("http://127.0.0.1:{f_port}/bench/v1/chat/completions"),
            tls_url: format!("http://127.0.0.1:{f_port}/bench-tls/v1/chat/completions"),
            group: Some(Group {
                pids: vec![f_child.id()],
            }),
        });
        procs.0.push(("hyper-floor".into(), f_child));
    }

    // 5. mitmdump.
    if !args.mitmdump.is_empty() {
        let (m1, m2) = (free_port()?, free_port()?);
        let md = work.join("mitmproxy");
        fs::create_dir_all(&md)?;
        say(format!(
            "starting mitmdump on 127.0.0.1:{m1} (plain) and :{m2} (TLS upstream)"
        ));
        let mut m = Command::new(&args.mitmdump);
        m.arg("--listen-host")
            .arg("127.0.0.1")
            .arg("--mode")
            .arg(format!("reverse:http://127.0.0.1:{}@{m1}", ports.http))
            .arg("--mode")
            .arg(format!("reverse:https://127.0.0.1:{}@{m2}", ports.https))
            .arg("--set")
            .arg(format!("confdir={}", md.display()))
            .arg("--set")
            .arg(format!("ssl_verify_upstream_trusted_ca={}", ca.display()))
            // Stream bodies instead of buffering them whole (as proxy_buffering off does).
            .arg("--set")
            .arg("stream_large_bodies=1");
        let (o, e) = log_file(&work, "mitmdump")?;
        m.stdout(o).stderr(e);
        res.commands.push(("mitmdump".into(), shell_words(&m)));
        let mut m_child = m.spawn().context("starting mitmdump")?;
        wait_port(m1, Duration::from_secs(60), &mut m_child, "mitmdump")?;
        wait_port(m2, Duration::from_secs(20), &mut m_child, "mitmdump")?;
        let pid = m_child.id();
        targets.push(Target {
            name: "mitmdump".into(),
            plain_url: format!("http://127.0.0.1:{m1}/bench/v1/chat/completions"),
            tls_url: format!("http://127.0.0.1:{m2}/bench/v1/chat/completions"),
            group: Some(Group { pids: vec![pid] }),
        });
        procs.0.push(("mitmdump".into(), m_child));
        res.versions.insert(
            "mitmdump".into(),
            first_line(with_arg(&args.mitmdump, "--version")),
        );
    }
    res.versions.insert("load generator".into(), gen_.version());
    res.versions.insert(
        "authtap".into(),
        first_line(with_arg(&args.authtap.to_string_lossy(), "--version")),
    );
    let rev = first_line({
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(&args.repo)
            .args(["rev-parse", "--short", "HEAD"]);
        c
    });
    let dirty = Command::new("git")
        .arg("-C")
        .arg(&args.repo)
        .args(["status", "--porcelain", "--", ".", ":!bench"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    res.versions.insert(
        "authtap source".into(),
        if dirty > 0 {
            format!("git {rev} plus {dirty} uncommitted paths (work in progress by others)")
        } else {
            format!("git {rev}")
        },
    );
    res.versions
        .insert("rustc".into(), first_line(with_arg("rustc", "--version")));

    // 6. Smoke checks: every target answers both upstream kinds with the upstream's bytes.
    let mut ok_targets = Vec::new();
    for t in targets {
        let mut problems = Vec::new();
        for up in [Up::Plain, Up::Tls] {
            match sse::fetch(t.url(up), None, Some(&ca), GOOD_KEY, JSON_BODY) {
                Ok((200, body)) if body.as_ref() == CHAT_JSON.as_bytes() => {}
                Ok((s, body)) => problems.push(format!(
                    "{}: status {s}, body {}",
                    up.label(),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                )),
                Err(e) => problems.push(format!("{}: {e:#}", up.label())),
            }
            match sse::fetch(t.url(up), None, Some(&ca), INVALID_KEY, JSON_BODY) {
                Ok((401, _)) => {}
                Ok((s, _)) => problems.push(format!("{} invalid key: status {s}", up.label())),
                Err(e) => problems.push(format!("{} invalid key: {e:#}", up.label())),
            }
        }
        if problems.is_empty() {
            say(format!("{}: answers plain and TLS, 200 and 401", t.name));
            ok_targets.push(t);
        } else if t.name == "direct" || t.name == "authtap" {
            bail!("{} fails the smoke check: {}", t.name, problems.join("; "));
        } else {
            let note = format!("{} left out: {}", t.name, problems.join("; "));
            say(&note);
            res.notes.push(note);
        }
    }
    let targets = ok_targets;
    res.targets = targets.iter().map(|t| t.name.clone()).collect();

    std::thread::sleep(Duration::from_millis(500));
    for t in &targets {
        if let Some(g) = &t.group {
            res.idle_rss_kib.insert(t.name.clone(), g.rss_kib());
            res.idle_rss_anon_kib
                .insert(t.name.clone(), g.rss_anon_kib());
        }
    }

    // 7. Warm-up, not recorded.
    say("warming up every target (1 s each, both upstreams)");
    for t in &targets {
        for up in [Up::Plain, Up::Tls] {
            let spec = Spec {
                url: t.url(up),
                concurrency: 32,
                seconds: 1.0,
                key: GOOD_KEY,
                body: JSON_BODY,
            };
            gen_.run(&spec)
                .with_context(|| format!("warm-up of {}", t.name))?;
        }
    }

    let mut capture_counter = LineCounter::new(capture.clone());
    // 8. The rounds.
    for round in 0..args.rounds {
        let order: Vec<&Target> = (0..targets.len())
            .map(|i| &targets[(i + round) % targets.len()])
            .collect();
        say(format!(
            "round {}/{}: order {}",
            round + 1,
            args.rounds,
            order
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for sc in &res.scenarios.clone() {
            for t in &order {
                let spec = Spec {
                    url: t.url(sc.up),
                    concurrency: sc.concurrency,
                    seconds: args.seconds,
                    key: if sc.invalid_key {
                        INVALID_KEY
                    } else {
                        GOOD_KEY
                    },
                    body: JSON_BODY,
                };
                if round == 0 && t.name == "authtap" {
                    res.commands
                        .push((format!("load: {}", sc.label), gen_.display(&spec)));
                }
                let is_authtap = t.name == "authtap";
                let rec0 = if is_authtap {
                    capture_counter.settled()
                } else {
                    0
                };
                if let Some(g) = &t.group {
                    g.reset_peak();
                }
                let (u0, s0) = t.group.as_ref().map_or((0.0, 0.0), Group::cpu);
                let cs0 = t.group.as_ref().map(Group::ctx_switches);
                let up0 = up_group.cpu();
                let outcome = gen_
                    .run(&spec)
                    .with_context(|| format!("{} against {}", sc.id, t.name))?;
                let (u1, s1) = t.group.as_ref().map_or((0.0, 0.0), Group::cpu);
                let cs1 = t.group.as_ref().map(Group::ctx_switches);
                let up1 = up_group.cpu();
                let peak = t.group.as_ref().map(Group::peak_rss_kib);
                let records_written = is_authtap.then(|| capture_counter.settled() - rec0);
                say(format!(
                    "  {:<14} {:<9} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms{}{}",
                    sc.id,
                    t.name,
                    outcome.rps,
                    outcome.p50_ms,
                    outcome.p99_ms,
                    if t.group.is_some() {
                        format!(
                            "  cpu {:>5.1} us/req",
                            (u1 - u0 + s1 - s0) / outcome.requests.max(1) as f64 * 1e6
                        )
                    } else {
                        String::new()
                    },
                    if outcome.errors > 0 {
                        format!("  {} errors", outcome.errors)
                    } else {
                        String::new()
                    }
                ));
                res.loads.push(LoadSample {
                    round,
                    scenario: sc.id.clone(),
                    target: t.name.clone(),
                    outcome,
                    cpu_user_s: u1 - u0,
                    cpu_sys_s: s1 - s0,
                    peak_rss_kib: peak,
                    ctx_switches: cs1.zip(cs0).map(|(a, b)| a.saturating_sub(b)),
                    upstream_cpu_s: (up1.0 + up1.1) - (up0.0 + up0.1),
                    records_written,
                });
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for up in [Up::Plain, Up::Tls] {
            for t in &order {
                let mut c = Command::new(&me);
                c.arg("sse")
                    .arg("--url")
                    .arg(t.url(up))
                    .arg("--ca")
                    .arg(&ca)
                    .arg("--streams")
                    .arg(args.sse_streams.to_string())
                    .arg("--concurrency")
                    .arg(args.sse_concurrency.to_string());
                if round == 0 && t.name == "authtap" {
                    res.commands
                        .push((format!("SSE, {}", up.label()), shell_words(&c)));
                }
                if let Some(g) = &t.group {
                    g.reset_peak();
                }
                let out = c.output()?;
                if !out.status.success() {
                    bail!(
                        "SSE client against {}: {}",
                        t.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let o: SseOutput = serde_json::from_slice(&out.stdout)?;
                let mut ttfc: Vec<f64> = o.streams.iter().map(|s| s.ttfc_us as f64).collect();
                ttfc.sort_by(f64::total_cmp);
                say(format!(
                    "  sse {:<5} {:<9} first chunk median {:.2} ms, {} streams, {} errors",
                    if up == Up::Plain { "plain" } else { "tls" },
                    t.name,
                    ttfc.get(ttfc.len() / 2).copied().unwrap_or(f64::NAN) / 1000.0,
                    o.streams.len(),
                    o.errors
                ));
                res.sse.push(SseSample {
                    round,
                    up,
                    target: t.name.clone(),
                    out: o,
                });
            }
        }
    }

    std::thread::sleep(Duration::from_secs(2));
    for t in &targets {
        if let Some(g) = &t.group {
            res.idle_rss_after_kib.insert(t.name.clone(), g.rss_kib());
            res.idle_rss_anon_after_kib
                .insert(t.name.clone(), g.rss_anon_kib());
        }
    }
    res.capture_lines = capture_counter.settled();
    res.upstream_versions = upstream_versions(&capture)?;

    // 9. Profiles: a cpu-clock sample of the running authtap (kernel included), then callgrind
    // on an instance of its own.
    if args.profile_seconds > 0.0 {
        if let Some(t) = targets.iter().find(|t| t.name == "authtap") {
            let pid = t.group.as_ref().map_or(0, |g| g.pids[0]);
            match perf_profile(&args, &gen_, &work, pid, &t.plain_url) {
                Ok(p) => res.perf = Some(p),
                Err(e) => {
                    let note = format!("perf profile failed: {e:#}");
                    say(&note);
                    res.notes.push(note);
                }
            }
        }
        match profile(&args, &gen_, &work, &authtap_cmd) {
            Ok(p) => res.profile = Some(p),
            Err(e) => {
                let note = format!("profile failed: {e:#}");
                say(&note);
                res.notes.push(note);
            }
        }
    }

    // The proxies are done; stop them so the replay runs on a quiet machine.
    drop(procs);

    // 10. Replay throughput on generated captures.
    let small = (args.replay_records / 10).max(1);
    let mut files = Vec::new();
    for n in [small, args.replay_records] {
        let path = work.join(format!("replay-{n}.jsonl"));
        say(format!("generating a {n}-record capture from authtap's"));
        crate::capture::generate(&crate::capture::Args {
            from: capture.clone(),
            records: n,
            out: path.clone(),
        })?;
        files.push((n, path));
    }
    for run in 0..args.replay_runs {
        for (n, path) in &files {
            let replay = [
                args.authtap.as_os_str(),
                "replay".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
            ];
            let (r, shown) = time_reading(&replay, *n, path)?;
            if run == 0 {
                res.commands.push((format!("replay {n} records"), shown));
            }
            say(format!(
                "replay {n:>8} records: {:.2} s wall, {:.0} records/s, {:.0} records per CPU-second, peak RSS {:.1} MiB{}",
                r.wall_s,
                r.records as f64 / r.wall_s,
                r.records as f64 / (r.user_s + r.sys_s),
                r.max_rss_kib as f64 / 1024.0,
                if r.exit_ok { "" } else { " (non-zero exit)" }
            ));
            res.replay.push(r);
        }
    }
    // The floor: the same lines parsed into nothing, timed the same way.
    if let Some((n, path)) = files.last() {
        let harness = std::env::current_exe()?;
        for run in 0..args.replay_runs {
            let (r, shown) = time_reading(&[harness.as_os_str(), "scan".as_ref()], *n, path)?;
            if run == 0 {
                res.commands
                    .push((format!("JSON scan floor, {n} records"), shown));
            }
            say(format!(
                "JSON scan floor {n:>8} records: {:.0} records per CPU-second",
                r.records as f64 / (r.user_s + r.sys_s),
            ));
            res.replay_floor.push(r);
        }
    }
    for (_, path) in &files {
        let _ = fs::remove_file(path);
    }

    // 11. What else ran.
    let busy1 = procfs::machine_busy_cpu();
    let ours1 = procfs::self_cpu() + procfs::waited_children_cpu();
    let others1 = others_snapshot();
    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    for (pid, (name, cpu)) in &others1 {
        let before = others0.get(pid).map_or(0.0, |(_, c)| *c);
        *by_name.entry(name.clone()).or_default() += (cpu - before).max(0.0);
    }
    let mut top: Vec<(String, f64)> = by_name.into_iter().filter(|(_, c)| *c >= 1.0).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(6);
    res.elapsed_s = t_start.elapsed().as_secs_f64();
    res.other = OtherWork {
        machine_busy_cpu_s: busy1 - busy0,
        ours_cpu_s: ours1 - ours0,
        wall_s: res.elapsed_s,
        top,
    };

    fs::write(
        work.join("results.json"),
        serde_json::to_string_pretty(&res)?,
    )?;
    crate::report::write(&res, &args.out)?;
    say(format!(
        "wrote {} (raw numbers: {}) in {:.1} min",
        args.out.display(),
        work.join("results.json").display(),
        res.elapsed_s / 60.0
    ));
    Ok(())
}

fn with_arg(bin: &str, arg: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg(arg);
    c
}

fn nginx_conf(dir: &Path, port: u16, http: u16, https: u16, ca: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# nginx as a streaming reverse proxy for the bench upstream, written by authtap-bench.
daemon off;
master_process on;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    # One line per exchange to a file, as authtap's capture and mitmdump's flow log.
    access_log {d}/access.log combined;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    upstream bench_plain {{ server 127.0.0.1:{http}; keepalive 64; keepalive_requests 1000000; }}
    upstream bench_tls {{ server 127.0.0.1:{https}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        location /bench/ {{
            proxy_pass http://bench_plain/;
        }}
        location /bench-tls/ {{
            proxy_pass https://bench_tls/;
            proxy_ssl_server_name on;
            proxy_ssl_name bench.test;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_session_reuse on;
        }}
    }}
}}
"#,
        ca = ca.display()
    )
}

/// How many records in authtap's capture went upstream over each HTTP version, per route.
fn upstream_versions(capture: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let f = fs::File::open(capture)?;
    for line in BufReader::new(f).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let key = format!(
            "{} via {}",
            v["route"].as_str().unwrap_or("?"),
            v["upstream_version"].as_str().unwrap_or("none")
        );
        *out.entry(key).or_default() += 1;
    }
    Ok(out)
}

fn perf_profile(
    args: &Args,
    gen_: &LoadGen,
    work: &Path,
    pid: u32,
    url: &str,
) -> anyhow::Result<PerfProfile> {
    let dir = work.join("profile");
    fs::create_dir_all(&dir)?;
    let data = dir.join("perf.data");
    let seconds = (args.profile_seconds / 2.0).max(3.0);
    let mut c = Command::new("perf");
    c.args(["record", "-e", "cpu-clock", "-F", "2000", "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg("sleep")
        .arg(format!("{seconds}"));
    let command = shell_words(&c);
    let (o, e) = log_file(work, "perf-record")?;
    c.stdout(o).stderr(e);
    say(format!(
        "sampling authtap with perf (cpu-clock) for {seconds:.0} s at c=32, plain upstream"
    ));
    let mut child = c.spawn().context("starting perf record")?;
    std::thread::sleep(Duration::from_millis(300));
    let spec = Spec {
        url,
        concurrency: 32,
        seconds: seconds - 0.6,
        key: GOOD_KEY,
        body: JSON_BODY,
    };
    let load = gen_.display(&spec);
    let outcome = gen_.run(&spec)?;
    let status = child.wait()?;
    if !status.success() || !data.exists() {
        bail!("perf record exited with {status}; see perf-record.log");
    }
    let report = |extra: &[&str], rows: usize| -> anyhow::Result<String> {
        let o = Command::new("perf")
            .args(["report", "--stdio", "--no-children"])
            .args(extra)
            .arg("-i")
            .arg(&data)
            .output()?;
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .take(rows)
            .map(|l| {
                if l.chars().count() > 160 {
                    l.chars().take(157).collect::<String>() + "..."
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"))
    };
    Ok(PerfProfile {
        command,
        load: format!("{load}  ({:.0} req/s while sampled)", outcome.rps),
        by_dso: report(
            &["--sort", "dso", "--percent-limit", "0.5", "-g", "none"],
            10,
        )?,
        by_symbol: report(
            &[
                "--sort",
                "dso,symbol",
                "--percent-limit",
                "0.6",
                "-g",
                "none",
            ],
            40,
        )?,
        kernel_chains: report(
            &[
                "--sort",
                "symbol",
                "--percent-limit",
                "8",
                "-g",
                "caller,2,callee",
            ],
            90,
        )?,
    })
}

type AuthtapCmd<'a> = dyn Fn(u16, &Path, &Path, Option<&[&str]>) -> Command + 'a;

fn profile(
    args: &Args,
    gen_: &LoadGen,
    work: &Path,
    authtap_cmd: &AuthtapCmd,
) -> anyhow::Result<Profile> {
    let dir = work.join("profile");
    fs::create_dir_all(dir.join("home"))?;
    let out_file = dir.join("callgrind.out");
    let port = free_port()?;
    let tool_args = [
        "valgrind",
        "--tool=callgrind",
        &format!("--callgrind-out-file={}", out_file.display()),
    ];
    let mut c = authtap_cmd(
        port,
        &dir.join("capture.jsonl"),
        &dir.join("home"),
        Some(&tool_args),
    );
    let (o, e) = log_file(work, "authtap-callgrind")?;
    c.stdout(o).stderr(e);
    let command = shell_words(&c);
    say(format!(
        "profiling authtap under callgrind for {:.0} s of load (plain, TLS, 401)",
        args.profile_seconds
    ));
    let mut child = c.spawn().context("starting valgrind")?;
    if let Err(e) = wait_port(
        port,
        Duration::from_secs(90),
        &mut child,
        "authtap under valgrind",
    ) {
        stop("valgrind", child);
        return Err(e);
    }
    let mut requests = 0;
    let parts = [
        ("bench", GOOD_KEY, 0.5),
        ("bench-tls", GOOD_KEY, 0.3),
        ("bench", INVALID_KEY, 0.2),
    ];
    for (route, key, share) in parts {
        let url = format!("http://127.0.0.1:{port}/{route}/v1/chat/completions");
        let spec = Spec {
            url: &url,
            concurrency: 8,
            seconds: (args.profile_seconds * share).max(1.0),
            key,
            body: JSON_BODY,
        };
        match gen_.run(&spec) {
            Ok(o) => requests += o.requests,
            Err(e) => say(format!("profile load on {route}: {e:#}")),
        }
    }
    stop("authtap under valgrind", child);
    if !out_file.exists() {
        bail!("callgrind wrote no {}", out_file.display());
    }
    let annotate = |inclusive: bool| -> anyhow::Result<String> {
        let o = Command::new("callgrind_annotate")
            .arg(format!(
                "--inclusive={}",
                if inclusive { "yes" } else { "no" }
            ))
            .arg("--threshold=99")
            .arg(&out_file)
            .output()?;
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let (self_out, incl_out) = (annotate(false)?, annotate(true)?);
    let perf_instructions = Command::new("perf")
        .args(["stat", "-e", "instructions", "true"])
        .output()
        .map(|o| {
            let e = String::from_utf8_lossy(&o.stderr);
            o.status.success() && !e.contains("not supported") && !e.contains("<not counted>")
        })
        .unwrap_or(false);
    Ok(Profile {
        perf_instructions,
        tool: first_line(with_arg("valgrind", "--version")),
        command,
        requests,
        self_top: clean_annotate(&self_out, 30, false),
        inclusive_top: clean_annotate(&incl_out, 12, false),
        own_inclusive: clean_annotate(&incl_out, 35, true),
    })
}

/// `authtap-bench annotate FILE`: the three callgrind tables, as RESULTS.md shows them.
pub fn annotate(file: &Path) -> anyhow::Result<()> {
    for (inclusive, n, own) in [(false, 30, false), (true, 35, true)] {
        let o = Command::new("callgrind_annotate")
            .arg(format!(
                "--inclusive={}",
                if inclusive { "yes" } else { "no" }
            ))
            .arg("--threshold=99")
            .arg(file)
            .output()?;
        println!(
            "{}\n",
            clean_annotate(&String::from_utf8_lossy(&o.stdout), n, own)
        );
    }
    Ok(())
}

/// The function table of callgrind_annotate's output, top `n` rows, as `count (share)  function
/// [file]`; `own` keeps only authtap's crates, once per function.
fn clean_annotate(s: &str, n: usize, own: bool) -> String {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut in_table = false;
    for l in s.lines() {
        if l.contains("file:function") {
            in_table = true;
            continue;
        }
        if !in_table || l.starts_with("--") {
            continue;
        }
        if l.trim().is_empty() {
            if rows.is_empty() {
                continue;
            }
            break;
        }
        // "  1,234 (12.3%)  path/to/file.rs:crate::function [/path/binary]"
        let l = l.trim_start();
        let Some(pct_end) = l.find(")  ") else {
            continue;
        };
        let (count, rest) = (&l[..=pct_end], l[pct_end + 3..].trim());
        let rest = rest.rsplit_once(" [").map_or(rest, |(r, _)| r);
        let (file, function) = match rest
            .find(".rs:")
            .or_else(|| rest.find(".c:"))
            .or_else(|| rest.find(".S:"))
        {
            Some(i) => {
                let colon = i + rest[i..].find(':').unwrap_or(0);
                (&rest[..colon], &rest[colon + 1..])
            }
            None => ("", rest),
        };
        if own
            && !(function.starts_with("authtap::")
                || function.starts_with("authtap_inspector::")
                || function.starts_with("authtap_config::")
                || function.contains("for authtap"))
        {
            continue;
        }
        if own && !seen.insert(function.to_owned()) {
            continue;
        }
        let file = file.rsplit('/').next().unwrap_or(file);
        let mut row = format!("{count}  {function}  [{file}]");
        if row.chars().count() > 170 {
            row = row.chars().take(167).collect::<String>() + "...";
        }
        rows.push(row);
        if rows.len() >= n {
            break;
        }
    }
    rows.join("\n")
}

/// `/usr/bin/time -v COMMAND... PATH > /dev/null`, where PATH is a capture of `records` records:
/// what it cost, and the command line as "Commands" shows it.
fn time_reading(
    command: &[&std::ffi::OsStr],
    records: u64,
    path: &Path,
) -> anyhow::Result<(ReplaySample, String)> {
    let mut c = Command::new("/usr/bin/time");
    c.arg("-v").args(command).arg(path);
    let shown = shell_words(&c) + " > /dev/null";
    let out = c.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let sample = parse_time_v(
        &err,
        records,
        fs::metadata(path)?.len(),
        out.status.success(),
    );
    Ok((sample, shown))
}

fn parse_time_v(s: &str, records: u64, bytes: u64, exit_ok: bool) -> ReplaySample {
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
    let wall_s = wall
        .split(':')
        .fold(0.0, |acc, p| acc * 60.0 + p.parse::<f64>().unwrap_or(0.0));
    ReplaySample {
        records,
        bytes,
        wall_s,
        user_s: field("User time (seconds):").parse().unwrap_or(0.0),
        sys_s: field("System time (seconds):").parse().unwrap_or(0.0),
        max_rss_kib: field("Maximum resident set size (kbytes):")
            .parse()
            .unwrap_or(0),
        exit_ok,
    }
}

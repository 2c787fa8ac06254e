//! The load generator behind every throughput and latency number: `oha` (JSON output, its
//! percentiles) or `wrk` (a Lua `done()` hook prints the same fields as JSON). Both keep their
//! connections alive and send the same POST with the same headers; both are closed-loop, so at
//! concurrency C there are exactly C requests in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Oha,
    Wrk,
}

#[derive(Debug, Clone)]
pub struct LoadGen {
    pub kind: Kind,
    pub bin: PathBuf,
    /// CA for the direct https:// path (oha verifies; wrk does not check certificates).
    pub ca: PathBuf,
    pub work: PathBuf,
}

pub struct Spec<'a> {
    pub url: &'a str,
    pub concurrency: usize,
    pub seconds: f64,
    pub key: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Outcome {
    /// Responses received (any status).
    pub requests: u64,
    pub non_2xx: u64,
    /// Connection or protocol errors (no response).
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl LoadGen {
    pub fn version(&self) -> String {
        Command::new(&self.bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| {
                let s = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                s.lines().next().unwrap_or("").trim().to_owned()
            })
            .unwrap_or_default()
    }

    pub fn command(&self, spec: &Spec) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.bin);
        match self.kind {
            Kind::Oha => {
                cmd.args(["--no-tui", "--output-format", "json", "-z"])
                    .arg(format!("{}ms", (spec.seconds * 1000.0) as u64))
                    .arg("-c")
                    .arg(spec.concurrency.to_string())
                    // Wait for the requests in flight at the deadline, so every request the
                    // proxy saw is counted (the capture line count is checked against this).
                    .arg("-w")
                    .args(["-m", "POST", "-T", "application/json"])
                    .arg("-H")
                    .arg(format!("Authorization: Bearer {}", spec.key))
                    .arg("-d")
                    .arg(spec.body)
                    .arg("--cacert")
                    .arg(&self.ca)
                    .arg(spec.url);
            }
            Kind::Wrk => {
                let script = self.work.join(format!("wrk-{}.lua", spec.key.len()));
                write_wrk_script(&script, spec)?;
                let threads = spec.concurrency.min(2);
                cmd.arg("-t")
                    .arg(threads.to_string())
                    .arg("-c")
                    .arg(spec.concurrency.to_string())
                    .arg("-d")
                    .arg(format!("{}s", spec.seconds.max(1.0).round() as u64))
                    .arg("--latency")
                    .arg("-s")
                    .arg(&script)
                    .arg(spec.url);
            }
        }
        Ok(cmd)
    }

    pub fn run(&self, spec: &Spec) -> anyhow::Result<Outcome> {
        let out = self
            .command(spec)?
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "{} failed: {}{}",
                self.bin.display(),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match self.kind {
            Kind::Oha => parse_oha(&stdout),
            Kind::Wrk => parse_wrk(&stdout),
        }
    }

    /// The command line as a person would type it, for RESULTS.md.
    pub fn display(&self, spec: &Spec) -> String {
        let Ok(cmd) = self.command(spec) else {
            return String::new();
        };
        let mut s = self
            .bin
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for a in cmd.get_args() {
            let a = a.to_string_lossy();
            if a.contains([' ', '"', '{']) {
                s += &format!(" '{a}'");
            } else {
                s += &format!(" {a}");
            }
        }
        s
    }
}

#[derive(Deserialize)]
struct OhaJson {
    summary: OhaSummary,
    #[serde(rename = "latencyPercentiles")]
    latency: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    status: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct OhaSummary {
    total: f64,
}

fn parse_oha(stdout: &str) -> anyhow::Result<Outcome> {
    let j: OhaJson = serde_json::from_str(stdout).context("oha's JSON output")?;
    let requests: u64 = j.status.values().sum();
    let non_2xx = j
        .status
        .iter()
        .filter(|(k, _)| !k.starts_with('2'))
        .map(|(_, v)| v)
        .sum();
    let pct = |k: &str| j.latency.get(k).copied().flatten().unwrap_or(f64::NAN) * 1000.0;
    Ok(Outcome {
        requests,
        non_2xx,
        errors: j.errors.values().sum(),
        seconds: j.summary.total,
        rps: requests as f64 / j.summary.total,
        p50_ms: pct("p50"),
        p99_ms: pct("p99"),
    })
}

fn write_wrk_script(path: &Path, spec: &Spec) -> anyhow::Result<()> {
    let lua = format!(
        r#"wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#,
        body = spec.body,
        key = spec.key
    );
    std::fs::write(path, lua)?;
    Ok(())
}

fn parse_wrk(stdout: &str) -> anyhow::Result<Outcome> {
    #[derive(Deserialize)]
    struct W {
        requests: u64,
        duration_us: u64,
        errors: u64,
        p50_us: f64,
        p99_us: f64,
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("wrk printed no result line")?;
    let w: W = serde_json::from_str(line)?;
    let seconds = w.duration_us as f64 / 1e6;
    // A `response()` hook would count statuses but makes wrk parse every response in Lua; its
    // own text report has the count.
    let non_2xx = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Outcome {
        requests: w.requests,
        non_2xx,
        errors: w.errors,
        seconds,
        rps: w.requests as f64 / seconds,
        p50_ms: w.p50_us / 1000.0,
        p99_ms: w.p99_us / 1000.0,
    })
}

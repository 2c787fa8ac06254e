//! What the kernel says about a process group: CPU time from `/proc/PID/stat` (utime + stime),
//! peak and current RSS from `/proc/PID/status` (VmHWM, VmRSS), and the peak reset through
//! `/proc/PID/clear_refs` (writing `5` resets VmHWM to the current RSS, Linux 4.0+).

use std::sync::OnceLock;

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
fn ticks_per_sec() -> f64 {
    static T: OnceLock<f64> = OnceLock::new();
    *T.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/PID/stat` after the command name, so `fields[0]` is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User and system CPU seconds of one process (all its threads, live and exited).
pub fn cpu(pid: u32) -> Option<(f64, f64)> {
    let f = stat_fields(pid)?;
    let t = ticks_per_sec();
    Some((
        f[11].parse::<f64>().ok()? / t,
        f[12].parse::<f64>().ok()? / t,
    ))
}

/// CPU seconds of the children this process has waited for (cutime + cstime of /proc/self/stat).
pub fn waited_children_cpu() -> f64 {
    let Some(f) = stat_fields(std::process::id()) else {
        return 0.0;
    };
    let t = ticks_per_sec();
    (f[13].parse::<f64>().unwrap_or(0.0) + f[14].parse::<f64>().unwrap_or(0.0)) / t
}

/// This process's own CPU seconds.
pub fn self_cpu() -> f64 {
    cpu(std::process::id()).map_or(0.0, |(u, s)| u + s)
}

/// Direct children of `pid` (nginx's workers under its master).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if stat_fields(child).and_then(|f| f[1].parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out.sort_unstable();
    out
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| {
        v.trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Peak resident set size (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Anonymous resident memory (RssAnon: heap, stacks; not the mapped binary), KiB.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon")
}

/// Current resident set size (VmRSS), KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Context switches (voluntary and not) of every live thread of `pid`.
pub fn ctx_switches(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Reset the peak RSS to the current RSS.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Busy CPU seconds of the whole machine so far (all of /proc/stat's `cpu` line but idle and
/// iowait), to tell how much else ran during the benchmark.
pub fn machine_busy_cpu() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    let busy: f64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / ticks_per_sec()
}

/// A set of processes measured together (nginx: master and workers).
#[derive(Debug, Clone)]
pub struct Group {
    pub pids: Vec<u32>,
}

impl Group {
    pub fn cpu(&self) -> (f64, f64) {
        self.pids
            .iter()
            .filter_map(|&p| cpu(p))
            .fold((0.0, 0.0), |(u, s), (a, b)| (u + a, s + b))
    }
    pub fn reset_peak(&self) {
        self.pids.iter().for_each(|&p| reset_peak(p));
    }
    pub fn peak_rss_kib(&self) -> u64 {
        self.pids.iter().filter_map(|&p| peak_rss_kib(p)).sum()
    }
    pub fn ctx_switches(&self) -> u64 {
        self.pids.iter().map(|&p| ctx_switches(p)).sum()
    }
    pub fn rss_anon_kib(&self) -> u64 {
        self.pids.iter().filter_map(|&p| rss_anon_kib(p)).sum()
    }
    pub fn rss_kib(&self) -> u64 {
        self.pids.iter().filter_map(|&p| rss_kib(p)).sum()
    }
}

//! RESULTS.md from one run's [`Results`]: medians with min–max over rounds, ratios paired by
//! round (authtap's run and nginx's in the same round sit next to each other in time, so their
//! ratio cancels most drift), the targets with pass/fail, and the profile.
//!
//! The hand-written analysis between `<!-- analysis:begin -->` and `<!-- analysis:end -->` in an
//! existing RESULTS.md is kept across runs (re-read it against the new numbers).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::run::{Results, Up};
use crate::upstream::SSE_EVENTS;

const BEGIN: &str = "<!-- analysis:begin -->";
const END: &str = "<!-- analysis:end -->";

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// `12,345` style thousands for rates.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// "median (min–max)"
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let (lo, hi) = min_max(v);
    if v.len() == 1 {
        return f(median(v));
    }
    format!("{} ({}–{})", f(median(v)), f(lo), f(hi))
}

fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "n/a".into()
    }
}

struct Verdict {
    what: String,
    measured: String,
    pass: Option<bool>,
}

pub fn write(r: &Results, out: &Path) -> anyhow::Result<()> {
    let kept = std::fs::read_to_string(out).ok().and_then(|old| {
        let b = old.find(BEGIN)?;
        let e = old.find(END)?;
        (e > b).then(|| old[b + BEGIN.len()..e].trim().to_owned())
    });
    std::fs::write(out, render(r, kept.as_deref()))?;
    Ok(())
}

/// Per-round values of one metric for (scenario, target).
fn series(
    r: &Results,
    scenario: &str,
    target: &str,
    f: impl Fn(&crate::run::LoadSample) -> f64,
) -> Vec<f64> {
    r.loads
        .iter()
        .filter(|s| s.scenario == scenario && s.target == target)
        .map(f)
        .collect()
}

/// Median over rounds of metric(target) / metric(reference) in the same round.
fn paired(
    r: &Results,
    scenario: &str,
    target: &str,
    reference: &str,
    f: impl Fn(&crate::run::LoadSample) -> f64,
) -> f64 {
    let mut ratios = Vec::new();
    for round in 0..r.rounds {
        let get = |t: &str| {
            r.loads
                .iter()
                .find(|s| s.round == round && s.scenario == scenario && s.target == t)
                .map(&f)
        };
        if let (Some(a), Some(b)) = (get(target), get(reference)) {
            if b > 0.0 {
                ratios.push(a / b);
            }
        }
    }
    median(&ratios)
}

fn cpu_us(s: &crate::run::LoadSample) -> f64 {
    if s.peak_rss_kib.is_none() {
        return f64::NAN;
    }
    (s.cpu_user_s + s.cpu_sys_s) / s.outcome.requests.max(1) as f64 * 1e6
}

struct SseStats {
    ttfc_ms: f64,
    ttfc_round_medians: Vec<f64>,
    /// Median arrival of each event, ms after the request.
    per_event_ms: Vec<f64>,
    all: Vec<Vec<f64>>,
    streams: usize,
    errors: usize,
}

fn sse_stats(r: &Results, up: Up, target: &str) -> Option<SseStats> {
    let samples: Vec<_> = r
        .sse
        .iter()
        .filter(|s| s.up == up && s.target == target)
        .collect();
    if samples.is_empty() {
        return None;
    }
    let mut ttfc = Vec::new();
    let mut round_medians = Vec::new();
    let mut all = Vec::new();
    let mut errors = 0;
    for s in &samples {
        let t: Vec<f64> = s
            .out
            .streams
            .iter()
            .map(|x| x.ttfc_us as f64 / 1000.0)
            .collect();
        round_medians.push(median(&t));
        ttfc.extend(t);
        errors += s.out.errors;
        for st in &s.out.streams {
            if st.offsets_us.len() == SSE_EVENTS {
                all.push(
                    st.offsets_us
                        .iter()
                        .map(|&o| o as f64 / 1000.0)
                        .collect::<Vec<_>>(),
                );
            } else {
                errors += 1;
            }
        }
    }
    let per_event_ms = (0..SSE_EVENTS)
        .map(|i| median(&all.iter().map(|s| s[i]).collect::<Vec<_>>()))
        .collect();
    Some(SseStats {
        ttfc_ms: median(&ttfc),
        ttfc_round_medians: round_medians,
        per_event_ms,
        streams: ttfc.len(),
        all,
        errors,
    })
}

fn render(r: &Results, kept: Option<&str>) -> String {
    let mut md = String::new();
    let has = |t: &str| r.targets.iter().any(|x| x == t);
    let m = &r.machine;
    let _ = writeln!(md, "# authtap benchmark results\n");
    let _ = writeln!(
        md,
        "Written by `bench/run.sh` (see [README.md](README.md) for what each number means). Every number \
         below comes from the one run described here; rerun `bench/run.sh` to refresh the whole file \
         (the analysis section between the `analysis` markers is kept and must be re-read by hand).\n"
    );
    let _ = writeln!(md, "## The run\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| date (UTC) | {} |",
        r.started.get(..19).unwrap_or(&r.started).replace('T', " ")
    );
    let _ = writeln!(md, "| command | `{}` |", r.command_line);
    let _ = writeln!(
        md,
        "| shape | {} rounds; each round runs every load scenario against every target for {:.0} s, targets in a rotated order (A/B/C/D, B/C/D/A, ...), then {} timed SSE streams ({} at once) per target and upstream; then a callgrind profile of authtap, then `authtap replay` |",
        r.rounds, r.seconds, r.sse_streams, r.sse_concurrency
    );
    let _ = writeln!(md, "| took | {:.1} min |", r.elapsed_s / 60.0);
    let _ = writeln!(
        md,
        "| machine | {}, {} cores, {:.1} GiB memory, Linux {}, {} |",
        m.cpu_model, m.cores, m.mem_gib, m.kernel, m.os
    );
    for (k, v) in &r.versions {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let o = &r.other;
    // The machine's busy time (/proc/stat) and the processes' own (utime+stime) are sampled by
    // different clocks; on this VM the second can come out a few percent larger. Below zero is none.
    let other = (o.machine_busy_cpu_s - o.ours_cpu_s).max(0.0);
    let _ = writeln!(
        md,
        "| other work on the machine | {} |",
        if other > 0.05 * o.wall_s {
            format!(
                "yes: {:.0} CPU-seconds not from the benchmark during the {:.0} s run (on average {:.2} of the {} cores){}. Everything shares 2 cores with the load generator and the upstream, which is why ratios are paired by round",
                other,
                o.wall_s,
                other / o.wall_s,
                m.cores,
                if o.top.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the largest: {}",
                        o.top
                            .iter()
                            .map(|(n, c)| format!("{n} {c:.0} s"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )
        } else {
            format!(
                "hardly any ({other:.0} CPU-seconds outside the benchmark in {:.0} s)",
                o.wall_s
            )
        }
    );
    let _ = writeln!(md);
    for n in &r.notes {
        let _ = writeln!(md, "Note: {n}\n");
    }

    // Targets.
    let mut verdicts: Vec<Verdict> = Vec::new();
    for (sc, label) in [("json-plain-c32", "plain"), ("json-tls-c32", "TLS")] {
        if has("nginx") {
            let rps = paired(r, sc, "authtap", "nginx", |s| s.outcome.rps);
            verdicts.push(Verdict {
                what: format!("throughput at c=32, {label} upstream: at least 1.0× nginx"),
                measured: format!(
                    "{} (authtap {} req/s, nginx {} req/s, medians)",
                    ratio(rps),
                    thousands(median(&series(r, sc, "authtap", |s| s.outcome.rps))),
                    thousands(median(&series(r, sc, "nginx", |s| s.outcome.rps)))
                ),
                pass: rps.is_finite().then_some(rps >= 1.0),
            });
            let cpu = paired(r, sc, "authtap", "nginx", cpu_us);
            verdicts.push(Verdict {
                what: format!("CPU per request at c=32, {label} upstream: at most nginx's"),
                measured: format!(
                    "{} (authtap {} µs, nginx {} µs, medians)",
                    ratio(cpu),
                    num(median(&series(r, sc, "authtap", cpu_us)), 1),
                    num(median(&series(r, sc, "nginx", cpu_us)), 1)
                ),
                pass: cpu.is_finite().then_some(cpu <= 1.0),
            });
            let p99 = paired(r, sc, "authtap", "nginx", |s| s.outcome.p99_ms);
            verdicts.push(Verdict {
                what: format!("p99 latency at c=32, {label} upstream: at most 1.2× nginx's"),
                measured: format!(
                    "{} (authtap {} ms, nginx {} ms, medians)",
                    ratio(p99),
                    num(median(&series(r, sc, "authtap", |s| s.outcome.p99_ms)), 2),
                    num(median(&series(r, sc, "nginx", |s| s.outcome.p99_ms)), 2)
                ),
                pass: p99.is_finite().then_some(p99 <= 1.2),
            });
        }
    }
    for up in [Up::Plain, Up::Tls] {
        let (Some(a), Some(d)) = (sse_stats(r, up, "authtap"), sse_stats(r, up, "direct")) else {
            continue;
        };
        let dt = a.ttfc_ms - d.ttfc_ms;
        verdicts.push(Verdict {
            what: format!(
                "SSE time to first chunk, {}: within 1 ms of direct",
                up.label()
            ),
            measured: format!(
                "{:+.2} ms (authtap {:.2} ms, direct {:.2} ms, medians of {} streams)",
                dt, a.ttfc_ms, d.ttfc_ms, a.streams
            ),
            pass: Some(dt <= 1.0),
        });
        let worst = worst_added(&a, &d);
        verdicts.push(Verdict {
            what: format!(
                "SSE, {}: no chunk more than 1 ms later than direct",
                up.label()
            ),
            measured: format!(
                "worst chunk {:+.2} ms (event {} of {}, medians per event)",
                worst.0,
                worst.1 + 1,
                SSE_EVENTS
            ),
            pass: Some(worst.0 <= 1.0),
        });
    }
    let peak32: Vec<f64> = r
        .loads
        .iter()
        .filter(|s| s.target == "authtap" && s.scenario.ends_with("c32"))
        .filter_map(|s| s.peak_rss_kib)
        .map(|k| k as f64 / 1024.0)
        .collect();
    let (_, peak_max) = min_max(&peak32);
    verdicts.push(Verdict {
        what: "authtap peak RSS under c=32: at most 16 MiB".into(),
        measured: format!("{peak_max:.1} MiB (highest VmHWM over all c=32 runs)"),
        pass: peak_max.is_finite().then_some(peak_max <= 16.0),
    });
    if let Some(&idle) = r.idle_rss_kib.get("authtap") {
        let idle = idle as f64 / 1024.0;
        let after = r
            .idle_rss_after_kib
            .get("authtap")
            .map(|&k| k as f64 / 1024.0);
        verdicts.push(Verdict {
            what: "authtap idle RSS: at most 10 MiB".into(),
            measured: format!(
                "{idle:.1} MiB after start and the smoke requests{}",
                after.map_or(String::new(), |a| format!(
                    ", {a:.1} MiB idle after all the load"
                ))
            ),
            pass: Some(idle <= 10.0 && after.is_none_or(|a| a <= 10.0)),
        });
    }
    let big = r.replay.iter().map(|x| x.records).max().unwrap_or(0);
    let small = r.replay.iter().map(|x| x.records).min().unwrap_or(0);
    let per_core = |n: u64| per_core_rate(&r.replay, n);
    let rss = |n: u64| {
        median(
            &r.replay
                .iter()
                .filter(|x| x.records == n)
                .map(|x| x.max_rss_kib as f64 / 1024.0)
                .collect::<Vec<_>>(),
        )
    };
    if big > 0 {
        let pc = per_core(big);
        let floor = replay_floor(r)
            .map(|f| {
                format!(
                    "; serde_json parsing the same lines into nothing: {} ({:.2}× the target)",
                    thousands(f),
                    f / 1e6
                )
            })
            .unwrap_or_default();
        verdicts.push(Verdict {
            what: "replay: at least 1,000,000 records/s per core".into(),
            measured: format!(
                "{} records per CPU-second on the {}-record capture ({:.2}× the target){floor}",
                thousands(pc),
                thousands(big as f64),
                pc / 1e6
            ),
            pass: Some(pc >= 1e6),
        });
        let (rb, rs) = (rss(big), rss(small));
        verdicts.push(Verdict {
            what: "replay memory flat as the capture grows".into(),
            measured: format!(
                "peak RSS {rs:.1} MiB at {} records, {rb:.1} MiB at {} records",
                thousands(small as f64),
                thousands(big as f64)
            ),
            pass: Some(rb <= rs + (rs * 0.1).max(1.0)),
        });
    }
    let _ = writeln!(md, "## Targets\n");
    let passed = verdicts.iter().filter(|v| v.pass == Some(true)).count();
    let _ = writeln!(
        md,
        "{passed} of {} targets pass. Ratios are authtap ÷ reference, the median of the per-round ratios.\n",
        verdicts.len()
    );
    let _ = writeln!(md, "| target | measured | result |\n|---|---|---|");
    for v in &verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            v.what,
            v.measured,
            match v.pass {
                Some(true) => "**pass**",
                Some(false) => "**FAIL**",
                None => "n/a",
            }
        );
    }
    let _ = writeln!(md);
    if has("hyper-floor") {
        let _ = writeln!(
            md,
            "**Against the hyper floor** (a bare hyper proxy built as authtap serves, recording nothing; \
             `bench/src/floor.rs`): what authtap's recording and inspection cost, and what the stack \
             costs against nginx.\n"
        );
        let _ = writeln!(
            md,
            "| scenario | authtap ÷ floor, req/s | authtap ÷ floor, CPU/req | floor ÷ nginx, req/s | floor ÷ nginx, CPU/req |\n|---|---|---|---|---|"
        );
        for sc in &r.scenarios {
            let cell = |t: &str, reference: &str, f: &dyn Fn(&crate::run::LoadSample) -> f64| {
                ratio(paired(r, &sc.id, t, reference, f))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                sc.label,
                cell("authtap", "hyper-floor", &|s| s.outcome.rps),
                cell("authtap", "hyper-floor", &cpu_us),
                cell("hyper-floor", "nginx", &|s| s.outcome.rps),
                cell("hyper-floor", "nginx", &cpu_us),
            );
        }
        let _ = writeln!(md);
    }

    // Load tables.
    let _ = writeln!(md, "## Load: throughput, latency, CPU, memory\n");
    let _ = writeln!(
        md,
        "Each cell: median over the {} rounds, (min–max) when there are several. `req/s` and the latency \
         percentiles are the load generator's; CPU is the proxy's own utime+stime over the run (all its \
         processes: nginx's master and workers) divided by the requests; peak RSS is VmHWM, reset before \
         each run (nginx: summed over its processes); context switches are those of all the proxy's \
         threads (voluntary: it blocked or parked; involuntary: preempted), from /proc/PID/task/*/status. The `vs` columns are per-round paired ratios. \
         `direct` is the load generator talking to the upstream itself: the physical limit.\n",
        r.rounds
    );
    for sc in &r.scenarios {
        let _ = writeln!(md, "### {}\n", sc.label);
        let _ = writeln!(
            md,
            "| target | req/s | p50 ms | p99 ms | CPU µs/req | context switches/req | peak RSS MiB | req/s vs direct | req/s vs nginx | p99 vs nginx | CPU vs nginx |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for t in &r.targets {
            let rps = series(r, &sc.id, t, |s| s.outcome.rps);
            if rps.is_empty() {
                continue;
            }
            let p50 = series(r, &sc.id, t, |s| s.outcome.p50_ms);
            let p99 = series(r, &sc.id, t, |s| s.outcome.p99_ms);
            let cpu = series(r, &sc.id, t, cpu_us);
            let cs: Vec<f64> = r
                .loads
                .iter()
                .filter(|s| s.scenario == sc.id && &s.target == t)
                .filter_map(|s| Some(s.ctx_switches? as f64 / s.outcome.requests.max(1) as f64))
                .collect();
            let rss: Vec<f64> = r
                .loads
                .iter()
                .filter(|s| s.scenario == sc.id && &s.target == t)
                .filter_map(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0))
                .collect();
            let errors: u64 = r
                .loads
                .iter()
                .filter(|s| s.scenario == sc.id && &s.target == t)
                .map(|s| s.outcome.errors)
                .sum();
            let vs = |reference: &str, f: &dyn Fn(&crate::run::LoadSample) -> f64| {
                if t == reference || !has(reference) {
                    "–".to_owned()
                } else {
                    ratio(paired(r, &sc.id, t, reference, f))
                }
            };
            let _ = writeln!(
                md,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t,
                if errors > 0 {
                    format!(" ({errors} errors)")
                } else {
                    String::new()
                },
                spread(&rps, thousands),
                spread(&p50, |x| num(x, 2)),
                spread(&p99, |x| num(x, 2)),
                if cpu.iter().all(|x| x.is_nan()) {
                    "–".into()
                } else {
                    spread(&cpu, |x| num(x, 1))
                },
                if cs.is_empty() {
                    "–".into()
                } else {
                    spread(&cs, |x| num(x, 2))
                },
                if rss.is_empty() {
                    "–".into()
                } else {
                    spread(&rss, |x| num(x, 1))
                },
                vs("direct", &|s| s.outcome.rps),
                vs("nginx", &|s| s.outcome.rps),
                vs("nginx", &|s| s.outcome.p99_ms),
                if t == "direct" {
                    "–".into()
                } else {
                    vs("nginx", &cpu_us)
                },
            );
        }
        let _ = writeln!(md);
    }

    // Memory.
    let _ = writeln!(md, "## Memory\n");
    let _ = writeln!(
        md,
        "VmRSS counts the touched pages of the mapped binary and libraries (file-backed, shared, \
         reclaimable) as well as the process's own heap and stacks (anonymous, RssAnon); the \
         anonymous part is in parentheses.\n"
    );
    let _ = writeln!(
        md,
        "| target | idle RSS at start MiB (anonymous) | idle RSS after the load MiB (anonymous) | highest peak RSS in a c=32 run MiB |\n|---|---|---|---|"
    );
    for t in &r.targets {
        let Some(&idle) = r.idle_rss_kib.get(t) else {
            continue;
        };
        let peaks: Vec<f64> = r
            .loads
            .iter()
            .filter(|s| &s.target == t && s.scenario.ends_with("c32"))
            .filter_map(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0))
            .collect();
        let anon = |m: &BTreeMap<String, u64>| {
            m.get(t)
                .map_or(String::new(), |&k| format!(" ({:.1})", k as f64 / 1024.0))
        };
        let _ = writeln!(
            md,
            "| {t} | {:.1}{} | {}{} | {:.1} |",
            idle as f64 / 1024.0,
            anon(&r.idle_rss_anon_kib),
            r.idle_rss_after_kib
                .get(t)
                .map_or("n/a".into(), |&k| format!("{:.1}", k as f64 / 1024.0)),
            anon(&r.idle_rss_anon_after_kib),
            min_max(&peaks).1
        );
    }
    let _ = writeln!(md);

    // SSE.
    let _ = writeln!(md, "## SSE streaming\n");
    let _ = writeln!(
        md,
        "The upstream sends the headers at once, then {} events 25 ms apart; the client timestamps each \
         event when its last byte arrives. *First chunk*: median over all streams, (min–max of the \
         per-round medians). *Worst chunk vs direct*: for each event, the median arrival over all streams \
         minus direct's; the worst event. *p99 chunk vs direct*: the 99th percentile over every event of \
         every stream of (its arrival − direct's median for that event), which includes scheduling noise.\n",
        SSE_EVENTS
    );
    for up in [Up::Plain, Up::Tls] {
        let _ = writeln!(md, "### {}\n", up.label());
        let _ = writeln!(
            md,
            "| target | first chunk ms | vs direct ms | worst chunk vs direct ms | p99 chunk vs direct ms | last chunk ms | streams | errors |\n|---|---|---|---|---|---|---|---|"
        );
        let direct = sse_stats(r, up, "direct");
        for t in &r.targets {
            let Some(s) = sse_stats(r, up, t) else {
                continue;
            };
            let (dt, worst, p99) = match &direct {
                Some(d) if t != "direct" => {
                    let w = worst_added(&s, d);
                    let all: Vec<f64> = s
                        .all
                        .iter()
                        .flat_map(|st| st.iter().zip(&d.per_event_ms).map(|(a, b)| a - b))
                        .collect();
                    (
                        format!("{:+.2}", s.ttfc_ms - d.ttfc_ms),
                        format!("{:+.2} (event {})", w.0, w.1 + 1),
                        format!("{:+.2}", percentile(&all, 99.0)),
                    )
                }
                _ => ("–".into(), "–".into(), "–".into()),
            };
            let (lo, hi) = min_max(&s.ttfc_round_medians);
            let _ = writeln!(
                md,
                "| {t} | {:.2} ({:.2}–{:.2}) | {dt} | {worst} | {p99} | {:.2} | {} | {} |",
                s.ttfc_ms,
                lo,
                hi,
                s.per_event_ms.last().copied().unwrap_or(f64::NAN),
                s.streams,
                s.errors
            );
        }
        let _ = writeln!(md);
    }

    // Capture writer.
    let _ = writeln!(md, "## authtap's capture writer\n");
    let _ = writeln!(
        md,
        "authtap writes one JSON line per exchange (with its findings) to the capture file. Records per \
         second written during the c=32 runs, and whether the capture got exactly one line per request \
         the load generator counted:\n"
    );
    let _ = writeln!(
        md,
        "| scenario | records/s written | records = requests in every run |\n|---|---|---|"
    );
    for sc in r.scenarios.iter().filter(|s| s.concurrency == 32) {
        let runs: Vec<_> = r
            .loads
            .iter()
            .filter(|s| s.scenario == sc.id && s.target == "authtap")
            .collect();
        let rates: Vec<f64> = runs
            .iter()
            .filter_map(|s| Some(s.records_written? as f64 / s.outcome.seconds))
            .collect();
        let mism: Vec<String> = runs
            .iter()
            .filter(|s| s.records_written != Some(s.outcome.requests + s.outcome.errors))
            .map(|s| {
                format!(
                    "round {}: {} records for {} responses + {} errors",
                    s.round + 1,
                    s.records_written.unwrap_or(0),
                    s.outcome.requests,
                    s.outcome.errors
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            sc.label,
            spread(&rates, thousands),
            if mism.is_empty() {
                "yes".to_owned()
            } else {
                format!("no: {}", mism.join("; "))
            }
        );
    }
    let _ = writeln!(
        md,
        "\nThe whole capture: {} lines. Upstream HTTP versions authtap recorded: {}.\n",
        thousands(r.capture_lines as f64),
        r.upstream_versions
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Replay.
    let _ = writeln!(md, "## authtap replay\n");
    let _ = writeln!(
        md,
        "Captures generated from this run's own capture (its 200s, SSE streams and 401s, each record \
         with a fresh id), replayed with `/usr/bin/time -v authtap replay --config bench.toml FILE > /dev/null` \
         (the file is in the page cache). Records per CPU-second is records ÷ (user + system time): the \
         per-core rate.\n"
    );
    let _ = writeln!(
        md,
        "| records | file MiB | wall s | records/s (wall) | records per CPU-second | peak RSS MiB | runs |\n|---|---|---|---|---|---|---|"
    );
    let mut sizes: Vec<u64> = r.replay.iter().map(|x| x.records).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let runs: Vec<_> = r.replay.iter().filter(|x| x.records == n).collect();
        let wall: Vec<f64> = runs.iter().map(|x| x.wall_s).collect();
        let rate: Vec<f64> = runs.iter().map(|x| x.records as f64 / x.wall_s).collect();
        let core: Vec<f64> = runs
            .iter()
            .map(|x| x.records as f64 / (x.user_s + x.sys_s))
            .collect();
        let rss: Vec<f64> = runs.iter().map(|x| x.max_rss_kib as f64 / 1024.0).collect();
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {} | {} | {}{} |",
            thousands(n as f64),
            runs[0].bytes as f64 / 1048576.0,
            spread(&wall, |x| num(x, 2)),
            spread(&rate, thousands),
            spread(&core, thousands),
            spread(&rss, |x| num(x, 1)),
            runs.len(),
            if runs.iter().all(|x| x.exit_ok) {
                ""
            } else {
                " (a run exited non-zero)"
            }
        );
    }
    let _ = writeln!(md);
    if let Some(floor) = replay_floor(r) {
        let _ = writeln!(
            md,
            "The floor: `authtap-bench scan` reads the {}-record file the same way (64 KiB buffer, one \
             UTF-8 check per line) and has serde_json parse each line into nothing (`IgnoredAny`), \
             building no record: {} records per CPU-second (median of {} runs). No reader built on \
             serde_json goes faster; authtap replay, which also builds each record, recomputes its \
             findings and prints a line for it, runs at {:.2}× of it.\n",
            thousands(big as f64),
            thousands(floor),
            r.replay_floor.len(),
            per_core(big) / floor
        );
    }

    // Profile.
    let _ = writeln!(md, "## Where the time goes\n");
    let (u, s): (f64, f64) = r
        .loads
        .iter()
        .filter(|x| x.target == "authtap")
        .fold((0.0, 0.0), |(a, b), x| (a + x.cpu_user_s, b + x.cpu_sys_s));
    let by_sc: Vec<String> = r
        .scenarios
        .iter()
        .map(|sc| {
            let (u, s) = r
                .loads
                .iter()
                .filter(|x| x.target == "authtap" && x.scenario == sc.id)
                .fold((0.0, 0.0), |(a, b), x| (a + x.cpu_user_s, b + x.cpu_sys_s));
            format!("{} {:.0}%", sc.id, 100.0 * s / (u + s).max(1e-9))
        })
        .collect();
    let _ = writeln!(
        md,
        "Over all load runs authtap used {:.1} CPU-seconds, {:.0}% of it in the kernel (system time: \
         sockets, epoll, futex wake-ups, file writes) and {:.0}% in user space. Kernel share per scenario: {}.\n",
        u + s,
        100.0 * s / (u + s).max(1e-9),
        100.0 * u / (u + s).max(1e-9),
        by_sc.join(", ")
    );
    if let Some(p) = &r.perf {
        let _ = writeln!(
            md,
            "**Sampled with perf** (`-e cpu-clock`, a software clock: works without hardware counters, and \
             sees kernel and user time alike) on the benchmark's authtap while it served\n`{}`\n\n`{}`\n",
            p.load, p.command
        );
        let _ = writeln!(
            md,
            "By binary (`perf report --no-children --sort dso`):\n\n```\n{}\n```\n",
            p.by_dso
        );
        let _ = writeln!(
            md,
            "By function (`perf report --no-children --sort dso,symbol`, 0.6% and up):\n\n```\n{}\n```\n",
            tidy(&p.by_symbol)
        );
        if !p.kernel_chains.is_empty() {
            let _ = writeln!(
                md,
                "Where the largest symbols are reached from (`perf report --no-children --sort symbol \
                 -g caller`, symbols above 8%, branches above 2%):\n\n```\n{}\n```\n",
                tidy(&p.kernel_chains)
            );
        }
    }
    if let Some(p) = &r.profile {
        let _ = writeln!(
            md,
            "**Counted with callgrind** ({}): {}. authtap under callgrind served {} requests at c=8 (half \
             of the time plain upstream, a third TLS upstream, a fifth 401s). Instruction counts are not \
             time (they miss the kernel, waits and cache misses) but rank the user-space work exactly.\n\n`{}`\n",
            p.tool,
            if p.perf_instructions {
                "hardware counters work here, so perf above is the primary view"
            } else {
                "`perf stat -e instructions true` reports `<not supported>` on this VM (no hardware \
                 counters), so callgrind is the instruction-level view"
            },
            thousands(p.requests as f64),
            p.command
        );
        let _ = writeln!(
            md,
            "Top functions by own instructions (`callgrind_annotate --inclusive=no`):\n\n```\n{}\n```\n",
            p.self_top
        );
        let _ = writeln!(
            md,
            "authtap's own functions including callees (`callgrind_annotate --inclusive=yes`, the rows \
             of the `authtap`, `authtap_inspector` and `authtap_config` crates; above them are only \
             tokio's and hyper's frames):\n\n```\n{}\n```\n",
            p.own_inclusive
        );
    }
    let _ = writeln!(md, "### Analysis and suggestions\n");
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(
        md,
        "{}",
        kept.unwrap_or("(none yet: read the numbers above and write what they mean here)")
    );
    let _ = writeln!(md, "{END}\n");

    // Commands.
    let _ = writeln!(md, "## Commands\n");
    let _ = writeln!(
        md,
        "Paths are the run's working directory under `target/bench/`.\n"
    );
    let mut seen = BTreeMap::new();
    for (what, cmd) in &r.commands {
        if seen.insert(what.clone(), ()).is_some() {
            continue;
        }
        let _ = writeln!(md, "- {what}:\n  ```\n  {cmd}\n  ```");
    }
    md
}

/// perf's padded columns made readable: trailing padding (and the `...` a cut left in it) and the
/// `-  -` of empty columns dropped, long runs of spaces after the indentation shortened.
fn tidy(s: &str) -> String {
    s.lines()
        .map(|l| {
            let mut l = l.trim_end();
            if let Some(x) = l.strip_suffix("...") {
                if x.ends_with(' ') {
                    l = x;
                }
            }
            let l = l.trim_end_matches([' ', '-']);
            let start = l.find(|c: char| c != ' ' && c != '|').unwrap_or(l.len());
            let (indent, rest) = l.split_at(start);
            let mut out = indent.to_owned();
            let mut spaces = 0;
            for c in rest.chars() {
                if c == ' ' {
                    spaces += 1;
                    if spaces <= 2 {
                        out.push(c);
                    }
                } else {
                    spaces = 0;
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The event whose median arrival is furthest behind direct's: (ms, index).
fn worst_added(t: &SseStats, d: &SseStats) -> (f64, usize) {
    t.per_event_ms
        .iter()
        .zip(&d.per_event_ms)
        .map(|(a, b)| a - b)
        .enumerate()
        .fold(
            (f64::NEG_INFINITY, 0),
            |acc, (i, x)| {
                if x > acc.0 { (x, i) } else { acc }
            },
        )
}

/// Median records per CPU-second of the runs over `records`-record captures.
fn per_core_rate(runs: &[crate::run::ReplaySample], records: u64) -> f64 {
    median(
        &runs
            .iter()
            .filter(|x| x.records == records)
            .map(|x| x.records as f64 / (x.user_s + x.sys_s))
            .collect::<Vec<_>>(),
    )
}

/// The JSON scan floor's records per CPU-second, when the run measured it (a small capture may
/// take less CPU time than `time` shows).
fn replay_floor(r: &crate::run::Results) -> Option<f64> {
    let n = r.replay_floor.first()?.records;
    Some(per_core_rate(&r.replay_floor, n)).filter(|rate| rate.is_finite() && *rate > 0.0)
}

//! Where finished records go: the capture file (one JSON line each, flushed after every batch) and
//! the terminal (a compact line, or the JSON line with `--json`). A dedicated thread does the writing
//! so a slow disk or terminal never holds up a request; the forwarding path only pushes onto a queue.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use authtap_inspector::findings::Inspector;
use authtap_inspector::record::{Exchange, Finding, Outcome, RecordKind, Severity};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::admin::Feed;

/// How finished exchanges are shown on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One compact line per exchange.
    Human,
    /// The record as one JSON line.
    Json,
    /// Nothing; the capture file only.
    Quiet,
    /// One compact line per exchange on stderr, leaving stdout to a child (`authtap exec`).
    HumanStderr,
}

enum Message {
    Record(Box<Exchange>),
    Stop,
}

/// The forwarding side's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Message>,
}

impl Recorder {
    pub fn record(&self, exchange: Exchange) {
        // Only fails after shutdown, when nobody is left to write for.
        let _ = self.tx.send(Message::Record(Box::new(exchange)));
    }

    /// Ask the writer to finish what is queued and stop.
    pub fn stop(&self) {
        let _ = self.tx.send(Message::Stop);
    }
}

/// What the writer did, reported at exit.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub records: u64,
    pub write_failures: u64,
    /// Per finding code: its first occurrence and how many records carried it.
    pub findings: std::collections::BTreeMap<String, (Finding, u64)>,
}

/// Start the writer thread. It runs the inspector on each record, in order, before writing it.
pub fn spawn(
    capture: Option<File>,
    capture_path: PathBuf,
    output: Output,
    mut inspector: Inspector,
    feed: Arc<Feed>,
    rotate_at: Option<u64>,
) -> (Recorder, JoinHandle<SinkStats>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let color = match output {
        Output::Human => stdout_color(),
        Output::HumanStderr => io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        _ => false,
    };
    let handle = std::thread::Builder::new()
        .name("authtap-capture".into())
        .spawn(move || {
            let mut written = capture
                .as_ref()
                .and_then(|c| c.metadata().ok())
                .map_or(0, |m| m.len());
            // None: the capture could not be opened at start (said then); records still reach
            // the terminal and the consoles, and each one is counted as not written.
            let mut file = capture.map(batch_writer);
            let mut stats = SinkStats::default();
            let mut line = Vec::with_capacity(2048);
            'outer: while let Some(first) = rx.blocking_recv() {
                let mut next = Some(first);
                let mut out: Box<dyn Write> = if output == Output::HumanStderr {
                    Box::new(io::stderr().lock())
                } else {
                    Box::new(io::stdout().lock())
                };
                while let Some(message) = next.take() {
                    let Message::Record(mut exchange) = message else {
                        flush(&mut file, &capture_path, &mut stats);
                        break 'outer;
                    };
                    exchange.findings = inspector.inspect(&exchange);
                    for finding in &exchange.findings {
                        stats
                            .findings
                            .entry(finding.code.clone())
                            .or_insert_with(|| (finding.clone(), 0))
                            .1 += 1;
                    }
                    line.clear();
                    if serde_json::to_writer(&mut line, &*exchange).is_err() {
                        continue;
                    }
                    feed.publish(Bytes::copy_from_slice(&line));
                    line.push(b'\n');
                    match file.as_mut() {
                        Some(f) => {
                            if let Err(e) = f.write_all(&line) {
                                write_failed(&capture_path, &e, &mut stats);
                            }
                        }
                        None => stats.write_failures += 1,
                    }
                    written += line.len() as u64;
                    if file.is_some() && rotate_at.is_some_and(|max| written >= max) {
                        flush(&mut file, &capture_path, &mut stats);
                        match rotate(&capture_path) {
                            Ok(fresh) => {
                                file = Some(batch_writer(fresh));
                                written = 0;
                            }
                            Err(e) => write_failed(&capture_path, &e, &mut stats),
                        }
                    }
                    stats.records += 1;
                    // A closed stdout (`authtap run | head`) must not stop the capture.
                    let _ = match output {
                        Output::Json => out.write_all(&line),
                        Output::Human | Output::HumanStderr => {
                            writeln!(out, "{}", human_line(&exchange, color))
                        }
                        Output::Quiet => Ok(()),
                    };
                    next = rx.try_recv().ok();
                }
                let _ = out.flush();
                flush(&mut file, &capture_path, &mut stats);
                // Let records gather for a moment: under load this turns a wake-up and a write
                // per record into one per batch (the forwarding side never waits for it), and a
                // record still reaches the file within a few milliseconds.
                std::thread::sleep(BATCH_PAUSE);
            }
            flush(&mut file, &capture_path, &mut stats);
            stats
        })
        .unwrap_or_else(|e| panic!("cannot start the capture writer thread: {e}"));
    (Recorder { tx }, handle)
}

/// The capture file behind a buffer that holds a whole batch (about 2 ms of records under load),
/// so that a batch is one write, not one per 8 KiB.
fn batch_writer(file: File) -> BufWriter<File> {
    BufWriter::with_capacity(64 * 1024, file)
}

/// How long the writer lets records gather after writing a batch.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// How many rotated captures are kept beside the current one (`.1` is the newest).
const ROTATED_KEPT: u32 = 5;

/// Move `path` to `path.1` (shifting older ones up, dropping the oldest) and open a fresh `path`.
fn rotate(path: &std::path::Path) -> io::Result<File> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let _ = std::fs::remove_file(numbered(ROTATED_KEPT));
    for n in (1..ROTATED_KEPT).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))?;
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn flush(file: &mut Option<BufWriter<File>>, path: &std::path::Path, stats: &mut SinkStats) {
    if let Some(Err(e)) = file.as_mut().map(Write::flush) {
        write_failed(path, &e, stats);
    }
}

fn write_failed(path: &std::path::Path, e: &io::Error, stats: &mut SinkStats) {
    stats.write_failures += 1;
    // Say it loudly once; repeating it for every record would bury everything else.
    if stats.write_failures == 1 {
        tracing::error!(
            "cannot write the capture file {}: {e}. authtap keeps forwarding and printing; records that could not be written are counted",
            path.display()
        );
    }
}

/// Whether human output on stdout gets colours: only on a terminal, and never with `NO_COLOR` set.
pub(crate) fn stdout_color() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// One exchange in one line:
/// `01:42:11.204  401  POST api.moonshot.ai/v1/chat/completions  kimi-k2.5  key Bearer sk-…Xy8z (51, sk-generic)  invalid_authentication_error: Invalid Authentication  312ms`
pub fn human_line(e: &Exchange, color: bool) -> String {
    let mut line = String::with_capacity(256);
    write_human_line(&mut line, e, color);
    line
}

/// [`human_line`], appended to `line` (`authtap replay` reuses one buffer for every record).
pub fn write_human_line(line: &mut String, e: &Exchange, color: bool) {
    use std::fmt::Write as _;
    let paint = |line: &mut String, code: &str, text: &str| paint(line, color, code, text);
    line.push_str(e.ts.get(11..23).unwrap_or(&e.ts));
    line.push_str("  ");
    let mut digits = itoa::Buffer::new();
    let status = e.status.map_or("---", |s| digits.format(s));
    let code = match e.status {
        Some(200..=299) => "32",
        Some(400..=499) => "1;31",
        Some(_) => "1;33",
        None => "2",
    };
    paint(line, code, status);
    line.push_str("  ");
    match e.kind {
        RecordKind::Probe => paint(line, "2", "probe "),
        RecordKind::Tunnel => paint(line, "2", "tunnel "),
        RecordKind::Exchange => {}
    }
    line.push_str(&e.method);
    line.push(' ');
    // CONNECT records (tunnels, refused handshakes) carry `host:port` as their path.
    let connect = e.method == "CONNECT";
    if !connect {
        line.push_str(e.host.as_deref().unwrap_or(""));
    }
    push_plain(line, &e.path);
    if connect {
        if e.kind == RecordKind::Tunnel {
            let _ = write!(line, "  up {} B, down {} B", e.bytes_up, e.bytes_down);
        }
        // A finding says the same as the failure, with a fix: show it once.
        if let Some(failure) = e.failure.as_ref().filter(|_| e.findings.is_empty()) {
            line.push_str("  ");
            push_plain(line, &failure.message);
        }
        let _ = write!(line, "  {:.0}ms", e.duration_ms);
        push_findings(line, e, color);
        return;
    }
    if let Some(route) = &e.route {
        let _ = write!(line, "  [{route}]");
    }
    if let Some(model) = &e.model {
        line.push_str("  ");
        push_plain(line, model);
    }
    line.push_str("  key ");
    let a = &e.auth;
    if a.present {
        match (&a.scheme, &a.header) {
            (Some(scheme), _) => {
                line.push_str(scheme);
                line.push(' ');
            }
            (None, Some(header)) => {
                line.push_str(header);
                line.push_str(": ");
            }
            (None, None) => {}
        }
        match (&a.prefix, &a.last4) {
            (Some(p), Some(l)) => {
                push_plain(line, p);
                line.push('…');
                push_plain(line, l);
            }
            (Some(p), None) => {
                push_plain(line, p);
                line.push('…');
            }
            _ => line.push('…'),
        }
        let _ = write!(line, " ({}, {})", a.len, a.shape);
    } else {
        line.push_str("none");
    }
    if !a.defects.is_empty() {
        let defects: Vec<String> = a.defects.iter().map(serialized_name).collect();
        paint(line, "1;31", &format!(" [{}]", defects.join(", ")));
    }
    if let Some(err) = &e.error {
        line.push_str("  ");
        let label = [err.kind.as_deref(), err.code.as_deref()];
        for (i, part) in label.into_iter().flatten().enumerate() {
            if i > 0 {
                line.push('/');
            }
            push_plain(line, part);
        }
        line.push_str(": ");
        push_plain(line, err.message.as_deref().unwrap_or(""));
    }
    if let Some(failure) = &e.failure {
        line.push_str("  ");
        push_plain(line, &failure.message);
    }
    if e.outcome != Outcome::Complete {
        let _ = write!(line, "  ({})", serialized_name(&e.outcome));
    }
    let _ = write!(line, "  {:.0}ms", e.duration_ms);
    push_findings(line, e, color);
}

/// Each finding on two indented lines: the mark, code and title; then the fix.
fn push_findings(line: &mut String, e: &Exchange, color: bool) {
    for finding in &e.findings {
        let (mark, code) = match finding.severity {
            Severity::Error => ("✖", "1;31"),
            Severity::Warn => ("▲", "1;33"),
            Severity::Info => ("●", "36"),
        };
        line.push_str("\n    ");
        paint(line, color, code, mark);
        line.push(' ');
        paint(line, color, code, &finding.code);
        line.push_str(": ");
        push_plain(line, &finding.title);
        line.push_str("\n      fix: ");
        for (i, fix) in finding.fix.lines().enumerate() {
            if i > 0 {
                line.push_str("\n           ");
            }
            push_plain(line, fix);
        }
    }
}

/// `text` in the colour `code` (an SGR parameter) when `color`, else as it is.
fn paint(line: &mut String, color: bool, code: &str, text: &str) {
    if color {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(line, "\x1b[{code}m{text}\x1b[0m");
    } else {
        line.push_str(text);
    }
}

/// A kebab-case enum value (defect, outcome) as records spell it. Only lines that have one pay
/// for it: a healthy exchange has neither.
fn serialized_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Text from a client or provider, with control characters (escape sequences included) made
/// spaces, so nothing but authtap's own colours reaches the terminal.
pub(crate) fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_plain(&mut out, text);
    out
}

/// [`plain`], appended to `out`.
pub(crate) fn push_plain(out: &mut String, text: &str) {
    // Control characters are U+0000-U+001F and U+007F-U+009F; the latter start with 0xC2 in
    // UTF-8. Text without those bytes (nearly all) is copied whole.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        out.push_str(text);
        return;
    }
    out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_line_says_it_all_and_lets_no_escape_sequence_through() {
        let record = r#"{"v":1,"id":"a-1","kind":"exchange","mode":"base-url","ts":"2026-11-25T01:54:08.457Z",
            "route":"moonshot-cn","provider":"moonshot","region":"cn","method":"POST","host":"api.moonshot.cn",
            "path":"/v1/chat/completions","auth":{"header":"authorization","scheme":"Bearer","present":true,
            "len":51,"prefix":"sk-","last4":"Xy8z","fingerprint":"hmac:00","shape":"sk-generic",
            "defects":["quoted"]},"user_agent":null,"model":"kimi-k2.5","stream":null,"upstream_version":"HTTP/2",
            "status":401,"content_type":"application/json","error":{"type":"invalid_authentication_error",
            "message":"Invalid \u001b[2JAuthentication"},"failure":null,"ttfb_ms":4.7,"duration_ms":5.2,
            "bytes_up":1,"bytes_down":84,"outcome":"complete","findings":[]}"#;
        let exchange: Exchange = serde_json::from_str(record).expect("record");
        let line = human_line(&exchange, false);
        assert_eq!(
            line,
            "01:54:08.457  401  POST api.moonshot.cn/v1/chat/completions  [moonshot-cn]  kimi-k2.5  \
             key Bearer sk-…Xy8z (51, sk-generic) [quoted]  invalid_authentication_error: Invalid  [2JAuthentication  5ms"
        );
        assert!(!human_line(&exchange, true).contains("\x1b[2J"));
    }
}

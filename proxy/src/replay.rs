//! `authtap replay`: read a capture back and recompute every finding with the same [`Inspector`]
//! the live capture writer runs, record by record in file order, so live and replay give the same
//! answer. The findings stored in the file are not trusted.
//!
//! It streams: one line is in memory at a time (at most [`MAX_LINE`] bytes), and the summary holds
//! counters plus, per finding code, one title, one fix and at most [`MAX_EVIDENCE`] record ids, so a
//! capture of millions of records replays in the same memory as one of ten.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use authtap_inspector::findings::Inspector;
use authtap_inspector::record::{Exchange, Outcome, RECORD_VERSION, RecordKind, Severity};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{FailOn, ReplayArgs};
use crate::sink::{self, plain};
use fields::FieldReader;

mod fields;

/// The longest line read as a record. Records are a few KiB; a longer line is not one, and the cap
/// keeps memory flat on a file with no newlines at all.
const MAX_LINE: usize = 1 << 20;
/// Problems shown (stderr, or the summary's `problems`); further ones are only counted.
const MAX_PROBLEMS: usize = 100;
/// Record ids listed per finding code in the summary.
const MAX_EVIDENCE: usize = 10;
/// Distinct unknown field names remembered so each is reported once; past this, new ones are not
/// reported (a capture with that many is reported enough already).
const MAX_UNKNOWN_FIELDS: usize = 100;

/// Replay `args.file`; print what went wrong and pick the exit status (0, 1 for `--fail-on`, 2 when
/// the capture or config cannot be used).
pub(crate) fn main(args: &ReplayArgs) -> ExitCode {
    match replay(args) {
        Ok(code) => code,
        // `authtap replay capture.jsonl | head`: the reader has seen enough.
        Err(e)
            if e.downcast_ref::<io::Error>().map(io::Error::kind)
                == Some(io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // As the binary prints errors, with 2 instead of 1 (ripgrep's convention: 1 is an answer).
            eprintln!("authtap: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.config.as_deref())?;
    let stdin = args.file.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_string()
    } else {
        args.file.display().to_string()
    };
    let input: Box<dyn BufRead> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.file).with_context(|| format!("cannot read {name}"))?;
        Box::new(BufReader::with_capacity(64 * 1024, file))
    };
    let mode = if args.json {
        Mode::Json
    } else {
        Mode::Human {
            color: sink::stdout_color(),
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if let Mode::Human { .. } = mode {
        writeln!(out, "replaying {}\n", plain(&name)).context("cannot write to stdout")?;
    }

    let mut inspector = Inspector::new(Arc::new(config.catalog));
    let mut summary = Summary::default();
    let mut problems = Problems::new(mode);
    let mut reader = CaptureReader::new(input, &name);
    let mut json = Vec::with_capacity(4 * 1024);
    let mut line = String::with_capacity(4 * 1024);
    while let Some(item) = reader.next_item()? {
        let number = reader.line_number();
        let mut record = match item {
            Item::Record(record, notes) => {
                for note in notes {
                    problems.add(number, note, &mut out)?;
                }
                record
            }
            Item::Skipped(why) => {
                summary.skipped_lines += 1;
                problems.add(number, why, &mut out)?;
                continue;
            }
        };
        recompute_findings(&mut inspector, &mut record);
        summary.add(&record);
        match mode {
            Mode::Json => {
                json.clear();
                serde_json::to_writer(&mut json, &*record).context("cannot print a record")?;
                json.push(b'\n');
                out.write_all(&json)
            }
            Mode::Human { color } => {
                line.clear();
                sink::write_human_line(&mut line, &record, color);
                line.push('\n');
                out.write_all(line.as_bytes())
            }
        }
        .context("cannot write to stdout")?;
    }

    match mode {
        Mode::Json => {
            json.clear();
            serde_json::to_writer(&mut json, &summary.json(&problems))
                .context("cannot print the summary")?;
            json.push(b'\n');
            out.write_all(&json)
        }
        Mode::Human { color } => write!(out, "{}", summary.human(&problems, color)),
    }
    .context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;

    let threshold = match args.fail_on {
        Some(FailOn::Error) => Severity::Error,
        Some(FailOn::Warn) => Severity::Warn,
        None => return Ok(ExitCode::SUCCESS),
    };
    Ok(if summary.worst.is_some_and(|w| w >= threshold) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Human { color: bool },
    Json,
}

/// A capture read record by record, as `authtap replay` reads it (and `authtap console --replay`):
/// one line in memory at a time, lines that are not records reported and skipped, unknown fields
/// reported once, a record from a newer authtap an error.
pub(crate) struct CaptureReader<R> {
    input: R,
    /// For messages: the file's name, or "standard input".
    name: String,
    line: Vec<u8>,
    number: u64,
    fields: FieldReader,
    unknown_fields: HashSet<String>,
}

/// One line of a capture that was not blank.
pub(crate) enum Item {
    /// A record as the file has it (stored findings included), and what to say about the line
    /// (unknown fields).
    Record(Box<Exchange>, Vec<String>),
    /// Not a record: why, ending in "skipped".
    Skipped(String),
}

impl<R: BufRead> CaptureReader<R> {
    pub(crate) fn new(input: R, name: &str) -> Self {
        CaptureReader {
            input,
            name: name.to_string(),
            line: Vec::with_capacity(8 * 1024),
            number: 0,
            fields: FieldReader::default(),
            unknown_fields: HashSet::new(),
        }
    }

    /// The number (from 1) of the line the last item came from.
    pub(crate) fn line_number(&self) -> u64 {
        self.number
    }

    /// The next record or skipped line; `None` at the end. An error when the input cannot be read
    /// or a record is from a newer authtap.
    pub(crate) fn next_item(&mut self) -> anyhow::Result<Option<Item>> {
        loop {
            let read = read_line(&mut self.input, &mut self.line)
                .with_context(|| format!("cannot read {}", self.name))?;
            self.number += 1;
            let ended = match read {
                Line::Eof => return Ok(None),
                Line::Ended => true,
                Line::Unterminated => false,
                Line::TooLong => {
                    let why = format!("longer than {} MiB, not a record; skipped", MAX_LINE >> 20);
                    return Ok(Some(Item::Skipped(why)));
                }
            };
            if self.line.trim_ascii().is_empty() {
                continue;
            }
            return Ok(Some(
                match parse(
                    &self.line,
                    self.number,
                    ended,
                    &mut self.fields,
                    &mut self.unknown_fields,
                )? {
                    Parsed::Record(record, notes) => Item::Record(record, notes),
                    Parsed::Skipped(why) => Item::Skipped(why),
                },
            ));
        }
    }
}

/// Replace a record's findings with the ones `inspector` gives, as the live capture writer does:
/// the inspector sees the record as forwarding made it, findings empty. Records must come in
/// capture order (some rules remember earlier records).
pub(crate) fn recompute_findings(inspector: &mut Inspector, record: &mut Exchange) {
    record.findings.clear();
    record.findings = inspector.inspect(record);
}

/// What one read left in the buffer.
enum Line {
    Eof,
    /// A line with its newline.
    Ended,
    /// The last line, with no newline after it: maybe cut off.
    Unterminated,
    /// Longer than [`MAX_LINE`]; read past and dropped.
    TooLong,
}

/// Read one line into `buf` (cleared first), never holding more than [`MAX_LINE`] bytes of it.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let cap = MAX_LINE as u64 + 1;
    if input.by_ref().take(cap).read_until(b'\n', buf)? == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        return Ok(Line::Ended);
    }
    if buf.len() > MAX_LINE {
        input.skip_until(b'\n')?;
        buf.clear();
        buf.shrink_to(64 * 1024);
        return Ok(Line::TooLong);
    }
    Ok(Line::Unterminated)
}

enum Parsed {
    /// A record to replay, and what to say about it (unknown fields).
    Record(Box<Exchange>, Vec<String>),
    /// Not a record: why, ending in "skipped".
    Skipped(String),
}

/// One line to a record. Only a record from a newer authtap is an error: replaying it as if it
/// were version 1 could give wrong answers.
fn parse(
    line: &[u8],
    number: u64,
    ended: bool,
    reader: &mut FieldReader,
    unknown_fields: &mut HashSet<String>,
) -> anyhow::Result<Parsed> {
    let skip = |why: String| Ok(Parsed::Skipped(why));
    // One pass for the usual line: straight into the record. Anything odd takes the slow path
    // below, which says precisely what is wrong.
    let mut unknown = Vec::new();
    // Checked as UTF-8 once, whole, so the parser need not check each string again.
    let fast = std::str::from_utf8(line).ok().and_then(|text| {
        let mut de = serde_json::Deserializer::from_str(text);
        let record = reader.read(&mut de, true, &mut unknown).ok()?;
        de.end().ok().map(|()| record)
    });
    let record = match fast {
        Some(record) if record.v >= 1 => record,
        _ => {
            unknown.clear();
            match slow_parse(line, number, ended, reader, &mut unknown)? {
                Ok(record) => record,
                Err(why) => return skip(why),
            }
        }
    };
    if record.v > RECORD_VERSION {
        bail!(
            "line {number}: this capture was written by a newer authtap (record version {}; this one reads up to {RECORD_VERSION}): upgrade authtap",
            record.v
        );
    }
    // Forward-compatible additions: docs/capture-format.md says readers ignore fields they do not
    // know. Say so once per name, so a user knows this authtap cannot use them.
    let mut notes = Vec::new();
    for field in unknown {
        if !unknown_fields.contains(&field) && unknown_fields.len() < MAX_UNKNOWN_FIELDS {
            notes.push(format!("unknown field `{}` ignored", shown_str(&field)));
            unknown_fields.insert(field);
        }
    }
    Ok(Parsed::Record(Box::new(record), notes))
}

/// A line the fast path did not take, read step by step to say what is wrong with it: the record,
/// or why the line is skipped. Only a record from a newer authtap is an error.
fn slow_parse(
    line: &[u8],
    number: u64,
    ended: bool,
    reader: &mut FieldReader,
    unknown: &mut Vec<String>,
) -> anyhow::Result<Result<Exchange, String>> {
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(_) if !ended => {
            return Ok(Err(
                "the last record is cut off (authtap was stopped mid-write?); skipped".into(),
            ));
        }
        Err(e) => return Ok(Err(format!("not JSON ({e}); skipped"))),
    };
    let Value::Object(fields) = value else {
        return Ok(Err(
            "not a record (a JSON object was expected); skipped".into()
        ));
    };
    let version = match fields.get("v") {
        None => return Ok(Err("no record version `v`; skipped".into())),
        Some(v) => match v.as_u64() {
            Some(v) if v >= 1 => v,
            _ => {
                return Ok(Err(format!(
                    "`v` is not a record version: {}; skipped",
                    shown(v)
                )));
            }
        },
    };
    // Before the record is read: a newer record may not read as a version-1 one at all.
    if version > u64::from(RECORD_VERSION) {
        bail!(
            "line {number}: this capture was written by a newer authtap (record version {version}; this one reads up to {RECORD_VERSION}): upgrade authtap"
        );
    }
    match fields.get("kind") {
        None => return Ok(Err("no record `kind`; skipped".into())),
        Some(kind) if serde_json::from_value::<RecordKind>(kind.clone()).is_err() => {
            return Ok(Err(format!("unknown record kind {}; skipped", shown(kind))));
        }
        Some(_) => {}
    }
    Ok(reader
        .read(Value::Object(fields), false, unknown)
        .map_err(|e| format!("not a valid record ({}); skipped", plain(&e.to_string()))))
}

/// A value from the file, short and without control characters, for a message.
fn shown(value: &Value) -> String {
    shown_str(&value.to_string())
}

fn shown_str(text: &str) -> String {
    const MAX: usize = 40;
    let text = plain(text);
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// One thing wrong in the file.
#[derive(Debug, Serialize)]
struct Problem {
    line: u64,
    message: String,
}

/// Problems: printed on stderr as they are met (human mode) or kept for the summary line (JSON
/// mode); past [`MAX_PROBLEMS`] only counted.
struct Problems {
    mode: Mode,
    kept: Vec<Problem>,
    count: u64,
}

impl Problems {
    fn new(mode: Mode) -> Self {
        Problems {
            mode,
            kept: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, line: u64, message: String, out: &mut impl Write) -> anyhow::Result<()> {
        self.count += 1;
        let shown = self.count <= MAX_PROBLEMS as u64;
        match self.mode {
            Mode::Json => {
                if shown {
                    self.kept.push(Problem { line, message });
                }
            }
            Mode::Human { .. } => {
                if shown || self.count == MAX_PROBLEMS as u64 + 1 {
                    // Records printed so far first, so a terminal shows the problem in its place.
                    out.flush().context("cannot write to stdout")?;
                }
                if shown {
                    eprintln!("line {line}: {message}");
                } else if self.count == MAX_PROBLEMS as u64 + 1 {
                    eprintln!("(more problems in this file: counted in the summary, not shown)");
                }
            }
        }
        Ok(())
    }
}

/// One finding code across the capture.
struct CodeSummary {
    /// Records with this finding.
    count: u64,
    /// The number (from 1) of the last record counted.
    last_record: u64,
    /// The most severe occurrence's.
    severity: Severity,
    /// The first occurrence's.
    title: String,
    fix: String,
    /// Ids of the first [`MAX_EVIDENCE`] records with this finding.
    evidence: Vec<String>,
}

/// Counters for the summary: bounded by the number of finding codes, whatever the file's size.
#[derive(Default)]
struct Summary {
    records: u64,
    exchanges: u64,
    probes: u64,
    tunnels: u64,
    skipped_lines: u64,
    /// No status, then 1xx to 5xx, then anything else.
    statuses: [u64; 7],
    outcomes: Vec<(Outcome, u64)>,
    findings: BTreeMap<String, CodeSummary>,
    worst: Option<Severity>,
}

const STATUS_CLASSES: [&str; 7] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx", "other"];

impl Summary {
    fn add(&mut self, record: &Exchange) {
        self.records += 1;
        match record.kind {
            RecordKind::Exchange => self.exchanges += 1,
            RecordKind::Probe => self.probes += 1,
            RecordKind::Tunnel => self.tunnels += 1,
        }
        let class = match record.status {
            None => 0,
            Some(s @ 100..=599) => usize::from(s / 100),
            Some(_) => 6,
        };
        self.statuses[class] += 1;
        match self.outcomes.iter_mut().find(|(o, _)| *o == record.outcome) {
            Some((_, n)) => *n += 1,
            None => self.outcomes.push((record.outcome, 1)),
        }
        for finding in &record.findings {
            self.worst = self.worst.max(Some(finding.severity));
            let code = match self.findings.get_mut(&finding.code) {
                Some(code) => code,
                None => self
                    .findings
                    .entry(finding.code.clone())
                    .or_insert(CodeSummary {
                        count: 0,
                        last_record: 0,
                        severity: finding.severity,
                        title: finding.title.clone(),
                        fix: finding.fix.clone(),
                        evidence: Vec::new(),
                    }),
            };
            code.severity = code.severity.max(finding.severity);
            // A record that carries a code twice counts once.
            if code.last_record == self.records {
                continue;
            }
            code.last_record = self.records;
            code.count += 1;
            if code.evidence.len() < MAX_EVIDENCE {
                code.evidence.push(record.id.clone());
            }
        }
    }

    /// Finding codes, most severe first, then the most frequent.
    fn ranked(&self) -> Vec<(&String, &CodeSummary)> {
        let mut codes: Vec<_> = self.findings.iter().collect();
        codes.sort_by(|a, b| (b.1.severity, b.1.count, a.0).cmp(&(a.1.severity, a.1.count, b.0)));
        codes
    }

    fn outcome_counts(&self) -> Vec<(String, u64)> {
        self.outcomes
            .iter()
            .map(|(outcome, n)| (outcome_name(*outcome), *n))
            .collect()
    }

    fn human(&self, problems: &Problems, color: bool) -> String {
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        // A blank line between the timeline and the summary, when there is a timeline.
        let gap = if self.records > 0 { "\n" } else { "" };
        let mut text = format!(
            "{gap}{}: {}, {}",
            plural(self.records, "record", "records"),
            plural(self.exchanges, "exchange", "exchanges"),
            plural(self.probes, "probe", "probes")
        );
        if self.tunnels > 0 {
            text.push_str(&format!(", {}", plural(self.tunnels, "tunnel", "tunnels")));
        }
        if self.skipped_lines > 0 {
            text.push_str(&format!(
                "; {}",
                plural(self.skipped_lines, "line skipped", "lines skipped")
            ));
        }
        if problems.count > 0 {
            text.push_str(&format!(
                "; {} on stderr",
                plural(problems.count, "problem", "problems")
            ));
        }
        text.push('\n');
        if self.records > 0 {
            let statuses: Vec<String> = STATUS_CLASSES
                .iter()
                .zip(self.statuses)
                .filter(|(_, n)| *n > 0)
                .map(|(class, n)| format!("{class} {n}"))
                .collect();
            let outcomes: Vec<String> = self
                .outcome_counts()
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            text.push_str(&format!(
                "status: {}\noutcome: {}\n",
                statuses.join(", "),
                outcomes.join(", ")
            ));
        }
        if self.findings.is_empty() {
            text.push_str("no findings\n");
            return text;
        }
        text.push_str("findings:\n");
        for (code, summary) in self.ranked() {
            let (mark, ansi) = match summary.severity {
                Severity::Error => ("✖", "1;31"),
                Severity::Warn => ("▲", "1;33"),
                Severity::Info => ("●", "36"),
            };
            let fix: Vec<String> = summary.fix.lines().map(plain).collect();
            let mut ids: Vec<String> = summary.evidence.iter().map(|id| plain(id)).collect();
            let listed = summary.evidence.len() as u64;
            if summary.count > listed {
                ids.push(format!("… and {} more", summary.count - listed));
            }
            text.push_str(&format!(
                "  {} ×{}  {}\n    fix: {}\n    records: {}\n",
                paint(ansi, &format!("{mark} {}", plain(code))),
                summary.count,
                plain(&summary.title),
                fix.join("\n         "),
                ids.join(", ")
            ));
        }
        text
    }

    fn json<'a>(&'a self, problems: &'a Problems) -> JsonSummary<'a> {
        JsonSummary {
            kind: "summary",
            records: self.records,
            exchanges: self.exchanges,
            probes: self.probes,
            tunnels: self.tunnels,
            skipped_lines: self.skipped_lines,
            statuses: STATUS_CLASSES
                .iter()
                .zip(self.statuses)
                .filter(|(_, n)| *n > 0)
                .map(|(class, n)| (*class, n))
                .collect(),
            outcomes: self.outcome_counts().into_iter().collect(),
            findings: self
                .findings
                .iter()
                .map(|(code, s)| {
                    let finding = JsonFinding {
                        count: s.count,
                        severity: s.severity,
                        title: &s.title,
                        fix: &s.fix,
                        evidence: &s.evidence,
                    };
                    (code.as_str(), finding)
                })
                .collect(),
            problems: &problems.kept,
            problem_count: problems.count,
        }
    }
}

fn outcome_name(outcome: Outcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The last line of `--json` output.
#[derive(Serialize)]
struct JsonSummary<'a> {
    kind: &'static str,
    records: u64,
    exchanges: u64,
    probes: u64,
    tunnels: u64,
    skipped_lines: u64,
    /// Records by status class (`2xx`, `4xx`, `none`...); classes with none are left out.
    statuses: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<String, u64>,
    findings: BTreeMap<&'a str, JsonFinding<'a>>,
    /// The first [`MAX_PROBLEMS`] problems; `problem_count` counts them all.
    problems: &'a [Problem],
    problem_count: u64,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    count: u64,
    severity: Severity,
    title: &'a str,
    fix: &'a str,
    evidence: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_cut_off_or_dropped_when_too_long() {
        let mut text = b"{}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        text.extend(b"\n{\"v\"");
        let mut input = BufReader::with_capacity(1024, &text[..]);
        let mut buf = Vec::new();
        assert!(matches!(read_line(&mut input, &mut buf), Ok(Line::Ended)));
        assert_eq!(buf, b"{}\n");
        assert!(matches!(read_line(&mut input, &mut buf), Ok(Line::TooLong)));
        assert!(buf.capacity() <= MAX_LINE + 1);
        assert!(matches!(
            read_line(&mut input, &mut buf),
            Ok(Line::Unterminated)
        ));
        assert_eq!(buf, b"{\"v\"");
        assert!(matches!(read_line(&mut input, &mut buf), Ok(Line::Eof)));
    }
}

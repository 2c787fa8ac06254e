//! The console's state, apart from drawing and from the terminal: the records kept, which ones the
//! filter lets through, the selection and follow mode, pause, focus and the prompt. Keys come in as
//! crossterm events and change the state; `ui` draws it. Everything here is testable without a
//! terminal.

use std::collections::VecDeque;
use std::time::Instant;

use authtap_inspector::record::{Exchange, RecordKind};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::source::LinkError;

/// Records kept in memory; the oldest go first. A long session stays a few tens of MiB.
pub(crate) const MAX_RECORDS: usize = 10_000;

/// Where the records come from, and how that is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// Trying to reach authtap for the first time.
    Connecting {
        target: String,
    },
    Connected {
        target: String,
    },
    /// Lost (or never had) the connection; the next try is at `at`.
    Reconnecting {
        target: String,
        error: LinkError,
        at: Instant,
    },
    /// A capture file; `skipped` lines of it were not records.
    Replay {
        file: String,
        skipped: u64,
    },
}

/// Which pane the arrow keys move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    Table,
    Detail,
}

/// What the event loop should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Continue,
    Quit,
}

/// A kept record and its number in arrival order (numbers never repeat, so a selection survives
/// older records being dropped).
struct Entry {
    seq: u64,
    record: Exchange,
}

/// Sizes the last drawing had, for paging and for keeping the detail scroll in range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Viewport {
    /// Table rows on screen.
    pub(crate) table_rows: usize,
    /// Detail lines on screen.
    pub(crate) detail_rows: usize,
    /// The furthest the detail pane can scroll (its lines minus the lines on screen).
    pub(crate) detail_max_scroll: usize,
}

pub(crate) struct App {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// The `seq` of each entry the filter lets through, in order.
    visible: VecDeque<u64>,
    /// The selected entry's `seq`.
    selected: Option<u64>,
    /// Keep the newest visible record selected as records arrive.
    follow: bool,
    paused: bool,
    /// Records that arrived while paused, shown on resume.
    pending: VecDeque<Exchange>,
    filter: Filter,
    /// The filter being typed, while the prompt is open.
    prompt: Option<String>,
    focus: Focus,
    detail_scroll: usize,
    help: bool,
    link: Link,
    /// Kept records that are errors (see [`is_error`]).
    errors: usize,
    /// Records dropped from memory (over [`MAX_RECORDS`]) or missed (authtap dropped them for a
    /// console that fell behind, or they could not be read).
    dropped: u64,
    missed: u64,
    viewport: Viewport,
}

impl App {
    pub(crate) fn new(link: Link) -> Self {
        App {
            entries: VecDeque::new(),
            next_seq: 0,
            visible: VecDeque::new(),
            selected: None,
            follow: true,
            paused: false,
            pending: VecDeque::new(),
            filter: Filter::default(),
            prompt: None,
            focus: Focus::Table,
            detail_scroll: 0,
            help: false,
            link,
            errors: 0,
            dropped: 0,
            missed: 0,
            viewport: Viewport::default(),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Records in

    /// A record arrived: shown now, or held while paused.
    pub(crate) fn push(&mut self, record: Exchange) {
        if self.paused {
            if self.pending.len() == MAX_RECORDS {
                self.pending.pop_front();
                self.dropped += 1;
            }
            self.pending.push_back(record);
        } else {
            self.insert(record);
        }
    }

    fn insert(&mut self, record: Exchange) {
        if self.entries.len() == MAX_RECORDS
            && let Some(oldest) = self.entries.pop_front()
        {
            self.dropped += 1;
            if is_error(&oldest.record) {
                self.errors -= 1;
            }
            if self.visible.front() == Some(&oldest.seq) {
                self.visible.pop_front();
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if is_error(&record) {
            self.errors += 1;
        }
        if self.filter.matches(&record) {
            self.visible.push_back(seq);
        }
        self.entries.push_back(Entry { seq, record });
        self.settle();
    }

    /// Records authtap dropped for this console, or that could not be read.
    pub(crate) fn missed(&mut self, n: u64) {
        self.missed += n;
    }

    pub(crate) fn set_link(&mut self, link: Link) {
        self.link = link;
    }

    // ------------------------------------------------------------------------------------------
    // Keys

    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some(text) = &mut self.prompt {
            match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.prompt = None;
                    self.set_filter(&text);
                }
                KeyCode::Esc => self.prompt = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char('u') if ctrl => text.clear(),
                KeyCode::Char(c) if !ctrl => text.push(c),
                _ => {}
            }
            return Action::Continue;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return Action::Continue;
        }
        let page = match self.focus {
            Focus::Table => self.viewport.table_rows.max(1),
            Focus::Detail => self.viewport.detail_rows.max(1),
        };
        match (key.code, self.focus) {
            (KeyCode::Char('q'), _) => return Action::Quit,
            (KeyCode::Char('?'), _) => self.help = true,
            (KeyCode::Char('/'), _) => self.prompt = Some(self.filter.text.clone()),
            (KeyCode::Char('c'), _) => self.set_filter(""),
            (KeyCode::Char(' '), _) => self.toggle_pause(),
            (KeyCode::End | KeyCode::Char('f'), _) => self.resume_follow(),
            (KeyCode::Tab | KeyCode::BackTab, _) => {
                self.focus = match self.focus {
                    Focus::Table => Focus::Detail,
                    Focus::Detail => Focus::Table,
                }
            }
            (KeyCode::Enter, Focus::Table) => self.focus = Focus::Detail,
            (KeyCode::Esc, Focus::Detail) => self.focus = Focus::Table,
            (KeyCode::Up | KeyCode::Char('k'), Focus::Table) => self.move_by(-1),
            (KeyCode::Down | KeyCode::Char('j'), Focus::Table) => self.move_by(1),
            (KeyCode::PageUp, Focus::Table) => self.move_by(-(page as i64)),
            (KeyCode::PageDown, Focus::Table) => self.move_by(page as i64),
            (KeyCode::Home | KeyCode::Char('g'), Focus::Table) => self.select_at(0),
            (KeyCode::Char('G'), Focus::Table) => {
                self.select_at(self.visible.len().saturating_sub(1))
            }
            (KeyCode::Up | KeyCode::Char('k'), Focus::Detail) => self.scroll_by(-1),
            (KeyCode::Down | KeyCode::Char('j'), Focus::Detail) => self.scroll_by(1),
            (KeyCode::PageUp, Focus::Detail) => self.scroll_by(-(page as i64)),
            (KeyCode::PageDown, Focus::Detail) => self.scroll_by(page as i64),
            (KeyCode::Home | KeyCode::Char('g'), Focus::Detail) => self.detail_scroll = 0,
            (KeyCode::Char('G'), Focus::Detail) => {
                self.detail_scroll = self.viewport.detail_max_scroll
            }
            _ => {}
        }
        Action::Continue
    }

    /// What the last drawing measured.
    pub(crate) fn set_viewport(&mut self, viewport: Viewport) {
        self.viewport = viewport;
        self.detail_scroll = self.detail_scroll.min(viewport.detail_max_scroll);
    }

    // ------------------------------------------------------------------------------------------
    // State changes

    /// Pause (hold new records) or resume (show them).
    pub(crate) fn toggle_pause(&mut self) {
        if self.paused {
            self.paused = false;
            while let Some(record) = self.pending.pop_front() {
                self.insert(record);
            }
        } else {
            self.paused = true;
        }
    }

    /// Select the newest visible record and keep selecting the newest.
    pub(crate) fn resume_follow(&mut self) {
        self.follow = true;
        self.settle();
    }

    /// Apply a filter (an empty one shows everything).
    pub(crate) fn set_filter(&mut self, text: &str) {
        self.filter = Filter::parse(text);
        let filter = &self.filter;
        self.visible = self
            .entries
            .iter()
            .filter(|e| filter.matches(&e.record))
            .map(|e| e.seq)
            .collect();
        self.settle();
    }

    fn move_by(&mut self, delta: i64) {
        let Some(at) = self.selected_index() else {
            return;
        };
        let last = self.visible.len().saturating_sub(1) as i64;
        self.select_at((at as i64 + delta).clamp(0, last) as usize);
    }

    /// Select the `index`th visible record; leaves follow mode.
    fn select_at(&mut self, index: usize) {
        self.follow = false;
        if let Some(seq) = self.visible.get(index) {
            self.select(*seq);
        }
    }

    fn select(&mut self, seq: u64) {
        if self.selected != Some(seq) {
            self.selected = Some(seq);
            self.detail_scroll = 0;
        }
    }

    fn scroll_by(&mut self, delta: i64) {
        let max = self.viewport.detail_max_scroll as i64;
        self.detail_scroll = (self.detail_scroll as i64 + delta).clamp(0, max) as usize;
    }

    /// Keep the selection on a visible record: the newest when following, else the selected one,
    /// else the nearest one after it (or the last).
    fn settle(&mut self) {
        let Some(last) = self.visible.back().copied() else {
            self.selected = None;
            return;
        };
        if self.follow {
            self.select(last);
            return;
        }
        let target = self.selected.unwrap_or(0);
        let nearest = match self.visible.binary_search(&target) {
            Ok(_) => target,
            Err(at) => self.visible.get(at).copied().unwrap_or(last),
        };
        self.select(nearest);
    }

    // ------------------------------------------------------------------------------------------
    // Reading the state (for drawing and tests)

    fn entry(&self, seq: u64) -> Option<&Exchange> {
        let first = self.entries.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get(index).map(|e| &e.record)
    }

    /// The records the filter lets through, oldest first, from `start`, at most `n`.
    pub(crate) fn visible_records(
        &self,
        start: usize,
        n: usize,
    ) -> impl Iterator<Item = &Exchange> + '_ {
        self.visible
            .iter()
            .skip(start)
            .take(n)
            .filter_map(|seq| self.entry(*seq))
    }

    pub(crate) fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The position of the selected record among the visible ones.
    pub(crate) fn selected_index(&self) -> Option<usize> {
        let seq = self.selected?;
        self.visible.binary_search(&seq).ok()
    }

    pub(crate) fn selected_record(&self) -> Option<&Exchange> {
        self.entry(self.selected?)
    }

    /// Records in memory.
    pub(crate) fn records(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn errors(&self) -> usize {
        self.errors
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn missed_count(&self) -> u64 {
        self.missed
    }

    pub(crate) fn following(&self) -> bool {
        self.follow
    }

    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    pub(crate) fn filter_text(&self) -> &str {
        &self.filter.text
    }

    pub(crate) fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    pub(crate) fn focus(&self) -> Focus {
        self.focus
    }

    pub(crate) fn detail_scroll(&self) -> usize {
        self.detail_scroll
    }

    pub(crate) fn help(&self) -> bool {
        self.help
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
}

/// An exchange that did not get a good answer: a status of 400 or more, or no answer at all.
/// Probes and tunnels are authtap's own and not counted.
pub(crate) fn is_error(record: &Exchange) -> bool {
    record.kind == RecordKind::Exchange
        && (record.status.is_some_and(|s| s >= 400) || record.failure.is_some())
}

/// The `/` filter: words that must all match. `field:value` looks at one field, a plain word at
/// provider, route, host, path, model, status, finding codes and the error; case is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Anywhere(String),
    Field(Field, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Code,
    Status,
    Provider,
    Route,
    Region,
    Host,
    Path,
    Model,
    Method,
    Kind,
    Id,
}

impl Field {
    fn named(name: &str) -> Option<Field> {
        Some(match name {
            "code" | "finding" => Field::Code,
            "status" => Field::Status,
            "provider" => Field::Provider,
            "route" => Field::Route,
            "region" => Field::Region,
            "host" => Field::Host,
            "path" => Field::Path,
            "model" => Field::Model,
            "method" => Field::Method,
            "kind" => Field::Kind,
            "id" => Field::Id,
            _ => return None,
        })
    }
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Filter {
        let text = text.trim().to_string();
        let terms = text
            .split_whitespace()
            .map(|word| {
                let word = word.to_lowercase();
                match word.split_once(':') {
                    Some((name, value)) if !value.is_empty() => match Field::named(name) {
                        Some(field) => Term::Field(field, value.to_string()),
                        None => Term::Anywhere(word),
                    },
                    _ => Term::Anywhere(word),
                }
            })
            .collect();
        Filter { text, terms }
    }

    pub(crate) fn matches(&self, r: &Exchange) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Anywhere(word) => anywhere(r, word),
            Term::Field(field, value) => field_matches(r, *field, value),
        })
    }
}

fn has(text: Option<&str>, word: &str) -> bool {
    text.is_some_and(|t| t.to_lowercase().contains(word))
}

fn anywhere(r: &Exchange, word: &str) -> bool {
    let error = r.error.as_ref();
    has(r.provider.as_deref(), word)
        || has(r.route.as_deref(), word)
        || has(r.host.as_deref(), word)
        || has(Some(&r.path), word)
        || has(r.model.as_deref(), word)
        || r.status.is_some_and(|s| s.to_string().contains(word))
        || r.findings.iter().any(|f| has(Some(&f.code), word))
        || has(error.and_then(|e| e.message.as_deref()), word)
        || has(error.and_then(|e| e.kind.as_deref()), word)
        || has(error.and_then(|e| e.code.as_deref()), word)
        || has(r.failure.as_ref().map(|f| f.message.as_str()), word)
}

fn field_matches(r: &Exchange, field: Field, value: &str) -> bool {
    let exact = |text: Option<&str>| text.is_some_and(|t| t.eq_ignore_ascii_case(value));
    match field {
        Field::Code => r.findings.iter().any(|f| has(Some(&f.code), value)),
        Field::Status => status_matches(r.status, value),
        Field::Provider => has(r.provider.as_deref(), value),
        Field::Route => has(r.route.as_deref(), value),
        Field::Region => exact(r.region.as_deref()),
        Field::Host => has(r.host.as_deref(), value),
        Field::Path => has(Some(&r.path), value),
        Field::Model => has(r.model.as_deref(), value),
        Field::Method => exact(Some(&r.method)),
        Field::Kind => exact(Some(kind_name(r.kind))),
        Field::Id => has(Some(&r.id), value),
    }
}

/// `401` exactly, `4xx` or `40x` a class, `none` no status.
fn status_matches(status: Option<u16>, pattern: &str) -> bool {
    let Some(status) = status else {
        return pattern == "none" || pattern == "-";
    };
    let status = status.to_string();
    status.len() == pattern.len()
        && status
            .chars()
            .zip(pattern.chars())
            .all(|(s, p)| p == 'x' || p == '*' || s == p)
}

pub(crate) fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Exchange => "exchange",
        RecordKind::Probe => "probe",
        RecordKind::Tunnel => "tunnel",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use authtap_inspector::record::{Finding, Severity};

    /// A record like authtap writes, with the fields the console shows.
    pub(crate) fn record(n: u64, status: Option<u16>, codes: &[&str]) -> Exchange {
        let mut r = Exchange::new(
            format!("abcd1234-{n}"),
            RecordKind::Exchange,
            format!("2026-11-25T01:54:{:02}.{:03}Z", n % 60, n % 1000),
            "POST".into(),
            "/v1/chat/completions".into(),
        );
        r.route = Some("moonshot".into());
        r.provider = Some("moonshot".into());
        r.region = Some("intl".into());
        r.host = Some("api.moonshot.ai".into());
        r.model = Some("kimi-k2.5".into());
        r.status = status;
        r.duration_ms = 5.0;
        r.findings = codes
            .iter()
            .map(|code| Finding {
                code: code.to_string(),
                severity: Severity::Error,
                title: format!("{code} title"),
                detail: format!("{code} detail"),
                fix: format!("{code} fix: do this"),
                evidence: Vec::new(),
            })
            .collect();
        r
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn app_with(n: u64) -> App {
        let mut app = App::new(Link::Connected {
            target: "http://127.0.0.1:7401".into(),
        });
        for i in 0..n {
            app.push(record(i, Some(200), &[]));
        }
        app
    }

    fn selected_id(app: &App) -> Option<String> {
        app.selected_record().map(|r| r.id.clone())
    }

    #[test]
    fn follow_keeps_the_newest_selected_until_the_user_moves() {
        let mut app = app_with(3);
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-2"));
        app.on_key(key(KeyCode::Up));
        assert!(!app.following());
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-1"));
        app.push(record(3, Some(401), &["region-mismatch"]));
        assert_eq!(
            selected_id(&app).as_deref(),
            Some("abcd1234-1"),
            "stays put"
        );
        app.on_key(key(KeyCode::Char('f')));
        assert!(app.following());
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-3"));
        app.on_key(key(KeyCode::Char('g')));
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-0"));
        app.on_key(key(KeyCode::Char('G')));
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-3"));
        assert!(!app.following());
        app.on_key(key(KeyCode::End));
        assert!(app.following());
    }

    #[test]
    fn pause_holds_new_records_and_counts_them() {
        let mut app = app_with(2);
        app.on_key(key(KeyCode::Char(' ')));
        assert!(app.paused());
        app.push(record(2, Some(401), &[]));
        app.push(record(3, Some(200), &[]));
        assert_eq!(app.records(), 2);
        assert_eq!(app.pending(), 2);
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-1"));
        app.on_key(key(KeyCode::Char(' ')));
        assert!(!app.paused());
        assert_eq!(app.records(), 4);
        assert_eq!(app.pending(), 0);
        assert_eq!(app.errors(), 1);
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-3"), "follows");
    }

    #[test]
    fn filters_match_fields_and_free_text() {
        let mut cn = record(1, Some(401), &["region-mismatch"]);
        cn.provider = Some("moonshot".into());
        cn.route = Some("moonshot-cn".into());
        cn.region = Some("cn".into());
        cn.error = Some(authtap_inspector::error_body::ProviderError {
            kind: Some("invalid_authentication_error".into()),
            code: None,
            message: Some("Invalid Authentication".into()),
        });
        let mut zai = record(2, Some(200), &[]);
        zai.provider = Some("zai".into());
        zai.route = Some("zai".into());
        zai.host = Some("api.z.ai".into());
        zai.model = Some("glm-4.6".into());
        let failed = record(3, None, &[]);
        let cases = [
            ("", vec![true, true, true]),
            ("code:region-mismatch", vec![true, false, false]),
            ("status:401", vec![true, false, false]),
            ("status:4xx", vec![true, false, false]),
            ("status:2xx", vec![false, true, false]),
            ("status:none", vec![false, false, true]),
            ("provider:zai", vec![false, true, false]),
            ("provider:MOONSHOT", vec![true, false, true]),
            ("region:cn", vec![true, false, false]),
            ("invalid", vec![true, false, false]),
            ("glm", vec![false, true, false]),
            ("401 moonshot", vec![true, false, false]),
            ("mismatch", vec![true, false, false]),
            ("z.ai", vec![false, true, false]),
            ("nothing-like-this", vec![false, false, false]),
        ];
        for (text, want) in cases {
            let filter = Filter::parse(text);
            let got: Vec<bool> = [&cn, &zai, &failed]
                .iter()
                .map(|r| filter.matches(r))
                .collect();
            assert_eq!(got, want, "filter {text:?}");
        }
    }

    #[test]
    fn the_filter_prompt_applies_on_enter_and_cancels_on_esc() {
        let mut app = app_with(3);
        app.push(record(3, Some(401), &["region-mismatch"]));
        for c in "/status:401".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.prompt(), Some("status:401"));
        assert_eq!(app.visible_len(), 4, "not applied while typing");
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.visible_len(), 1);
        assert_eq!(app.filter_text(), "status:401");
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Char('x')));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.prompt(), None);
        assert_eq!(app.filter_text(), "status:401", "Esc keeps the old filter");
        app.on_key(key(KeyCode::Char('c')));
        assert_eq!(app.visible_len(), 4);
        // `q` in the prompt is text, not quit.
        app.on_key(key(KeyCode::Char('/')));
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Continue);
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
    }

    #[test]
    fn the_selection_is_clamped_to_what_the_filter_shows() {
        let mut app = app_with(0);
        for i in 0..6 {
            let status = if i % 2 == 0 { 200 } else { 401 };
            app.push(record(i, Some(status), &[]));
        }
        // Select record 2 (a 200), then show only 401s: the nearest after it is 3.
        app.on_key(key(KeyCode::Char('g')));
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-2"));
        app.set_filter("status:401");
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-3"));
        // Past either end stays at the end.
        app.on_key(key(KeyCode::PageDown));
        app.on_key(key(KeyCode::Down));
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-5"));
        for _ in 0..10 {
            app.on_key(key(KeyCode::Up));
        }
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-1"));
        // Nothing matches: nothing selected; clearing brings the selection back.
        app.set_filter("status:500");
        assert_eq!(app.selected_index(), None);
        assert_eq!(app.on_key(key(KeyCode::Down)), Action::Continue);
        app.set_filter("");
        assert!(app.selected_record().is_some());
    }

    #[test]
    fn memory_is_capped_and_the_oldest_records_go_first() {
        let mut app = app_with(0);
        app.on_key(key(KeyCode::Char('g'))); // leave follow mode before anything arrives
        for i in 0..(MAX_RECORDS as u64 + 5) {
            app.push(record(i, Some(if i < 3 { 500 } else { 200 }), &[]));
        }
        assert_eq!(app.records(), MAX_RECORDS);
        assert_eq!(app.visible_len(), MAX_RECORDS);
        assert_eq!(app.dropped(), 5);
        assert_eq!(app.errors(), 0, "the dropped errors are not counted");
        // The selected record was dropped: the oldest kept one is selected.
        assert_eq!(selected_id(&app).as_deref(), Some("abcd1234-5"));
    }

    #[test]
    fn detail_scroll_stays_in_range_and_resets_on_a_new_selection() {
        let mut app = app_with(3);
        app.set_viewport(Viewport {
            table_rows: 10,
            detail_rows: 5,
            detail_max_scroll: 7,
        });
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.focus(), Focus::Detail);
        app.on_key(key(KeyCode::PageDown));
        app.on_key(key(KeyCode::PageDown));
        assert_eq!(app.detail_scroll(), 7);
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.detail_scroll(), 6);
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.detail_scroll(), 0);
    }

    #[test]
    fn help_opens_and_closes() {
        let mut app = app_with(1);
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.help());
        app.on_key(key(KeyCode::Char('j')));
        assert!(app.help(), "other keys do not close it");
        app.on_key(key(KeyCode::Esc));
        assert!(!app.help());
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
    }
}

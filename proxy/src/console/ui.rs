//! Drawing the console's state: the table of exchanges, the selected one's detail and findings,
//! the status bar, the filter prompt and the help overlay. Nothing here changes the state; what the
//! drawing measured (rows on screen, how far the detail can scroll) goes back to the app.
//!
//! For terminals over SSH and a plain `TERM=xterm`: ASCII borders and marks only, the 8 basic
//! colours plus bold, dim and reverse, no mouse.

use std::time::Instant;

use authtap_inspector::record::{Exchange, Outcome, RecordKind, Severity};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};

use super::app::{App, Focus, Link, Viewport, is_error, kind_name};
use crate::sink::plain;

/// Borders in ASCII: box-drawing characters break in non-UTF-8 locales and are ambiguous-width in
/// CJK ones.
const ASCII: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};
/// Below this many columns the detail pane is one column; at or above, facts and findings sit
/// side by side.
const SIDE_BY_SIDE: u16 = 110;
/// Below this many rows only the focused pane is shown.
const TWO_PANES: u16 = 14;
/// The facts column when facts and findings sit side by side.
const FACTS_WIDTH: u16 = 64;
const HIGHLIGHT: &str = "> ";

/// What persists between frames that is only about drawing: the table's scroll position.
#[derive(Debug, Default)]
pub(crate) struct View {
    offset: usize,
}

/// Draw the whole screen.
pub(crate) fn draw(frame: &mut Frame<'_>, app: &App, view: &mut View, now: Instant) -> Viewport {
    let area = frame.area();
    let [main, bar] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let (table_area, detail_area) = if main.height >= TWO_PANES {
        let [t, d] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(main);
        (Some(t), Some(d))
    } else if app.focus() == Focus::Detail {
        (None, Some(main))
    } else {
        (Some(main), None)
    };
    let mut viewport = Viewport::default();
    if let Some(area) = table_area {
        viewport.table_rows = draw_table(frame, app, view, area, now);
    }
    if let Some(area) = detail_area {
        let (rows, max) = draw_detail(frame, app, area);
        viewport.detail_rows = rows;
        viewport.detail_max_scroll = max;
    }
    draw_bar(frame, app, bar, now);
    if app.help() {
        draw_help(frame, area);
    }
    viewport
}

// ----------------------------------------------------------------------------------------------
// The table

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Time,
    Route,
    Method,
    Path,
    Model,
    Status,
    Key,
    Duration,
    Findings,
}

const COLUMNS: [Col; 9] = [
    Col::Time,
    Col::Route,
    Col::Method,
    Col::Path,
    Col::Model,
    Col::Status,
    Col::Key,
    Col::Duration,
    Col::Findings,
];
/// As the terminal narrows, columns go in this order; path, status and findings always stay
/// (what failed, and why, is what the console is for; the rest is in the detail pane).
const DROP_ORDER: [Col; 6] = [
    Col::Method,
    Col::Duration,
    Col::Time,
    Col::Model,
    Col::Key,
    Col::Route,
];
const MIN_PATH: u16 = 10;
const MAX_PATH: u16 = 40;
const MIN_FINDINGS: u16 = 15;
/// What the key column grows by when there is room (a defect list such as `[quoted]`).
const KEY_EXTRA: u16 = 12;

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Time => "TIME",
            Col::Route => "ROUTE",
            Col::Method => "METHOD",
            Col::Path => "PATH",
            Col::Model => "MODEL",
            Col::Status => "STATUS",
            Col::Key => "KEY",
            Col::Duration => "DUR",
            Col::Findings => "FINDINGS",
        }
    }

    /// The width of a fixed column; `None` for the two that take what is left.
    fn width(self) -> Option<u16> {
        Some(match self {
            Col::Time => 12,
            Col::Route => 16,
            Col::Method => 6,
            Col::Model => 14,
            Col::Status => 6,
            Col::Key => 24,
            Col::Duration => 8,
            Col::Path | Col::Findings => return None,
        })
    }
}

/// The columns that fit in `width`, and each one's width.
fn columns(width: u16) -> Vec<(Col, u16)> {
    let mut cols = COLUMNS.to_vec();
    let need = |cols: &[Col]| -> u16 {
        let fixed: u16 = cols.iter().filter_map(|c| c.width()).sum();
        fixed + MIN_PATH + MIN_FINDINGS + cols.len() as u16 - 1
    };
    for drop in DROP_ORDER {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    let fixed: u16 = cols.iter().filter_map(|c| c.width()).sum();
    let mut flexible = width.saturating_sub(fixed + cols.len() as u16 - 1);
    // Room to spare goes first to the key, whose defects (`[quoted]`) come last in the cell.
    let mut key = Col::Key.width().unwrap_or(0);
    if cols.contains(&Col::Key) {
        let spare = flexible.saturating_sub(2 * (MIN_PATH + MIN_FINDINGS));
        key += spare.min(KEY_EXTRA);
        flexible -= spare.min(KEY_EXTRA);
    }
    let path = (flexible * 2 / 5).clamp(MIN_PATH.min(flexible), MAX_PATH);
    let findings = flexible.saturating_sub(path);
    cols.into_iter()
        .map(|c| {
            let w = match c {
                Col::Path => path,
                Col::Findings => findings,
                Col::Key => key,
                _ => c.width().unwrap_or(0),
            };
            (c, w)
        })
        .collect()
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    Block::new()
        .borders(Borders::TOP)
        .border_set(ASCII)
        .title(Span::styled(title, style))
}

/// The table; returns how many record rows fit.
fn draw_table(
    frame: &mut Frame<'_>,
    app: &App,
    view: &mut View,
    area: Rect,
    now: Instant,
) -> usize {
    let shown = app.visible_len();
    let mut title = if app.filter_text().is_empty() {
        format!(" exchanges: {} ", app.records())
    } else {
        format!(
            " exchanges: {shown} of {} match `{}` ",
            app.records(),
            plain(app.filter_text())
        )
    };
    if !app.following() {
        title.push_str("(f follows the newest) ");
    }
    let block = pane_block(title, app.focus() == Focus::Table);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = usize::from(inner.height.saturating_sub(1));
    if shown == 0 {
        let message = empty_message(app, now);
        let text: Vec<Line> = wrap(
            Span::raw(""),
            0,
            &[(message, Style::new().add_modifier(Modifier::DIM))],
            usize::from(inner.width),
        );
        frame.render_widget(Paragraph::new(text), inner);
        return rows;
    }

    // Scroll only as far as needed to keep the selection on screen.
    let selected = app.selected_index().unwrap_or(shown - 1);
    if selected < view.offset {
        view.offset = selected;
    } else if rows > 0 && selected >= view.offset + rows {
        view.offset = selected + 1 - rows;
    }
    view.offset = view.offset.min(shown.saturating_sub(rows.max(1)));

    let cols = columns(inner.width.saturating_sub(HIGHLIGHT.len() as u16));
    let header = Row::new(cols.iter().map(|(c, _)| Cell::from(c.title())))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body: Vec<Row> = app
        .visible_records(view.offset, rows)
        .map(|r| table_row(r, &cols))
        .collect();
    let widths: Vec<Constraint> = cols.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(HIGHLIGHT)
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(Some(selected - view.offset));
    frame.render_stateful_widget(table, inner, &mut state);
    rows
}

fn empty_message(app: &App, now: Instant) -> String {
    if app.records() > 0 {
        return format!(
            "No record matches `{}`. c clears the filter, / changes it.",
            plain(app.filter_text())
        );
    }
    match app.link() {
        Link::Connecting { target } => format!("Connecting to authtap at {target}..."),
        Link::Connected { target } => format!(
            "Connected to authtap at {target}. Waiting for exchanges: point a base URL at authtap (`authtap routes` lists them) and make a request."
        ),
        Link::Reconnecting { error, at, .. } => {
            format!("{error} (trying again in {}s)", seconds_until(*at, now))
        }
        Link::Replay { file, .. } => format!("{file} holds no records."),
    }
}

fn seconds_until(at: Instant, now: Instant) -> u64 {
    at.saturating_duration_since(now).as_millis().div_ceil(1000) as u64
}

fn status_style(status: Option<u16>) -> Style {
    match status {
        Some(200..=299) => Style::new().fg(Color::Green),
        Some(400..=499) => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Some(500..=599) => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Some(_) => Style::new(),
        None => Style::new().add_modifier(Modifier::DIM),
    }
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::Warn => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Severity::Info => Style::new().fg(Color::Cyan),
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warn => "warn",
        Severity::Info => "info",
    }
}

/// `route region`, or the provider when no route was named.
fn route_text(r: &Exchange) -> String {
    let name = r.route.as_deref().or(r.provider.as_deref()).unwrap_or("-");
    match &r.region {
        Some(region) => format!("{} {}", plain(name), plain(region)),
        None => plain(name),
    }
}

/// The key as the provider saw it: `sk-...7890 sk-generic`, defects after.
fn key_spans(r: &Exchange) -> Vec<Span<'static>> {
    let a = &r.auth;
    if !a.present {
        return vec![Span::styled(
            if a.header.is_some() { "empty" } else { "none" },
            Style::new().add_modifier(Modifier::DIM),
        )];
    }
    let shown = match (&a.prefix, &a.last4) {
        (Some(p), Some(l)) => format!("{}...{}", plain(p), plain(l)),
        (Some(p), None) => format!("{}...", plain(p)),
        (None, Some(l)) => format!("...{}", plain(l)),
        (None, None) => "...".to_string(),
    };
    let mut spans = vec![Span::raw(shown), Span::raw(" "), Span::raw(plain(&a.shape))];
    if !a.defects.is_empty() {
        spans.push(Span::styled(
            format!(" [{}]", defects(r).join(",")),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    spans
}

fn defects(r: &Exchange) -> Vec<String> {
    r.auth
        .defects
        .iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn duration_text(ms: f64) -> String {
    if ms >= 100_000.0 {
        format!("{:.0}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}

/// `text` cut to `width` columns, with `~` marking the cut.
fn fit(text: &str, width: u16) -> String {
    let width = usize::from(width);
    if Span::raw(text).width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = Span::raw(c.to_string()).width();
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('~');
    out
}

fn table_row(r: &Exchange, cols: &[(Col, u16)]) -> Row<'static> {
    let cells = cols.iter().map(|(col, width)| match col {
        Col::Time => Cell::from(r.ts.get(11..23).unwrap_or(&r.ts).to_string()),
        Col::Route => Cell::from(fit(&route_text(r), *width)),
        Col::Method => Cell::from(plain(&r.method)),
        Col::Path => {
            let label = match r.kind {
                RecordKind::Exchange => String::new(),
                other => format!("{} ", kind_name(other)),
            };
            Cell::from(fit(&format!("{label}{}", plain(&r.path)), *width))
        }
        Col::Model => Cell::from(fit(&plain(r.model.as_deref().unwrap_or("-")), *width)),
        Col::Status => Cell::from(Span::styled(
            r.status
                .map_or_else(|| "---".to_string(), |s| s.to_string()),
            status_style(r.status),
        )),
        Col::Key => Cell::from(Line::from(key_spans(r))),
        Col::Duration => Cell::from(duration_text(r.duration_ms)),
        Col::Findings => {
            let mut spans = Vec::new();
            for f in &r.findings {
                if !spans.is_empty() {
                    spans.push(Span::raw(" "));
                }
                spans.push(Span::styled(plain(&f.code), severity_style(f.severity)));
            }
            Cell::from(Line::from(spans))
        }
    });
    let row = Row::new(cells);
    if r.kind == RecordKind::Exchange {
        row
    } else {
        // authtap's own probes and pass-through tunnels: there, but not the user's traffic.
        row.style(Style::new().add_modifier(Modifier::DIM))
    }
}

// ----------------------------------------------------------------------------------------------
// The detail pane

/// The detail pane; returns (lines on screen, furthest scroll).
fn draw_detail(frame: &mut Frame<'_>, app: &App, area: Rect) -> (usize, usize) {
    let record = app.selected_record();
    let title = match record {
        Some(r) => format!(" {} {} ", kind_name(r.kind), plain(&r.id)),
        None => " detail ".to_string(),
    };
    let focused = app.focus() == Focus::Detail;
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = usize::from(inner.height);
    let Some(r) = record else {
        let text = Line::styled(
            "Select an exchange to see its detail.",
            Style::new().add_modifier(Modifier::DIM),
        );
        frame.render_widget(Paragraph::new(text), inner);
        return (rows, 0);
    };
    let scroll = app.detail_scroll();
    if inner.width >= SIDE_BY_SIDE {
        let [left, right] =
            Layout::horizontal([Constraint::Length(FACTS_WIDTH), Constraint::Min(0)]).areas(inner);
        let findings_block = Block::new().borders(Borders::LEFT).border_set(ASCII);
        let right_inner = findings_block.inner(right);
        frame.render_widget(findings_block, right);
        // One space between the border and the text.
        let right_inner = Rect {
            x: right_inner.x + 1,
            width: right_inner.width.saturating_sub(1),
            ..right_inner
        };
        let facts = facts(r, usize::from(left.width));
        let findings = findings(r, usize::from(right_inner.width));
        let max = facts.len().max(findings.len()).saturating_sub(rows);
        let scroll = scroll.min(max);
        frame.render_widget(Paragraph::new(facts).scroll((to_u16(scroll), 0)), left);
        frame.render_widget(
            Paragraph::new(findings).scroll((to_u16(scroll), 0)),
            right_inner,
        );
        (rows, max)
    } else {
        // One column: the findings first, so a short pane shows why before what.
        let width = usize::from(inner.width);
        let mut lines = findings(r, width);
        lines.push(Line::raw(""));
        lines.extend(facts(r, width));
        let max = lines.len().saturating_sub(rows);
        let scroll = scroll.min(max);
        frame.render_widget(Paragraph::new(lines).scroll((to_u16(scroll), 0)), inner);
        (rows, max)
    }
}

fn to_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

const LABEL: usize = 10;

fn label(text: &str) -> Span<'static> {
    Span::styled(
        format!("{text:<LABEL$}"),
        Style::new().add_modifier(Modifier::BOLD),
    )
}

fn normal(text: impl Into<String>) -> (String, Style) {
    (text.into(), Style::new())
}

fn dim(text: impl Into<String>) -> (String, Style) {
    (text.into(), Style::new().add_modifier(Modifier::DIM))
}

fn opt(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_string(), plain)
}

/// What the record says about the exchange, label by label.
fn facts(r: &Exchange, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut add = |name: &str, parts: Vec<(String, Style)>| {
        lines.extend(wrap(label(name), LABEL, &parts, width));
    };
    let mode = serde_json::to_value(r.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    add(
        "when",
        vec![
            normal(r.ts.replace('T', " ").replace('Z', " UTC")),
            dim(format!(" ({mode})")),
        ],
    );
    add(
        "route",
        vec![
            normal(opt(r.route.as_deref())),
            dim(" provider "),
            normal(opt(r.provider.as_deref())),
            dim(" region "),
            normal(opt(r.region.as_deref())),
        ],
    );
    add("host", vec![normal(opt(r.host.as_deref()))]);
    add(
        "request",
        vec![normal(format!("{} {}", plain(&r.method), plain(&r.path)))],
    );
    let stream = match r.stream {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    add(
        "model",
        vec![
            normal(opt(r.model.as_deref())),
            dim(" stream "),
            normal(stream),
        ],
    );
    for (i, auth) in std::iter::once(&r.auth).chain(&r.other_auth).enumerate() {
        let name = if i == 0 { "auth" } else { "also sent" };
        if !auth.present {
            let what = match &auth.header {
                Some(h) => format!("{} (empty)", plain(h)),
                None => "no key sent".to_string(),
            };
            add(name, vec![normal(what)]);
            continue;
        }
        let header = opt(auth.header.as_deref());
        let scheme = auth
            .scheme
            .as_deref()
            .map(|s| format!(" {}", plain(s)))
            .unwrap_or_default();
        add(
            name,
            vec![
                normal(format!("{header}{scheme}")),
                dim(" len "),
                normal(auth.len.to_string()),
                dim(" prefix "),
                normal(opt(auth.prefix.as_deref())),
                dim(" last4 "),
                normal(opt(auth.last4.as_deref())),
            ],
        );
        let providers = if auth.shape_providers.is_empty() {
            String::new()
        } else {
            format!(" ({})", plain(&auth.shape_providers.join(", ")))
        };
        add(
            "",
            vec![
                dim("shape "),
                normal(format!("{}{providers}", plain(&auth.shape))),
            ],
        );
        add(
            "",
            vec![
                dim("fingerprint "),
                normal(opt(auth.fingerprint.as_deref())),
            ],
        );
        let defect_names: Vec<String> = auth
            .defects
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if defect_names.is_empty() {
            add("", vec![dim("defects "), normal("none")]);
        } else {
            add(
                "",
                vec![
                    dim("defects "),
                    (
                        defect_names.join(", "),
                        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                    ),
                ],
            );
        }
    }
    if let Some(ua) = &r.user_agent {
        add("client", vec![normal(plain(ua))]);
    }
    let status = r
        .status
        .map_or_else(|| "no status".to_string(), |s| s.to_string());
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut parts = vec![(status, status_style(r.status))];
    if let Some(ct) = &r.content_type {
        parts.push(normal(format!(" {}", plain(ct))));
    }
    if let Some(v) = &r.upstream_version {
        parts.push(dim(format!(" over {}", plain(v))));
    }
    if r.outcome != Outcome::Complete {
        parts.push((
            format!(" ({outcome})"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    add("status", parts);
    if let Some(e) = &r.error {
        let mut parts = Vec::new();
        if let Some(kind) = &e.kind {
            parts.push(normal(plain(kind)));
        }
        if let Some(code) = &e.code {
            parts.push(dim(" code "));
            parts.push(normal(plain(code)));
        }
        if let Some(message) = &e.message {
            if !parts.is_empty() {
                parts.push(dim(": "));
            }
            parts.push(normal(plain(message)));
        }
        add("error", parts);
    }
    if let Some(f) = &r.failure {
        let stage = serde_json::to_value(f.stage)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        add(
            "failure",
            vec![
                (
                    stage,
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                normal(format!(": {}", plain(&f.message))),
            ],
        );
    }
    let ttfb = r
        .ttfb_ms
        .map_or_else(|| "-".to_string(), |t| format!("{t:.1} ms"));
    add(
        "timing",
        vec![
            dim("first byte "),
            normal(ttfb),
            dim(" total "),
            normal(format!("{:.1} ms", r.duration_ms)),
        ],
    );
    add(
        "bytes",
        vec![
            dim("up "),
            normal(r.bytes_up.to_string()),
            dim(" down "),
            normal(r.bytes_down.to_string()),
        ],
    );
    if let Some(of) = &r.probe_of {
        add("probe of", vec![normal(plain(of))]);
    }
    if is_error(r) && r.findings.is_empty() {
        add("", vec![dim("(no finding explains this one)")]);
    }
    lines
}

/// Every finding: severity and code, title, detail, fix.
fn findings(r: &Exchange, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if r.findings.is_empty() {
        lines.push(Line::styled(
            "no findings",
            Style::new().add_modifier(Modifier::DIM),
        ));
        return lines;
    }
    let bold = Style::new().add_modifier(Modifier::BOLD);
    for (i, f) in r.findings.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        let style = severity_style(f.severity);
        lines.extend(wrap(
            Span::styled(format!("[{}] ", severity_name(f.severity)), style),
            2,
            &[(plain(&f.code), style)],
            width,
        ));
        lines.extend(wrap(Span::raw("  "), 2, &[(plain(&f.title), bold)], width));
        for paragraph in f.detail.lines() {
            lines.extend(wrap(Span::raw("  "), 2, &[normal(plain(paragraph))], width));
        }
        for (n, fix) in f.fix.lines().enumerate() {
            let first = if n == 0 {
                Span::styled(
                    "  fix: ",
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                )
            } else {
                Span::raw("       ")
            };
            lines.extend(wrap(first, 7, &[normal(plain(fix))], width));
        }
    }
    lines
}

/// Styled text wrapped to `width` columns: the first line after `first` (a label), the next ones
/// after `indent` spaces. Words stay whole where they fit; a longer one is cut.
fn wrap(
    first: Span<'static>,
    indent: usize,
    parts: &[(String, Style)],
    width: usize,
) -> Vec<Line<'static>> {
    let width = width.max(indent + 8);
    let mut lines = Vec::new();
    let mut used = first.width();
    let mut line: Vec<Span<'static>> = vec![first];
    // Whether the line has text after its label, and whether a space came since the last word.
    let mut has_text = false;
    let mut gap = false;
    for (text, style) in parts {
        for (i, word) in text.split(' ').enumerate() {
            gap |= i > 0;
            if word.is_empty() {
                continue;
            }
            let space = usize::from(gap && has_text);
            gap = false;
            if has_text && used + space + Span::raw(word).width() > width {
                lines.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(indent)));
                used = indent;
            } else if space == 1 {
                line.push(Span::styled(" ", *style));
                used += 1;
            }
            // A word longer than a whole line: cut it.
            let mut rest = word.to_string();
            while used + Span::raw(rest.as_str()).width() > width {
                let room = width.saturating_sub(used).max(1);
                let cut: String = rest.chars().take(room).collect();
                rest = rest.chars().skip(room).collect();
                line.push(Span::styled(cut, *style));
                lines.push(Line::from(std::mem::take(&mut line)));
                line.push(Span::raw(" ".repeat(indent)));
                used = indent;
            }
            used += Span::raw(rest.as_str()).width();
            line.push(Span::styled(rest, *style));
            has_text = true;
        }
    }
    lines.push(Line::from(line));
    lines
}

// ----------------------------------------------------------------------------------------------
// The status bar, the prompt and the help overlay

fn draw_bar(frame: &mut Frame<'_>, app: &App, area: Rect, now: Instant) {
    let base = Style::new().add_modifier(Modifier::REVERSED);
    if let Some(text) = app.prompt() {
        let line = Line::from(vec![
            Span::styled(format!("/{text}_"), base.add_modifier(Modifier::BOLD)),
            Span::styled(
                "   Enter applies, Esc cancels. e.g. status:401 code:region-mismatch provider:moonshot, or any word",
                base,
            ),
        ]);
        frame.render_widget(Paragraph::new(line).style(base), area);
        return;
    }
    let mut spans = Vec::new();
    let link = match app.link() {
        Link::Connecting { target } => {
            Span::styled(format!(" connecting to {target} "), base.fg(Color::Yellow))
        }
        Link::Connected { target } => {
            Span::styled(format!(" connected {target} "), base.fg(Color::Green))
        }
        Link::Reconnecting { at, error, .. } => Span::styled(
            format!(
                " reconnecting in {}s ({}) ",
                seconds_until(*at, now),
                error.message
            ),
            base.fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Link::Replay { file, skipped } => {
            let skipped = match skipped {
                0 => String::new(),
                1 => ", 1 line skipped".to_string(),
                n => format!(", {n} lines skipped"),
            };
            Span::styled(format!(" replay {file}{skipped} "), base.fg(Color::Cyan))
        }
    };
    spans.push(link);
    let mut counts = format!(
        "| {} {}, {} {} ",
        app.records(),
        if app.records() == 1 {
            "record"
        } else {
            "records"
        },
        app.errors(),
        if app.errors() == 1 { "error" } else { "errors" },
    );
    if app.dropped() > 0 {
        counts.push_str(&format!("({} oldest dropped) ", app.dropped()));
    }
    spans.push(Span::styled(counts, base));
    if app.missed_count() > 0 {
        spans.push(Span::styled(
            format!("| {} missed ", app.missed_count()),
            base.fg(Color::Yellow),
        ));
    }
    if app.paused() {
        spans.push(Span::styled(
            format!("| paused ({} new) ", app.pending()),
            base.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    } else if app.following() {
        spans.push(Span::styled("| follow ", base));
    }
    if !app.filter_text().is_empty() {
        spans.push(Span::styled(
            format!("| filter {} ", plain(app.filter_text())),
            base,
        ));
    }
    let keys = "| q quit  ? help  / filter  space pause  f follow  Tab detail ";
    let used: usize = spans.iter().map(Span::width).sum();
    if used + keys.len() <= usize::from(area.width) {
        spans.push(Span::styled(keys, base.add_modifier(Modifier::DIM)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(base), area);
}

const HELP: &[(&str, &str)] = &[
    ("Up/Down, j/k", "select an exchange (stops following)"),
    ("PgUp/PgDn", "a page up or down"),
    ("g/Home, G", "the oldest, the newest"),
    ("End, f", "follow: keep the newest selected"),
    ("space", "pause (new records wait, counted) / resume"),
    ("/", "filter: Enter applies, Esc cancels"),
    ("c", "clear the filter"),
    ("Tab, Enter", "switch to the detail pane (arrows scroll it)"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

const FILTER_HELP: &[&str] = &[
    "Filter words must all match. A plain word looks at provider, route,",
    "host, path, model, status, finding codes and the provider's error.",
    "field:value looks at one field: code: status: provider: route:",
    "region: host: path: model: method: kind: id:",
    "e.g. status:401  status:4xx  code:region-mismatch  provider:moonshot",
];

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let width = 74.min(area.width);
    let height = (HELP.len() + FILTER_HELP.len() + 5).min(usize::from(area.height)) as u16;
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {key:<14}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.extend(FILTER_HELP.iter().map(|l| Line::raw(format!(" {l}"))));
    let block = Block::bordered().border_set(ASCII).title(Span::styled(
        " authtap console: keys (? or Esc closes) ",
        Style::new().add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::app::tests::record;
    use authtap_inspector::record::Finding;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        let mut view = View::default();
        let mut viewport = Viewport::default();
        terminal
            .draw(|f| viewport = draw(f, app, &mut view, Instant::now()))
            .expect("draw");
        app.set_viewport(viewport);
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn app() -> App {
        let mut app = App::new(Link::Connected {
            target: "http://127.0.0.1:7401".into(),
        });
        app.push(record(1, Some(200), &[]));
        let mut refused = record(2, Some(401), &[]);
        refused.route = Some("moonshot-cn".into());
        refused.region = Some("cn".into());
        refused.host = Some("api.moonshot.cn".into());
        refused.auth = std::sync::Arc::new(authtap_inspector::auth::AuthShape {
            present: true,
            prefix: Some("sk-".into()),
            last4: Some("7890".into()),
            shape: "sk-generic".into(),
            ..Default::default()
        });
        refused.findings = vec![Finding {
            code: "region-mismatch".into(),
            severity: Severity::Error,
            title: "Moonshot refused this key at api.moonshot.cn (cn) but accepts it at api.moonshot.ai (intl)".into(),
            detail: "The key belongs to the other region's platform.".into(),
            fix: "openclaw config set models.providers.moonshot.baseUrl https://api.moonshot.ai/v1\n(while testing through authtap, use its route `moonshot` instead)".into(),
            evidence: Vec::new(),
        }];
        app.push(refused);
        let mut probe = record(3, Some(200), &[]);
        probe.kind = RecordKind::Probe;
        probe.path = "/v1/models".into();
        app.push(probe);
        app.on_key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Up,
            crossterm::event::KeyModifiers::NONE,
        ));
        app
    }

    #[test]
    fn a_401_row_shows_its_finding_and_the_detail_shows_the_fix() {
        let mut app = app();
        let text = screen(&mut app, 160, 45);
        let row = text
            .lines()
            .find(|l| l.contains(" 401 "))
            .unwrap_or_else(|| panic!("no 401 row:\n{text}"));
        assert!(row.contains("region-mismatch"), "{row}");
        assert!(row.contains("moonshot-cn cn"), "{row}");
        assert!(row.contains("sk-...7890 sk-generic"), "{row}");
        assert!(row.starts_with("> "), "the selected row is marked: {row}");
        assert!(text.contains("probe /v1/models"), "{text}");
        assert!(text.contains("[error] region-mismatch"), "{text}");
        assert!(
            text.contains("fix: openclaw config set models.providers.moonshot.baseUrl"),
            "{text}"
        );
        assert!(text.contains("https://api.moonshot.ai/v1"), "{text}");
        assert!(text.contains("api.moonshot.cn"), "{text}");
        assert!(text.contains("connected http://127.0.0.1:7401"), "{text}");
        assert!(text.contains("3 records, 1 error"), "{text}");
        assert!(text.is_ascii(), "ASCII only on screen:\n{text}");
    }

    #[test]
    fn narrow_and_short_terminals_keep_status_path_and_findings() {
        let mut app = app();
        for (width, height) in [(100, 30), (80, 24), (60, 20), (40, 10), (20, 5), (1, 1)] {
            let text = screen(&mut app, width, height);
            if width >= 60 {
                let row = text
                    .lines()
                    .find(|l| l.contains(" 401 "))
                    .unwrap_or_else(|| panic!("{width}x{height}: no 401 row:\n{text}"));
                assert!(row.contains("region-mis"), "{width}x{height}: {row}");
                assert!(row.contains("/v1/chat"), "{width}x{height}: {row}");
            }
        }
        // The detail alone when it has the focus on a short terminal.
        app.on_key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Tab,
            crossterm::event::KeyModifiers::NONE,
        ));
        let text = screen(&mut app, 80, 12);
        assert!(text.contains("region-mismatch"), "{text}");
        assert!(!text.contains("STATUS"), "{text}");
    }

    #[test]
    fn columns_drop_in_order_and_fill_the_width() {
        let all = columns(200);
        assert_eq!(all.len(), 9);
        let narrow: Vec<Col> = columns(70).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            narrow,
            vec![Col::Route, Col::Path, Col::Status, Col::Findings]
        );
        for width in [20, 60, 80, 120, 160, 240] {
            let cols = columns(width);
            let total: u16 = cols.iter().map(|(_, w)| w).sum::<u16>() + cols.len() as u16 - 1;
            assert!(
                total <= width.max(MIN_PATH + MIN_FINDINGS + 6),
                "{width}: {cols:?}"
            );
        }
    }

    #[test]
    fn status_bar_says_paused_with_the_count_and_the_prompt_replaces_it() {
        let mut app = app();
        app.toggle_pause();
        app.push(record(9, Some(500), &[]));
        let text = screen(&mut app, 160, 45);
        assert!(text.contains("paused (1 new)"), "{text}");
        app.on_key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('/'),
            crossterm::event::KeyModifiers::NONE,
        ));
        let text = screen(&mut app, 160, 45);
        assert!(
            text.lines().last().is_some_and(|l| l.starts_with("/_")),
            "{text}"
        );
    }

    #[test]
    fn a_lost_connection_shows_the_countdown_and_what_to_do() {
        let mut app = App::new(Link::Reconnecting {
            target: "http://127.0.0.1:7401".into(),
            error: crate::console::source::LinkError {
                message: "cannot reach authtap at http://127.0.0.1:7401: connection refused".into(),
                hint: Some("Is `authtap run` running?".into()),
            },
            at: Instant::now() + std::time::Duration::from_millis(2500),
        });
        let text = screen(&mut app, 160, 45);
        assert!(
            text.contains("reconnecting in 3s (cannot reach authtap"),
            "{text}"
        );
        assert!(text.contains("Is `authtap run` running?"), "{text}");
    }

    #[test]
    fn wrapping_keeps_words_and_indents_continuations() {
        let lines = wrap(
            Span::raw("  fix: "),
            7,
            &[normal("one two three four five six seven")],
            20,
        );
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "  fix: one two three",
                "       four five six",
                "       seven"
            ]
        );
        let long = wrap(Span::raw(""), 2, &[normal("x".repeat(25))], 10);
        assert!(long.iter().all(|l| l.width() <= 10), "{long:?}");
    }
}

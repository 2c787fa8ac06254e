//! `authtap console`: a full-screen terminal view of a running authtap's exchanges (or of a
//! capture, with `--replay`): a live table, the selected exchange's detail and findings, a filter.
//!
//! `app` holds the state and takes keys, `ui` draws it, `source` follows the admin API (it also
//! feeds `authtap tail`). This module owns the terminal: raw mode and the alternate screen on the
//! way in, and on the way out, whatever the way out is (quit, error, panic, SIGTERM or SIGHUP).

pub(crate) mod app;
pub(crate) mod source;
mod ui;

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Stdout, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use authtap_inspector::findings::Inspector;
use crossterm::event::{self, Event};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use self::app::{Action, App, Link};
use self::source::{FeedEvent, Target};
use crate::cli::ConsoleArgs;
use crate::replay::{CaptureReader, Item, recompute_findings};
use crate::sink::plain;

/// With nothing to do for this long the loop checks that the terminal is still there (and moves a
/// countdown such as "reconnecting in 3s").
const IDLE: Duration = Duration::from_secs(1);

/// Run the console; errors are printed (after the terminal is restored) with exit status 2.
pub(crate) fn main(args: &ConsoleArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when the terminal is gone (a closed SSH session).
            let _ = writeln!(io::stderr(), "authtap: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What the loop waits for: everything comes through one channel, so a record is drawn the
/// moment it arrives and a key the moment it is pressed.
enum Input {
    Terminal(Event),
    Feed(FeedEvent),
    /// SIGTERM, SIGHUP or SIGINT.
    Quit,
    /// The terminal cannot be read any more.
    TerminalGone(io::Error),
}

fn run(args: &ConsoleArgs) -> anyhow::Result<()> {
    // Keys are read from the controlling terminal even when stdin is a pipe (`--replay -`).
    if !io::stdout().is_terminal() {
        bail!(
            "authtap console draws on a terminal, and this is not one: use `authtap tail` (or `authtap tail --json`) for pipes and logs"
        );
    }
    // The follower and the signal watcher run here; the terminal loop runs on this thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (tx, rx) = std_mpsc::channel();
    runtime.spawn(watch_signals(tx.clone()));

    let (mut app, target) = match &args.replay {
        Some(file) => (replay(file, args.config.as_deref())?, String::new()),
        None => {
            let target = Target::parse(
                args.connect.connect.as_deref(),
                args.connect.admin_token.as_deref(),
            )?;
            let shown = target.shown.clone();
            let app = App::new(Link::Connecting {
                target: shown.clone(),
            });
            let (feed_tx, mut feed_rx) = mpsc::unbounded_channel();
            runtime.spawn(source::follow(target, usize::MAX, feed_tx));
            let tx = tx.clone();
            runtime.spawn(async move {
                while let Some(event) = feed_rx.recv().await {
                    if tx.send(Input::Feed(event)).is_err() {
                        break;
                    }
                }
            });
            (app, shown)
        }
    };

    let mut screen = Screen::enter().context("cannot set up the terminal")?;
    // Keys on a thread of their own: crossterm spins inside `read` once the terminal hangs up
    // (it reads end-of-file forever), and the loop must stay free to notice and quit. The thread
    // ends with the process.
    std::thread::Builder::new()
        .name("authtap-console-keys".into())
        .spawn(move || {
            loop {
                let input = match event::read() {
                    Ok(event) => Input::Terminal(event),
                    Err(e) => Input::TerminalGone(e),
                };
                let gone = matches!(input, Input::TerminalGone(_));
                if tx.send(input).is_err() || gone {
                    break;
                }
            }
        })
        .context("cannot start the key reader")?;
    let result = event_loop(&mut screen.terminal, &mut app, &rx, &target);
    drop(screen);
    // The follower may be waiting on a socket; do not wait for it.
    runtime.shutdown_background();
    result
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    inputs: &std_mpsc::Receiver<Input>,
    target: &str,
) -> anyhow::Result<()> {
    let mut view = ui::View::default();
    // NO_COLOR (no-color.org): bold, dim and reverse stay; colours go.
    let colour = std::env::var_os("NO_COLOR").is_none();
    let mut dirty = true;
    let mut last_draw = Instant::now();
    loop {
        if dirty || last_draw.elapsed() >= IDLE {
            let now = Instant::now();
            let mut viewport = app::Viewport::default();
            terminal
                .draw(|frame| {
                    viewport = ui::draw(frame, app, &mut view, now);
                    if !colour {
                        for cell in &mut frame.buffer_mut().content {
                            cell.fg = ratatui::style::Color::Reset;
                            cell.bg = ratatui::style::Color::Reset;
                        }
                    }
                })
                .context("cannot draw on the terminal")?;
            app.set_viewport(viewport);
            dirty = false;
            last_draw = now;
            panic_for_tests();
        }
        let first = match inputs.recv_timeout(IDLE) {
            Ok(input) => input,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                // A frame with no change writes nothing, so a hung-up terminal (SSH gone) would
                // go unnoticed: write something harmless, which fails there.
                execute!(terminal.backend_mut(), cursor::Hide).context("the terminal is gone")?;
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // Everything that is waiting, then one frame.
        for input in std::iter::once(first).chain(inputs.try_iter()) {
            dirty = true;
            match input {
                Input::Terminal(Event::Key(key)) => {
                    if app.on_key(key) == Action::Quit {
                        return Ok(());
                    }
                }
                Input::Terminal(Event::Resize(..)) => {
                    terminal.autoresize().context("cannot resize")?;
                }
                Input::Terminal(_) => {}
                Input::Quit => return Ok(()),
                Input::TerminalGone(e) => return Err(e).context("cannot read the terminal"),
                Input::Feed(event) => on_feed(app, event, target),
            }
        }
    }
}

fn on_feed(app: &mut App, event: FeedEvent, target: &str) {
    match event {
        FeedEvent::Connected => app.set_link(Link::Connected {
            target: target.to_string(),
        }),
        FeedEvent::Record(incoming) => app.push(*incoming.record),
        FeedEvent::Lagged { missed, recovered } => app.missed(missed.saturating_sub(recovered)),
        FeedEvent::Unreadable(_) => app.missed(1),
        FeedEvent::Lost {
            error, retry_in, ..
        } => app.set_link(Link::Reconnecting {
            target: target.to_string(),
            error,
            at: Instant::now() + retry_in,
        }),
    }
}

/// Read a capture as `authtap replay` does, findings recomputed; the newest records are kept.
fn replay(file: &std::path::Path, config: Option<&std::path::Path>) -> anyhow::Result<App> {
    let config = crate::load_config(config)?;
    let stdin = file.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_string()
    } else {
        file.display().to_string()
    };
    let input: Box<dyn BufRead> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        let opened = File::open(file).with_context(|| format!("cannot read {name}"))?;
        Box::new(BufReader::with_capacity(64 * 1024, opened))
    };
    let mut reader = CaptureReader::new(input, &name);
    let mut inspector = Inspector::new(Arc::new(config.catalog));
    let mut records = Vec::new();
    let mut skipped = 0;
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Record(mut record, _) => {
                recompute_findings(&mut inspector, &mut record);
                records.push(*record);
                // Only the newest are kept; the inspector still saw every record in order.
                if records.len() >= 2 * app::MAX_RECORDS {
                    records.drain(..app::MAX_RECORDS);
                }
            }
            Item::Skipped(_) => skipped += 1,
        }
    }
    let mut app = App::new(Link::Replay {
        file: plain(&name),
        skipped,
    });
    for record in records {
        app.push(record);
    }
    Ok(app)
}

/// SIGTERM, SIGHUP (a closed SSH session) and a SIGINT from elsewhere (in raw mode Ctrl-C is a
/// key) end the console like `q` does, so the terminal is restored.
async fn watch_signals(quit: std_mpsc::Sender<Input>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = quit.send(Input::Quit);
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        let _ = quit.send(Input::Quit);
    }
}

/// The terminal in raw mode on the alternate screen, for as long as this lives; a panic restores
/// it too, before the panic message is printed.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        ENTERED.store(true, Ordering::SeqCst);
        terminal::enable_raw_mode()?;
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is in the console's state (raw mode, alternate screen) and needs
/// restoring.
static ENTERED: AtomicBool = AtomicBool::new(false);

/// Leave raw mode and the alternate screen and show the cursor, each step tried whatever the
/// others did. Only once: leaving the alternate screen twice would move the cursor back to where
/// it was on entry, and what the shell prints next (a panic message) would be overwritten.
fn restore() {
    if ENTERED.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// Debug builds only: `AUTHTAP_CONSOLE_TEST_PANIC=1` panics after the first frame, so the tests can
/// check that a panic leaves a usable terminal.
fn panic_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("AUTHTAP_CONSOLE_TEST_PANIC").is_some() {
        panic!("AUTHTAP_CONSOLE_TEST_PANIC is set: panicking after the first frame");
    }
}

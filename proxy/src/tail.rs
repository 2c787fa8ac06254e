//! `authtap tail`: a running authtap's records as they finish, one line each, for a second
//! terminal, a pipe or a CI log. The human line is the one `authtap run` prints (findings indented
//! under it); `--json` prints each record exactly as authtap sent it. Every line is flushed as it
//! is written, a closed pipe (`| head`) ends tail quietly, and a lost connection is reported on
//! stderr and retried (see `console::source`).

use std::io::{self, Write};
use std::process::ExitCode;

use tokio::sync::mpsc;

use crate::cli::TailArgs;
use crate::console::source::{self, FeedEvent, Target};
use crate::sink;

/// Backlog records printed first, unless `--no-backlog`.
const BACKLOG: usize = 20;

pub(crate) fn main(args: &TailArgs) -> ExitCode {
    let target = match Target::parse(
        args.connect.connect.as_deref(),
        args.connect.admin_token.as_deref(),
    ) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("authtap: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("authtap: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(tail(target, args));
    // The follower may be waiting on a socket; do not wait for it.
    runtime.shutdown_background();
    code
}

async fn tail(target: Target, args: &TailArgs) -> ExitCode {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let backlog = if args.no_backlog { 0 } else { BACKLOG };
    let shown = target.shown.clone();
    tokio::spawn(source::follow(target, backlog, tx));
    let color = !args.json && sink::stdout_color();
    let mut out = io::stdout().lock();
    let mut connected = false;
    let mut last_error = None;
    while let Some(event) = rx.recv().await {
        match event {
            FeedEvent::Connected => {
                if connected {
                    eprintln!("authtap: reconnected to {shown}");
                }
                connected = true;
                last_error = None;
            }
            FeedEvent::Record(incoming) => {
                let written = if args.json {
                    writeln!(out, "{}", incoming.raw)
                } else {
                    writeln!(out, "{}", sink::human_line(&incoming.record, color))
                }
                .and_then(|()| out.flush());
                match written {
                    Ok(()) => {}
                    // `authtap tail | head`: the reader has seen enough.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("authtap: cannot write to stdout: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            FeedEvent::Lagged { missed, recovered } => {
                if missed > recovered {
                    eprintln!(
                        "authtap: tail fell behind and missed {} record(s); the capture file has them all",
                        missed - recovered
                    );
                }
            }
            FeedEvent::Unreadable(why) => eprintln!("authtap: skipped {why}"),
            FeedEvent::Lost {
                error,
                retry_in,
                was_connected,
            } => {
                if !was_connected {
                    eprintln!("authtap: {error}");
                    return ExitCode::from(2);
                }
                // Once per kind of failure, not once per attempt.
                if last_error.as_ref() != Some(&error) {
                    eprintln!(
                        "authtap: {}; reconnecting (next try in {}s)",
                        error.message,
                        retry_in.as_secs()
                    );
                    last_error = Some(error);
                }
            }
        }
    }
    ExitCode::SUCCESS
}

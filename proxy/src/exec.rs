//! `authtap exec [--] CMD ARGS...`: run a command with authtap in front of it. authtap starts on a
//! free loopback port (or `--attach URL` uses one already running), the child gets the HTTPS_PROXY
//! environment and the CA trust variables, and authtap's lines go to stderr so the child's stdout
//! stays the child's (`authtap exec -- openclaw models status --probe --json > out.json` works).
//! When the child exits, authtap finishes its records, prints the findings in short, and exits with
//! the child's exit status.
//!
//! Ctrl-C reaches the child through the terminal; authtap itself waits for the child to exit
//! rather than stopping under it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, bail};
use authtap_inspector::record::{Finding, Severity};
use clap::Args;

use crate::cli::RunArgs;
use crate::sink::Output;

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Use the authtap already running at URL (e.g. http://127.0.0.1:7401) instead of starting one;
    /// its console shows the child's exchanges.
    #[arg(long, value_name = "URL")]
    pub attach: Option<String>,

    /// The command to run, and its arguments (put `--` before it).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

pub async fn main(args: ExecArgs) -> anyhow::Result<ExitCode> {
    match args.attach.clone() {
        Some(url) => attached(args, &url).await,
        None => own(args).await,
    }
}

/// Start authtap for the child, run it, report.
async fn own(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let output = if args.run.quiet {
        Output::Quiet
    } else {
        Output::HumanStderr
    };
    let proxy = crate::start(args.run, "127.0.0.1:0", output).await?;
    let forward = &proxy.shared.forward;
    let (cert, bundle) = crate::ca::prepare(&forward.ca_dir, forward.ca_files.as_ref())?;
    let env = crate::ca::client_env(&proxy.bound.to_string(), &cert, &bundle);
    let mut child = spawn(&args.command, &env)?;

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let status = wait_ignoring_signals(&mut child).await;
        let _ = done_tx.send(());
        status
    });
    let stats = proxy
        .serve(async {
            let _ = done_rx.await;
        })
        .await;
    let status = waiter.await.context("the child's waiter failed")??;
    report(&stats.findings, stats.records);
    Ok(exit_code(status))
}

/// Point the child at an authtap that is already running.
async fn attached(args: ExecArgs, url: &str) -> anyhow::Result<ExitCode> {
    let target = crate::console::source::Target::parse(Some(url), args.run.admin_token.as_deref())?;
    let shown = target.shown.clone();
    let health = crate::console::source::health(target)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if health.get("session").is_none() {
        bail!("{shown} answered, but not as authtap does");
    }
    let config = crate::load_config(args.run.config.as_deref())?;
    let ca_dir = crate::home::ca_dir(&crate::home::data_dir()?);
    let files = config.settings.ca_cert.zip(config.settings.ca_key);
    let (cert, bundle) = crate::ca::prepare(&ca_dir, files.as_ref())?;
    eprintln!(
        "authtap exec: the child goes through the authtap at {shown}; its console shows the exchanges"
    );
    let authority = shown.trim_start_matches("http://");
    let env = crate::ca::client_env(authority, &cert, &bundle);
    let mut child = spawn(&args.command, &env)?;
    let status = wait_ignoring_signals(&mut child).await?;
    Ok(exit_code(status))
}

fn spawn(command: &[OsString], env: &[(&str, String)]) -> anyhow::Result<tokio::process::Child> {
    let (program, rest) = command.split_first().context("no command to run")?;
    tokio::process::Command::new(program)
        .args(rest)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))
}

/// Wait for the child; Ctrl-C and SIGTERM are the child's to handle, so authtap only notes them.
async fn wait_ignoring_signals(
    child: &mut tokio::process::Child,
) -> anyhow::Result<std::process::ExitStatus> {
    let mut interrupts = std::pin::pin!(crate::shutdown_signal());
    loop {
        tokio::select! {
            status = child.wait() => return Ok(status?),
            () = &mut interrupts => {
                // The terminal sent the signal to the child too; give it time to exit.
                interrupts.set(crate::shutdown_signal());
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(128u8.saturating_add(signal as u8));
        }
    }
    ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

/// The findings of the run, one line each with its fix, most severe first.
fn report(findings: &BTreeMap<String, (Finding, u64)>, records: u64) {
    if findings.is_empty() {
        eprintln!("authtap: {records} record(s), no findings");
        return;
    }
    let mut sorted: Vec<&(Finding, u64)> = findings.values().collect();
    sorted.sort_by_key(|(f, _)| std::cmp::Reverse(f.severity));
    eprintln!("authtap: {records} record(s); findings:");
    for (finding, count) in sorted {
        let mark = match finding.severity {
            Severity::Error => "✖",
            Severity::Warn => "▲",
            Severity::Info => "●",
        };
        eprintln!("  {mark} {} ×{count}: {}", finding.code, finding.title);
        for (i, line) in finding.fix.lines().enumerate() {
            let lead = if i == 0 { "fix:" } else { "    " };
            eprintln!("    {lead} {line}");
        }
    }
}

//! The command line, as clap parses it. Turning it into settings happens in `run`, which merges it
//! over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use authtap_config::ConnectTo;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "authtap",
    version,
    about = "See why your AI gateway's provider calls fail authentication",
    long_about = "authtap is a local proxy for AI gateways such as OpenClaw. Point a provider's base URL at \
it and every call goes through to the real provider unchanged, while authtap shows which host it \
reached, the shape of the key that was sent (never the key), and what the provider answered.",
    after_help = "Start with `authtap run`, then paste one of the base URLs it prints into your gateway."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the proxy: forward each route to its provider and record every exchange.
    Run(RunArgs),
    /// Run a command with authtap as its HTTPS proxy, trusted, and exit with its status:
    /// `authtap exec -- openclaw models status --probe`.
    Exec(crate::exec::ExecArgs),
    /// Print the routes and the base URLs to paste, then exit.
    Routes(RoutesArgs),
    /// OpenClaw: send its providers through authtap (wire), back (unwire), or check its config (doctor).
    #[command(subcommand)]
    Openclaw(crate::openclaw::OpenclawCommand),
    /// The local CA for HTTPS_PROXY mode: where it is, what it is, and how clients trust it.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Read a capture back: recompute every finding and print a timeline and a summary.
    #[command(
        long_about = "Read a capture file back, offline: recompute every finding with the same rules \
`authtap run` uses (the findings stored in the file are not trusted), then print one line per record \
and a summary of the records and of the findings, most severe first. The file is read as a stream, \
so a capture of any size replays in constant memory.\n\n\
Lines that are not records (garbage, a record cut off by a crash) are reported on stderr with their \
line number and skipped; fields this authtap does not know are reported once and ignored. A record \
written by a newer authtap stops the replay.",
        after_help = "Exit status: 0 when replayed (and nothing reached --fail-on), 1 when a finding \
reached --fail-on, 2 when the file cannot be read, the config is invalid, or the capture was written \
by a newer authtap.\n\n\
Example: authtap replay capture.jsonl --fail-on error"
    )]
    Replay(ReplayArgs),
    /// Print a running authtap's records as they finish, one line each (for a second terminal,
    /// a pipe or a CI log).
    #[command(
        long_about = "Print a running authtap's records as they finish: first the last 20, then each \
new one, one line per record as `authtap run` prints it (findings indented under it), or with --json \
the record's JSON line exactly as authtap sent it. Every line is flushed as it is written. When the \
connection is lost tail says so on stderr and reconnects, without printing a record twice.",
        after_help = "Exit status: 0 when stopped or when the reader closes the pipe, 2 when authtap \
cannot be reached at start or the URL is not usable.\n\n\
Example: authtap tail --json | grep region-mismatch"
    )]
    Tail(TailArgs),
    /// A full-screen terminal console: a live table of exchanges, the selected one's detail and
    /// findings, a filter.
    #[command(
        long_about = "A full-screen terminal view of a running authtap's exchanges, newest at the \
bottom: status, route and region, key shape, and finding codes per row; the selected exchange's \
detail with every finding's fix below. With --replay, the same view of a capture file, findings \
recomputed as `authtap replay` does. Press ? in the console for the keys.",
        after_help = "Keys: Up/Down or j/k select, g/G oldest/newest, End or f follow, space pause, \
/ filter (status:401 code:region-mismatch provider:moonshot, or any word), c clear, Tab detail, \
? help, q quit."
    )]
    Console(ConsoleArgs),
}

/// Where a running authtap is, for `tail` and `console`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The running authtap's address [default: http://127.0.0.1:7401]. The consoles URL authtap
    /// prints at start works as is; a `?token=` in it is the admin token.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,

    /// The admin token, needed when authtap listens on a non-loopback address (it prints it at
    /// start).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AUTHTAP_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Print each record as the JSON line authtap sent (the capture format) instead of a human
    /// line.
    #[arg(long)]
    pub json: bool,

    /// Start with the next record instead of the last 20.
    #[arg(long)]
    pub no_backlog: bool,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Show a capture file instead of a running authtap (`-` reads standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "connect")]
    pub replay: Option<PathBuf>,

    /// With --replay: the config file whose catalog the rules use (the one `authtap run` was
    /// given).
    #[arg(long, value_name = "FILE", requires = "replay")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The capture to read (JSON lines, as `authtap run` writes them); `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print each record as one JSON line with its recomputed findings, then one summary line
    /// (`"kind":"summary"`) with the counts, the findings by code, and the problems found in the file.
    #[arg(long)]
    pub json: bool,

    /// Exit with status 1 when any recomputed finding is at least this severe.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,

    /// A TOML config file whose catalog the rules use (give the one `authtap run` was given).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The least severe finding that makes `authtap replay --fail-on` exit with status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Fail on errors only.
    Error,
    /// Fail on warnings and errors.
    Warn,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the path of the CA certificate (PEM) that clients must trust.
    Path(CaArgs),
    /// Print the CA's subject, validity, SHA-256 fingerprint and files.
    Show(CaArgs),
    /// Create the CA now (authtap otherwise creates it on the first intercepted connection).
    Init {
        #[command(flatten)]
        ca: CaArgs,
        /// Replace an existing CA. Clients that trusted the old one must be given the new one.
        #[arg(long)]
        force: bool,
    },
    /// Print the shell lines that point a client at authtap and make it trust the CA:
    /// `eval "$(authtap ca env)"`, then start the client from that shell.
    Env {
        #[command(flatten)]
        ca: CaArgs,
        /// The address authtap listens on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7401")]
        listen: SocketAddr,
        /// Print the lines that undo the setup instead.
        #[arg(long)]
        unset: bool,
    },
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// A TOML config file (its `ca_cert`/`ca_key` name a CA of your own).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// A TOML config file that adds or overrides routes and catalog entries.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The address the base URLs should point at.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7401")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A TOML config file that adds or overrides routes, catalog entries and these settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on. Loopback only unless --allow-remote is given.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Allow listening on a non-loopback address (anyone who can reach it can use your keys'
    /// routes and see the records).
    #[arg(long)]
    pub allow_remote: bool,

    /// The token the admin API and consoles need when authtap listens on a non-loopback address
    /// (default: a random one, printed at start).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AUTHTAP_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Capture file to append records to (JSON lines). Default: a new timestamped file under
    /// <data dir>/captures, where the data dir is $AUTHTAP_HOME or the platform's data dir.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,

    /// Rotate the capture when it reaches this many MiB: the full file becomes FILE.1 (older ones
    /// FILE.2 ... FILE.5) and a new FILE starts [default: no rotation].
    #[arg(long, value_name = "MIB")]
    pub capture_max_mb: Option<f64>,

    /// Print each record as one JSON line on stdout instead of a human line (logs go to stderr).
    #[arg(long)]
    pub json: bool,

    /// Print nothing per exchange; records still go to the capture file.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,

    /// Connect to TARGET instead of HOST:PORT, keeping HOST for TLS (SNI), the Host header and the
    /// record, as curl's --connect-to does. Repeatable.
    #[arg(long, value_name = "HOST:PORT:TARGET_HOST:TARGET_PORT")]
    pub connect_to: Vec<ConnectTo>,

    /// Also trust the CA certificates in this PEM file for upstream TLS (the platform's and
    /// webpki's roots stay trusted). Repeatable.
    #[arg(long, value_name = "PEM_FILE")]
    pub upstream_ca: Vec<PathBuf>,

    /// Client connections served at once; more are answered 503 until some close [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds a client may take to send a request's headers before its connection is closed
    /// (against clients that trickle them) [default: 30].
    #[arg(long, value_name = "SECS")]
    pub header_read_timeout: Option<u64>,

    /// Seconds to wait for an upstream's TCP connect and TLS handshake [default: 10].
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Do not probe a refused key at the provider's other regions. By default authtap sends one
    /// cheap request (e.g. GET /v1/models) with the same key to each sibling region, once per key
    /// and region per run, to tell a wrong region from a bad key.
    #[arg(long)]
    pub no_probe: bool,

    /// Seconds to wait for an upstream's response headers [default: 600].
    #[arg(long, value_name = "SECS")]
    pub response_timeout: Option<u64>,

    /// Threads that serve connections, each with its share of them [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

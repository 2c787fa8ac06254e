//! The command line, as clap parses it. Turning it into settings happens in `run`, which merges it
//! over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use authtap_config::ConnectTo;
use clap::{Args, Parser, Subcommand};

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
    /// Print the routes and the base URLs to paste, then exit.
    Routes(RoutesArgs),
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

    /// Capture file to append records to (JSON lines). Default: a new timestamped file under
    /// <data dir>/captures, where the data dir is $AUTHTAP_HOME or the platform's data dir.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,

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

    /// Seconds to wait for an upstream's TCP connect and TLS handshake [default: 10].
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Seconds to wait for an upstream's response headers [default: 600].
    #[arg(long, value_name = "SECS")]
    pub response_timeout: Option<u64>,
}

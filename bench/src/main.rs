//! authtap-bench: the benchmark harness behind `bench/run.sh`.
//!
//! - `upstream`: a fast fake LLM API (chat completion JSON, SSE stream, 401), plain and TLS;
//! - `sse`: a client that timestamps every SSE event;
//! - `capture`: makes a large capture for `authtap replay` out of a real one;
//! - `floor`: a bare hyper reverse proxy that records nothing, the floor for any hyper proxy;
//! - `scan`: serde_json reading a capture into nothing, the floor for `authtap replay`;
//! - `run`: the whole benchmark, interleaved, ending in RESULTS.md;
//! - `report`: rewrite RESULTS.md from a run's `results.json`.
//!
//! Not part of the authtap workspace, and not for anything but measuring.

mod capture;
mod floor;
mod loadgen;
mod procfs;
mod report;
mod run;
mod scan;
mod sse;
mod upstream;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "authtap's benchmark harness (see bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the fake LLM upstream; prints {"http":PORT,"https":PORT} when listening
    Upstream(upstream::Args),
    /// Time SSE streams event by event; prints JSON
    Sse(sse::Args),
    /// Generate a capture of N records from a real capture
    Capture(capture::Args),
    /// Serve the bare hyper reverse proxy (the floor)
    Floor(floor::Args),
    /// Parse a capture's lines into nothing (the floor for `authtap replay`); prints the count
    Scan(scan::Args),
    /// Run the whole benchmark and write RESULTS.md
    Run(run::Args),
    /// Print the tables RESULTS.md shows from a callgrind output file
    Annotate {
        /// callgrind.out written by `run`'s profile
        callgrind_out: std::path::PathBuf,
    },
    /// Rewrite RESULTS.md from a results.json
    Report {
        /// results.json written by `run`
        results: std::path::PathBuf,
        /// RESULTS.md to write
        out: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Upstream(a) => upstream::run(a),
        Cmd::Sse(a) => sse::run(a),
        Cmd::Capture(a) => capture::run(a),
        Cmd::Floor(a) => floor::run(a),
        Cmd::Scan(a) => scan::run(a),
        Cmd::Run(a) => run::run(a),
        Cmd::Annotate { callgrind_out } => run::annotate(&callgrind_out),
        Cmd::Report { results, out } => {
            let r: run::Results = serde_json::from_slice(&std::fs::read(&results)?)?;
            report::write(&r, &out)
        }
    }
}

//! `authtap-emulator`: run the provider emulator (a test fixture) as a real process, for end-to-end
//! tests and benchmarks. Prints one JSON line `{"addr":"127.0.0.1:PORT","ca":"FILE"}` on stdout when
//! ready (`"ca":null` without `--ca-out`), then serves until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use authtap_emulator::Emulator;
use clap::Parser;

/// Serve HTTPS as the real LLM providers do (test fixture; never contacts a real host).
#[derive(Debug, Parser)]
#[command(name = "authtap-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the test CA certificate (PEM) to FILE.
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// A valid general-plan key on HOST (repeatable).
    #[arg(long = "key", value_name = "HOST=KEY", value_parser = host_key)]
    keys: Vec<(String, String)>,
    /// A coding-plan key of HOST (Z.AI/BigModel/DashScope; repeatable).
    #[arg(long = "coding-key", value_name = "HOST=KEY", value_parser = host_key)]
    coding_keys: Vec<(String, String)>,
    /// Delay between SSE frames, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 20)]
    sse_delay_ms: u64,
    /// Number of content chunks in a streamed answer.
    #[arg(long, value_name = "N", default_value_t = 5)]
    sse_chunks: usize,
    /// Gzip error bodies when the client accepts gzip.
    #[arg(long)]
    gzip_errors: bool,
    /// Make OpenAI echo invalid keys whole instead of masked.
    #[arg(long)]
    echo_full_keys: bool,
}

fn host_key(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((host, key)) if !host.is_empty() && !key.is_empty() => {
            Ok((host.to_owned(), key.to_owned()))
        }
        _ => Err(format!("expected HOST=KEY, got {s:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = Emulator::builder()
        .listen(args.listen)
        .sse_chunk_delay(Duration::from_millis(args.sse_delay_ms))
        .sse_chunks(args.sse_chunks)
        .gzip_errors(args.gzip_errors)
        .echo_full_keys(args.echo_full_keys);
    for (host, key) in &args.keys {
        builder = builder.key(host, key);
    }
    for (host, key) in &args.coding_keys {
        builder = builder.coding_key(host, key);
    }
    let emulator = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("authtap-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.ca_out
        && let Err(e) = std::fs::write(path, emulator.ca_pem())
    {
        eprintln!("authtap-emulator: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let ready = serde_json::json!({
        "addr": emulator.addr().to_string(),
        "ca": args.ca_out.as_ref().map(|p| p.display().to_string()),
    });
    println!("{ready}");
    // Serve until killed (SIGTERM's default action) or interrupted.
    let _ = tokio::signal::ctrl_c().await;
    drop(emulator);
    ExitCode::SUCCESS
}

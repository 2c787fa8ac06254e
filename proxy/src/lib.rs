//! authtap's proxy: everything with a socket. The listener takes base-URL requests, the forwarder
//! streams them to the provider and back, and every finished exchange becomes a record for the
//! capture file and the terminal. The `authtap` binary (main.rs) only parses the command line and
//! calls [`main`].

mod admin;
mod banner;
mod ca;
pub mod cli;
mod console;
mod exec;
mod forward;
mod home;
mod intercept;
mod openclaw;
mod probe;
mod replay;
mod sink;
mod tail;
mod tee;
mod upstream;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use authtap_config::Config;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::cli::{Cli, Command, RunArgs};
use crate::forward::Shared;
use crate::sink::Output;

const DEFAULT_LISTEN: &str = "127.0.0.1:7401";
/// Header limit on the listener (see `connection_builder`).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Enough for a gateway's connection pools with room to spare, and below the usual open-file limits
/// once upstream connections are counted too.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// How long in-flight exchanges get to finish after Ctrl-C before authtap exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Run the parsed command line. An error is for the binary to print (it exits with status 1);
/// `replay` reports its own errors and picks its exit status (0, 1 or 2).
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            runtime()?.block_on(run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Routes(args) => {
            let config = load_config(args.config.as_deref())?;
            print!("{}", banner::routes_table(&config.catalog, args.listen));
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => Ok(replay::main(&args)),
        Command::Tail(args) => Ok(tail::main(&args)),
        Command::Console(args) => Ok(console::main(&args)),
        Command::Exec(args) => runtime()?.block_on(exec::main(args)),
        Command::Openclaw(cmd) => openclaw::main(cmd),
        Command::Ca(command) => {
            ca::main(command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The main thread's runtime: start-up, signals and shutdown. Requests are served on threads of
/// their own (see `serve`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::builtin(),
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let output = if args.quiet {
        Output::Quiet
    } else if args.json {
        Output::Json
    } else {
        Output::Human
    };
    let proxy = start(args, DEFAULT_LISTEN, output).await?;
    proxy.serve(shutdown_signal()).await;
    Ok(())
}

/// A proxy that is listening, with its capture writer running.
pub(crate) struct Proxy {
    pub bound: std::net::SocketAddr,
    pub shared: Arc<Shared>,
    pub capture_path: std::path::PathBuf,
    listener: TcpListener,
    /// How many threads serve connections.
    threads: usize,
    recorder: sink::Recorder,
    writer: std::thread::JoinHandle<sink::SinkStats>,
}

/// Load the config, open the capture, bind the listener and print the banner.
pub(crate) async fn start(
    args: RunArgs,
    default_listen: &str,
    output: Output,
) -> anyhow::Result<Proxy> {
    let config = load_config(args.config.as_deref())?;
    let settings = config.settings;
    let listen = match args.listen.or(settings.listen) {
        Some(addr) => addr,
        None => default_listen.parse()?,
    };
    if !listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to listen on {listen}: it is not a loopback address, so other machines could send requests through your keys' routes and read the records. Use --listen 127.0.0.1:7401, or add --allow-remote if you mean it"
        );
    }
    let mut connect_to = settings.connect_to;
    connect_to.extend(args.connect_to);
    let mut extra_roots = settings.upstream_ca;
    extra_roots.extend(args.upstream_ca);
    let connect_timeout = args
        .connect_timeout
        .or(settings.connect_timeout_secs)
        .unwrap_or(10);
    let response_timeout = args
        .response_timeout
        .or(settings.response_timeout_secs)
        .unwrap_or(600);

    let data_dir = home::data_dir()?;
    let fingerprints = home::fingerprint_key(&data_dir)?;
    let capture_arg = args.capture.or(settings.capture);
    // A capture that cannot be opened is said loudly, and authtap serves on: the terminal, the
    // consoles and --json still get every record.
    let (capture, capture_path) = match home::open_capture(&data_dir, capture_arg.as_deref()) {
        Ok((file, path)) => (Some(file), path),
        Err(e) => {
            let path = capture_arg
                .clone()
                .unwrap_or_else(|| data_dir.join("captures"));
            tracing::error!(
                "{e:#}. authtap keeps forwarding, but records are not saved: they reach only the terminal and the consoles"
            );
            (None, path)
        }
    };
    let threads = args
        .threads
        .map(usize::from)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let (client, dialer) = upstream::client(upstream::UpstreamOptions {
        threads,
        connect_to,
        extra_roots,
        connect_timeout: Duration::from_secs(connect_timeout),
    })?;

    let listener = TcpListener::bind(listen).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {listen}: the address is in use (is another authtap running?). Stop it, or pick another port with --listen 127.0.0.1:7402"
            )
        } else {
            anyhow::anyhow!("cannot listen on {listen}: {e}")
        }
    })?;
    let bound = listener.local_addr()?;

    let catalog = Arc::new(config.catalog);
    let inspector = authtap_inspector::findings::Inspector::new(catalog.clone());
    let feed = Arc::new(admin::Feed::default());
    let rotate_at = args
        .capture_max_mb
        .or(settings.capture_max_mb)
        .map(|mb| (mb * 1024.0 * 1024.0) as u64)
        .filter(|bytes| *bytes > 0);
    let (recorder, writer) = sink::spawn(
        capture,
        capture_path.clone(),
        output,
        inspector,
        feed.clone(),
        rotate_at,
    );
    // A listener others can reach needs a token for the admin API (and so the consoles).
    let admin_token = (!listen.ip().is_loopback()).then(|| {
        args.admin_token
            .clone()
            .or(settings.admin_token.clone())
            .unwrap_or_else(random_token)
    });
    let forward_mode = intercept::ForwardMode::new(
        home::ca_dir(&data_dir),
        settings.ca_cert.clone().zip(settings.ca_key.clone()),
        settings.intercept.clone(),
        settings.other_hosts.unwrap_or_default(),
    );
    let shared = Arc::new(Shared::new(forward::SharedParts {
        catalog,
        client,
        dialer,
        fingerprints,
        recorder: recorder.clone(),
        response_timeout: Duration::from_secs(response_timeout),
        session: session_id(),
        probe: !args.no_probe && settings.probe.unwrap_or(true),
        forward: forward_mode,
        max_connections: args
            .max_connections
            .or(settings.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        header_read_timeout: Duration::from_secs(args.header_read_timeout.unwrap_or(30).max(1)),
        feed,
        admin: admin::Access {
            token: admin_token.clone(),
        },
    }));

    let header = format!(
        "authtap {} listening on http://{bound}\ncapture: {}\nHTTPS_PROXY mode: HTTPS_PROXY=http://{bound} (run `authtap ca env` for the full client setup)\n",
        env!("CARGO_PKG_VERSION"),
        capture_path.display()
    );
    let header = match &admin_token {
        Some(token) => format!(
            "{header}consoles: http://{bound}/_authtap/?token={token} (admin token: {token})\n"
        ),
        None => format!(
            "{header}consoles: http://{bound}/_authtap/ in a browser, or `authtap console`\n"
        ),
    };
    let table = banner::routes_table(&shared.catalog, bound);
    match output {
        // stdout is for records in JSON mode, and for the child under `authtap exec`.
        Output::Json | Output::Quiet | Output::HumanStderr => eprint!("{header}"),
        Output::Human => {
            print!("{header}\n{table}\n");
            if std::io::stdout().is_terminal() {
                println!("Waiting for requests (Ctrl-C to stop)...");
            }
        }
    }
    Ok(Proxy {
        bound,
        shared,
        capture_path,
        listener,
        threads,
        recorder,
        writer,
    })
}

impl Proxy {
    /// Serve until `stop` completes, then finish in-flight exchanges, write every record and say
    /// where they are.
    pub(crate) async fn serve(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> sink::SinkStats {
        let Proxy {
            shared,
            capture_path,
            listener,
            threads,
            recorder,
            writer,
            ..
        } = self;
        serve(listener, shared.clone(), threads, stop).await;
        recorder.stop();
        let stats = tokio::task::spawn_blocking(move || writer.join())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        eprintln!(
            "authtap stopped: {} record(s) in {}",
            stats.records,
            capture_path.display()
        );
        if stats.write_failures > 0 {
            eprintln!(
                "warning: {} write(s) to the capture file failed; see the error above",
                stats.write_failures
            );
        }
        stats
    }
}

/// Accept connections until `stop` completes, then give in-flight exchanges a moment to finish.
///
/// This thread only accepts. Each connection is handed to the serving thread with the fewest open
/// connections, which serves it from start to end on a single-threaded runtime of its own, its
/// upstream connections included (as nginx's workers do), so a request never wakes another thread.
/// Against one multi-threaded runtime that moves tasks between its threads, this took 10% off the
/// CPU per request of a plain hyper proxy at 32 connections and halved its p99 (see bench/RESULTS.md).
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    threads: usize,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut lanes = Vec::new();
    let mut workers = Vec::new();
    for n in 0..threads.max(1) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (shared, counted) = (shared.clone(), open.clone());
        let started = std::thread::Builder::new()
            .name(format!("authtap-serve-{n}"))
            .spawn(move || serve_thread(rx, counted, shared));
        match started {
            Ok(worker) => {
                workers.push(worker);
                lanes.push(Lane { tx, open });
            }
            Err(e) => tracing::warn!("serving on {n} thread(s), not {threads}: {e}"),
        }
    }
    if lanes.is_empty() {
        tracing::error!("no serving thread could start");
        return;
    }
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            // Full: answer 503 and close, rather than queue without bound or fall over.
            tokio::spawn(too_busy(stream, shared.max_connections));
            continue;
        };
        // Off this thread's event loop, to be registered with the serving thread's.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let mut accepted = Accepted {
            stream,
            peer,
            permit,
        };
        // A serving thread that is gone (it could not start its runtime) is left out from then
        // on, and the connection goes to another.
        while let Some(at) = (0..lanes.len()).min_by_key(|&i| lanes[i].open.load(Ordering::Relaxed))
        {
            // Counted before it is sent: the thread may be done with it before `send` returns.
            lanes[at].open.fetch_add(1, Ordering::Relaxed);
            match lanes[at].tx.send(accepted) {
                Ok(()) => break,
                Err(tokio::sync::mpsc::error::SendError(back)) => {
                    tracing::error!("a serving thread stopped; its share goes to the others");
                    lanes.swap_remove(at);
                    accepted = back;
                }
            }
        }
        if lanes.is_empty() {
            tracing::error!("no serving thread is left: authtap stops");
            break;
        }
    }
    drop(listener);
    // Every serving thread finishes its exchanges, and long-lived admin event streams end.
    shared.shutdown.cancel();
    drop(lanes);
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            let _ = worker.join();
        }
    })
    .await;
}

/// A serving thread, as the accepting thread sees it.
struct Lane {
    tx: tokio::sync::mpsc::UnboundedSender<Accepted>,
    /// Its open client connections.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// A connection on its way to a serving thread.
struct Accepted {
    stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
    /// Held for the connection's life (--max-connections).
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// One serving thread: serve the connections it is handed until shutdown, then finish its
/// exchanges and the probes and tunnels still running (they live on the thread that started them).
fn serve_thread(
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    shared: Arc<Shared>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("a serving thread cannot start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = connection_builder(&shared);
        loop {
            let accepted = tokio::select! {
                accepted = incoming.recv() => match accepted {
                    Some(accepted) => accepted,
                    None => break,
                },
                () = shared.shutdown.cancelled() => break,
            };
            let Accepted {
                stream,
                peer,
                permit,
            } = accepted;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, "cannot serve a connection: {e}");
                    open.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
            };
            let shared = shared.clone();
            let service = service_fn(move |req| forward::handle(shared.clone(), peer, req));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            let open = open.clone();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "client connection ended: {e}");
                }
                drop(permit);
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("exchanges still running after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs());
            }
        }
        // Exchanges whose records wait for probes are not lost at exit.
        shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE * 4, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "probes still running at exit; their exchanges are recorded without them"
            );
        }
    });
}

/// HTTP/1 and HTTP/2 on client connections, with limits that get clear answers: a header block
/// over 64 KiB gets 431 (hyper answers it), more than 100 headers is refused (hyper's own limit:
/// setting it explicitly, even to 100, makes hyper zero a 100-header table on every request), and
/// a client that trickles its headers (slowloris) is cut off after --header-read-timeout. Bodies
/// are not limited: they stream.
fn connection_builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// The answer on a connection over the limit.
async fn too_busy(mut stream: tokio::net::TcpStream, limit: usize) {
    use tokio::io::AsyncWriteExt;
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "{limit} connections are open: further clients get 503 until some close (--max-connections)"
        );
    }
    let body = format!(
        "{{\"error\":{{\"type\":\"authtap_busy\",\"message\":\"authtap has {limit} connections open, its limit; retry shortly (--max-connections raises it)\"}}}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stream.write_all(response.as_bytes()),
    )
    .await;
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A token for the admin API when none is configured: 128 random bits, hex.
fn random_token() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short random id for this run; record ids are `<session>-<n>`.
fn session_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Logs go to stderr; `RUST_LOG` picks the level (default: authtap's info, others' warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("authtap=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

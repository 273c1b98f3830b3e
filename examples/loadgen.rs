//! A load generator for line-based chat servers: our chat daemon, Redis pub/sub and IRC.
//!
//! `load` mode connects N clients, lets S of them send M messages (flat out or at a rate), and
//! measures on the receiving side: deliveries per second, messages lost, latency percentiles, and
//! (given `--server-pid`) the server's CPU time and memory. `idle` mode holds many named chat
//! connections and reports the server's memory per connection and the time one message takes to
//! reach them all. `parse-bench` shows how fast the receiving path is on one core, so a result can
//! be trusted not to measure the load generator itself. Each run prints one JSON line on stdout
//! and a summary on stderr. It only ever connects to loopback addresses, and every loop in it is
//! bounded in count and time.
//!
//! ```text
//! cargo run --release --example loadgen -- --protocol chat --addr 127.0.0.1:7878 \
//!     --clients 100 --messages 1000 --server-pid "$(pidof chat-server)"
//! ```

#[path = "loadgen/connect.rs"]
mod connect;
#[path = "loadgen/idle.rs"]
mod idle;
#[path = "loadgen/load.rs"]
mod load;
#[path = "loadgen/metrics.rs"]
mod metrics;
#[path = "loadgen/protocol.rs"]
mod protocol;
#[path = "loadgen/receipt.rs"]
mod receipt;
#[path = "loadgen/system.rs"]
mod system;
#[path = "loadgen/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

use crate::load::Outcome;
use crate::protocol::{JoinOptions, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// N clients, S senders, M messages each: throughput, loss, latency.
    Load,
    /// N idle named chat connections: server memory per connection, time to reach them all.
    Idle,
    /// The receiving path over in-memory lines: how much the load generator itself can take.
    ParseBench,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Clock {
    Kernel,
    Read,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for line-based chat servers (chat, Redis pub/sub, IRC) on loopback",
    long_about = None
)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Load)]
    mode: Mode,

    /// The server's protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Chat)]
    protocol: Protocol,

    /// Server address; only loopback addresses are accepted.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    addr: SocketAddr,

    /// Clients that join and receive (idle mode: idle connections).
    #[arg(long, value_name = "N", default_value_t = 100)]
    clients: usize,

    /// How many of the clients send (the first S); default all of them.
    #[arg(long, value_name = "S")]
    senders: Option<usize>,

    /// Messages each sender sends.
    #[arg(long, value_name = "M", default_value_t = 1000)]
    messages: u64,

    /// With --rate: send for this many seconds instead (sets --messages to rate x seconds).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,

    /// Bytes of message text (the token, padded); the token itself takes about 30.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,

    /// Messages per second per sender; 0 sends flat out.
    #[arg(long, value_name = "MSGS", default_value_t = 0.0)]
    rate: f64,

    /// How long to wait for missing deliveries after the last send.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    drain_timeout: f64,

    /// How long all clients may take to connect and join.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    setup_timeout: f64,

    /// Before sending, wait until no line arrived for this long (join notices settle).
    #[arg(long, value_name = "SECS", default_value_t = 1.5)]
    settle: f64,

    /// ... but never longer than this.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    settle_timeout: f64,

    /// Longest the sending phase may take before the run is cut short.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    max_send_time: f64,

    /// Idle mode: how long the one broadcast may take to reach everyone.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    broadcast_timeout: f64,

    /// Connection attempts in flight at once.
    #[arg(long, value_name = "N", default_value_t = 200)]
    concurrency: usize,

    /// Bind client sockets to 127.0.0.(1 + i % 250) (always on in idle mode).
    #[arg(long)]
    spread_sources: bool,

    /// Add one client that joins and then never reads (W5); what it was told is read at the end.
    #[arg(long)]
    slow_reader: bool,

    /// PID of the server, to report its CPU time and memory from /proc.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Redis channel, or IRC channel without the '#'.
    #[arg(long, default_value = "lg")]
    channel: String,

    /// IRC: OPER with NAME:PASSWORD, then set user mode +F (ngircd: no flood throttling).
    #[arg(long, value_name = "NAME:PASSWORD")]
    oper: Option<String>,

    /// Repeat the run this many times (fresh connections each time).
    #[arg(long, value_name = "N", default_value_t = 1)]
    runs: usize,

    /// Pause between runs, so the server can close the last run's connections.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pause: f64,

    /// Label copied into the JSON output (e.g. the workload's name).
    #[arg(long, default_value = "run")]
    label: String,

    /// What times an arrival: `kernel` (the receive stamp the kernel puts on the data, i.e. when
    /// a dedicated client would have seen it) or `read` (when this process got round to reading
    /// it, which adds the load generator's own queueing).
    #[arg(long, value_enum, default_value_t = Clock::Kernel)]
    clock: Clock,

    /// Runtime worker threads; 1 runs everything on one thread (pin it with taskset).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    check(args)?;
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("starting the tokio runtime")?;
    metrics::now_nanos();
    runtime.block_on(async {
        for run in 1..=args.runs.max(1) {
            if run > 1 {
                tokio::time::sleep(seconds(args.pause)).await;
            }
            let outcome = match args.mode {
                Mode::Load => load::run(&load_plan(args, run)?).await?,
                Mode::Idle => {
                    let plan = idle_plan(args, run);
                    idle::check(&plan)?;
                    idle::run(&plan).await?
                }
                Mode::ParseBench => load::parse_bench(1_000_000, args.size, 10).await?,
            };
            report(&outcome);
            if args.mode == Mode::ParseBench {
                break;
            }
        }
        Ok(())
    })
}

fn report(outcome: &Outcome) {
    println!("{}", outcome.json);
    eprint!("{}", outcome.summary);
}

fn check(args: &Args) -> Result<()> {
    if !args.addr.ip().is_loopback() {
        bail!("--addr {}: only loopback addresses (127.0.0.0/8, ::1) may receive load", args.addr);
    }
    if args.mode == Mode::Idle && args.protocol != Protocol::Chat {
        bail!("the idle mode speaks only the chat protocol");
    }
    if args.senders.is_some_and(|s| s > args.clients) {
        bail!("--senders cannot exceed --clients");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be 0 (flat out) or a positive number of messages per second");
    }
    if args.duration.is_some() && args.rate <= 0.0 {
        bail!("--duration needs --rate: a flat-out run is bounded by --messages");
    }
    for (flag, value) in [
        ("--drain-timeout", args.drain_timeout),
        ("--setup-timeout", args.setup_timeout),
        ("--settle", args.settle),
        ("--settle-timeout", args.settle_timeout),
        ("--max-send-time", args.max_send_time),
        ("--broadcast-timeout", args.broadcast_timeout),
        ("--pause", args.pause),
        ("--duration", args.duration.unwrap_or(1.0)),
    ] {
        if !(value.is_finite() && (0.0..=86_400.0).contains(&value)) {
            bail!("{flag} must be a number of seconds between 0 and 86400, not {value}");
        }
    }
    if args.channel.is_empty() || args.channel.contains([' ', '\r', '\n', ',']) {
        bail!("--channel must be one word");
    }
    Ok(())
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

fn join_options(args: &Args, read_buffer: usize) -> Result<JoinOptions> {
    let oper = match &args.oper {
        None => None,
        Some(credentials) => {
            let (name, password) =
                credentials.split_once(':').context("--oper must be NAME:PASSWORD")?;
            Some((name.to_owned(), password.to_owned()))
        }
    };
    Ok(JoinOptions { channel: args.channel.clone(), oper, read_buffer })
}

/// A short prefix for this process's client names, so two invocations never collide.
fn name_prefix() -> String {
    const DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut n = u64::from(std::process::id()) ^ (metrics::now_nanos() >> 10);
    let mut prefix = String::from("lg");
    for _ in 0..3 {
        prefix.push(char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
    }
    prefix
}

fn load_plan(args: &Args, run: usize) -> Result<load::Plan> {
    let messages = match args.duration {
        Some(secs) => (args.rate * secs).round() as u64,
        None => args.messages,
    };
    Ok(load::Plan {
        protocol: args.protocol,
        server: args.addr,
        clients: args.clients,
        senders: args.senders.unwrap_or(args.clients),
        messages,
        size: args.size,
        rate: args.rate,
        drain_timeout: seconds(args.drain_timeout),
        setup_timeout: seconds(args.setup_timeout),
        settle_quiet: seconds(args.settle),
        settle_timeout: seconds(args.settle_timeout),
        max_send_time: seconds(args.max_send_time),
        concurrency: args.concurrency,
        spread_sources: args.spread_sources,
        slow_reader: args.slow_reader,
        kernel_clock: args.clock == Clock::Kernel,
        join: join_options(args, 64 * 1024)?,
        server_pid: args.server_pid,
        progress: !args.quiet,
        label: args.label.clone(),
        names: name_prefix(),
        run,
    })
}

fn idle_plan(args: &Args, run: usize) -> idle::Plan {
    idle::Plan {
        server: args.addr,
        clients: args.clients,
        concurrency: args.concurrency,
        size: args.size,
        join: JoinOptions { channel: args.channel.clone(), oper: None, read_buffer: 1024 },
        server_pid: args.server_pid,
        setup_timeout: seconds(args.setup_timeout),
        settle_quiet: seconds(args.settle),
        settle_timeout: seconds(args.settle_timeout),
        broadcast_timeout: seconds(args.broadcast_timeout),
        kernel_clock: args.clock == Clock::Kernel,
        progress: !args.quiet,
        label: args.label.clone(),
        names: name_prefix(),
        run,
    }
}

//! A load generator for line-based chat servers: our chat daemon, Redis pub/sub and IRC.
//!
//! `load` mode connects N clients, lets S of them send M messages (flat out or at a rate), and
//! measures on the receiving side: deliveries per second, messages lost, latency percentiles, and
//! (given `--server-pid`) the server's CPU time and memory. `idle` mode holds many named
//! connections (chat, web or IRC) and reports the server's memory per connection and the time one message takes to
//! reach them all. `parse-bench` shows how fast the receiving path is on one core, so a result can
//! be trusted not to measure the load generator itself. Each run prints one JSON line on stdout
//! and a summary on stderr. It only ever connects to loopback addresses, and every loop in it is
//! bounded in count and time.
//!
//! Several daemons sharing one room through `--backplane`: repeat `--addr` and the clients are
//! spread round robin, with local and cross-node deliveries counted apart. Many idle connections
//! over several load generator processes (each below its file descriptor limit): `idle` with
//! `--broadcast external` in each, and one `cast` process that sends the message they wait for,
//! all on one `--clock-epoch` (see `bench/w6.sh`).
//!
//! Many rooms: `--rooms N` puts client i in room `r{i mod N}` besides the lobby (`--channel`,
//! where nobody speaks), senders speak in their room, and a message is expected only at the
//! other members of its room; loss, duplicates, misrouted lines and latency are counted per room.
//! `joins` mode times a chat `/join` or an IRC `JOIN`: every client joins `--rooms` rooms, one
//! join after another, to show how the cost grows with a user's rooms and with a room's members.
//!
//! IRC (`--protocol irc`): NICK and USER, 001, JOIN and the end of NAMES (366), then PRIVMSG to
//! the channel; deliveries are the PRIVMSG lines that carry a token, and PING gets a PONG in
//! every mode. `--oper` lets ngircd's clients lift its flood throttling; our daemon's IRC door
//! (`--listen-irc`) needs none.
//!
//! ```text
//! cargo run --release --example loadgen -- --protocol chat --addr 127.0.0.1:7878 \
//!     --clients 100 --messages 1000 --server-pid "$(pidof chat-server)"
//! ```

// The JSON line of a load run is one large `json!` literal.
#![recursion_limit = "256"]

#[path = "loadgen/cast.rs"]
mod cast;
#[path = "loadgen/connect.rs"]
mod connect;
#[path = "loadgen/idle.rs"]
mod idle;
#[path = "loadgen/joins.rs"]
mod joins;
#[path = "loadgen/load.rs"]
mod load;
#[path = "loadgen/metrics.rs"]
mod metrics;
#[path = "loadgen/outcome.rs"]
mod outcome;
#[path = "loadgen/protocol.rs"]
mod protocol;
#[path = "loadgen/receipt.rs"]
mod receipt;
#[path = "loadgen/sampling.rs"]
mod sampling;
#[path = "loadgen/system.rs"]
mod system;
#[path = "loadgen/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

use crate::outcome::Outcome;
use crate::protocol::{JoinOptions, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// N clients, S senders, M messages each: throughput, loss, latency.
    Load,
    /// N idle named connections (chat, web, IRC): server memory per connection, time to reach
    /// them all.
    Idle,
    /// The receiving path over in-memory lines: how much the load generator itself can take.
    ParseBench,
    /// One client joins and sends one token (`--run-tag`) that idle processes wait for.
    Cast,
    /// Chat or IRC: every client, one after another, joins `--rooms` rooms one after another:
    /// how the time of a join grows with a user's rooms and a room's members.
    Joins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BroadcastBy {
    /// The idle process joins one more client and sends the message itself.
    #[value(name = "self")]
    Myself,
    /// Another process (`--mode cast`) sends it; this one says it is ready and waits.
    External,
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

    /// Server address; only loopback addresses are accepted. Repeat it for several daemons
    /// sharing one room: client i connects to the (i mod K)-th address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    addr: Vec<SocketAddr>,

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

    /// PID of the server, to report its CPU time and memory from /proc; repeat it for several
    /// daemons (their figures are summed).
    #[arg(long, value_name = "PID")]
    server_pid: Vec<u32>,

    /// PID of the backplane's redis-server, whose CPU time and memory are reported apart.
    #[arg(long, value_name = "PID")]
    backplane_pid: Option<u32>,

    /// Chat: this many extra clients per second join, stay --churn-linger, and leave (half with
    /// /quit, half by closing) while the senders run.
    #[arg(long, value_name = "PER_SEC", default_value_t = 0.0)]
    churn: f64,

    /// How long each churning client stays.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    churn_linger: f64,

    /// Count the lines that contain TEXT, and the clients that got one (repeatable; load and
    /// idle modes), e.g. a daemon's notice.
    #[arg(long, value_name = "TEXT")]
    watch: Vec<String>,

    /// Send SIGKILL to this PID (a process the caller started, e.g. the backplane's Redis)
    /// --kill-after seconds after the senders start.
    #[arg(long, value_name = "PID", requires = "kill_after")]
    kill_pid: Option<u32>,

    #[arg(long, value_name = "SECS", requires = "kill_pid")]
    kill_after: Option<f64>,

    /// After the last delivery, wait up to SECS for the servers (and backplane) to go idle and
    /// report the CPU they spent meanwhile (work a run leaves behind, e.g. a backplane still
    /// reading its own messages back from Redis); 0 does not wait.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    cpu_tail: f64,

    /// Count time from this CLOCK_MONOTONIC reading (nanoseconds) instead of this process's
    /// start; processes given the same epoch share one timeline.
    #[arg(long, value_name = "NANOS")]
    clock_epoch: Option<u64>,

    /// Use this tag in tokens (and accept only it) instead of a random one per run.
    #[arg(long, value_name = "N")]
    run_tag: Option<u32>,

    /// Client names start with this (letters and digits) instead of a random prefix.
    #[arg(long, value_name = "PREFIX")]
    name_prefix: Option<String>,

    /// Idle mode: who sends the one message.
    #[arg(long, value_enum, default_value_t = BroadcastBy::Myself)]
    broadcast: BroadcastBy,

    /// Idle mode with --broadcast external: write this file once joined and settled.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,

    /// Idle mode: spread sources from 127.0.0.(1 + (OFFSET + i) mod 250).
    #[arg(long, value_name = "OFFSET", default_value_t = 0)]
    source_offset: usize,

    /// Cast mode: stay connected this long after sending. Idle mode: keep every connection
    /// open this long after the broadcast (default 0 there).
    #[arg(long, value_name = "SECS")]
    hold: Option<f64>,

    /// The channel (room) every client joins, without the '#': a Redis channel, an IRC
    /// channel, a chat room (our server starts everyone in `lobby`). With --rooms nobody speaks
    /// there.
    #[arg(long, default_value = "lobby")]
    channel: String,

    /// Load mode: client i is also in room `r{i mod N}` (Redis channel, IRC `#r{i mod N}`, chat
    /// `/join #r{i mod N}`) and speaks there; a message is expected only at the other members of
    /// its room. Joins mode: how many rooms each client joins.
    #[arg(long, value_name = "N")]
    rooms: Option<usize>,

    /// Redis: senders share this many PUBLISH connections (sender i uses the (i mod N)-th)
    /// instead of one each, so 10,000 senders fit under a process's descriptor limit; 0: one per
    /// sender.
    #[arg(long, value_name = "N", default_value_t = 0)]
    publishers: usize,

    /// IRC: OPER with NAME:PASSWORD, then set user mode +F (ngircd: no flood throttling).
    #[arg(long, value_name = "NAME:PASSWORD")]
    oper: Option<String>,

    /// Chat: wait for the welcome before sending `/join`, and for each room before the next,
    /// instead of sending the name and every `/join` in one write (as Redis gets one SUBSCRIBE
    /// naming every channel).
    #[arg(long)]
    join_in_turn: bool,

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
    if let Some(epoch) = args.clock_epoch {
        metrics::set_epoch(epoch).map_err(anyhow::Error::msg)?;
    }
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
                Mode::Cast => cast::run(&cast_plan(args, run)).await?,
                Mode::Joins => joins::run(&joins_plan(args, run)).await?,
            };
            report(&outcome);
            if matches!(args.mode, Mode::ParseBench | Mode::Cast) {
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
    for addr in &args.addr {
        if !addr.ip().is_loopback() {
            bail!("--addr {addr}: only loopback addresses (127.0.0.0/8, ::1) may receive load");
        }
    }
    if args.mode == Mode::Cast && args.protocol != Protocol::Chat {
        bail!("the cast mode speaks only the chat protocol");
    }
    if args.mode == Mode::Joins && !matches!(args.protocol, Protocol::Chat | Protocol::Irc) {
        bail!("the joins mode speaks chat or IRC");
    }
    if args.mode == Mode::Idle && args.protocol == Protocol::Redis {
        bail!("the idle mode speaks chat, web or IRC (Redis has no names to hold)");
    }
    if matches!(args.mode, Mode::Idle | Mode::Cast) && args.rooms.is_some() {
        bail!("--rooms applies to the load and joins modes");
    }
    if args.rooms.is_some_and(|n| n == 0 || n > MAX_ROOMS) {
        bail!("--rooms must be between 1 and {MAX_ROOMS}");
    }
    if args.mode == Mode::Cast && args.run_tag.is_none() {
        bail!("--mode cast needs --run-tag, the tag the idle processes wait for");
    }
    if args.run_tag.is_some_and(|t| t >= 1_000_000_000) {
        bail!("--run-tag must be below 1,000,000,000 (nine digits in the token)");
    }
    if args.churn > 0.0 && args.protocol != Protocol::Chat {
        bail!("--churn speaks only the chat protocol");
    }
    if !(args.churn.is_finite() && (0.0..=1000.0).contains(&args.churn)) {
        bail!("--churn must be between 0 and 1000 clients per second");
    }
    if args.kill_pid.is_some_and(|pid| pid <= 1 || pid == std::process::id()) {
        bail!("--kill-pid must name another process the caller started");
    }
    if let Some(prefix) = &args.name_prefix
        && (prefix.is_empty()
            || prefix.len() > 12
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        bail!("--name-prefix must be 1 to 12 letters or digits");
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
        ("--churn-linger", args.churn_linger),
        ("--kill-after", args.kill_after.unwrap_or(0.0)),
        ("--hold", args.hold.unwrap_or(0.0)),
        ("--cpu-tail", args.cpu_tail),
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

/// Room names `r0`..`r99999` fit every server's limits (ours: 32 characters).
const MAX_ROOMS: usize = 100_000;

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
    let pipelined = !args.join_in_turn;
    Ok(JoinOptions { channels: vec![args.channel.clone()], oper, read_buffer, pipelined })
}

/// A short prefix for this process's client names, so two invocations never collide
/// (`--name-prefix` when several run side by side and must be sure).
fn name_prefix(args: &Args) -> String {
    if let Some(prefix) = &args.name_prefix {
        return prefix.clone();
    }
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
        servers: args.addr.clone(),
        clients: args.clients,
        rooms: args.rooms,
        publishers: args.publishers,
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
        server_pids: args.server_pid.clone(),
        backplane_pid: args.backplane_pid,
        churn: args.churn,
        churn_linger: seconds(args.churn_linger),
        watch: args.watch.clone(),
        kill: args.kill_pid.zip(args.kill_after.map(seconds)),
        cpu_tail: seconds(args.cpu_tail),
        tag: args.run_tag,
        progress: !args.quiet,
        label: args.label.clone(),
        names: name_prefix(args),
        run,
    })
}

fn idle_plan(args: &Args, run: usize) -> idle::Plan {
    idle::Plan {
        protocol: args.protocol,
        servers: args.addr.clone(),
        clients: args.clients,
        concurrency: args.concurrency,
        size: args.size,
        join: JoinOptions {
            channels: vec![args.channel.clone()],
            oper: None,
            read_buffer: 1024,
            pipelined: true,
        },
        server_pids: args.server_pid.clone(),
        external: args.broadcast == BroadcastBy::External,
        ready_file: args.ready_file.clone(),
        tag: args.run_tag,
        source_offset: args.source_offset,
        watch: args.watch.clone(),
        hold: seconds(args.hold.unwrap_or(0.0)),
        setup_timeout: seconds(args.setup_timeout),
        settle_quiet: seconds(args.settle),
        settle_timeout: seconds(args.settle_timeout),
        broadcast_timeout: seconds(args.broadcast_timeout),
        kernel_clock: args.clock == Clock::Kernel,
        progress: !args.quiet,
        label: args.label.clone(),
        names: name_prefix(args),
        run,
    }
}

fn cast_plan(args: &Args, run: usize) -> cast::Plan {
    cast::Plan {
        server: args.addr[0],
        name: format!("{}{run}cast", name_prefix(args)),
        size: args.size,
        tag: args.run_tag.unwrap_or_default(),
        join: JoinOptions {
            channels: vec![args.channel.clone()],
            oper: None,
            read_buffer: 4096,
            pipelined: true,
        },
        settle: seconds(args.settle),
        hold: seconds(args.hold.unwrap_or(2.0)),
        label: args.label.clone(),
    }
}

fn joins_plan(args: &Args, run: usize) -> joins::Plan {
    joins::Plan {
        protocol: args.protocol,
        server: args.addr[0],
        clients: args.clients,
        rooms: args.rooms.unwrap_or(1),
        concurrency: args.concurrency,
        join: JoinOptions {
            channels: vec![args.channel.clone()],
            oper: None,
            read_buffer: 4096,
            pipelined: true,
        },
        server_pids: args.server_pid.clone(),
        setup_timeout: seconds(args.setup_timeout),
        label: args.label.clone(),
        names: name_prefix(args),
        run,
    }
}

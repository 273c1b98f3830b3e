//! Abuse against the real daemon: what hostile or careless clients do to a
//! server that must run for days. Each test starts its own `chat-server` on
//! a loopback port and bounds every wait; the figures each test measures are
//! printed (`cargo test --test abuse -- --nocapture` shows them).
//!
//! The per-address cap is covered by
//! `daemon::one_address_over_max_per_ip_is_refused_while_others_connect`.

mod support;
#[path = "support/terminal_oracle.rs"]
mod terminal_oracle;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use support::{Client, Server, WAIT, open_fds, poll_until, status_kib, strip_ansi};
use terminal_oracle::check_printable;

/// KiB in a MiB: `/proc` reports memory in KiB.
const MIB: u64 = 1024;

// ---------------------------------------------------------------------------
// Slowloris

/// 500 connections each send half a name and stall. While they hold their
/// connections, two real users join and talk both ways; then
/// `--name-timeout` closes every stalled connection, and chat goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_name_timeout_while_users_chat() {
    const STALLERS: usize = 500;
    // Long enough that 500 connections and a conversation fit before the
    // first staller is closed, even on a loaded machine.
    const NAME_TIMEOUT_SECS: u64 = 8;
    let server = Server::start(&["--name-timeout", &NAME_TIMEOUT_SECS.to_string()]);
    let mut alice = Client::named(server.addr, "alice").await;
    let before = open_fds(server.pid());
    let mut stallers = Vec::with_capacity(STALLERS);
    let first_stalled = Instant::now();
    for i in 0..STALLERS {
        let mut staller = Client::connect(server.addr).await;
        staller.send_raw(format!("slow{i}").as_bytes()).await; // no newline, ever
        stallers.push(staller);
    }
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    for round in 0..5 {
        bob.send(&format!("hello through the crowd {round}")).await;
        alice.expect_line(|l| l.contains(&format!("bob: hello through the crowd {round}"))).await;
        alice.send(&format!("heard you {round}")).await;
        bob.expect_line(|l| l.contains(&format!("alice: heard you {round}"))).await;
    }
    let talked = first_stalled.elapsed();
    // The conversation happened while every staller was still connected:
    // none was closed yet, and the daemon holds a socket for each.
    assert_eq!(
        count_log_lines(&server, "no name in time"),
        0,
        "stallers were closed before alice and bob had talked ({talked:?} after the first)"
    );
    let held = open_fds(server.pid()).saturating_sub(before);
    assert!(held >= STALLERS, "{held} sockets more than before {STALLERS} stallers + bob");
    eprintln!("slowloris: alice and bob talked within {talked:?} while {STALLERS} stalled");

    let mut closing = JoinSet::new();
    for mut staller in stallers {
        closing.spawn(async move { staller.until_closed().await });
    }
    while let Some(lines) = closing.join_next().await {
        let lines = lines.expect("staller task");
        assert!(lines.iter().any(|l| l.contains("Timed out waiting for a name")), "{lines:?}");
    }
    poll_until("a log line for every timed-out staller", WAIT, || {
        let logged = count_log_lines(&server, "no name in time");
        if logged == STALLERS { Ok(()) } else { Err(logged) }
    })
    .await;
    alice.send("still here").await;
    bob.expect_line(|l| l.contains("alice: still here")).await;
}

// ---------------------------------------------------------------------------
// Connection churn

/// 20,000 connect / name / leave cycles, 64 at a time, leaving politely
/// (`/quit`), by closing, and by reset. Afterwards the daemon holds as many
/// descriptors as before, about as much memory, and nobody in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_returns_descriptors_and_memory_to_the_baseline() {
    const CYCLES: usize = 20_000;
    const CONCURRENCY: usize = 64;
    const RSS_SLACK: u64 = 8 * MIB;
    let server = Server::start(&[]);
    let (addr, pid) = (server.addr, server.pid());
    let idle_fds = open_fds(pid);
    churn_cycle(addr, "warmup".to_owned(), 0).await;
    // The warm-up's socket closes after its goodbye; wait for that, but
    // accept a descriptor the first connection keeps for good (lazy setup).
    let base_fds = sample_until(Duration::from_secs(3), || open_fds(pid), |n| n <= idle_fds).await;
    let base_rss = status_kib(pid, "VmRSS");

    let started = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..CONCURRENCY {
        workers.spawn(async move {
            for cycle in (worker..CYCLES).step_by(CONCURRENCY) {
                churn_cycle(addr, format!("churn{cycle}"), cycle).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("churn worker");
    }
    let elapsed = started.elapsed();
    let peak_rss = status_kib(pid, "VmHWM");
    let after_fds = sample_until(WAIT, || open_fds(pid), |n| n <= base_fds).await;
    let after_rss =
        sample_until(WAIT, || status_kib(pid, "VmRSS"), |kib| kib < base_rss + RSS_SLACK).await;
    eprintln!(
        "churn: {CYCLES} cycles in {elapsed:.1?} ({:.0}/s, {CONCURRENCY} at a time); \
         server fds {base_fds} before, {after_fds} after (idle {idle_fds}); \
         VmRSS {} KiB before, {} KiB after, peak VmHWM {} KiB",
        CYCLES as f64 / elapsed.as_secs_f64(),
        base_rss,
        after_rss,
        peak_rss
    );
    assert!(after_fds <= base_fds, "descriptors leaked: {base_fds} before, {after_fds} after");
    assert!(
        after_rss < base_rss + RSS_SLACK,
        "memory did not come back: VmRSS {base_rss} KiB before, {after_rss} KiB after"
    );
    let mut last = Client::named(addr, "last").await;
    last.send("/who").await;
    last.expect_line(|l| l.contains("1 online")).await;
}

/// One visitor: connects, takes a name, and leaves in one of three ways.
async fn churn_cycle(addr: SocketAddr, name: String, cycle: usize) {
    let mut client = Client::named(addr, &name).await;
    match cycle % 3 {
        0 => {
            client.send("/quit").await;
            client.until_closed().await;
        }
        1 => drop(client),
        _ => reset(client),
    }
}

// ---------------------------------------------------------------------------
// Descriptor exhaustion

/// With `RLIMIT_NOFILE` at 64, 200 clients connect at once. The accept loop
/// runs out of descriptors: the daemon stays up, logs the error at a bounded
/// rate, and serves again once the crowd leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_daemon_backs_off_logs_rarely_and_serves_again() {
    const NOFILE: u64 = 64;
    const CLIENTS: usize = 200;
    /// How long the exhaustion is held: enough for about ten failed accepts
    /// (the backoff goes 5 ms, 10 ms, ... up to 1 s between attempts).
    const PRESSURE: Duration = Duration::from_secs(3);
    let mut server = Server::start_with(&[], |command| limit_open_files(command, NOFILE));
    let (addr, pid) = (server.addr, server.pid());
    let idle_fds = open_fds(pid);

    // The listen backlog (128) holds what the daemon cannot accept; past it
    // the kernel drops SYNs, so some attempts time out. That is the kernel's
    // doing, and those clients count as turned away.
    let mut connecting = JoinSet::new();
    for _ in 0..CLIENTS {
        connecting.spawn(async move {
            let attempt = tokio::net::TcpStream::connect(addr);
            tokio::time::timeout(Duration::from_secs(3), attempt).await.ok().and_then(Result::ok)
        });
    }
    server.log.wait_for("the first accept error", |l| l.contains("accept failed"));
    let pressure_ends = Instant::now() + PRESSURE;
    let mut most_fds = 0;
    while Instant::now() < pressure_ends {
        assert!(server.is_running(), "chat-server died when out of descriptors");
        most_fds = most_fds.max(open_fds(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut crowd = Vec::with_capacity(CLIENTS);
    while let Some(attempt) = connecting.join_next().await {
        crowd.extend(attempt.expect("connect task"));
    }
    let accepted = count_log_lines(&server, "connection: connected ");
    let error_lines = count_log_lines(&server, "accept failed");
    eprintln!(
        "descriptor exhaustion: RLIMIT_NOFILE {NOFILE}, {idle_fds} fds when idle, at most \
         {most_fds} open; of {CLIENTS} clients {} connected (TCP) and {accepted} were accepted, \
         the rest waited in the backlog or timed out; {error_lines} 'accept failed' log line(s) \
         in {PRESSURE:?} of retrying",
        crowd.len()
    );
    assert!(error_lines <= 5, "accept errors logged {error_lines} times in {PRESSURE:?}");

    drop(crowd);
    let fds = sample_until(Duration::from_secs(20), || open_fds(pid), |n| n <= idle_fds).await;
    assert!(fds <= idle_fds, "descriptors not released: {fds} open, {idle_fds} when idle");
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.send("served again").await;
    bob.expect_line(|l| l.contains("alice: served again")).await;
    assert!(server.is_running());
}

/// Makes the command's process start with at most `limit` open files.
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt as _;
    let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit(2) is async-signal-safe and touches no memory of the
    // parent; the closure only reads a copied struct.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

// ---------------------------------------------------------------------------
// Floods

/// One client pushes 5,000 lines into its socket as fast as it can against
/// `--rate 500 --burst 10`: far more than the rate lets through at once. The
/// daemon reads them no faster than the rate allows, and every one arrives,
/// in order and once, at both other users (or, should one of them fall
/// behind, is counted in a "missed" notice); another user's message still
/// reaches a third user while the flood goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_five_thousand_lines_is_throttled_without_loss_and_others_are_unaffected() {
    const LINES: usize = 5_000;
    const RATE: f64 = 500.0;
    const BURST: usize = 10;
    let server = Server::start(&["--rate", "500", "--burst", "10"]);
    let flooder = Client::named(server.addr, "flooder").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let mut carol = Client::named(server.addr, "carol").await;
    bob.expect_line(|l| l.contains("carol joined")).await;

    let (_flooder_input, mut flood) = flooder.into_parts();
    let started = Instant::now();
    let flooding = tokio::spawn(async move {
        let padding = "~".repeat(100);
        let mut batch = String::with_capacity(80 * 1024);
        for i in 0..LINES {
            let _ = writeln!(batch, "flood {i} {padding}");
            if batch.len() >= 64 * 1024 || i + 1 == LINES {
                flood.write_all(batch.as_bytes()).await.expect("the daemon takes the flood");
                batch.clear();
            }
        }
        flood
    });

    // carol reads the flood as it comes, on a task of her own, until she
    // also has bob's line.
    let carol_reads = tokio::spawn(async move {
        let mut tally = FloodTally::default();
        let mut heard_bob = false;
        while !tally.has_all(LINES) || !heard_bob {
            let line = carol.next_line().await.expect("carol keeps receiving the flood");
            heard_bob |= strip_ansi(&line).ends_with("bob: bob is not drowned out");
            tally.add(&line);
        }
        (carol, tally)
    });
    let mut bobs = FloodTally::default();
    while !bobs.has_all(LINES) {
        let line = bob.next_line().await.expect("bob keeps receiving the flood");
        bobs.add(&line);
        if bobs.received.len() == 50 {
            bob.send("bob is not drowned out").await;
        }
    }
    let elapsed = started.elapsed();
    let (mut carol, mut carols) = carol_reads.await.expect("carol read the flood");
    let _flood = tokio::time::timeout(WAIT, flooding)
        .await
        .expect("the flooder's lines all taken in time")
        .expect("the flooder finished");
    // Nothing more of the flood comes before a later line: each line once.
    let mut dave = Client::named(server.addr, "dave").await;
    for (who, tally, reader) in [("bob", &mut bobs, &mut bob), ("carol", &mut carols, &mut carol)] {
        for line in support::barrier(&mut dave, reader).await {
            tally.add(&line);
        }
        tally.assert_complete(who, LINES);
    }
    eprintln!(
        "flood: {LINES} lines delivered in order in {elapsed:.2?} ({:.1} lines/s after the burst \
         of {BURST}, --rate {RATE}); bob missed {}, carol missed {}",
        (LINES - BURST) as f64 / elapsed.as_secs_f64(),
        bobs.missed.iter().sum::<usize>(),
        carols.missed.iter().sum::<usize>(),
    );
    // The throttle's bound (a burst, then one line per interval) holds
    // however slow the machine: slowness only delivers fewer lines.
    let allowed = BURST as f64 + RATE * elapsed.as_secs_f64() + 2.0;
    assert!(LINES as f64 <= allowed, "{LINES} lines in {elapsed:?}: not throttled");
}

/// What a reader of the flood got: the flood's numbered lines, and the
/// counts of "You missed N messages" notices.
#[derive(Default)]
struct FloodTally {
    received: Vec<usize>,
    missed: Vec<usize>,
}

impl FloodTally {
    fn add(&mut self, line: &str) {
        if let Some(number) = flood_number(line) {
            self.received.push(number);
        } else if let chat_proto::Heard::Missed { count } = chat_proto::classify(&strip_ansi(line))
        {
            self.missed.push(usize::try_from(count).expect("a count that fits"));
        }
    }

    fn accounted(&self) -> usize {
        self.received.len() + self.missed.iter().sum::<usize>()
    }

    /// Whether the reader has read as far as the flood goes: every line
    /// accounted for, or the last one received (so that a lost line fails
    /// [`FloodTally::assert_complete`] rather than a wait).
    fn has_all(&self, lines: usize) -> bool {
        self.accounted() >= lines || self.received.last() == Some(&(lines - 1))
    }

    /// Every line of the flood received in order, once, or counted as missed.
    fn assert_complete(&self, who: &str, lines: usize) {
        let in_order = self.received.windows(2).all(|w| w[0] < w[1]);
        assert!(in_order, "{who} got flood lines out of order or twice: {:?}", self.received);
        assert!(self.received.iter().all(|&n| n < lines), "{who}: {:?}", self.received);
        if self.missed.is_empty() {
            let all: Vec<usize> = (0..lines).collect();
            assert_eq!(self.received, all, "{who} lost a flood line");
        }
        assert_eq!(
            self.accounted(),
            lines,
            "{who}: {} received + {:?} missed for {lines} sent",
            self.received.len(),
            self.missed
        );
    }
}

/// The sequence number of a flood line (`flooder: flood 17 ~~~`).
fn flood_number(line: &str) -> Option<usize> {
    strip_ansi(line).split("flooder: flood ").nth(1)?.split(' ').next()?.parse().ok()
}

/// A client sends one 100 MiB line without a newline. The daemon discards
/// it as it arrives, so its memory stays flat; then the newline ends it, the
/// sender is told, and the next line works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_100_mib_line_keeps_memory_bounded_and_the_next_line_works() {
    const LINE: usize = 100 << 20;
    const CHUNK: usize = 1 << 20;
    const GROWTH_LIMIT: u64 = 16 * MIB;
    let server = Server::start(&[]);
    let pid = server.pid();
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    support::barrier(&mut alice, &mut bob).await;
    let base_rss = status_kib(pid, "VmRSS");
    let peak_before = status_kib(pid, "VmHWM");
    let peak_reset = support::reset_peak_rss(pid);

    let chunk = vec![b'x'; CHUNK];
    for _ in 0..LINE / CHUNK {
        alice.send_raw(&chunk).await;
    }
    alice.send_raw(b"\n").await;
    alice.send("a normal line").await;
    let notice = alice.expect_line(|l| l.contains("discarded")).await;
    assert!(notice.contains(&format!("({LINE} bytes)")), "{notice}");
    let seen = bob.lines_until(|l| l.contains("alice: a normal line")).await;
    assert!(!seen.iter().any(|l| l.contains("xxxx")), "part of the long line leaked: {seen:?}");

    let peak = status_kib(pid, "VmHWM");
    // Without a reset the peak may be the start-up one; then only growth
    // beyond it is visible.
    let growth = if peak_reset { peak - base_rss.min(peak) } else { peak - peak_before.min(peak) };
    eprintln!(
        "100 MiB line: VmRSS {base_rss} KiB before, peak VmHWM {peak} KiB while it streamed \
         (growth {growth} KiB{}), VmRSS {} KiB after",
        if peak_reset { "" } else { ", peak not resettable" },
        status_kib(pid, "VmRSS")
    );
    assert!(growth < GROWTH_LIMIT, "memory grew by {growth} KiB for one discarded line");
}

// ---------------------------------------------------------------------------
// Clients that vanish mid-flow

/// While three users chat flat out (`--rate 0`), four others vanish: one
/// resets its connection (SO_LINGER 0), one half-closes and keeps reading,
/// and a `chat-client` and an `nc` process are killed with SIGKILL. The
/// daemon keeps delivering, announces each departure, and stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_flow_never_crash_or_stall_the_server() {
    const CHATTERS: usize = 3;
    const LINES_EACH: usize = 100_000;
    // The queue holds every line the chatters can send, so the observer can
    // never lag and skip a leave notice, however slowly it reads.
    let mut server = Server::start(&["--rate", "0", "--queue", "400000"]);
    let addr = server.addr;
    let mut observer = Client::named(addr, "observer").await;
    let resetter = Client::named(addr, "resetter").await;
    let mut halfclose = Client::named(addr, "halfclose").await;
    let mut killed = ChildUser::chat_client(addr, "killed");
    let mut netcat = ChildUser::netcat(addr, "netcat");
    let mut awaited: HashSet<String> = ["killed joined", "netcat joined"].map(String::from).into();
    while !awaited.is_empty() {
        let line = strip_ansi(&observer.next_line().await.expect("observer connected"));
        awaited.retain(|joined| !line.contains(joined.as_str()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut chatters = JoinSet::new();
    for k in 0..CHATTERS {
        let client = Client::named(addr, &format!("chatter{k}")).await;
        chatters.spawn(chat_flat_out(client, k, LINES_EACH, Arc::clone(&stop)));
    }
    let mut flowing = 0;
    while flowing < 500 {
        let line = observer.next_line().await.expect("observer receives the chatter");
        flowing += usize::from(line.contains(" says "));
    }

    reset(resetter);
    halfclose.shutdown_write().await;
    let halfclose_reads = tokio::spawn(async move { halfclose.until_closed().await.len() });
    killed.kill();
    netcat.kill();

    let mut gone: HashSet<&str> = ["resetter", "halfclose", "killed", "netcat"].into();
    let mut chatter_lines = 0;
    let all_gone = tokio::time::timeout(Duration::from_secs(30), async {
        while !gone.is_empty() {
            let line = strip_ansi(&observer.next_line().await.expect("observer stays connected"));
            chatter_lines += usize::from(line.contains(" says "));
            gone.retain(|name| !is_leave_notice(&line, name));
        }
    })
    .await;
    assert!(all_gone.is_ok(), "no leave notice for {gone:?}");
    let halfclose_lines = halfclose_reads.await.expect("half-closed reader");
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    while let Some(done) = chatters.join_next().await {
        sent += done.expect("chatter");
    }
    // The observer may still be stepping aside from the chatters' backlog:
    // a line that went by meanwhile is counted in its "missed" notice, not
    // lost, so late says it again after each such notice (a few times at most).
    let mut late = Client::named(addr, "late").await;
    let mut said = 0;
    loop {
        late.send("the room still works").await;
        said += 1;
        let line = observer
            .expect_line(|l| l.contains("late: the room still works") || l.contains("You missed"))
            .await;
        if line.contains("late: the room still works") {
            break;
        }
        assert!(said < 5, "the observer keeps missing what late says");
    }
    eprintln!(
        "vanishing clients: chatters sent {sent} lines; the observer saw {chatter_lines} while \
         the four left; the half-closed client read {halfclose_lines} lines, then EOF"
    );
    assert!(server.is_running(), "chat-server died");
    assert_eq!(count_log_lines(&server, "panicked"), 0, "a task panicked");
}

/// Sends numbered lines as fast as the server takes them (reading and
/// discarding what arrives), until `stop` or `lines`; returns how many it sent.
async fn chat_flat_out(client: Client, k: usize, lines: usize, stop: Arc<AtomicBool>) -> usize {
    let (mut input, mut output) = client.into_parts();
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(input.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut sent = 0;
    while sent < lines && !stop.load(Ordering::Relaxed) {
        let batch: String = (sent..sent + 100).map(|i| format!("chatter{k} says {i}\n")).collect();
        tokio::time::timeout(WAIT, output.write_all(batch.as_bytes()))
            .await
            .expect("the server keeps reading a chatter")
            .expect("the server keeps the chatter connected");
        sent += 100;
    }
    drop(output);
    tokio::time::timeout(WAIT, drain).await.expect("server closes after we leave").expect("drain");
    sent
}

/// A user that is a separate process (`chat-client` or `nc`), to be killed.
struct ChildUser {
    child: Child,
    _stdin: std::process::ChildStdin,
}

impl ChildUser {
    fn chat_client(addr: SocketAddr, name: &str) -> ChildUser {
        let mut command = Command::new(support::bin_path("chat-client"));
        command.arg(addr.to_string()).args(["--name", name]);
        ChildUser::spawn(command, None)
    }

    fn netcat(addr: SocketAddr, name: &str) -> ChildUser {
        let mut command = Command::new("nc");
        command.args([addr.ip().to_string(), addr.port().to_string()]);
        ChildUser::spawn(command, Some(name))
    }

    fn spawn(mut command: Command, first_line: Option<&str>) -> ChildUser {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().expect("client process starts");
        let mut stdin = child.stdin.take().expect("stdin piped");
        if let Some(line) = first_line {
            writeln!(stdin, "{line}").expect("client takes its first line");
        }
        let mut stdout = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while matches!(stdout.read(&mut buf), Ok(n) if n > 0) {}
        });
        ChildUser { child, _stdin: stdin }
    }

    /// SIGKILL: the kernel closes the socket; the process says nothing.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("killed client reaped");
    }
}

impl Drop for ChildUser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_leave_notice(plain: &str, name: &str) -> bool {
    plain.starts_with("*** ")
        && [" left", " lost connection"].iter().any(|how| plain.contains(&format!(" {name}{how}")))
}

// ---------------------------------------------------------------------------
// Terminal safety

/// Every byte but `\n`, and every Unicode control, format, line and
/// paragraph separator character, in messages and in names. Nothing any
/// client receives holds a byte a terminal would act on, except the
/// server's own SGR colour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_a_terminal_would_interpret_reaches_anyone_but_colour() {
    let server = Server::start(&["--rate", "0"]);
    let addr = server.addr;
    let mut bob = Client::named(addr, "bob").await;
    let mut alice = Client::named(addr, "alice").await;
    let hostile = hostile_chars();

    let mut messages: Vec<Vec<u8>> = Vec::new();
    let every_byte: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    messages.push([&b"all bytes <"[..], &every_byte, b"> end"].concat());
    for b in every_byte.iter().copied() {
        messages.push(
            [format!("byte {b:02x} <").as_bytes(), &[b], b"> esc <\x1b", &[b], b">"].concat(),
        );
    }
    for c in &hostile {
        let text = format!("char {:04x} <{c}> <a{c}b> <\u{1F468}{c}\u{1F469}>", u32::from(*c));
        messages.push(text.into_bytes());
    }
    for sequence in [
        "\x1b[2J\x1b[H",
        "\x1b]0;title\x07",
        "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",
        "\x1bP+q544e\x1b\\",
        "\x1b[6n",
        "\x1b[21t",
        "\x1b[?1049h",
        "\x1bc",
        "\x1b[38;5;196mred",
    ] {
        messages.push(format!("sequence <{sequence}> done").into_bytes());
    }
    messages.push(b"c1 as bytes <\x9b2J\x9d0;t\x07>".to_vec());
    let mut renames: Vec<Vec<u8>> = Vec::new();
    for b in every_byte.iter().copied() {
        renames.push([format!("/nick b{b:02x}").as_bytes(), &[b], b"x"].concat());
    }
    for c in &hostile {
        renames.push(format!("/nick c{:x}{c}x", u32::from(*c)).into_bytes());
    }

    let mut newcomers = Vec::new();
    for name in
        ["\x1b[31mred\x1b[0m", "e\u{202E}vil\u{2066}", "\u{200B}zed\u{2028}", "\x07bell\x7f"]
    {
        let mut client = Client::connect(addr).await;
        let mut lines = raw_lines_until(&mut client, "name?").await;
        client.send_raw(format!("{name}\n").as_bytes()).await;
        lines.extend(raw_lines_until(&mut client, "Welcome,|Sorry,").await);
        newcomers.push((client, lines));
    }
    let mut input = Vec::new();
    for line in messages.iter().chain(&renames) {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    alice.send_raw(&input).await;
    alice.send("/nick zz-final").await;

    let from_alice = raw_lines_until(&mut alice, "You are now known as zz-final").await;
    let to_bob = raw_lines_until(&mut bob, "is now known as zz-final").await;
    let mut violations = Vec::new();
    let mut checked = 0;
    let mut everyone = vec![("alice", from_alice), ("bob", to_bob.clone())];
    for (mut client, mut lines) in newcomers {
        if String::from_utf8_lossy(lines.last().expect("a reply")).contains("Welcome,") {
            client.send("/who").await;
            lines.extend(raw_lines_until(&mut client, " online in ").await);
        }
        everyone.push(("a newcomer", lines));
    }
    for (who, lines) in &everyone {
        for line in lines {
            checked += 1;
            if let Err(why) = terminal_safe_line(line) {
                violations.push(format!("{who}: {why} in {:?}", String::from_utf8_lossy(line)));
            }
        }
    }
    eprintln!(
        "terminal safety: {} messages and {} renames with every byte and {} Cc/Cf/Zl/Zp \
         characters; {checked} received lines checked, {} violations",
        messages.len(),
        renames.len(),
        hostile.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{} lines unsafe:\n{}", violations.len(), violations.join("\n"));

    let chat: Vec<String> = to_bob
        .iter()
        .map(|raw| strip_ansi(&String::from_utf8_lossy(raw)))
        .filter(|l| l.contains(" alice: "))
        .collect();
    assert_eq!(chat.len(), messages.len(), "every message arrives as exactly one line");
    let printable: String = (0x21..=0x7e_u8).map(char::from).collect();
    assert!(chat[0].contains(&printable), "printable ASCII survives: {:?}", chat[0]);
    let family = "\u{1F468}\u{200D}\u{1F469}";
    assert!(chat.iter().any(|l| l.contains(family)), "a ZWJ between two emoji survives");
}

/// Every character in Unicode's Cc, Cf, Zl and Zp categories except `\n`.
fn hostile_chars() -> Vec<char> {
    (0..=0x10FFFF_u32)
        .filter_map(char::from_u32)
        .filter(|&c| c != '\n')
        .filter(|c| {
            matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
        })
        .collect()
}

/// Raw lines (endings included) up to and including one that contains one
/// of the `|`-separated `markers`.
async fn raw_lines_until(client: &mut Client, markers: &str) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    loop {
        let line = client.read_raw_line().await.expect("connection open until the marker");
        let text = String::from_utf8_lossy(&line);
        let done = markers.split('|').any(|marker| text.contains(marker));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// Checks one received line: UTF-8, ends in the only `\r\n`, and is printable
/// with SGR colour allowed (see `support/terminal_oracle.rs`).
fn terminal_safe_line(raw: &[u8]) -> Result<(), String> {
    let body = raw.strip_suffix(b"\r\n").ok_or("no CRLF at the end")?;
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    check_printable(text, true)
}

// ---------------------------------------------------------------------------
// Impersonation

/// With alice, paypal and bob online, nobody can take their names again in
/// another case or spelled with look-alike letters (Cyrillic, Greek, digit
/// one for l, capital I for l), neither when naming nor with `/nick`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_differ_only_by_case_or_lookalike_letters_are_refused() {
    let server = Server::start(&["--rate", "0"]);
    let _alice = Client::named(server.addr, "alice").await;
    let _paypal = Client::named(server.addr, "paypal").await;
    let _bob = Client::named(server.addr, "bob").await;
    let candidates = [
        "ALICE",
        "Alice",
        "aLiCe",
        "PayPal",
        "BOB",
        "\u{0430}lice",                             // Cyrillic а
        "\u{0430}LICE",                             // Cyrillic а, rest upper case
        "\u{0391}LICE",                             // Greek capital Alpha
        "ALIC\u{0395}",                             // Greek capital Epsilon
        "\u{0440}\u{0430}ypal",                     // Cyrillic р and а
        "p\u{0430}yp\u{0430}l",                     // Cyrillic а twice
        "b\u{043E}b",                               // Cyrillic о
        "\u{0412}OB",                               // Cyrillic capital Ve
        "\u{0392}\u{039F}\u{0392}",                 // Greek capital Beta, Omicron, Beta
        "a1ice",                                    // digit one for l
        "paypaI",                                   // capital I for l
        "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}", // fullwidth
    ];
    let taken_by_naming = names_accepted(server.addr, &candidates).await;
    let taken_by_nick = renames_accepted(server.addr, &candidates).await;
    assert!(
        taken_by_naming.is_empty() && taken_by_nick.is_empty(),
        "look-alikes of alice, paypal or bob accepted: as a name {taken_by_naming:?}, \
         by /nick {taken_by_nick:?}"
    );
}

/// Names reserved for the server, in any case and with look-alike letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_names_and_their_lookalikes_are_refused() {
    let server = Server::start(&["--rate", "0"]);
    let candidates = [
        "server",
        "admin",
        "system",
        "SERVER",
        "Admin",
        "s\u{0443}stem", // Cyrillic у
        "\u{0430}dmin",  // Cyrillic а
        "\u{0455}erver", // Cyrillic dze
        "ADM\u{0399}N",  // Greek capital Iota
        "SERV\u{0395}R", // Greek capital Epsilon
        "SYS\u{03A4}EM", // Greek capital Tau
        "\u{039C}OD",    // Greek capital Mu (mod)
        "server-bot",
        "ad\u{200B}min", // zero-width space
    ];
    let taken_by_naming = names_accepted(server.addr, &candidates).await;
    let taken_by_nick = renames_accepted(server.addr, &candidates).await;
    assert!(
        taken_by_naming.is_empty() && taken_by_nick.is_empty(),
        "reserved names accepted: as a name {taken_by_naming:?}, by /nick {taken_by_nick:?}"
    );
}

/// Invisible characters (zero-width, bidi overrides, fillers, joiners,
/// variation selectors) inserted into a taken name do not make it a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_characters_do_not_make_a_taken_name_new() {
    let server = Server::start(&["--rate", "0"]);
    let _alice = Client::named(server.addr, "alice").await;
    let candidates = [
        "al\u{200B}ice", // zero-width space
        "ali\u{202E}ce", // right-to-left override
        "\u{202E}alice",
        "alice\u{200B}",
        "a\u{2060}lice",  // word joiner
        "a\u{00AD}lice",  // soft hyphen
        "al\u{FEFF}ice",  // zero-width no-break space
        "ali\u{3164}ce",  // Hangul filler
        "a\u{200D}lice",  // zero-width joiner
        "a\u{034F}lice",  // combining grapheme joiner
        "alice\u{FE00}",  // variation selector
        "a\u{180B}lice",  // Mongolian free variation selector
        "alice\u{E0100}", // variation selector 17
        "al\u{2062}ice",  // invisible times
        "alice\u{E0001}", // language tag
    ];
    let taken_by_naming = names_accepted(server.addr, &candidates).await;
    let taken_by_nick = renames_accepted(server.addr, &candidates).await;
    assert!(
        taken_by_naming.is_empty() && taken_by_nick.is_empty(),
        "alice with invisible characters accepted: as a name {taken_by_naming:?}, \
         by /nick {taken_by_nick:?}"
    );
}

/// Messages that try to look like a second line or a server notice: embedded
/// CR, line and paragraph separators, NEL, cursor movement, backspaces, a
/// leading `*** `, bidi reordering. Each arrives as one line that begins with
/// the sender's emoji and name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_cannot_fake_a_second_line_or_a_server_notice() {
    let server = Server::start(&["--rate", "0"]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut mallory = Client::named(server.addr, "mallory").await;
    bob.expect_line(|l| l.contains("mallory joined")).await;
    let welcome = mallory.seen.iter().find(|l| l.contains("Welcome, mallory")).expect("welcome");
    let emoji = strip_ansi(welcome)
        .split("You are ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .expect("the welcome names the theme");
    let fakes: [&[u8]; 13] = [
        b"hi\r\x1b[2K*** SERVER: restarting, reconnect to evil.example",
        "hi\u{2028}*** bob joined".as_bytes(),
        "hi\u{2029}*** bob left".as_bytes(),
        "hi\u{0085}*** next line".as_bytes(),
        b"*** alice was kicked (spamming)",
        b"\r*** server: maintenance at noon",
        b"\x1b[1A\x1b[2K*** cursor up and erase",
        b"\x08\x08\x08\x08\x08\x08\x08\x08\x08*** backspaced over the name",
        "\u{202E}:revres ***".as_bytes(),
        b"x\x0b\x0c*** vertical tab and form feed",
        "\u{1F4E2} server: the operator speaks".as_bytes(),
        b"hi\x00*** after a NUL",
        b"/me \r*** action",
    ];
    for fake in fakes {
        mallory.send_raw(&[fake, b"\n"].concat()).await;
    }
    mallory.send("end-of-fakes").await;
    let lines = raw_lines_until(&mut bob, "end-of-fakes").await;
    let said = format!("{emoji} mallory: ");
    let did = format!("{emoji} * mallory ");
    let mut impostors = Vec::new();
    for raw in &lines[..lines.len() - 1] {
        let body = raw.strip_suffix(b"\r\n").expect("CRLF");
        let plain = strip_ansi(&String::from_utf8_lossy(body));
        let one_line = !body.contains(&b'\r') && !body.contains(&b'\n');
        if !one_line || !(plain.starts_with(&said) || plain.starts_with(&did)) {
            impostors.push(String::from_utf8_lossy(raw).into_owned());
        }
    }
    assert!(impostors.is_empty(), "lines not attributed to mallory: {impostors:#?}");
    assert_eq!(lines.len() - 1, fakes.len(), "each fake is exactly one line: {lines:?}");
}

/// Names from `candidates` that a fresh connection could take.
async fn names_accepted(addr: SocketAddr, candidates: &[&str]) -> Vec<String> {
    let mut accepted = Vec::new();
    let mut mallory = Client::connect(addr).await;
    mallory.expect_line(|l| l.contains("name")).await;
    for candidate in candidates {
        mallory.send(candidate).await;
        let reply = mallory.expect_line(|l| l.contains("Welcome,") || l.contains("Sorry,")).await;
        if reply.contains("Welcome,") {
            accepted.push(format!("{candidate:?}"));
            mallory = Client::connect(addr).await;
            mallory.expect_line(|l| l.contains("name")).await;
        } else {
            mallory.expect_line(|l| l.contains("Choose another name")).await;
        }
    }
    accepted
}

/// Names from `candidates` that a named user could switch to with `/nick`.
async fn renames_accepted(addr: SocketAddr, candidates: &[&str]) -> Vec<String> {
    let mut accepted = Vec::new();
    let mut mallory = Client::named(addr, "mallory").await;
    for candidate in candidates {
        mallory.send(&format!("/nick {candidate}")).await;
        let reply = mallory
            .expect_line(|l| l.contains("You are now known as") || l.contains("Sorry,"))
            .await;
        if reply.contains("You are now known as") {
            accepted.push(format!("{candidate:?}"));
            mallory.send("/nick mallory").await;
            mallory.expect_line(|l| l.contains("You are now known as mallory")).await;
        }
    }
    accepted
}

// ---------------------------------------------------------------------------
// Graceful shutdown under load

/// SIGTERM while 100 users are connected and ten of them talk (`--rate 0`).
/// One sender's numbered messages count as accepted once another user has
/// received the last of them. Two users have stopped reading, their
/// sockets full of private messages, so the server still holds every
/// numbered message for them when the signal comes; they read again right
/// after it. Every user must have every numbered message before the
/// shutdown notice, everyone gets that notice, and the daemon exits 0
/// within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_delivers_what_was_accepted_says_goodbye_and_exits_zero() {
    const USERS: usize = 100;
    const TALKERS: usize = 9; // besides user0, who sends the numbered messages
    const PAUSED: std::ops::Range<usize> = 90..92;
    const TALK_LINES: usize = 1_000;
    const NUMBERED: usize = 400;
    // The queue holds every line that can be sent, so no reader ever skips ahead.
    // Long lines only to fill the paused users' buffers in few round trips.
    let mut server = Server::start(&["--rate", "0", "--queue", "65536", "--max-line", "16384"]);
    let addr = server.addr;
    let mut joining = JoinSet::new();
    for i in 0..USERS {
        joining.spawn(async move {
            let name = format!("user{i}");
            let client = if PAUSED.contains(&i) {
                named_with_small_receive_buffer(addr, &name).await
            } else {
                Client::named(addr, &name).await
            };
            (i, client)
        });
    }
    let mut users: Vec<(usize, Client)> = Vec::with_capacity(USERS);
    while let Some(joined) = joining.join_next().await {
        users.push(joined.expect("user joins"));
    }
    users.sort_by_key(|(i, _)| *i);
    for paused in PAUSED {
        fill_until_stalled(&mut users[0].1, &format!("user{paused}")).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(AtomicUsize::new(0));
    let (resume, paused) = tokio::sync::watch::channel(false);
    let mut running = JoinSet::new();
    for (i, client) in users {
        let role = match i {
            0 => Role::Numbered(NUMBERED),
            i if i <= TALKERS => Role::Talker(TALK_LINES),
            _ => Role::Silent,
        };
        let progress = (i == USERS - 1).then(|| Arc::clone(&watched));
        let gate = PAUSED.contains(&i).then(|| paused.clone());
        let stop = Arc::clone(&stop);
        running.spawn(async move {
            let (input, output) = client.into_parts();
            // Like a real client, each leaves once the server has closed on it.
            let (heard, _output) =
                tokio::join!(listen_until_closed(input, progress, gate), talk(output, role, stop));
            (i, heard)
        });
    }
    poll_until("user99 to receive every numbered message", WAIT, || {
        let seen = watched.load(Ordering::Relaxed);
        if seen == NUMBERED { Ok(()) } else { Err(seen) }
    })
    .await;

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    stop.store(true, Ordering::Relaxed);
    resume.send_replace(true);
    let took = poll_until("chat-server to exit after SIGTERM", Duration::from_secs(5), || {
        if server.is_running() { Err(signalled.elapsed()) } else { Ok(signalled.elapsed()) }
    })
    .await;
    let (status, _) = server.wait_exit(Duration::from_secs(1));
    let mut delivered = 0;
    let mut problems = Vec::new();
    while let Some(heard) = running.join_next().await {
        let (i, heard) = heard.expect("user task");
        delivered += heard.lines;
        if !heard.shutdown_notice {
            problems.push(format!("user{i}: no shutdown notice"));
        }
        if i != 0 && heard.numbered_before_notice != NUMBERED {
            problems.push(format!(
                "user{i}: {} of {NUMBERED} numbered messages before the notice{}",
                heard.numbered_before_notice,
                heard.disorder.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            ));
        }
    }
    eprintln!(
        "graceful shutdown: exited {status} {took:.2?} after SIGTERM with {USERS} users \
         connected; {delivered} lines delivered in all"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(status.success(), "exit status {status}");
}

/// Sends `to` private messages of 16,000 bytes until the server says it is
/// not keeping up: its socket buffers are full and its direct queue too, so
/// the server is stuck writing to it.
async fn fill_until_stalled(from: &mut Client, to: &str) {
    const BATCH: usize = 32;
    let filler = "\u{1F980}".repeat(4000); // few characters for the bytes: cheap to sanitise
    let batch: String = (0..BATCH).map(|_| format!("/msg {to} {filler}\n")).collect();
    for _ in 0..500 {
        from.send_raw(batch.as_bytes()).await;
        let mut stalled = false;
        for _ in 0..BATCH {
            let reply =
                from.expect_line(|l| l.contains("-> ") || l.contains("Not delivered")).await;
            stalled |= reply.contains("Not delivered");
        }
        from.seen.clear();
        if stalled {
            return;
        }
    }
    panic!("{to} never stalled");
}

/// A named user whose socket takes little before the server must wait, so
/// not reading soon leaves output queued in the server.
async fn named_with_small_receive_buffer(addr: SocketAddr, name: &str) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("server accepts");
    let mut client = Client::from_stream(stream);
    client.name_as(name).await;
    client
}

/// What a user of the shutdown test sends.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// `numbered 0` .. `numbered N-1`, all at once.
    Numbered(usize),
    /// A line every 10 ms, up to this many, until told to stop.
    Talker(usize),
    Silent,
}

/// Sends what `role` says; hands the writer back so the caller decides when
/// the connection closes.
async fn talk(
    mut output: tokio::net::tcp::OwnedWriteHalf,
    role: Role,
    stop: Arc<AtomicBool>,
) -> tokio::net::tcp::OwnedWriteHalf {
    match role {
        Role::Numbered(count) => {
            // Padded, so that the paused readers' buffers fill up.
            let padding = "p".repeat(480);
            let lines: String = (0..count).map(|n| format!("numbered {n} {padding}\n")).collect();
            tokio::time::timeout(WAIT, output.write_all(lines.as_bytes()))
                .await
                .expect("numbered lines written in time")
                .expect("numbered lines sent");
        }
        Role::Talker(count) => {
            for n in 0..count {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let line = format!("talk {n}\n");
                match tokio::time::timeout(WAIT, output.write_all(line.as_bytes())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break, // the server has closed: shutdown under way
                    Err(_) => panic!("the server stopped reading a talker for {WAIT:?}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await; // a steady talker's pace
            }
        }
        Role::Silent => {}
    }
    output
}

/// What one user heard before the server closed the connection.
#[derive(Debug, Default)]
struct Heard {
    lines: usize,
    numbered_before_notice: usize,
    disorder: Option<String>,
    shutdown_notice: bool,
}

/// Reads raw bytes until EOF, counting user0's numbered messages (which must
/// arrive in order) until the shutdown notice. `progress` follows the count;
/// with a `gate`, reading starts only once it opens.
async fn listen_until_closed(
    mut input: impl tokio::io::AsyncRead + Unpin,
    progress: Option<Arc<AtomicUsize>>,
    gate: Option<tokio::sync::watch::Receiver<bool>>,
) -> Heard {
    if let Some(mut gate) = gate {
        let opened = tokio::time::timeout(Duration::from_secs(60), gate.wait_for(|&open| open));
        opened.await.expect("the gate opens").expect("the gate stays");
    }
    const NUMBERED: &[u8] = b"user0: numbered ";
    let mut heard = Heard::default();
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(WAIT, input.read(&mut buf)).await {
            Err(_) => panic!("nothing arrived for {WAIT:?}; heard so far: {heard:?}"),
            Ok(Ok(0) | Err(_)) => return heard,
            Ok(Ok(n)) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            heard.lines += 1;
            if contains(line, b"shutting down") {
                heard.shutdown_notice = true;
            } else if let Some(at) = find(line, NUMBERED).filter(|_| !heard.shutdown_notice) {
                let digits: String = line[at + NUMBERED.len()..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .map(|&b| char::from(b))
                    .collect();
                if digits.parse() != Ok(heard.numbered_before_notice) && heard.disorder.is_none() {
                    heard.disorder =
                        Some(format!("expected {} and got {digits}", heard.numbered_before_notice));
                }
                heard.numbered_before_notice += 1;
                if let Some(progress) = &progress {
                    progress.store(heard.numbered_before_notice, Ordering::Relaxed);
                }
            }
        }
        pending.drain(..start);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

// ---------------------------------------------------------------------------
// Shared helpers

/// Drops the connection with a reset instead of a FIN (SO_LINGER 0).
fn reset(client: Client) {
    let stream = client.into_stream();
    SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(stream);
}

/// How many lines the server has logged that contain `text`.
fn count_log_lines(server: &Server, text: &str) -> usize {
    server.log.snapshot().iter().filter(|l| l.contains(text)).count()
}

/// Samples until `good` holds or `within` passes, and returns the last
/// sample either way, so the caller can report it before asserting.
async fn sample_until<T: Copy>(
    within: Duration,
    sample: impl Fn() -> T,
    good: impl Fn(T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let value = sample();
        if good(value) || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

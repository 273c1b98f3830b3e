//! The daemon as an operator runs it: limits, slow readers, console,
//! signals, logs. Real binary, real sockets.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Client, Server, strip_ansi};

#[tokio::test]
async fn one_client_over_max_clients_is_refused_with_a_line() {
    let server = Server::start(&["--max-clients", "2"]);
    let _alice = Client::named(server.addr, "alice").await;
    let _bob = Client::named(server.addr, "bob").await;
    let mut carol = Client::connect(server.addr).await;
    let lines = carol.until_closed().await;
    assert!(lines.iter().any(|l| l.contains("server is full")), "{lines:?}");
}

#[tokio::test]
async fn sigterm_tells_every_client_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let mut unnamed = Client::connect(server.addr).await;
    unnamed.expect_line(|l| l.contains("name")).await;
    alice.send("last words").await;
    bob.expect_line(|l| l.contains("last words")).await;
    server.signal(libc::SIGTERM);
    for client in [&mut alice, &mut bob, &mut unnamed] {
        let lines = client.until_closed().await;
        assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    }
    let (status, _) = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigint_shuts_down_gracefully_too() {
    let mut server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    server.signal(libc::SIGINT);
    let lines = alice.until_closed().await;
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    assert!(server.wait_exit(Duration::from_secs(5)).0.success());
}

#[tokio::test]
async fn end_of_stdin_does_not_stop_the_daemon() {
    let mut server = Server::start(&[]);
    server.close_stdin();
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send("still serving").await;
    bob.expect_line(|l| l.contains("still serving")).await;
    assert!(server.is_running());
}

#[tokio::test]
async fn console_who_say_kick_stats_and_quit() {
    let mut server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    server.console_command("/who");
    server.console.wait_for("who output", |l| l.contains("bob") && l.contains("127.0.0.1"));
    server.console_command("/say maintenance at noon");
    let said = strip_ansi(&alice.expect_line(|l| l.contains("maintenance")).await);
    assert!(said.contains("server: maintenance at noon"), "{said}");
    server.console_command("/kick bob spamming");
    let bob_lines = bob.until_closed().await;
    assert!(
        bob_lines.iter().any(|l| l.contains("removed") && l.contains("spamming")),
        "{bob_lines:?}"
    );
    alice.expect_line(|l| l.contains("bob was kicked (spamming)")).await;
    server.console_command("/stats");
    server.console.wait_for("stats output", |l| l.contains("uptime") && l.contains("users 1"));
    server.console_command("exit");
    let lines = alice.until_closed().await;
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    assert!(server.wait_exit(Duration::from_secs(5)).0.success());
}

#[tokio::test]
async fn console_quit_tells_every_client_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    server.console_command("/quit");
    for client in [&mut alice, &mut bob] {
        let lines = client.until_closed().await;
        assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    }
    let (status, _) = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_reader_that_never_reads_slows_nobody_and_is_told_what_it_missed() {
    let server = Server::start(&["--rate", "0", "--queue", "64", "--metrics", "127.0.0.1:0"]);
    let mut slow = Client::named(server.addr, "slow").await;
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    // Enough to fill the slow reader's socket buffers many times over.
    let total = 30_000;
    let sender = support::numbered_flood(alice, total);
    let mut next = 0;
    while next < total {
        let line = bob.next_line().await.expect("bob keeps receiving");
        let plain = strip_ansi(&line);
        if let Some(text) = plain.split("alice: ").nth(1) {
            let number: usize =
                text.split(' ').next().and_then(|n| n.parse().ok()).expect("numbered");
            assert_eq!(number, next, "bob lost or reordered a line");
            next += 1;
        }
    }
    let mut alice = sender.await.expect("sender finished");
    // Each line of the flood must reach the slow reader or be counted in a
    // notice: read until they are all accounted for (each read has its
    // deadline, so silent loss fails the test).
    let mut received = Vec::new();
    let mut missed = Vec::new();
    while received.len() + missed.iter().sum::<usize>() < total {
        let line = strip_ansi(&slow.next_line().await.expect("the slow reader stays connected"));
        tally_flood_line(&line, &mut received, &mut missed);
    }
    // Then nothing more about the flood comes before a later line.
    alice.send("after the flood").await;
    for line in slow.lines_until(|l| l.contains("alice: after the flood")).await {
        tally_flood_line(&strip_ansi(&line), &mut received, &mut missed);
    }
    assert!(received.windows(2).all(|w| w[0] < w[1]), "out of order or twice: {received:?}");
    assert!(!missed.is_empty(), "never told it missed anything");
    assert!(missed.iter().all(|&n| n > 0), "a notice of nothing missed: {missed:?}");
    // The counts may also include the two join notices published after the
    // slow reader came in, and nothing else.
    let (got, told) = (received.len(), missed.iter().sum::<usize>());
    assert!(got < total, "the slow reader got all {total} lines: nothing to miss");
    assert!(
        got + told <= total + 2,
        "received {got} + told missed {told} for {total} sent: {missed:?}"
    );
    // The metric counts what readers were told they missed: the slow
    // reader's notices, and any another reader got (read up to a barrier,
    // which comes after every line of the flood).
    support::barrier(&mut bob, &mut alice).await;
    let told_anyone: usize = [&slow, &alice, &bob]
        .iter()
        .flat_map(|user| &user.seen)
        .filter_map(|line| match chat_proto::classify(&strip_ansi(line)) {
            chat_proto::Heard::Missed { count } => Some(count as usize),
            _ => None,
        })
        .sum();
    let page = support::http_get(server.metrics_addr(), "/metrics");
    assert_eq!(support::metric(&page, "chat_lines_missed_total") as usize, told_anyone);
}

/// Sorts a line the slow reader got: a numbered line of the flood, or a
/// "You missed N messages" notice.
fn tally_flood_line(line: &str, received: &mut Vec<usize>, missed: &mut Vec<usize>) {
    if let Some(text) = line.split("alice: ").nth(1).filter(|t| *t != "after the flood") {
        let number = text.split(' ').next().and_then(|n| n.parse().ok());
        received.push(number.unwrap_or_else(|| panic!("not numbered: {line:?}")));
    } else if let Some(rest) = line.split("You missed ").nth(1) {
        let count = rest.strip_suffix(" messages: your connection is not keeping up.");
        missed.push(
            count.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count: {line:?}")),
        );
    }
}

#[tokio::test]
async fn a_client_that_accepts_no_bytes_is_disconnected_after_the_write_timeout() {
    let server = Server::start(&[
        "--rate",
        "0",
        "--queue",
        "16",
        "--write-timeout",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let _stalled = Client::named(server.addr, "stalled").await;
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let gone = support::busy_until_disconnected(&mut alice, &mut bob, "stalled").await;
    assert!(gone, "the stalled reader was never disconnected");
    server.log.wait_for("slow disconnect log", |l| {
        l.contains("stalled") && l.contains("write timed out")
    });
    let page = support::http_get(server.metrics_addr(), "/metrics");
    assert_eq!(support::metric(&page, "chat_slow_reader_disconnects_total"), 1, "{page}");
}

#[tokio::test]
async fn rate_limit_slows_a_flooder_without_dropping_lines() {
    const LINES: u32 = 45;
    let server = Server::start(&["--rate", "20", "--burst", "5"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let batch: String = (0..LINES).map(|i| format!("line {i}\n")).collect();
    let sent = Instant::now();
    alice.send_raw(batch.as_bytes()).await;
    for i in 0..LINES {
        let line = strip_ansi(&bob.expect_line(|l| l.contains("alice: line")).await);
        assert!(line.ends_with(&format!("line {i}")), "expected line {i}, got {line}");
    }
    // 5 lines pass at once, the other 40 at 20 a second: the server cannot
    // have read the last one sooner than 2 s after the first. A lower bound
    // only, which a loaded machine can only make easier to meet.
    let least = Duration::from_secs_f64(f64::from(LINES - 5) / 20.0);
    let took = sent.elapsed();
    assert!(took >= least, "{LINES} lines in {took:?}: --rate 20 --burst 5 was not applied");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_name_timeout() {
    let server = Server::start(&["--name-timeout", "0.5"]);
    let mut silent = Client::connect(server.addr).await;
    let lines = silent.until_closed().await;
    assert!(lines.iter().any(|l| l.contains("Timed out")), "{lines:?}");
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("/who").await;
    alice.expect_line(|l| l.contains("1 online")).await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let server = Server::start(&["--log-format", "json"]);
    let _alice = Client::named(server.addr, "alice").await;
    let named = server.log.wait_for("named log", |l| l.contains("\"named\""));
    assert!(named.starts_with('{') && named.ends_with('}'), "{named}");
    assert!(named.contains("\"name\":\"alice\""), "{named}");
}

#[tokio::test]
async fn listens_on_several_addresses_including_ipv6() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let v6 = server
        .log
        .wait_for("ipv6 listener", |l| support::is_chat_listener(l, false) && l.contains("[::1]"));
    let addr = support::listening_addr(&v6);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    bob.send("over ipv6").await;
    alice.expect_line(|l| l.contains("over ipv6")).await;
}

/// The metrics endpoint logs `metrics listening` too, and may do so before
/// the chat listener: the chat address is the chat listener's.
#[tokio::test]
async fn the_chat_address_is_never_the_metrics_address() {
    let server = Server::start(&["--metrics", "127.0.0.1:0", "--log-format", "json"]);
    let metrics = server.log.wait_for("metrics listener", |l| l.contains("metrics listening"));
    assert!(!support::is_chat_listener(&metrics, false), "{metrics}");
    assert_ne!(support::listening_addr(&metrics), server.addr);
    let _alice = Client::named(server.addr, "alice").await;
}

#[test]
fn only_a_chat_listeners_log_line_is_taken_for_its_address() {
    let text = "2026-01-01T00:00:00.000000Z  INFO chat_server::server: listening addr=127.0.0.1:4001 tls=false";
    let text_tls = "2026-01-01T00:00:00.000000Z  INFO chat_server::server: listening addr=127.0.0.1:4002 tls=true";
    let text_metrics = "2026-01-01T00:00:00.000000Z  INFO chat_server::metrics: metrics listening addr=127.0.0.1:4003";
    let json = r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:4001","tls":false},"target":"chat_server::server"}"#;
    let json_metrics = r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","fields":{"message":"metrics listening","addr":"127.0.0.1:4003"},"target":"chat_server::metrics"}"#;
    assert!(support::is_chat_listener(text, false) && support::is_chat_listener(json, false));
    assert!(
        support::is_chat_listener(text_tls, true) && !support::is_chat_listener(text_tls, false)
    );
    assert!(!support::is_chat_listener(text, true));
    for metrics in [text_metrics, json_metrics] {
        assert!(!support::is_chat_listener(metrics, false), "{metrics}");
        assert!(!support::is_chat_listener(metrics, true), "{metrics}");
    }
    assert_eq!(support::listening_addr(json), support::listening_addr(text));
}

#[test]
fn help_describes_every_flag() {
    let output = support::run(Command::new(support::bin_path("chat-server")).arg("--help"));
    assert!(output.status.success(), "{}", output.stderr);
    let help = output.stdout;
    for flag in [
        "--listen",
        "--max-clients",
        "--max-line",
        "--rate",
        "--name-timeout",
        "--history",
        "--queue",
        "--write-timeout",
        "--no-color",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let output = support::run(Command::new(support::bin_path("chat-server")).args([
        "--listen",
        &addr.to_string(),
        "--db",
        ":memory:",
    ]));
    assert!(!output.status.success());
    let stderr = output.stderr;
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

/// `joiner0`..`joinerN` connect and name themselves all at once.
async fn join_at_once(addr: std::net::SocketAddr, joiners: usize) -> Vec<Client> {
    let tasks: Vec<_> = (0..joiners)
        .map(|i| tokio::spawn(async move { Client::named(addr, &format!("joiner{i}")).await }))
        .collect();
    let mut users = Vec::new();
    for task in tasks {
        users.push(task.await.expect("joined"));
    }
    users
}

#[tokio::test]
async fn joins_in_a_busy_room_are_gathered_into_few_notices() {
    let server = Server::start(&["--max-clients", "200"]);
    let mut observer = Client::named(server.addr, "observer").await;
    let joiners = 80;
    let started = Instant::now();
    let mut users = join_at_once(server.addr, joiners).await;
    let mut announced = vec![0; joiners];
    let mut notices = Vec::new();
    while announced.contains(&0) {
        let line = strip_ansi(&observer.expect_line(|l| l.contains("joined")).await);
        // 80 short names fit in one line of 4 KiB: nobody may be counted
        // instead of named.
        assert!(!line.contains("more joined"), "a name was left out: {line}");
        for (i, times) in announced.iter_mut().enumerate() {
            *times += line.matches(&format!(" joiner{i} joined")).count();
        }
        notices.push(line);
    }
    let gathering = started.elapsed();
    // Nothing more about them comes before a later line: every join was
    // announced exactly once.
    let later = support::barrier(&mut users[0], &mut observer).await;
    let late: Vec<&String> = later.iter().filter(|l| l.contains(" joined")).collect();
    assert!(late.is_empty(), "joins announced after all were accounted for: {late:#?}");
    let twice: Vec<usize> = (0..joiners).filter(|&i| announced[i] != 1).collect();
    assert!(twice.is_empty(), "announced more than once: {twice:?} in {notices:#?}");
    // A room under 32 members announces each join at once: the observer
    // and 30 joiners. From then on each notice comes at least a second
    // (the gathering window) after the one before, so the other 50 joins
    // make at most one notice per second of joining, and one more.
    // Announcing each join alone would make 80.
    let most = 30 + gathering.as_secs() as usize + 2;
    assert!(
        notices.len() <= most,
        "{} notices for {joiners} joins in {gathering:?} (at most {most}): {notices:#?}",
        notices.len()
    );
    assert!(notices.len() < joiners, "nothing was gathered: {notices:#?}");
}

#[tokio::test]
async fn one_address_over_max_per_ip_is_refused_while_others_connect() {
    let server = Server::start(&["--max-per-ip", "2"]);
    let local: std::net::IpAddr = [127, 0, 0, 1].into();
    let _first = Client::connect_from(server.addr, local).await;
    let _second = Client::connect_from(server.addr, local).await;
    let mut third = Client::connect_from(server.addr, local).await;
    let lines = third.until_closed().await;
    assert!(
        lines.iter().any(|l| l.contains("too many connections from your address")),
        "{lines:?}"
    );
    let mut elsewhere = Client::connect_from(server.addr, [127, 0, 0, 2].into()).await;
    elsewhere.name_as("elsewhere").await;
}

#[tokio::test]
async fn accepted_sockets_have_tcp_keepalive_on() {
    let server = Server::start(&[]);
    let alice = Client::named(server.addr, "alice").await;
    let filter =
        format!("( sport = :{} and dport = :{} )", server.addr.port(), alice.local_addr().port());
    // ss shows one timer per socket: keepalive's once nothing is in flight.
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let table =
            support::run(Command::new("ss").args(["-tno", "state", "established", &filter])).stdout;
        if table.contains("timer:(keepalive") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no keepalive timer on the server's socket:\n{table}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_gathered_notice_names_every_joiner() {
    let server = Server::start(&["--max-clients", "200"]);
    let mut observer = Client::named(server.addr, "observer").await;
    let joiners = 48;
    let _users = join_at_once(server.addr, joiners).await;
    let mut named = std::collections::HashSet::new();
    while named.len() < joiners {
        let line = strip_ansi(&observer.expect_line(|l| l.contains("joined")).await);
        assert!(!line.contains("more joined"), "a name was left out: {line}");
        for i in 0..joiners {
            if line.contains(&format!(" joiner{i} joined")) {
                assert!(named.insert(i), "joiner{i} announced twice");
            }
        }
    }
}

/// A daemon whose stderr has gone (its reader closed the pipe) still
/// serves, and still stops cleanly on SIGTERM: a log line it cannot write
/// is dropped, never a panic in the task that logged it.
#[tokio::test]
async fn a_daemon_whose_log_reader_went_away_still_stops_on_sigterm() {
    use std::io::BufRead;
    let (log, log_end) = std::io::pipe().expect("a pipe");
    let daemon = Command::new(support::bin_path("chat-server"))
        .args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_end)
        .spawn()
        .expect("chat-server starts");
    // Killed however the test ends, so a daemon that ignores SIGTERM does not outlive it.
    let mut daemon = KilledOnDrop(daemon);
    let mut log = std::io::BufReader::new(log);
    let mut line = String::new();
    while !support::is_chat_listener(&line, false) {
        line.clear();
        assert!(log.read_line(&mut line).expect("the log") > 0, "no listening line");
    }
    let addr = support::listening_addr(&line);
    drop(log);
    // Every connection logs now, into a pipe nobody reads.
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.send("still serving").await;
    bob.expect_line(|l| l.contains("still serving")).await;
    // SAFETY: kill(2) on the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().expect("child status") {
            break status;
        }
        assert!(Instant::now() < deadline, "chat-server ignored SIGTERM with its log reader gone");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let lines = alice.until_closed().await;
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
}

/// A child process killed when dropped.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

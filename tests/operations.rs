//! Running the daemon as a service: Prometheus metrics, settings from the
//! environment, `--version`. Real binary, real sockets.

mod support;

use std::process::Command;

use support::{Client, Server, WAIT, bin_path, http_get, listening_addr, metric, poll_until};

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let server = Server::start(&["--metrics", "127.0.0.1:0", "--max-line", "64"]);
    let line = server.log.wait_for("metrics listener", |l| l.contains("metrics listening"));
    let metrics = listening_addr(&line);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send("one").await;
    alice.send("two").await;
    alice.send(&"x".repeat(100)).await;
    bob.expect_line(|l| l.contains("alice: two")).await;
    alice.expect_line(|l| l.contains("discarded")).await;

    let response = http_get(metrics, "/metrics");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("Content-Type: text/plain; version=0.0.4"), "{response}");
    let page = response.split("\r\n\r\n").nth(1).expect("body");
    assert!(page.contains("# TYPE chat_messages_received_total counter"), "{page}");
    assert_eq!(metric(page, "chat_users"), 2);
    assert_eq!(metric(page, "chat_connections_open"), 2);
    assert_eq!(metric(page, "chat_messages_received_total"), 2);
    assert_eq!(metric(page, "chat_lines_too_long_total"), 1);
    assert!(metric(page, "chat_lines_sent_total") >= 2);
    assert!(metric(page, "chat_bytes_sent_total") > 0);
    assert_eq!(metric(page, "chat_backplane_configured"), 0);
    assert!(http_get(metrics, "/").starts_with("HTTP/1.0 404"));
}

/// The metrics `metrics_are_served_in_prometheus_text_format` leaves
/// still: admissions and refusals, rooms opening and closing, users here
/// and on every daemon, and the uptime.
#[tokio::test]
async fn metrics_count_admissions_refusals_rooms_and_uptime() {
    let server = Server::start(&["--metrics", "127.0.0.1:0", "--max-clients", "2"]);
    let metrics = server.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    let started = read("chat_uptime_seconds");
    assert_eq!(read("chat_connections_total"), 0);
    assert_eq!(read("chat_connections_refused_total"), 0);
    assert_eq!(read("chat_room_users"), 0);
    assert_eq!(read("chat_rooms"), 0, "a room opens with its first member, #lobby too");

    let mut alice = Client::named(server.addr, "alice").await;
    let _bob = Client::named(server.addr, "bob").await;
    let mut carol = Client::connect(server.addr).await;
    let refused = carol.until_closed().await;
    assert!(refused.iter().any(|l| l.contains("server is full")), "{refused:?}");
    poll_until("one refusal counted", WAIT, || match read("chat_connections_refused_total") {
        1 => Ok(()),
        n => Err(n),
    })
    .await;
    assert_eq!(read("chat_connections_total"), 2, "alice and bob admitted, carol not");
    // Without a backplane, everyone sharing the rooms is here.
    assert_eq!((read("chat_users"), read("chat_room_users")), (2, 2));
    assert_eq!(read("chat_rooms"), 1, "#lobby");

    alice.join("#rust").await;
    assert_eq!(read("chat_rooms"), 2, "#rust opened");
    alice.send("/part #rust").await;
    alice.expect_line(|l| l.contains("You left #rust")).await;
    poll_until("#rust closed", WAIT, || match read("chat_rooms") {
        1 => Ok(()),
        n => Err(n),
    })
    .await;
    poll_until("the uptime moving on", WAIT, || match read("chat_uptime_seconds") {
        n if n > started => Ok(()),
        n => Err(n),
    })
    .await;
}

#[tokio::test]
async fn every_setting_can_come_from_the_environment() {
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server =
        Server::start_env(&[], &[("CHAT_LISTEN", &listen), ("CHAT_MAX_LINE", "50")], |_| {});
    assert_eq!(server.addr.port(), port);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send(&"y".repeat(51)).await;
    alice.expect_line(|l| l.contains("longer than 50 bytes")).await;
}

#[test]
fn help_names_the_environment_variable_of_each_flag() {
    let output = support::run(Command::new(bin_path("chat-server")).arg("--help"));
    // Help text wraps; compare with the line breaks folded away.
    let help = output.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for var in [
        "CHAT_LISTEN",
        "CHAT_LISTEN_TLS",
        "CHAT_TLS_CERT",
        "CHAT_TLS_KEY",
        "CHAT_MAX_CLIENTS",
        "CHAT_MAX_PER_IP",
        "CHAT_MAX_LINE",
        "CHAT_RATE",
        "CHAT_BURST",
        "CHAT_NAME_TIMEOUT",
        "CHAT_HISTORY",
        "CHAT_QUEUE",
        "CHAT_WRITE_TIMEOUT",
        "CHAT_BACKPLANE",
        "CHAT_METRICS",
        "CHAT_NO_COLOR",
        "CHAT_LOG_FORMAT",
    ] {
        assert!(help.contains(&format!("env: {var}")), "{var} missing from --help:\n{help}");
    }
}

#[test]
fn version_is_printed() {
    let output = support::run(Command::new(bin_path("chat-server")).arg("--version"));
    assert!(output.status.success(), "{}", output.stderr);
    let version = output.stdout;
    assert_eq!(version.trim(), format!("chat-server {}", env!("CARGO_PKG_VERSION")));
}

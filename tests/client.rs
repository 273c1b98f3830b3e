//! End-to-end tests of `chat-client` in piped mode (stdin not a terminal) and
//! of its errors and exit codes, against the real `chat-server` binary and
//! raw TCP users. The terminal mode is covered by `client_pty.rs`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{Client, Server, WAIT, bin_path, registered_and_gone, strip_ansi};
use tokio::sync::mpsc;

/// A `chat-client` process with piped stdin, stdout and stderr.
struct PipedClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    /// Every stdout line so far.
    seen: Vec<String>,
}

impl PipedClient {
    fn start(args: &[&str]) -> PipedClient {
        Self::start_with(args, |_| {})
    }

    fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> PipedClient {
        let mut command = Command::new(bin_path("chat-client"));
        command.args(args).env_remove("NO_COLOR");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("chat-client starts");
        let (sender, receiver) = mpsc::unbounded_channel();
        // Not piped when the caller redirected it: the receiver then ends at once.
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        PipedClient { child, stdin, stdout: receiver, seen: Vec::new() }
    }

    /// Connects to `addr` as `name`.
    fn named(addr: SocketAddr, name: &str) -> PipedClient {
        Self::start(&[&addr.to_string(), "--name", name])
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("client reads stdin");
        stdin.flush().expect("stdin flushed");
    }

    /// Ends the client's stdin, as the end of a piped file would.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line that matches; panics with what was seen.
    async fn expect_stdout(&mut self, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stdout.recv()).await;
            match next {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("stdout closed; seen: {:#?}", self.seen),
                Err(_) => panic!("no matching stdout line in {WAIT:?}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit; returns its status and its stderr.
    async fn exit(mut self) -> (ExitStatus, String) {
        let status = wait_exit(&mut self.child).await;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).expect("stderr readable");
        }
        (status, stderr)
    }

    /// Everything printed so far, after the process exited.
    async fn remaining_stdout(&mut self) -> Vec<String> {
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.stdout.recv()).await {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for PipedClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return status;
        }
        assert!(start.elapsed() < WAIT, "chat-client still running after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the client to completion with stdin closed; returns exit code and stderr.
async fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut client = PipedClient::start(args);
    client.close_stdin();
    let (status, stderr) = client.exit().await;
    (status.code().expect("exited, not killed"), stderr)
}

/// The error contract: one line on stderr, prefixed with the program name.
fn assert_one_error_line(stderr: &str, expected: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line: {stderr:?}");
    assert!(lines[0].starts_with("chat-client: "), "{stderr:?}");
    assert!(lines[0].contains(expected), "{expected:?} not in {stderr:?}");
}

#[tokio::test]
async fn piped_lines_reach_a_raw_user_and_the_client_leaves_cleanly() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = PipedClient::named(server.addr, "alice");
    alice.type_line("hello from a pipe");
    alice.type_line("second line");
    alice.close_stdin();

    bob.expect_line(|l| l.contains("alice: hello from a pipe")).await;
    bob.expect_line(|l| l.contains("alice: second line")).await;
    bob.expect_line(|l| l.contains("alice") && l.contains("left")).await;
    let (status, stderr) = alice.exit().await;
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "");
}

#[tokio::test]
async fn a_raw_users_message_is_printed_with_its_colour() {
    let server = Server::start(&[]);
    let mut alice = PipedClient::named(server.addr, "alice");
    alice.expect_stdout(|l| l.contains("Welcome, alice!")).await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("hi from netcat").await;

    let line = alice.expect_stdout(|l| l.contains("bob: hi from netcat")).await;
    assert!(line.starts_with("\x1b[38;5;"), "theme colour kept: {line:?}");
    alice.close_stdin();
    let (status, _) = alice.exit().await;
    assert!(status.success());
}

#[tokio::test]
async fn no_color_flag_and_env_print_no_escape() {
    let server = Server::start(&[]);
    let mut flag = PipedClient::start(&[&server.addr.to_string(), "--name", "flag", "--no-color"]);
    let mut env = PipedClient::start_with(&[&server.addr.to_string(), "--name", "env"], |c| {
        c.env("NO_COLOR", "1");
    });
    flag.expect_stdout(|l| l.contains("Welcome, flag!")).await;
    env.expect_stdout(|l| l.contains("Welcome, env!")).await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("colourful").await;
    for client in [&mut flag, &mut env] {
        client.expect_stdout(|l| l.contains("bob: colourful")).await;
        assert!(client.seen.iter().all(|l| !l.contains('\x1b')), "{:#?}", client.seen);
        client.close_stdin();
    }
    for client in [flag, env] {
        let (status, _) = client.exit().await;
        assert!(status.success());
    }
}

/// A server that is not ours sends what a terminal would obey; the client
/// keeps only colour.
#[tokio::test]
async fn hostile_server_lines_are_sanitised() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let evil = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("client connects");
        socket.write_all(b"your name?\r\n").expect("write");
        let mut reader = BufReader::new(socket.try_clone().expect("clone"));
        let mut name = String::new();
        reader.read_line(&mut name).expect("name");
        let hostile =
            "welcome\r\n\x1b[31mred\x1b[0m \x1b[2J\x1b]0;pwned\x07\x1b[1;1Hok\x07\u{202e}\r\n";
        socket.write_all(hostile.as_bytes()).expect("write");
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest); // until the client's goodbye
        rest
    });

    let mut client = PipedClient::named(addr, "alice");
    let line = client.expect_stdout(|l| l.contains("red")).await;
    assert_eq!(line, "\x1b[31mred\x1b[0m ok");
    client.close_stdin();
    let (status, _) = client.exit().await;
    assert!(status.success());
    assert_eq!(evil.join().expect("fake server"), "/quit\n");
}

#[tokio::test]
async fn invalid_addresses_exit_2() {
    for addr in ["localhost:99999", "localhost:0", "host:port", "[::1", "a b"] {
        let (code, stderr) = run_to_exit(&[addr, "--name", "alice"]).await;
        assert_eq!(code, 2, "{addr}: {stderr}");
        assert_one_error_line(&stderr, "invalid address");
    }
}

#[tokio::test]
async fn missing_arguments_off_a_terminal_exit_2() {
    let (code, stderr) = run_to_exit(&["--name", "alice"]).await;
    assert_eq!(code, 2);
    assert_one_error_line(&stderr, "no server address");

    let (code, stderr) = run_to_exit(&["127.0.0.1:7878"]).await;
    assert_eq!(code, 2);
    assert_one_error_line(&stderr, "--name");

    let (code, stderr) = run_to_exit(&["--no-such-flag"]).await;
    assert_eq!(code, 2, "clap usage errors exit 2: {stderr}");
}

#[tokio::test]
async fn a_refused_name_exits_2_with_the_servers_reason() {
    let server = Server::start(&[]);
    let (code, stderr) = run_to_exit(&[&server.addr.to_string(), "--name", "two words"]).await;
    assert_eq!(code, 2);
    assert_one_error_line(&stderr, "refused the name \"two words\"");
}

#[tokio::test]
async fn an_unreachable_server_exits_3_naming_address_and_reason() {
    let unused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = unused.local_addr().expect("address");
    drop(unused); // nothing listens there now

    let (code, stderr) = run_to_exit(&[&addr.to_string(), "--name", "alice"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert_one_error_line(&stderr, &format!("cannot connect to {addr}: Connection refused"));
}

#[tokio::test]
async fn a_killed_server_is_a_lost_connection_exit_4() {
    let mut server = Server::start(&[]);
    let mut alice = PipedClient::named(server.addr, "alice");
    alice.expect_stdout(|l| l.contains("Welcome, alice!")).await;
    server.kill();

    let (status, stderr) = alice.exit().await;
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert_one_error_line(&stderr, &format!("connection to {} lost", server.addr));
}

#[tokio::test]
async fn quit_typed_on_stdin_is_a_clean_exit() {
    let server = Server::start(&[]);
    let mut alice = PipedClient::named(server.addr, "alice");
    alice.type_line("/quit off to lunch");
    // stdin stays open: the server closing after our /quit ends the session.
    let (status, stderr) = alice.exit().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn the_servers_last_words_are_printed_before_exit() {
    let server = Server::start(&[]);
    let mut alice = PipedClient::named(server.addr, "alice");
    alice.close_stdin();
    let status = wait_exit(&mut alice.child).await;
    assert!(status.success());
    let lines = alice.remaining_stdout().await;
    assert!(lines.iter().any(|l| l.contains("Goodbye")), "{lines:#?}");
}

#[tokio::test]
async fn every_spelling_of_quit_is_a_clean_exit() {
    let server = Server::start(&[]);
    for (i, quit) in ["/exit", "/QUIT", "/leave", "/Exit see you"].into_iter().enumerate() {
        let mut user = PipedClient::named(server.addr, &format!("user{i}"));
        user.type_line(quit);
        let (status, stderr) = user.exit().await;
        assert_eq!(status.code(), Some(0), "{quit}: {stderr}");
        assert!(!stderr.contains("lost"), "{quit}: {stderr}");
    }
}

/// A local failure is exit 1: here stdout is /dev/full, where every write
/// fails (ENOSPC) as soon as the first line from the server is printed.
#[tokio::test]
async fn a_stdout_that_cannot_be_written_exits_1_with_one_line() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let alice = PipedClient::start_with(&[&server.addr.to_string(), "--name", "alice"], |c| {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        c.stdout(full);
    });
    // stdin stays open: only the failed write may end the client.
    let (status, stderr) = alice.exit().await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_error_line(&stderr, "cannot write to stdout");
    bob.expect_line(|l| l.contains("alice") && (l.contains("left") || l.contains("lost"))).await;
}

#[tokio::test]
async fn a_registered_name_logs_in_with_chat_password_and_never_from_arguments() {
    let server = Server::start(&[]);
    registered_and_gone(server.addr, "alice", "correct-horse").await;
    let addr = server.addr.to_string();

    let (code, stderr) = run_to_exit(&[&addr, "--name", "alice"]).await;
    assert_eq!(code, 2);
    assert_one_error_line(&stderr, "put its password in CHAT_PASSWORD");

    let mut wrong = PipedClient::start_with(&[&addr, "--name", "alice"], |c| {
        c.env("CHAT_PASSWORD", "not-it-at-all");
    });
    wrong.close_stdin();
    let (status, stderr) = wrong.exit().await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_one_error_line(&stderr, "wrong password for alice");

    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = PipedClient::start_with(&[&addr, "--name", "alice"], |c| {
        c.env("CHAT_PASSWORD", "correct-horse");
    });
    alice.type_line("logged in from a pipe");
    bob.expect_line(|l| strip_ansi(l).ends_with("alice: logged in from a pipe")).await;
    alice.close_stdin();
    let (status, stderr) = alice.exit().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Topic and moderation notices are server lines like any other: printed
/// as they come; a ban at the name prompt is a refused name, with its
/// reason; being put off the server ends the session with the reason shown.
#[tokio::test]
async fn the_topic_and_moderation_are_printed_like_other_server_lines() {
    let mut server = Server::start(&[]);
    let mut owen = Client::named(server.addr, "owen").await;
    owen.send("/register correct-horse").await;
    owen.expect_line(|l| l.contains("yours now")).await;
    owen.join("#den").await;
    owen.send("/topic crabs only").await;
    owen.expect_line(|l| l.contains("owen set the topic")).await;

    let mut bob = PipedClient::start(&[&server.addr.to_string(), "--name", "bob", "--no-color"]);
    bob.expect_stdout(|l| l.contains("Welcome, bob!")).await;
    bob.type_line("/join #den");
    bob.expect_stdout(|l| l.contains("Topic of #den: crabs only (set by owen)")).await;
    owen.send("/topic crabs and shrimps").await;
    bob.expect_stdout(|l| l.contains("owen set the topic of #den: crabs and shrimps")).await;
    owen.send("/mute bob 30m").await;
    bob.expect_stdout(|l| l.contains("bob is muted in #den by owen until 20")).await;
    bob.type_line("can anyone hear me");
    bob.expect_stdout(|l| l.contains("You are muted in #den until 20")).await;
    owen.send("/ban bob 1h spam").await;
    let banned = bob.expect_stdout(|l| l.contains("bob is banned from #den by owen")).await;
    assert!(banned.ends_with(": spam"), "{banned}");

    server.console_command("/kick bob enough");
    bob.expect_stdout(|l| l.contains("You were removed by the operator: enough")).await;
    let (status, stderr) = bob.exit().await;
    assert_eq!(status.code(), Some(4), "{stderr}");

    server.console_command("/ban bob 1h trolling");
    server.console.wait_for("the ban", |l| l.contains("bob is banned from the server"));
    let (code, stderr) = run_to_exit(&[&server.addr.to_string(), "--name", "bob"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_one_error_line(&stderr, "that name is banned from this server until 20");
    assert!(stderr.contains("(trolling)"), "{stderr}");
}

//! Test support: start the real binaries and talk to them over real sockets.
//!
//! Top-level tests live in the root package, and `CARGO_BIN_EXE_*` only
//! names binaries of the same package, so [`bin_path`] builds the workspace
//! binaries once per test process with the cargo that runs the tests (a
//! no-op when they are fresh) and returns their path in the same target
//! directory. Every wait has a deadline ([`WAIT`]); a test that would hang
//! fails with what it saw instead.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod irc;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The longest any single expected event may take before the test fails.
/// Generous on purpose: the suite must pass beside other CPU-heavy work on
/// two cores, where a starved process can stall for seconds. The deadline
/// is there to turn a hang into a failure, not to measure speed.
pub const WAIT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`chat-server`, `chat-client`), built if needed.
pub fn bin_path(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    PROFILE_DIR.get_or_init(build_binaries).join(name)
}

fn build_binaries() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir =
        exe.parent().and_then(Path::parent).expect("test binary in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("profile dir inside the target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--bins", "-p", "chat-server", "-p", "chat-client"]);
    command.arg("--target-dir").arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building the binaries failed: {status}");
    profile_dir.to_path_buf()
}

/// Lines a child process wrote to one of its streams, shared with a reader thread.
#[derive(Clone, Default)]
pub struct Captured {
    stream: Arc<(Mutex<Stream>, Condvar)>,
}

#[derive(Default)]
struct Stream {
    lines: Vec<String>,
    /// The writer closed its end (or wrote something that is not UTF-8).
    ended: bool,
}

impl Captured {
    fn follow(stream: impl std::io::Read + Send + 'static) -> Self {
        let captured = Captured::default();
        let sink = captured.clone();
        std::thread::spawn(move || {
            let (state, changed) = &*sink.stream;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                state.lock().expect("capture lock").lines.push(line);
                changed.notify_all();
            }
            state.lock().expect("capture lock").ended = true;
            changed.notify_all();
        });
        captured
    }

    /// A stream that was never piped: empty, and already ended.
    fn absent() -> Self {
        let captured = Captured::default();
        captured.stream.0.lock().expect("capture lock").ended = true;
        captured
    }

    /// Waits until a line matches, returning it; panics with all lines after [`WAIT`].
    pub fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let (state, changed) = &*self.stream;
        let mut guard = state.lock().expect("capture lock");
        loop {
            if let Some(line) = guard.lines.iter().find(|l| matches(l)) {
                return line.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; got:\n{}",
                guard.lines.join("\n")
            );
            guard = changed.wait_timeout(guard, deadline - now).expect("capture lock").0;
        }
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.stream.0.lock().expect("capture lock").lines.clone()
    }

    /// Every line, once the writer has closed the stream; panics after [`WAIT`].
    pub fn until_ended(&self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let (state, changed) = &*self.stream;
        let mut guard = state.lock().expect("capture lock");
        while !guard.ended {
            let now = Instant::now();
            assert!(now < deadline, "stream still open; got:\n{}", guard.lines.join("\n"));
            guard = changed.wait_timeout(guard, deadline - now).expect("capture lock").0;
        }
        guard.lines.clone()
    }
}

/// A child process whose stdout and stderr are captured line by line, with
/// its stdin kept for typing; killed when dropped, so a failed test leaves
/// nothing running.
pub struct Process {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// How a process ended and everything it printed.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Process {
    /// Spawns `command` with stdin, stdout and stderr piped.
    pub fn spawn(command: &mut Command) -> Process {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let what = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("`{what}` must start (scripts/test installs the tools tests use): {e}")
        });
        Self::adopt(&what, child)
    }

    /// Takes over a child spawned by the caller (with some stream redirected
    /// elsewhere, say); the streams it did not pipe read as empty.
    pub fn adopt(what: &str, mut child: Child) -> Process {
        let stdout = child.stdout.take().map_or_else(Captured::absent, Captured::follow);
        let stderr = child.stderr.take().map_or_else(Captured::absent, Captured::follow);
        let stdin = child.stdin.take();
        Process { what: what.to_owned(), child, stdin, stdout, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types a line on the process's stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin piped and still open");
        writeln!(stdin, "{line}").expect("the process reads stdin");
        stdin.flush().expect("stdin flushed");
    }

    /// Ends the process's stdin, as the end of a piped file would.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit and for its output to end. After
    /// `within` it is killed, and the test fails with what it printed.
    pub fn finish(&mut self, within: Duration) -> Finished {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` still running after {within:?}, killed; stdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.stdout.snapshot().join("\n"),
                    self.stderr.snapshot().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = |lines: Vec<String>| lines.iter().map(|l| format!("{l}\n")).collect();
        Finished {
            status,
            stdout: text(self.stdout.until_ended()),
            stderr: text(self.stderr.until_ended()),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to the end with its stdin closed, as `Command::output`
/// does, but killed and failing with what it printed after [`WAIT`].
pub fn run(command: &mut Command) -> Finished {
    let mut process = Process::spawn(command);
    process.close_stdin();
    process.finish(WAIT)
}

/// A `chat-server` process on a free loopback port, killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
    pub log: Captured,
    pub console: Captured,
}

impl Server {
    /// Starts `chat-server --listen 127.0.0.1:0 ARGS...` and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, |_| {})
    }

    /// Like [`Server::start`], letting the caller adjust the command (limits, env).
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Server {
        Self::start_env(args, &[], adjust)
    }

    /// Like [`Server::start_with`], with environment variables; `CHAT_LISTEN`
    /// there replaces the default `--listen 127.0.0.1:0`, and `CHAT_DB` (or
    /// a `--db` argument) the default `--db :memory:`.
    pub fn start_env(
        args: &[&str],
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Server {
        let mut command = Command::new(bin_path("chat-server"));
        // The daemon reads every flag from a CHAT_* variable too: only the
        // ones this test gives may reach it, not whatever the shell has.
        for (var, _) in std::env::vars_os() {
            if var.to_str().is_some_and(|v| v.starts_with("CHAT_")) {
                command.env_remove(var);
            }
        }
        // A web or IRC listener comes besides the plain one tests talk to, not instead.
        let besides = |a: &str| a.starts_with("--listen-web") || a.starts_with("--listen-irc");
        let listens = args.iter().any(|a| a.starts_with("--listen") && !besides(a))
            || env.iter().any(|(var, _)| *var == "CHAT_LISTEN");
        if !listens {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        // Each test owns its state: no shared chat.db unless a test names its own.
        let names_db = args.iter().any(|a| a.starts_with("--db"))
            || env.iter().any(|(var, _)| *var == "CHAT_DB");
        if !names_db {
            command.args(["--db", ":memory:"]);
        }
        command.args(args).env("RUST_LOG", "info").env_remove("NO_COLOR");
        command.envs(env.iter().copied());
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("chat-server starts");
        let log = Captured::follow(child.stderr.take().expect("stderr piped"));
        let console = Captured::follow(child.stdout.take().expect("stdout piped"));
        let stdin = child.stdin.take();
        let listening = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.wait_for("the plain chat listener's log line", |l| is_chat_listener(l, false))
        }));
        let listening = listening.unwrap_or_else(|timed_out| {
            // Not yet a `Server` that would be killed when dropped: kill it here.
            match child.try_wait() {
                Ok(Some(status)) => eprintln!("chat-server ended before listening: {status}"),
                _ => eprintln!("chat-server still running without listening, killed"),
            }
            let _ = child.kill();
            let _ = child.wait();
            std::panic::resume_unwind(timed_out)
        });
        let addr = listening_addr(&listening);
        Server { addr, child, stdin, log, console }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of the web page (`--listen-web`), once it listens.
    pub fn web_addr(&self) -> SocketAddr {
        self.web_listener("http")
    }

    /// The address of the web page over TLS (`--listen-web-tls`), once it listens.
    pub fn web_tls_addr(&self) -> SocketAddr {
        self.web_listener("https")
    }

    fn web_listener(&self, scheme: &str) -> SocketAddr {
        let field = format!("scheme=\"{scheme}\"");
        let line = self.log.wait_for("the web listener's log line", |l| {
            l.contains("web listening addr=") && l.contains(&field)
        });
        listening_addr(&line)
    }

    /// The address of the IRC listener (`--listen-irc`), once it listens.
    pub fn irc_addr(&self) -> SocketAddr {
        self.irc_listener(false)
    }

    /// The address of the IRC listener over TLS (`--listen-irc-tls`), once it listens.
    pub fn irc_tls_addr(&self) -> SocketAddr {
        self.irc_listener(true)
    }

    fn irc_listener(&self, tls: bool) -> SocketAddr {
        let field = format!("tls={tls}");
        let line = self.log.wait_for("the IRC listener's log line", |l| {
            l.contains("irc listening addr=") && l.contains(&field)
        });
        listening_addr(&line)
    }

    /// Types a line on the operator console.
    pub fn console_command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("console stdin still open");
        writeln!(stdin, "{line}").expect("console accepts input");
        stdin.flush().expect("console input flushed");
    }

    /// Ends the console's input, as /dev/null or a closed terminal would.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal delivered");
    }

    /// Waits for the process to exit, returning its status and how long it took.
    pub fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return (status, start.elapsed());
            }
            assert!(start.elapsed() < within, "chat-server still running after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How the process ended, or `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("child status")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("child status").is_none()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log.snapshot();
            let tail = &log[log.len().saturating_sub(30)..];
            eprintln!("the daemon's last log lines:\n{}", tail.join("\n"));
        }
    }
}

/// Whether `line` is the log line of a chat listener (plain, or TLS when
/// `tls`), text or JSON. Only the chat listeners log the message `listening`
/// with the fields `addr` and `tls`; the metrics endpoint logs `metrics
/// listening` and the IRC door `irc listening`, which may come first and
/// must not be taken for the chat address.
pub fn is_chat_listener(line: &str, tls: bool) -> bool {
    let json =
        line.contains("\"message\":\"listening\"") && line.contains(&format!("\"tls\":{tls}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let text = words.iter().enumerate().any(|(at, word)| {
        *word == "listening"
            && at.checked_sub(1).is_none_or(|before| !["metrics", "irc"].contains(&words[before]))
            && words.get(at + 1).is_some_and(|next| next.starts_with("addr="))
            && words[at + 1..].contains(&format!("tls={tls}").as_str())
    });
    json || text
}

/// The address in a `listening` log line, text (`addr=...`) or JSON (`"addr":"..."`).
pub fn listening_addr(line: &str) -> SocketAddr {
    line.split("addr=")
        .nth(1)
        .or_else(|| line.split("\"addr\":\"").nth(1))
        .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Sends `total` numbered lines (`0 xxx...`, 200 bytes of padding each)
/// from `client` in batches of about 60 KB, on a task of its own: enough,
/// at 30,000, to fill a reader's socket buffers many times over. The
/// client comes back once everything is written.
pub fn numbered_flood(mut client: Client, total: usize) -> tokio::task::JoinHandle<Client> {
    let filler = "x".repeat(200);
    tokio::spawn(async move {
        let mut batch = String::new();
        for i in 0..total {
            batch.push_str(&format!("{i} {filler}\n"));
            if batch.len() > 60_000 {
                client.send_raw(batch.as_bytes()).await;
                batch.clear();
            }
        }
        client.send_raw(batch.as_bytes()).await;
        client
    })
}

/// Keeps a room busy (`from` sends 50 lines of 1 KB a round, `to` reads
/// each round to its end) until `to` is told `name` was disconnected, at
/// most 2,000 rounds; whether it was.
pub async fn busy_until_disconnected(from: &mut Client, to: &mut Client, name: &str) -> bool {
    let filler = "y".repeat(1000);
    let told = format!("{name} was disconnected");
    for round in 0..2_000 {
        let batch: String = (0..50).map(|i| format!("{round}-{i} {filler}\n")).collect();
        from.send_raw(batch.as_bytes()).await;
        let lines = to.lines_until(|l| l.contains(&format!("{round}-49 "))).await;
        if lines.iter().any(|l| l.contains(&told)) {
            return true;
        }
    }
    false
}

/// A raw TCP user, as `nc` would be: writes lines, reads `\r\n` lines.
pub struct Client {
    reader: AsyncBufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Every line received so far, without its line ending.
    pub seen: Vec<String>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("server accepts");
        let (reader, writer) = stream.into_split();
        Client { reader: AsyncBufReader::new(reader), writer, seen: Vec::new() }
    }

    /// Connects from a chosen loopback source address (e.g. 127.0.0.2).
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).expect("bind the source address");
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("server accepts");
        let (reader, writer) = stream.into_split();
        Client { reader: AsyncBufReader::new(reader), writer, seen: Vec::new() }
    }

    /// Connects, answers the name prompt, and waits for the welcome.
    pub async fn named(addr: SocketAddr, name: &str) -> Client {
        let mut client = Client::connect(addr).await;
        client.name_as(name).await;
        client
    }

    pub async fn name_as(&mut self, name: &str) {
        self.expect_line(|l| l.contains("name")).await;
        self.send(name).await;
        self.expect_line(|l| l.contains("Welcome,")).await;
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.writer.write_all(bytes))
            .await
            .expect("write in time")
            .expect("server takes the bytes");
    }

    /// The next line exactly as sent, line ending included; `None` at end of stream.
    pub async fn read_raw_line(&mut self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut buf))
            .await
            .unwrap_or_else(|_| panic!("no line within {WAIT:?}; seen so far: {:#?}", self.seen));
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_owned();
                self.seen.push(text);
                Some(buf)
            }
        }
    }

    /// The next line without its ending; `None` at end of stream.
    pub async fn next_line(&mut self) -> Option<String> {
        self.read_raw_line().await?;
        self.seen.last().cloned()
    }

    /// Reads until a line matches and returns it; panics on timeout or close.
    pub async fn expect_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        self.lines_until(matches).await.pop().expect("at least the matching line")
    }

    /// Every line up to and including the first that matches.
    pub async fn lines_until(&mut self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next_line().await {
                Some(line) => {
                    let done = matches(&line);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                None => {
                    panic!("connection closed before the expected line; seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// Sends `/join ROOM` and reads until the server says `ROOM` (in any
    /// case or look-alike spelling) is now the current room; returns the
    /// lines up to that one, without escapes. Only that room's notice
    /// counts: an earlier "now in" (after a `/part`, say) is read past.
    pub async fn join(&mut self, room: &str) -> Vec<String> {
        self.send(&format!("/join {room}")).await;
        let wanted = chat_proto::RoomKey::of(room);
        let now_in_wanted = |line: &str| {
            matches!(chat_proto::classify(&strip_ansi(line)),
                chat_proto::Heard::CurrentRoom { room } if chat_proto::RoomKey::of(room) == wanted)
        };
        let lines = self.lines_until(now_in_wanted).await;
        lines.iter().map(|line| strip_ansi(line)).collect()
    }

    /// Reads until the server closes the connection (within [`WAIT`]); returns the lines.
    pub async fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line);
        }
        lines
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("socket has an address")
    }
}

/// `text` without ANSI escape sequences, for asserting on content.
pub fn strip_ansi(text: &str) -> String {
    chat_proto::terminal::strip_escapes(text)
}

/// A round trip through the server: `from` says a unique line and `to` waits
/// for it. Everything `to` saw before that line is returned, which proves
/// what did *not* arrive earlier without sleeping.
pub async fn barrier(from: &mut Client, to: &mut Client) -> Vec<String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let token = format!("barrier-{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    from.send(&token).await;
    let mut lines = to.lines_until(|l| l.contains(&token)).await;
    lines.pop();
    lines
}

// Registered names and stored history, as a user reaches them (tests/accounts.rs,
// tests/history.rs, tests/systemd.rs).

/// Registers the current name of `client`.
pub async fn register(client: &mut Client, password: &str) -> String {
    client.send(&format!("/register {password}")).await;
    strip_ansi(&client.expect_line(|l| l.contains("yours now") || l.contains("Sorry")).await)
}

/// A client that registers `name` (password `correct-horse`) and stays logged in.
pub async fn registered(addr: std::net::SocketAddr, name: &str) -> Client {
    let mut client = Client::named(addr, name).await;
    let answer = register(&mut client, "correct-horse").await;
    assert!(answer.contains("yours now"), "{answer}");
    client
}

/// Registers `name` with `password` from a connection that then leaves, so
/// the name is free for its owner to log in with.
pub async fn registered_and_gone(addr: std::net::SocketAddr, name: &str, password: &str) {
    let mut owner = Client::named(addr, name).await;
    let answer = register(&mut owner, password).await;
    assert!(answer.contains("yours now"), "{answer}");
    owner.send("/quit").await;
    owner.until_closed().await;
}

/// Types `name` at the name prompt and waits for the password prompt.
pub async fn ask_for(client: &mut Client, name: &str) -> String {
    client.send(name).await;
    strip_ansi(&client.expect_line(|l| l.contains("password")).await)
}

/// Connects and logs in as a registered name.
pub async fn log_in(
    addr: std::net::SocketAddr,
    name: &str,
    password: &str,
) -> (Client, Vec<String>) {
    let mut client = Client::connect(addr).await;
    client.expect_line(|l| l.contains("name")).await;
    ask_for(&mut client, name).await;
    client.send(password).await;
    let lines = client.lines_until(|l| l.contains("Welcome,")).await;
    (client, lines.iter().map(|l| strip_ansi(l)).collect())
}

/// Sends `/history ...` or `/search ...` and returns the heading and the
/// timed lines after it (stripped of colour).
pub async fn ask(client: &mut Client, command: &str) -> (String, Vec<String>) {
    client.send(command).await;
    let heading = strip_ansi(
        &client
            .expect_line(|l| {
                let l = strip_ansi(l);
                let answer =
                    l.contains("UTC") || l.contains("No messages in") || l.contains("Sorry,");
                l.starts_with("*** ") && answer
            })
            .await,
    );
    let count = heading
        .split_whitespace()
        .find_map(|word| word.parse::<usize>().ok())
        .filter(|_| !heading.contains("No messages"))
        .unwrap_or(0);
    let mut lines = Vec::new();
    for _ in 0..count {
        let line = client.next_line().await.expect("a line of history");
        lines.push(strip_ansi(&line));
    }
    (heading, lines)
}

/// A `redis-server` on a free loopback port, for backplane tests; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut redis = RedisServer { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`redis-server` must be installed for this test (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while !redis_answers(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    /// How many clients (daemons) subscribe to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> u64 {
        use std::io::Read;
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("redis accepts");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let command =
            format!("*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n", channel.len());
        stream.write_all(command.as_bytes()).expect("redis takes the command");
        // Four lines: `*2`, `$len`, the channel, `:N`.
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while reply.windows(2).filter(|w| w == b"\r\n").count() < 4 {
            stream.read_exact(&mut byte).expect("a PUBSUB NUMSUB reply");
            reply.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&reply);
        let count = text.trim_end().rsplit(':').next().unwrap_or_default().trim();
        count.parse().unwrap_or_else(|_| panic!("no count in {text:?}"))
    }
}

fn redis_answers(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

// Process figures and raw access for the abuse tests (tests/abuse.rs).

/// Open file descriptors of a process, counted in `/proc/PID/fd`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd is readable").count()
}

/// A `kB` figure of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Each thread of a process: its name (`comm`) and its nice value.
pub fn thread_nices(pid: u32) -> Vec<(String, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    let mut threads = Vec::new();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // A thread that ended since the listing has no stat any more.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // Fields after the parenthesised name; nice is field 19 of proc_pid_stat(5).
        let fields: Vec<&str> = stat[stat.rfind(')').expect("a name") + 2..].split(' ').collect();
        let nice: i64 = fields[19 - 3].parse().expect("a nice value");
        threads.push((comm.trim().to_owned(), nice));
    }
    threads
}

/// Resets the peak resident size (`VmHWM`) to the current one; false where
/// the kernel does not allow it.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Polls `check` every 20 ms until it yields a value; panics with `what` and
/// the last observation after `within`.
pub async fn poll_until<T, O: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, O>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl Client {
    /// A client over a socket the test connected itself (small buffers, say).
    pub fn from_stream(stream: TcpStream) -> Client {
        let (reader, writer) = stream.into_split();
        Client { reader: AsyncBufReader::new(reader), writer, seen: Vec::new() }
    }

    /// The buffered reader and the writer, for tests that read and write
    /// from different tasks.
    pub fn into_parts(self) -> (AsyncBufReader<OwnedReadHalf>, OwnedWriteHalf) {
        (self.reader, self.writer)
    }

    /// The socket whole again (unread buffered input is dropped).
    pub fn into_stream(self) -> TcpStream {
        self.reader.into_inner().reunite(self.writer).expect("halves of one socket")
    }

    /// Closes the sending direction only (a FIN); the client can still read.
    pub async fn shutdown_write(&mut self) {
        tokio::time::timeout(WAIT, self.writer.shutdown())
            .await
            .expect("shutdown in time")
            .expect("shutdown(Write) succeeds");
    }
}

/// One HTTP GET against the metrics endpoint; returns the whole response.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("metrics endpoint accepts");
    stream.set_read_timeout(Some(WAIT)).expect("timeout set");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}

/// The value of one metric on a Prometheus page.
pub fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

impl Server {
    /// The address of `--metrics 127.0.0.1:0`, from the log.
    pub fn metrics_addr(&self) -> SocketAddr {
        listening_addr(&self.log.wait_for("metrics listener", |l| l.contains("metrics listening")))
    }
}

/// A directory of its own for one test (a database file, say), removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("chat-test-{label}-{}-{unique}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temporary directory created");
        TempDir { path }
    }

    /// A path inside the directory, as a string for a command line.
    pub fn file(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

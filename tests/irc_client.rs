//! A real IRC client against the daemon's IRC door: Debian's irssi runs in a
//! tmux session of its own (its own tmux socket, its own home directory),
//! connects to `--listen-irc` on loopback, and talks with a netcat user (and,
//! in the mixed room, a program on the web door) in one room. The tests read
//! what irssi drew with `tmux capture-pane`, polled until the expected text
//! is on the screen or [`WAIT`] passes, and what the others received as
//! lines and JSON objects.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_proto::THEMES;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Client, Server, TempDir, WAIT, strip_ansi};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const COLS: u16 = 160;
const ROWS: u16 = 50;

/// irssi in a detached tmux session on a tmux server of its own, killed
/// (tmux server and irssi with it) when dropped.
struct Irssi {
    /// The tmux socket name (`tmux -L`), unique to this test process and client.
    socket: String,
    _home: TempDir,
}

impl Irssi {
    /// Starts irssi as `nick`, connecting to the IRC door at `irc`.
    fn connect(irc: SocketAddr, nick: &str) -> Irssi {
        let home = TempDir::new(&format!("irssi-{nick}"));
        let config_dir = home.path.join(".irssi");
        std::fs::create_dir_all(&config_dir).expect("irssi's config directory");
        // No first-run settings to announce, no autolog, and nothing that
        // depends on the machine (the user's name and host).
        let config = format!(
            "settings = {{\n  core = {{ real_name = \"{nick}\"; user_name = \"{nick}\"; nick = \"{nick}\"; }};\n  \
             \"fe-common/core\" = {{ autolog = \"no\"; }};\n}};\n"
        );
        std::fs::write(config_dir.join("config"), config).expect("irssi's config written");
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let unique = STARTED.fetch_add(1, Ordering::Relaxed);
        let socket = format!("chat-irc-{}-{unique}-{nick}", std::process::id());
        let irssi = format!(
            "irssi --home={} -c {} -p {} -n {nick}",
            config_dir.display(),
            irc.ip(),
            irc.port()
        );
        let started = tmux(&socket)
            .args(["new-session", "-d", "-s", "irc", "-x", &COLS.to_string()])
            .args(["-y", &ROWS.to_string(), &irssi])
            .env("HOME", &home.path)
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .output()
            .expect("tmux runs");
        assert!(started.status.success(), "tmux new-session: {}", stderr(&started));
        Irssi { socket, _home: home }
    }

    /// Types `line` into irssi's input line and presses Enter.
    fn type_line(&self, line: &str) {
        let typed = tmux(&self.socket).args(["send-keys", "-t", "irc", "-l", line]).output();
        let typed = typed.expect("tmux runs");
        assert!(typed.status.success(), "tmux send-keys: {}", stderr(&typed));
        let entered = tmux(&self.socket).args(["send-keys", "-t", "irc", "Enter"]).output();
        let entered = entered.expect("tmux runs");
        assert!(entered.status.success(), "tmux send-keys Enter: {}", stderr(&entered));
    }

    /// `/join`s `channel` and waits until irssi shows its own arrival there.
    async fn join(&self, channel: &str) {
        self.type_line(&format!("/join {channel}"));
        let joined = format!("has joined {channel}");
        self.wait_for("its own join", |l| l.contains(&joined)).await;
    }

    /// What irssi shows now, wrapped lines joined.
    fn screen(&self) -> String {
        let captured = tmux(&self.socket)
            .args(["capture-pane", "-p", "-J", "-t", "irc"])
            .output()
            .expect("tmux runs");
        assert!(captured.status.success(), "tmux capture-pane: {}", stderr(&captured));
        String::from_utf8_lossy(&captured.stdout).into_owned()
    }

    /// Polls the screen until a line on it satisfies `matches`; returns that
    /// line, or panics with the screen after [`WAIT`].
    async fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if let Some(line) = screen.lines().find(|l| matches(l)) {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "irssi never showed {what} within {WAIT:?}; its screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Irssi {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("irssi's screen at the end:\n{}", self.screen());
        }
        let _ = tmux(&self.socket).arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// tmux on this test's own server socket, ignoring any user configuration.
fn tmux(socket: &str) -> Command {
    let mut command = Command::new("tmux");
    command.args(["-L", socket, "-f", "/dev/null"]);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A daemon with an IRC listener on a free loopback port, and that port.
fn server_with_irc(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--listen-irc", "127.0.0.1:0", "--rate", "0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let irc = server.irc_addr();
    (server, irc)
}

/// Whether `line` (escapes stripped) is `name` saying `text` with a theme's
/// emoji in front, as a netcat user sees anyone's line.
fn themed_line(line: &str, name: &str, text: &str) -> bool {
    let line = strip_ansi(line);
    THEMES.iter().any(|theme| line.ends_with(&format!("{} {name}: {text}", theme.emoji)))
}

#[tokio::test]
async fn irssi_and_a_netcat_user_talk_in_a_room_both_ways() {
    let (server, irc) = server_with_irc(&[]);
    let mut nick = Client::named(server.addr, "nick").await;
    nick.join("#irc").await;

    let irssi = Irssi::connect(irc, "alice");
    irssi.wait_for("the welcome (001)", |l| l.contains("Welcome")).await;
    irssi.join("#irc").await;
    // The netcat user is in the channel's names, and is told alice came.
    irssi.wait_for("nick among the names", |l| l.contains("nick") && l.contains('[')).await;
    nick.expect_line(|l| strip_ansi(l).contains("alice joined #irc")).await;

    // irssi -> netcat: themed like anyone's line.
    irssi.type_line("hello from irssi");
    nick.expect_line(|l| themed_line(l, "alice", "hello from irssi")).await;
    // netcat -> irssi: a PRIVMSG to the channel from nick.
    nick.send("hello from netcat").await;
    irssi.wait_for("nick's line", |l| l.contains("nick> hello from netcat")).await;

    // /me both ways: a CTCP ACTION on IRC, `* name ...` for the netcat user.
    irssi.type_line("/me waves from irssi");
    nick.expect_line(|l| strip_ansi(l).contains("alice waves from irssi")).await;
    nick.send("/me waves from netcat").await;
    irssi.wait_for("nick's action", |l| l.contains("* nick waves from netcat")).await;

    // Parting: the netcat user is told alice left the room.
    irssi.type_line("/part #irc");
    nick.expect_line(|l| strip_ansi(l).contains("alice left #irc")).await;
}

#[tokio::test]
async fn a_rename_in_irssi_reaches_the_room_and_a_rename_by_netcat_reaches_irssi() {
    let (server, irc) = server_with_irc(&[]);
    let mut nick = Client::named(server.addr, "nick").await;
    nick.join("#names").await;
    let irssi = Irssi::connect(irc, "alice");
    irssi.wait_for("the welcome (001)", |l| l.contains("Welcome")).await;
    irssi.join("#names").await;
    nick.expect_line(|l| strip_ansi(l).contains("alice joined #names")).await;

    irssi.type_line("/nick alicia");
    irssi.wait_for("its own rename", |l| l.contains("You're now known as alicia")).await;
    nick.expect_line(|l| strip_ansi(l).contains("alice is now known as alicia")).await;
    irssi.type_line("after the rename");
    nick.expect_line(|l| themed_line(l, "alicia", "after the rename")).await;

    nick.send("/nick nicolas").await;
    irssi.wait_for("nick's rename", |l| l.contains("nick is now known as nicolas")).await;
    nick.send("renamed too").await;
    irssi.wait_for("nicolas's line", |l| l.contains("nicolas> renamed too")).await;
}

/// A program on the web door: one JSON object per WebSocket message.
struct WebUser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    seen: Vec<Value>,
}

impl WebUser {
    async fn named(addr: SocketAddr, name: &str) -> WebUser {
        let connecting = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"));
        let (ws, _) = tokio::time::timeout(WAIT, connecting)
            .await
            .expect("upgraded in time")
            .expect("the WebSocket is accepted");
        let mut user = WebUser { ws, seen: Vec::new() };
        user.expect("the name prompt", |o| o["type"] == "name_prompt").await;
        user.line(name).await;
        user.expect("the welcome", |o| o["type"] == "welcome").await;
        user
    }

    /// Sends what a user typed, as the page does.
    async fn line(&mut self, typed: &str) {
        let text = json!({ "line": typed }).to_string();
        let sent = self.ws.send(Message::text(text));
        tokio::time::timeout(WAIT, sent).await.expect("sent in time").expect("the daemon takes it");
    }

    /// Reads until an object matches, returning it.
    async fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; seen: {:#?}", self.seen));
            match message {
                Some(Ok(Message::Text(text))) => {
                    let object: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text:?}"));
                    self.seen.push(object.clone());
                    if matches(&object) {
                        return object;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    panic!("closed while waiting for {what}; seen: {:#?}", self.seen)
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A message event from `name` saying exactly `text`.
fn said(object: &Value, name: &str, text: &str) -> bool {
    object["type"] == "message" && object["from"]["name"] == name && object["text"] == text
}

/// A rename event: `old` is now called `new`.
fn renamed(object: &Value, old: &str, new: &str) -> bool {
    object["type"] == "rename" && object["old"] == old && object["who"]["name"] == new
}

#[tokio::test]
async fn irssi_netcat_and_web_users_share_a_room() {
    let (server, irc) = server_with_irc(&["--listen-web", "127.0.0.1:0"]);
    let mut web = WebUser::named(server.web_addr(), "wendy").await;
    web.line("/join #mixed").await;
    web.expect("#mixed is current", |o| o["type"] == "current" && o["room"] == "#mixed").await;
    let mut nick = Client::named(server.addr, "nick").await;
    nick.join("#mixed").await;
    web.expect("nick joins", |o| o["type"] == "join" && o["who"]["name"] == "nick").await;

    let irssi = Irssi::connect(irc, "alice");
    irssi.wait_for("the welcome (001)", |l| l.contains("Welcome")).await;
    irssi.join("#mixed").await;
    irssi.wait_for("the names", |l| l.contains("nick") && l.contains("wendy")).await;
    // Everyone else is told alice came to #mixed.
    web.expect("alice joins #mixed", |o| {
        o["type"] == "join" && o["who"]["name"] == "alice" && o["room"] == "#mixed"
    })
    .await;
    nick.expect_line(|l| strip_ansi(l).contains("alice joined #mixed")).await;

    // Each one's line reaches the two others.
    irssi.type_line("irc speaking");
    nick.expect_line(|l| themed_line(l, "alice", "irc speaking")).await;
    web.expect("alice's line", |o| said(o, "alice", "irc speaking")).await;
    nick.send("netcat speaking").await;
    irssi.wait_for("nick's line", |l| l.contains("nick> netcat speaking")).await;
    web.expect("nick's line", |o| said(o, "nick", "netcat speaking")).await;
    web.line("web speaking").await;
    irssi.wait_for("wendy's line", |l| l.contains("wendy> web speaking")).await;
    nick.expect_line(|l| themed_line(l, "wendy", "web speaking")).await;

    // Renames, from each door, seen by the others.
    irssi.type_line("/nick alicia");
    nick.expect_line(|l| strip_ansi(l).contains("alice is now known as alicia")).await;
    web.expect("alice's rename", |o| renamed(o, "alice", "alicia")).await;
    web.line("/nick wendela").await;
    irssi.wait_for("wendy's rename", |l| l.contains("wendy is now known as wendela")).await;
    nick.expect_line(|l| strip_ansi(l).contains("wendy is now known as wendela")).await;
    nick.send("/nick nicolas").await;
    irssi.wait_for("nick's rename", |l| l.contains("nick is now known as nicolas")).await;
    web.expect("nick's rename", |o| renamed(o, "nick", "nicolas")).await;
}

//! End-to-end tests of `chat-client` on a terminal: the real binary runs on a
//! pseudo-terminal (`portable-pty`), its output is fed to a terminal
//! emulator (`vt100`), and the tests assert on the screen a person would see.
//! Every wait polls the screen until a condition holds or [`WAIT`] passes.

mod support;

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_proto::{Line, Name, RoomName, THEMES, command, vocabulary};
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use support::{Client, Server, WAIT, bin_path, strip_ansi};

const ROWS: u16 = 30;
const COLS: u16 = 100;

/// Counts the bells the program rang.
#[derive(Default)]
struct Bells(usize);

impl vt100::Callbacks for Bells {
    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.0 += 1;
    }
}

type Emulator = Arc<Mutex<vt100::Parser<Bells>>>;

/// `chat-client` running on a pseudo-terminal, with the screen it drew.
struct Terminal {
    emulator: Emulator,
    keyboard: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
}

impl Terminal {
    fn start(args: &[&str]) -> Terminal {
        let size = PtySize { rows: ROWS, cols: COLS, pixel_width: 0, pixel_height: 0 };
        let pty = native_pty_system().openpty(size).expect("a pseudo-terminal");
        let mut command = CommandBuilder::new(bin_path("chat-client"));
        command.args(args);
        command.env("TERM", "xterm-256color");
        command.env_remove("NO_COLOR");
        command.cwd(std::env::current_dir().expect("a working directory"));
        let child = pty.slave.spawn_command(command).expect("chat-client starts");
        drop(pty.slave); // so reads end with the child
        let rows = NonZeroU16::new(ROWS).expect("rows");
        let cols = NonZeroU16::new(COLS).expect("cols");
        let emulator = Arc::new(Mutex::new(vt100::Parser::new_with_callbacks(
            rows,
            cols,
            0,
            Bells::default(),
        )));
        let output = pty.master.try_clone_reader().expect("pty output");
        feed_emulator(output, emulator.clone());
        let keyboard = pty.master.take_writer().expect("pty input");
        Terminal { emulator, keyboard, child, master: pty.master }
    }

    fn type_keys(&mut self, keys: &str) {
        self.keyboard.write_all(keys.as_bytes()).expect("keys typed");
        self.keyboard.flush().expect("keys flushed");
    }

    /// Polls the screen until `condition` holds; panics with the screen after [`WAIT`].
    async fn wait_for(&self, what: &str, condition: impl Fn(&vt100::Screen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if condition(self.emulator.lock().expect("emulator").screen()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                self.screen_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for_text(&self, text: &str) {
        self.wait_for(&format!("{text:?} on screen"), |s| s.contents().contains(text)).await;
    }

    /// Waits until the cursor's row reads `text` (trailing blanks ignored).
    async fn wait_for_input_row(&self, text: &str) {
        self.wait_for(&format!("input row {text:?}"), |s| cursor_row(s) == text).await;
    }

    /// Waits until the screen has settled with every one of `lines` on a row
    /// above the input row, the input row reading `input` (ASCII, the
    /// prompt's trailing space included when nothing is typed) and the
    /// cursor right after it.
    async fn wait_for_input_below(&self, lines: &[&str], input: &str) {
        let what = format!("{lines:?} above the input row {input:?}, cursor at its end");
        self.wait_for(&what, |screen| {
            let (row, col) = screen.cursor_position();
            let above = lines.iter().all(|line| row_of(screen, line).is_some_and(|r| r < row));
            above && row_text(screen, row) == input.trim_end() && usize::from(col) == input.len()
        })
        .await;
    }

    fn screen_text(&self) -> String {
        self.emulator.lock().expect("emulator").screen().contents()
    }

    fn with_screen<T>(&self, read: impl FnOnce(&vt100::Screen) -> T) -> T {
        read(self.emulator.lock().expect("emulator").screen())
    }

    fn bells(&self) -> usize {
        self.emulator.lock().expect("emulator").callbacks().0
    }

    /// Whether the terminal is in canonical (line-buffered, echoing) mode,
    /// as it is when no program has switched it to raw mode.
    fn is_cooked(&self) -> bool {
        let fd = self.master.as_raw_fd().expect("pty master fd");
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is the open pty master owned by self.master.
        let rc = unsafe { libc::tcgetattr(fd, &mut termios) };
        assert_eq!(rc, 0, "tcgetattr on the pty");
        termios.c_lflag & (libc::ICANON | libc::ECHO) == (libc::ICANON | libc::ECHO)
    }

    /// Whether the terminal shows what is typed.
    fn echoes(&self) -> bool {
        let fd = self.master.as_raw_fd().expect("pty master fd");
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is the open pty master owned by self.master.
        let rc = unsafe { libc::tcgetattr(fd, &mut termios) };
        assert_eq!(rc, 0, "tcgetattr on the pty");
        termios.c_lflag & libc::ECHO != 0
    }

    /// Waits for the client to exit and returns its exit code.
    async fn exit_code(&mut self) -> u32 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return status.exit_code();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat-client still running; screen:\n{}",
                self.screen_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn feed_emulator(mut output: Box<dyn Read + Send>, emulator: Emulator) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = output.read(&mut buffer) {
            if read == 0 {
                break;
            }
            emulator.lock().expect("emulator").process(&buffer[..read]);
        }
    });
}

fn cursor_row(screen: &vt100::Screen) -> String {
    let (row, _) = screen.cursor_position();
    row_text(screen, row)
}

fn row_text(screen: &vt100::Screen, row: u16) -> String {
    screen.rows(0, COLS).nth(usize::from(row)).unwrap_or_default().trim_end().to_owned()
}

/// The first row whose text contains `text`.
fn row_of(screen: &vt100::Screen, text: &str) -> Option<u16> {
    let row = screen.rows(0, COLS).position(|line| line.contains(text))?;
    u16::try_from(row).ok()
}

/// The flaw this client exists to fix: a message arriving while you type is
/// printed above, and your half-typed line is intact and still yours.
#[tokio::test]
async fn a_half_typed_line_survives_an_incoming_message() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_text("Welcome, alice!").await;
    alice.wait_for_input_row("alice #lobby>").await;
    assert!(!alice.is_cooked(), "the line editor runs the terminal raw");

    alice.type_keys("half-typed");
    alice.wait_for_input_row("alice #lobby> half-typed").await;
    bob.send("hello from bob").await;
    // The message above, the typed line intact below it, the cursor after it.
    alice.wait_for_input_below(&["bob: hello from bob"], "alice #lobby> half-typed").await;

    alice.with_screen(|screen| {
        let message_row = row_of(screen, "bob: hello from bob").expect("message on screen");
        assert!(!row_text(screen, message_row).contains("half-typed"));
        // The emoji in column 0 wears the speaker's theme colour, like the rest of the line.
        let colour = screen.cell(message_row, 0).expect("cell").fgcolor();
        assert_ne!(colour, vt100::Color::Default, "the theme colour reaches the screen");
    });

    alice.type_keys("\r");
    let received = bob.expect_line(|l| l.contains("alice:")).await;
    assert!(strip_ansi(&received).ends_with("alice: half-typed"), "{received:?}");

    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 0);
    bob.expect_line(|l| l.contains("alice left")).await;
    assert!(alice.is_cooked(), "the terminal is restored");
}

/// The prompt shows the current room as the server names it, and a line
/// half-typed there survives traffic from that room and, tagged, from
/// another one. The first half-typed line is the `/join` itself: typing any
/// other command would send the line being held.
#[tokio::test]
async fn the_prompt_follows_the_current_room_and_a_half_typed_line_survives_its_traffic() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/join #rust").await;
    bob.expect_line(|l| l.contains("You are now in #rust.")).await;
    let mut carol = Client::named(server.addr, "carol").await; // stays in #lobby
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_input_row("alice #lobby>").await;

    alice.type_keys("/join #rust");
    carol.send("before the move").await;
    alice.wait_for_input_below(&["carol: before the move"], "alice #lobby> /join #rust").await;
    alice.type_keys("\r");
    alice.wait_for_input_below(&["You are now in #rust."], "alice #rust> ").await;

    alice.type_keys("half-typed in rust");
    alice.wait_for_input_row("alice #rust> half-typed in rust").await;
    bob.send("hello from rust").await;
    carol.send("alice, lunch?").await;
    alice
        .wait_for_input_below(
            &["bob: hello from rust", "[#lobby] ", "carol: alice, lunch?"],
            "alice #rust> half-typed in rust",
        )
        .await;
    alice.with_screen(|screen| {
        let here = row_of(screen, "bob: hello from rust").expect("bob's line");
        assert!(!row_text(screen, here).starts_with('['), "the current room's lines are untagged");
        let lobby = row_of(screen, "carol: alice, lunch?").expect("carol's line");
        assert!(row_text(screen, lobby).starts_with("[#lobby] "), "another room's line is tagged");
        assert!(screen.cell(lobby, 0).expect("cell").inverse(), "a tagged mention is highlighted");
        assert!(!screen.cell(here, 0).expect("cell").inverse());
    });

    alice.type_keys("\r");
    let received = bob.expect_line(|l| l.contains("alice:")).await;
    assert_eq!(
        strip_ansi(&received).split_once(' ').map(|(_, said)| said),
        Some("alice: half-typed in rust"),
        "exactly the typed line, untagged for bob, whose current room is #rust: {received:?}"
    );

    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 0);
    assert!(alice.is_cooked());
}

/// The server moves us while we hold a half-typed line (a scripted server,
/// since the real one does so only in answer to a line we send): the prompt
/// changes around the line, which stays as typed, cursor after it, and is
/// what Enter sends. A rename keeps the room in the prompt.
#[tokio::test]
async fn a_room_switch_and_a_rename_keep_the_half_typed_line() {
    let server = ScriptedServer::start();
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_input_row("alice #lobby>").await;
    alice.type_keys("half-typed");
    alice.wait_for_input_row("alice #lobby> half-typed").await;

    let rust = RoomName::parse("#rust").expect("valid");
    server.say(&Line::notice(&vocabulary::now_in(&rust)));
    alice.wait_for_input_below(&["You are now in #rust."], "alice #rust> half-typed").await;
    let alicia = Name::parse("alicia").expect("valid");
    server.say(&Line::notice(&vocabulary::renamed(&alicia)));
    alice.wait_for_input_below(&["You are now known as alicia."], "alicia #rust> half-typed").await;

    alice.type_keys("\r");
    alice.type_keys("\x04"); // Ctrl-D: /quit, answered with the goodbye
    assert_eq!(alice.exit_code().await, 0);
    assert!(alice.is_cooked());
    assert_eq!(server.heard(), ["half-typed", "/quit"]);
}

/// A server that greets, welcomes whoever answers, then says what the test
/// tells it to and records what it hears until `/quit`, which it answers
/// with the goodbye before closing.
struct ScriptedServer {
    addr: std::net::SocketAddr,
    say: std::sync::mpsc::Sender<Vec<u8>>,
    heard: std::thread::JoinHandle<Vec<String>>,
}

impl ScriptedServer {
    fn start() -> ScriptedServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let (say, script) = std::sync::mpsc::channel::<Vec<u8>>();
        let heard = std::thread::spawn(move || {
            let (socket, _) = listener.accept().expect("the client connects");
            socket.set_read_timeout(Some(WAIT)).expect("read timeout");
            let mut writer = socket.try_clone().expect("socket clone");
            let mut reader = std::io::BufReader::new(socket);
            let mut send = |line: &Line| writer.write_all(line.bytes(true)).expect("write");
            send(&Line::notice(vocabulary::NAME_PROMPT));
            let name = read_line(&mut reader);
            let name = Name::parse(&name).expect("a valid name");
            send(&Line::notice(&vocabulary::welcome(&name, &THEMES[0])));
            std::thread::spawn(move || {
                for line in script {
                    if writer.write_all(&line).is_err() {
                        return;
                    }
                }
            });
            let mut heard: Vec<String> = Vec::new();
            while heard.last().is_none_or(|line| !command::is_quit(line)) {
                heard.push(read_line(&mut reader));
            }
            let mut socket = reader.into_inner();
            socket.write_all(Line::notice(vocabulary::GOODBYE).bytes(true)).expect("goodbye");
            // The script's writer holds a copy of the socket: end it for both.
            socket.shutdown(std::net::Shutdown::Write).expect("end of our output");
            heard
        });
        ScriptedServer { addr, say, heard }
    }

    fn say(&self, line: &Line) {
        self.say.send(line.bytes(true).to_vec()).expect("the script runs");
    }

    /// Every line heard after the name, up to and including `/quit`.
    fn heard(self) -> Vec<String> {
        drop(self.say);
        self.heard.join().expect("the scripted server")
    }
}

fn read_line(reader: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    let read = reader.read_line(&mut line).expect("a line within the wait");
    assert_ne!(read, 0, "the client closed early");
    line.trim_end_matches(['\r', '\n']).to_owned()
}

#[tokio::test]
async fn a_mention_is_highlighted_and_rings_the_bell() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice", "--bell"]);
    alice.wait_for_input_row("alice #lobby>").await;

    bob.send("hey ALICE, look").await;
    alice.wait_for_text("bob: hey ALICE, look").await;
    bob.send("nothing for malice here").await;
    alice.wait_for_text("nothing for malice here").await;

    assert_eq!(alice.bells(), 1, "one bell, for the mention only");
    alice.with_screen(|screen| {
        let mention = row_of(screen, "hey ALICE").expect("mention row");
        let other = row_of(screen, "malice").expect("other row");
        assert!(screen.cell(mention, 0).expect("cell").inverse(), "mention highlighted");
        assert!(!screen.cell(other, 0).expect("cell").inverse(), "others not highlighted");
    });

    alice.type_keys("\x03"); // Ctrl-C
    assert_eq!(alice.exit_code().await, 0);
    bob.expect_line(|l| l.contains("alice left")).await;
    assert!(alice.is_cooked());
}

/// As the Python ancestor did: with nothing on the command line, the address
/// is asked first, then the name (the server's own prompt); Up recalls history.
#[tokio::test]
async fn missing_address_and_name_are_asked_for() {
    let server = Server::start(&[]);
    let mut carol = Terminal::start(&[]);
    carol.wait_for_text("server address").await;
    carol.type_keys(&format!("{}\r", server.addr));
    carol.wait_for_text("What is your name?").await;
    carol.wait_for_input_row("name:").await;
    carol.type_keys("carol\r");
    carol.wait_for_text("Welcome, carol!").await;
    carol.wait_for_input_row("carol #lobby>").await;

    carol.type_keys("first words\r");
    carol.wait_for_text("You are alone here").await;
    carol.type_keys("\x1b[A"); // Up
    carol.wait_for_input_row("carol #lobby> first words").await;

    carol.type_keys("\x15/quit\r"); // Ctrl-U clears the recalled line
    assert_eq!(carol.exit_code().await, 0);
    assert!(carol.is_cooked());
}

#[tokio::test]
async fn a_registered_names_password_is_asked_without_echo() {
    let server = Server::start(&[]);
    let mut owner = Client::named(server.addr, "alice").await;
    owner.send("/register correct-horse").await;
    owner.expect_line(|l| l.contains("yours now")).await;
    owner.send("/quit").await;
    owner.until_closed().await;

    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_text("password for alice:").await;
    assert!(!alice.echoes(), "echo is off while the password is typed");
    alice.type_keys("not-it-at-all\r");
    alice.wait_for_text("wrong password for alice").await;
    alice.wait_for_input_row("name:").await;
    alice.type_keys("alice\r");
    let asked_twice =
        |screen: &vt100::Screen| screen.contents().matches("password for alice:").count() == 2;
    alice.wait_for("the password asked again", asked_twice).await;
    alice.type_keys("correct-horse\r");
    alice.wait_for_text("Welcome, alice!").await;
    alice.wait_for_input_row("alice #lobby>").await;
    alice.with_screen(|screen| {
        let shown = screen.contents();
        assert!(!shown.contains("correct-horse") && !shown.contains("not-it-at-all"), "{shown}");
    });
    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 0);
    assert!(alice.is_cooked());
}

/// A lost connection is reported with the word `lost` and tried again,
/// later each time, while the half-typed line stays; Ctrl-D while waiting
/// leaves with exit 4 and the terminal restored.
#[tokio::test]
async fn a_lost_connection_is_tried_again_until_ctrl_d_exits_4() {
    let mut server = Server::start(&[]);
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_input_row("alice #lobby>").await;
    alice.type_keys("unsent");
    alice.wait_for_input_row("alice #lobby> unsent").await;
    server.kill();

    alice.wait_for_text(&format!("connection to {} lost", server.addr)).await;
    let tried_twice = |screen: &vt100::Screen| {
        let shown = screen.contents();
        shown.contains("cannot connect to") && shown.matches("trying again in").count() >= 2
    };
    alice.wait_for("a failed attempt and a second wait", tried_twice).await;
    alice.wait_for_input_row("alice #lobby (offline)> unsent").await;
    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 4);
    alice.wait_for_text(&format!("chat-client: connection to {} lost", server.addr)).await;
    assert!(alice.is_cooked());
}

/// For a registered user on the bundled client, a daemon restart is a
/// pause: the client comes back to the new daemon on the same port and
/// database, logs in with the password kept in memory, is back in its
/// room with its half-typed line, and reads what was said meanwhile.
#[tokio::test]
async fn a_registered_user_sits_through_a_daemon_restart_with_nothing_lost() {
    let dir = support::TempDir::new("pty-restart");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db]);
    let listen = server.addr.to_string();
    let mut owner = Client::named(server.addr, "alice").await;
    owner.send("/register correct-horse").await;
    owner.expect_line(|l| l.contains("yours now")).await;
    owner.send("/quit").await;
    owner.until_closed().await;
    let mut alice = Terminal::start(&[&listen, "--name", "alice"]);
    alice.wait_for_text("password for alice:").await;
    alice.type_keys("correct-horse\r");
    alice.wait_for_input_row("alice #lobby>").await;
    alice.type_keys("/join #rust\r");
    alice.wait_for_input_row("alice #rust>").await;
    alice.type_keys("half-typed");
    alice.wait_for_input_row("alice #rust> half-typed").await;

    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);
    alice.wait_for_text(&format!("connection to {listen} lost")).await;
    alice.wait_for_input_row("alice #rust (offline)> half-typed").await;
    let server = Server::start(&["--listen", &listen, "--db", &db]);
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/join #rust").await;
    bob.expect_line(|l| l.contains("You are now in #rust")).await;
    bob.send("said while alice was away").await;

    alice.wait_for_text(&format!("Connected to {listen} again.")).await;
    alice.wait_for_text("bob: said while alice was away").await;
    let caught_up = |screen: &vt100::Screen| {
        let shown = screen.contents();
        shown.contains("new in #rust") || shown.contains("Nothing new in #rust")
    };
    alice.wait_for("the server's account of what alice missed in #rust", caught_up).await;
    alice.wait_for_input_row("alice #rust> half-typed").await;
    alice.with_screen(|screen| {
        let shown = screen.contents();
        assert_eq!(shown.matches("password for alice:").count(), 1, "asked once: {shown}");
        assert!(!shown.contains("correct-horse"), "{shown}");
    });
    alice.type_keys("\r");
    bob.expect_line(|l| strip_ansi(l).ends_with("alice: half-typed")).await;
    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 0);
    assert!(alice.is_cooked());
}

/// A guest comes back too: after a daemon restart the client takes its
/// name again, rejoins its room, and sends what was entered while offline.
#[tokio::test]
async fn a_guest_comes_back_to_its_room_and_what_it_typed_offline_is_sent() {
    let mut server = Server::start(&[]);
    let listen = server.addr.to_string();
    let mut alice = Terminal::start(&[&listen, "--name", "alice"]);
    alice.wait_for_input_row("alice #lobby>").await;
    alice.type_keys("/join #rust\r");
    alice.wait_for_input_row("alice #rust>").await;

    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);
    alice.wait_for_text(&format!("connection to {listen} lost")).await;
    alice.type_keys("typed while away\r");
    alice.wait_for_text("Not connected: what you enter is sent once back in.").await;
    let server = Server::start(&["--listen", &listen]);
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/join #rust").await;
    bob.expect_line(|l| strip_ansi(l).ends_with("alice: typed while away")).await;
    alice.wait_for_input_row("alice #rust>").await;
    alice.type_keys("\x04"); // Ctrl-D
    assert_eq!(alice.exit_code().await, 0);
}

/// `kill` or a closed terminal window must not leave the terminal raw.
#[tokio::test]
async fn sigterm_leaves_cleanly_like_ctrl_d() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Terminal::start(&[&server.addr.to_string(), "--name", "alice"]);
    alice.wait_for_input_row("alice #lobby>").await;
    let pid = alice.child.process_id().expect("client pid");
    // SAFETY: kill(2) on the child we spawned, which has not been reaped yet.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);

    assert_eq!(alice.exit_code().await, 0);
    bob.expect_line(|l| l.contains("alice left")).await;
    assert!(alice.is_cooked());
}

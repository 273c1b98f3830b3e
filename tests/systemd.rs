//! The shipped systemd unit's system-call filter, against the real daemon.
//!
//! `systemd-analyze verify` checks the unit's syntax, not whether the daemon
//! can live inside it, and a call the filter denies kills the process with
//! SIGSYS. So here the filter is computed from `dist/chat-server.service` as
//! systemd computes it (its own `systemd-analyze` names what each `@group`
//! holds), compiled to seccomp BPF with `seccompiler`, and installed on
//! `chat-server` as `nobody` (what `DynamicUser=` gives it) just before it
//! starts. The daemon then does everything it does: chat, TLS, registering a
//! name (the hashing threads lower their priority), logging in, `/history`
//! and `/search`, metrics, alone on its file and with a Redis backplane; and
//! it must still be alive to exit 0 on SIGTERM.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use seccompiler::{BpfProgram, TargetArch};
use support::{
    Client, Process, RedisServer, Server, TempDir, WAIT, ask, bin_path, http_get, is_chat_listener,
    listening_addr, log_in, register, strip_ansi,
};

/// The unit as shipped; the test is rebuilt whenever it changes.
const UNIT: &str = include_str!("../dist/chat-server.service");

const PASSWORD: &str = "somepassword1";

/// `nobody`, user and group: an unprivileged user, as `DynamicUser=` makes one.
const NOBODY: libc::uid_t = 65534;

/// What a unit's `SystemCallFilter=` lines leave a process: only the calls
/// named (an allow list) or every call but them (a deny list).
#[derive(Debug)]
struct UnitFilter {
    allow_list: bool,
    calls: BTreeSet<String>,
    /// `SystemCallErrorNumber=`: what a filtered call returns instead of
    /// the process being killed; `None` kills.
    error_number: Option<String>,
}

impl UnitFilter {
    /// Merges the `[Service]` section's `SystemCallFilter=` lines in order,
    /// as systemd.exec(5) says and systemd's `config_parse_syscall_filter`
    /// does: the first line decides between an allow list (seeded with
    /// `@default`, which systemd always allows) and a deny list (`~`); each
    /// later line adds its calls to that list when it is of the same kind
    /// and removes them when it is of the other; an empty assignment starts
    /// again. `None` when the unit has no filter.
    fn of_unit(unit: &str, groups: &mut Groups) -> Option<UnitFilter> {
        let mut filter: Option<UnitFilter> = None;
        let mut error_number = None;
        let mut in_service = false;
        for line in unit.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with(['#', ';']) {
                continue;
            }
            if let Some(value) = line.strip_prefix("SystemCallErrorNumber=") {
                let value = value.trim();
                error_number = (!value.is_empty() && value != "kill").then(|| value.to_owned());
            }
            let Some(value) = line.strip_prefix("SystemCallFilter=").map(str::trim) else {
                continue;
            };
            if value.is_empty() {
                filter = None;
                continue;
            }
            let (deny, names) = match value.strip_prefix('~') {
                Some(names) => (true, names),
                None => (false, value),
            };
            let filter = filter.get_or_insert_with(|| UnitFilter {
                allow_list: !deny,
                calls: if deny { BTreeSet::new() } else { groups.expand("@default") },
                error_number: None,
            });
            let add = deny != filter.allow_list;
            for name in names.split_whitespace() {
                // A denied call may carry its own action (`name:EPERM`); the
                // test kills on every denied call anyway (see `compile`).
                let name = name.split(':').next().unwrap_or(name);
                for call in groups.expand(name) {
                    if add {
                        filter.calls.insert(call);
                    } else {
                        filter.calls.remove(&call);
                    }
                }
            }
        }
        filter.map(|filter| UnitFilter { error_number, ..filter })
    }

    fn allows(&self, call: &str) -> bool {
        self.calls.contains(call) == self.allow_list
    }
}

/// The system-call groups (`@basic-io`, ...) as this machine's systemd
/// defines them, asked of `systemd-analyze syscall-filter` once each.
#[derive(Default)]
struct Groups {
    known: HashMap<String, Vec<String>>,
}

impl Groups {
    /// The calls `name` stands for: itself, or every call of a group,
    /// nested groups included.
    fn expand(&mut self, name: &str) -> BTreeSet<String> {
        if !name.starts_with('@') {
            return BTreeSet::from([name.to_owned()]);
        }
        let members = self.members(name);
        members.iter().flat_map(|member| self.expand(member)).collect()
    }

    fn members(&mut self, group: &str) -> Vec<String> {
        if let Some(members) = self.known.get(group) {
            return members.clone();
        }
        let listed = support::run(Command::new("systemd-analyze").args([
            "--no-pager",
            "syscall-filter",
            group,
        ]));
        assert!(
            listed.status.success(),
            "systemd-analyze syscall-filter {group}: {}",
            listed.stderr
        );
        // `@group`, then its description and members indented, one a line.
        let members: Vec<String> = listed
            .stdout
            .lines()
            .filter(|line| line.starts_with(char::is_whitespace))
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect();
        assert!(!members.is_empty(), "{group} lists no calls:\n{}", listed.stdout);
        self.known.insert(group.to_owned(), members.clone());
        members
    }
}

/// The unit's filter as a seccomp program for this machine's architecture,
/// and the calls left out because `seccompiler` has no number for them here
/// (other architectures' calls, such as `setuid32` on x86_64).
///
/// A denied call kills the process (SIGSYS) even when the unit sets
/// `SystemCallErrorNumber=`: stricter than systemd, on purpose. Under an
/// errno the daemon would get an error it may log and survive, and the test
/// would pass while some feature quietly failed; the alternative, logging
/// the call and letting it through, leaves the verdict in the kernel's audit
/// log where a test cannot read it. A kill is seen by everything that follows.
fn compile(filter: &UnitFilter) -> (BpfProgram, Vec<String>) {
    let arch = TargetArch::try_from(std::env::consts::ARCH).expect("seccompiler knows this arch");
    let (known, unknown): (Vec<&String>, Vec<&String>) =
        filter.calls.iter().partition(|call| has_number(call, arch));
    let (mismatch, matched) =
        if filter.allow_list { ("kill_process", "allow") } else { ("allow", "kill_process") };
    let rules: Vec<_> = known.iter().map(|call| serde_json::json!({ "syscall": call })).collect();
    let json = serde_json::json!({
        "daemon": { "mismatch_action": mismatch, "filter_action": matched, "filter": rules },
    });
    let mut programs = seccompiler::compile_from_json(json.to_string().as_bytes(), arch)
        .expect("the unit's filter compiles");
    let program = programs.remove("daemon").expect("the program compiled");
    (program, unknown.into_iter().cloned().collect())
}

/// Whether `seccompiler` maps `call` to a number on `arch`; its JSON front
/// end is the public way to that table.
fn has_number(call: &str, arch: TargetArch) -> bool {
    let probe = serde_json::json!({
        "probe": { "mismatch_action": "allow", "filter_action": "log", "filter": [{ "syscall": call }] },
    });
    match seccompiler::compile_from_json(probe.to_string().as_bytes(), arch) {
        Ok(_) => true,
        Err(seccompiler::Error::JsonFrontend(_)) => false,
        Err(other) => panic!("probing {call}: {other}"),
    }
}

/// The shipped unit's filter, compiled, with what was left out logged.
fn shipped_filter() -> BpfProgram {
    let filter = UnitFilter::of_unit(UNIT, &mut Groups::default()).expect("the unit has a filter");
    let (program, unknown) = compile(&filter);
    eprintln!(
        "unit filter: {} list of {} calls, error number {:?}; no number on {} for: {}",
        if filter.allow_list { "allow" } else { "deny" },
        filter.calls.len(),
        filter.error_number,
        std::env::consts::ARCH,
        unknown.join(" ")
    );
    program
}

/// Whether the tests run as root (and must drop to `nobody` themselves).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A directory the confined daemon may write its database in.
fn state_directory(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    if is_root() {
        std::os::unix::fs::chown(&dir.path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
    }
    dir
}

/// A daemon inside the unit's filter. A test that fails while it runs says
/// how the daemon ended, so a SIGSYS shows as such and not only as a
/// connection closed.
struct Confined(Server);

impl std::ops::Deref for Confined {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // A process killed by a signal may take a moment to be reaped (a core dump).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let status = loop {
            match self.0.exit_status() {
                Some(status) => break Some(status),
                None if std::time::Instant::now() >= deadline => break None,
                None => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        match status {
            Some(status) => eprintln!(
                "the confined daemon ended: {status:?}, signal {:?} (31 is SIGSYS: a call the \
                 unit's filter denies)",
                status.signal()
            ),
            None => eprintln!("the confined daemon was still running"),
        }
    }
}

/// Starts `chat-server ARGS` as systemd starts the unit: unprivileged, with
/// no new privileges, inside `program`.
fn start_confined(args: &[&str], program: &BpfProgram) -> Confined {
    let program = program.clone();
    let server = Server::start_with(args, move |command| {
        // SAFETY: the closure runs in the forked child before exec; it only
        // makes system calls on memory prepared before the fork (no
        // allocation, no locks), as a pre_exec closure must.
        unsafe { command.pre_exec(move || confine(&program)) };
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("/proc/PID/status");
    let field = |name: &str| {
        let line = status.lines().find(|line| line.starts_with(name));
        line.and_then(|line| line.split_whitespace().nth(1)).unwrap_or_default().to_owned()
    };
    assert_eq!(field("Seccomp:"), "2", "a seccomp filter is installed:\n{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    if is_root() {
        assert_eq!(field("Uid:"), NOBODY.to_string(), "runs as nobody:\n{status}");
    }
    Confined(server)
}

/// In the child: drop to `nobody` (when root), forbid new privileges, then
/// install the filter. In this order because the filter denies
/// `setuid`-family calls (`@privileged`), as systemd installs it last.
fn confine(program: &BpfProgram) -> std::io::Result<()> {
    fn check(rc: libc::c_int) -> std::io::Result<()> {
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
    if is_root() {
        // SAFETY: plain system calls on our own credentials; no pointers but
        // setgroups' null with a count of 0.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(NOBODY))?;
            check(libc::setuid(NOBODY))?;
        }
    }
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    seccompiler::apply_filter(program).map_err(|error| match error {
        seccompiler::Error::Prctl(error) | seccompiler::Error::Seccomp(error) => error,
        _ => std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// SIGTERM, then the daemon must exit 0: not killed by the filter (SIGSYS,
/// signal 31) at any point before or during shutdown.
fn stops_cleanly(mut daemon: Confined) {
    let server = &mut daemon.0;
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait_exit(WAIT);
    let log = server.log.snapshot().join("\n");
    assert!(!log.contains("cannot lower the priority"), "setpriority was refused:\n{log}");
    assert!(
        status.code() == Some(0),
        "the daemon must exit 0 on SIGTERM, not {status:?} (signal {:?}; 31 is SIGSYS, a call \
         the unit's filter denies); its log:\n{}",
        status.signal(),
        log
    );
}

/// Alice and bob chat, one line each way.
async fn chat(alice: &mut Client, bob: &mut Client, word: &str) {
    alice.send(&format!("hello bob, {word} here")).await;
    bob.expect_line(|l| strip_ansi(l).ends_with(&format!("alice: hello bob, {word} here"))).await;
    bob.send("hello alice").await;
    alice.expect_line(|l| strip_ansi(l).ends_with("bob: hello alice")).await;
}

/// Alice registers her name, leaves, and logs in again with the password at
/// the name prompt (on `again`, which may be another daemon); the history
/// and a search then find what she said.
async fn register_and_come_back(
    mut alice: Client,
    again: std::net::SocketAddr,
    word: &str,
) -> Client {
    let reply = register(&mut alice, PASSWORD).await;
    assert!(reply.contains("yours now"), "{reply}");
    alice.send("/quit").await;
    alice.until_closed().await;
    let (mut alice, welcome) = log_in(again, "alice", PASSWORD).await;
    assert!(welcome.iter().any(|l| l.contains("Welcome, alice")), "{welcome:#?}");
    let (heading, lines) = ask(&mut alice, "/history").await;
    let said = format!("alice: hello bob, {word} here");
    assert!(lines.iter().any(|l| l.ends_with(&said)), "{heading}: {lines:#?}");
    let (heading, found) = ask(&mut alice, &format!("/search {word}")).await;
    assert_eq!(found.len(), 1, "{heading}: {found:#?}");
    assert!(found[0].ends_with(&said), "{found:#?}");
    alice
}

/// A self-signed certificate and key for 127.0.0.1 in `dir`, readable by the
/// confined daemon; returns their paths.
fn certificate_in(dir: &TempDir) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate generated");
    let (cert_path, key_path) = (dir.file("cert.pem"), dir.file("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert written");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key written");
    (cert_path, key_path)
}

#[test]
fn filter_lines_merge_in_order_as_systemd_merges_them() {
    let mut groups = Groups::default();
    let unit = "[Service]\n\
        SystemCallFilter=@system-service\n\
        SystemCallFilter=~@privileged @resources\n\
        SystemCallFilter=setpriority\n\
        SystemCallErrorNumber=EPERM\n";
    let filter = UnitFilter::of_unit(unit, &mut groups).expect("a filter");
    assert!(filter.allow_list);
    assert!(filter.allows("read") && filter.allows("execve") && filter.allows("setpriority"));
    assert!(!filter.allows("setrlimit") && !filter.allows("setuid") && !filter.allows("chown"));
    assert!(!filter.allows("mount"), "outside @system-service");
    assert_eq!(filter.error_number.as_deref(), Some("EPERM"));

    let unit = "[Service]\nSystemCallFilter=~@mount\nSystemCallFilter=umount2\n";
    let filter = UnitFilter::of_unit(unit, &mut groups).expect("a filter");
    assert!(!filter.allow_list);
    assert!(!filter.allows("mount") && filter.allows("umount2") && filter.allows("setrlimit"));
    assert_eq!(filter.error_number, None, "no SystemCallErrorNumber= kills");

    let unit = "[Service]\nSystemCallFilter=~@mount\nSystemCallFilter=\nSystemCallFilter=read\n";
    let filter = UnitFilter::of_unit(unit, &mut groups).expect("a filter");
    assert!(filter.allow_list, "an empty assignment starts again");
    assert!(filter.allows("read") && filter.allows("exit_group") && !filter.allows("mount"));
}

#[tokio::test]
async fn the_daemon_does_everything_it_does_under_the_units_filter() {
    let program = shipped_filter();
    let dir = state_directory("systemd-local");
    let (cert, key) = certificate_in(&dir);
    let db = dir.file("chat.db");
    let listen = ["--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"];
    let tls = ["--tls-cert", &cert, "--tls-key", &key];
    let control = dir.file("control.sock");
    let args: Vec<&str> = listen
        .into_iter()
        .chain(tls)
        .chain(["--db", &db, "--metrics", "127.0.0.1:0", "--control", &control])
        .collect();
    let server = start_confined(&args, &program);

    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    chat(&mut alice, &mut bob, "sandboxed").await;
    let _alice = register_and_come_back(alice, server.addr, "sandboxed").await;

    // rustls on the daemon's side of a handshake, with our own client.
    let tls = listening_addr(&server.log.wait_for("TLS listener", |l| is_chat_listener(l, true)));
    let mut carol = Process::spawn(Command::new(bin_path("chat-client")).args([
        &tls.to_string(),
        "--name",
        "carol",
        "--no-color",
        "--ca",
        &cert,
    ]));
    bob.expect_line(|l| l.contains("carol joined")).await;
    carol.type_line("hello over tls");
    bob.expect_line(|l| strip_ansi(l).ends_with("carol: hello over tls")).await;
    carol.close_stdin();
    let output = carol.finish(WAIT);
    assert!(output.status.success(), "{:?} {}", output.status, output.stderr);

    let page = http_get(server.metrics_addr(), "/metrics");
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");

    // The control socket, as the unit sets one up: owner-only, and answering.
    server.log.wait_for("the control socket", |l| l.contains("control socket listening"));
    let mode = std::fs::metadata(&control).expect("the control socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");
    let answer = ask_control(&control, "/kick bob sandboxed");
    assert!(answer.contains("bob was kicked from the server by server"), "{answer}");
    stops_cleanly(server);
}

/// One line to a control socket, and its answer (ended by an empty line).
fn ask_control(path: &str, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("control socket");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    writeln!(stream, "{line}").expect("write");
    let mut answer = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("an answer");
        if line.is_empty() {
            break;
        }
        answer.push_str(&line);
        answer.push('\n');
    }
    answer
}

#[test]
fn the_unit_opens_the_control_socket_in_its_runtime_directory() {
    let service: Vec<&str> = UNIT.lines().map(str::trim).collect();
    assert!(service.contains(&"RuntimeDirectory=chat-server"), "{UNIT}");
    assert!(service.contains(&"Environment=CHAT_CONTROL=%t/chat-server/control.sock"), "{UNIT}");
    // The daemon reads that variable as --control.
    let help = support::run(Command::new(bin_path("chat-server")).arg("--help"));
    assert!(help.stdout.contains("--control <PATH>") && help.stdout.contains("CHAT_CONTROL"));
}

#[tokio::test]
async fn daemons_on_a_backplane_do_everything_they_do_under_the_units_filter() {
    let program = shipped_filter();
    let redis = RedisServer::start();
    let url = redis.url();
    let one = start_confined(&["--backplane", &url], &program);
    let other = start_confined(&["--backplane", &url], &program);

    let mut alice = Client::named(one.addr, "alice").await;
    let mut bob = Client::named(other.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    chat(&mut alice, &mut bob, "redis").await;
    // Registered on one daemon, logged in on the other: the account, the
    // throttle's script and the history all go through Redis.
    let mut alice = register_and_come_back(alice, other.addr, "redis").await;
    chat(&mut alice, &mut bob, "again").await;

    stops_cleanly(one);
    stops_cleanly(other);
}

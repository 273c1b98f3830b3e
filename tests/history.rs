//! History that survives a restart, as PRODUCT.md describes it, against the
//! real `chat-server` with real database files: SIGTERM and SIGKILL
//! restarts, `/history` and `/search`, the file as an operator reads it, a
//! corrupt, a locked and an unreachable database at start, a full disk in
//! the middle of a chat, retention, the store giving way to the room, no
//! history at all (`--db none`), and two daemons sharing one history
//! through a real `redis-server`. Each test owns its database file.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{
    Client, RedisServer, Server, TempDir, WAIT, ask, barrier, bin_path, http_get, metric,
    poll_until, strip_ansi, thread_nices,
};

/// `speaker` says each line; `listener` has received them all on return.
async fn say_all(speaker: &mut Client, listener: &mut Client, lines: &[&str]) {
    for line in lines {
        speaker.send(line).await;
    }
    if let Some(last) = lines.last() {
        listener.expect_line(|l| strip_ansi(l).ends_with(last)).await;
    }
}

/// True for `[HH:MM] rest`.
fn is_timed(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 8
        && bytes[0] == b'['
        && bytes[1..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b':'
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && &bytes[6..8] == b"] "
}

fn stop(server: &mut Server, signal: libc::c_int) {
    server.signal(signal);
    server.wait_exit(WAIT);
}

#[tokio::test]
async fn history_survives_a_sigterm_restart_and_the_file_reads_with_sqlite() {
    let dir = TempDir::new("sigterm");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db]);
    let log = server.log.wait_for("the startup line naming the file", |l| l.contains(&db));
    assert!(log.contains("history"), "{log}");
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    say_all(&mut bob, &mut alice, &["lobby one", "lobby two"]).await;
    alice.join("#rust").await;
    bob.join("#rust").await;
    say_all(&mut bob, &mut alice, &["rust one"]).await;
    bob.send("/me waves").await;
    alice.expect_line(|l| l.contains("* bob waves")).await;
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait_exit(WAIT);
    assert!(status.success(), "{status}");

    let server = Server::start(&["--db", &db]);
    let mut carol = Client::connect(server.addr).await;
    carol.expect_line(|l| l.contains("name")).await;
    carol.send("carol").await;
    let replay = carol.lines_until(|l| strip_ansi(l).ends_with("lobby two")).await;
    let replay: Vec<String> = replay.iter().map(|l| strip_ansi(l)).collect();
    assert!(replay.iter().any(|l| l.ends_with("bob: lobby one")), "{replay:#?}");
    assert!(!replay.iter().any(|l| l.contains("rust one")), "another room's line: {replay:#?}");
    let joined = carol.join("#rust").await;
    assert!(joined.iter().any(|l| l.ends_with("bob: rust one")), "{joined:#?}");
    let (_, lines) = ask(&mut carol, "/history").await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.iter().all(|l| is_timed(l)), "{lines:#?}");
    assert!(lines[0].ends_with("bob: rust one") && lines[1].ends_with("* bob waves"), "{lines:#?}");

    // The operator's view: the file opens with SQLite, the `history` view reads plainly.
    let conn = rusqlite::Connection::open(&db).expect("sqlite opens the daemon's file");
    let mut rows = conn
        .prepare("SELECT room, time_utc, kind, name, text FROM history ORDER BY id")
        .expect("the history view");
    let rows: Vec<(String, String, String, Option<String>, String)> = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows read");
    let texts: Vec<&str> = rows.iter().map(|r| r.4.as_str()).collect();
    assert_eq!(texts, ["lobby one", "lobby two", "rust one", "waves"], "{rows:#?}");
    assert_eq!((rows[2].0.as_str(), rows[2].3.as_deref()), ("#rust", Some("bob")));
    assert_eq!(rows[3].2, "me");
    assert_eq!(rows[0].1.len(), "2026-11-30 09:12:00".len(), "{rows:#?}");
}

#[tokio::test]
async fn everything_accepted_before_sigterm_is_kept() {
    let dir = TempDir::new("burst");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db, "--rate", "0"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    // An operator's transaction holds the file: the store cannot write for now.
    let operator = rusqlite::Connection::open(&db).expect("database opens");
    operator.execute_batch("BEGIN IMMEDIATE").expect("write lock taken");
    let burst: String = (0..20_000).map(|i| format!("burst {i}\n")).collect();
    bob.send_raw(burst.as_bytes()).await;
    alice.expect_line(|l| strip_ansi(l).ends_with("burst 19999")).await;
    server.signal(libc::SIGTERM);
    alice.until_closed().await;
    bob.until_closed().await;
    // The store cannot finish while the operator holds the file (it keeps
    // trying for 5 s), so a daemon that waits for it is still running.
    server.log.wait_for("the store's last writes", |l| l.contains("before stopping"));
    assert!(server.is_running(), "the daemon waits for its store before it exits");
    operator.execute_batch("ROLLBACK").expect("write lock released");
    let (status, _) = server.wait_exit(WAIT);
    assert!(status.success(), "{status}");
    let texts = stored_texts(&db);
    assert_eq!(texts.len(), 20_000, "everything accepted before SIGTERM is stored");
    assert!(texts.iter().enumerate().all(|(i, t)| *t == format!("burst {i}")), "in order");
}

#[tokio::test]
async fn what_others_saw_a_second_before_sigkill_is_kept() {
    let dir = TempDir::new("sigkill");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db, "--rate", "0"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    let said: Vec<String> = (0..200).map(|i| format!("before the kill {i}")).collect();
    let said: Vec<&str> = said.iter().map(String::as_str).collect();
    say_all(&mut bob, &mut alice, &said).await;
    // The contract's margin: delivered at least one second before the kill.
    std::thread::sleep(Duration::from_millis(1_100));
    stop(&mut server, libc::SIGKILL);

    let server = Server::start(&["--db", &db]);
    let mut carol = Client::named(server.addr, "carol").await;
    let (_, lines) = ask(&mut carol, "/history 500").await;
    let texts: Vec<&str> = lines.iter().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(texts, said, "every delivered line, in order");
}

#[tokio::test]
async fn history_and_search_read_the_current_room() {
    let server = Server::start(&["--rate", "0"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    let said: Vec<String> = (1..=600).map(|i| format!("line {i}")).collect();
    let said_refs: Vec<&str> = said.iter().map(String::as_str).collect();
    say_all(&mut bob, &mut alice, &said_refs).await;
    say_all(&mut bob, &mut alice, &["Deploying the Rust service", "rust is deployed, async"]).await;
    bob.join("#other").await;
    bob.send("rust deployed elsewhere").await;

    let (heading, lines) = ask(&mut alice, "/history").await;
    assert!(heading.contains("last 50 messages in #lobby") && heading.contains("UTC"), "{heading}");
    assert_eq!(lines.len(), 50);
    assert!(lines.last().is_some_and(|l| l.ends_with("bob: rust is deployed, async")));
    assert!(lines[0].ends_with("bob: line 553"), "oldest first: {}", lines[0]);
    assert!(lines.iter().all(|l| is_timed(l)), "{lines:#?}");
    let (_, lines) = ask(&mut alice, "/history 3").await;
    assert_eq!(lines.len(), 3);
    let (_, lines) = ask(&mut alice, "/history 100000").await;
    assert_eq!(lines.len(), 500, "at most 500");

    let (heading, found) = ask(&mut alice, "/search RUST deployed").await;
    assert_eq!(found.len(), 1, "{heading}: {found:#?}");
    assert!(found[0].ends_with("bob: rust is deployed, async") && is_timed(&found[0]));
    let (_, found) = ask(&mut alice, "/search line").await;
    assert_eq!(found.len(), 20, "the 20 most recent");
    assert!(found[0].ends_with("line 581") && found[19].ends_with("line 600"), "{found:#?}");
    let (heading, found) = ask(&mut alice, "/search nowhere").await;
    assert!(found.is_empty() && heading.contains("No messages in #lobby contain nowhere"));

    alice.send("/help").await;
    let help = alice.lines_until(|l| l.contains("//text")).await.join("\n");
    assert!(help.contains("/history [N]") && help.contains("/search WORDS"), "{help}");
}

/// Runs `chat-server --db DB` to its end: it must fail at start, with one
/// line naming the file; returns that line.
fn refused_at_start(db: &str, as_nobody: Option<&TempDir>) -> String {
    let mut command = match as_nobody {
        // Root may write anywhere: drop to `nobody` so permissions apply,
        // with a copy of the binary that `nobody` can surely run.
        Some(dir) => {
            let copy = dir.path.join("chat-server");
            std::fs::copy(bin_path("chat-server"), &copy).expect("binary copied");
            let mut command = Command::new("setpriv");
            command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(copy);
            command
        }
        None => Command::new(bin_path("chat-server")),
    };
    command.args(["--listen", "127.0.0.1:0", "--db", db]);
    let output = support::run(&mut command);
    assert!(!output.status.success(), "started on {db}: {}", output.stderr);
    let lines: Vec<&str> =
        output.stderr.lines().filter(|l| l.starts_with("chat-server:")).collect();
    assert_eq!(lines.len(), 1, "{}", output.stderr);
    assert!(lines[0].contains(db), "names the file: {}", lines[0]);
    assert!(!output.stderr.contains("listening"), "{}", output.stderr);
    lines[0].to_owned()
}

#[test]
fn a_corrupt_database_stops_the_daemon_at_start() {
    let dir = TempDir::new("corrupt");
    let db = dir.file("chat.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).expect("garbage written");
    let line = refused_at_start(&db, None);
    assert!(line.contains("not a SQLite database"), "{line}");
}

#[test]
fn a_database_held_by_another_daemon_is_refused() {
    let dir = TempDir::new("locked");
    let db = dir.file("chat.db");
    let _first = Server::start(&["--db", &db]);
    let line = refused_at_start(&db, None);
    assert!(line.contains("in use by another running chat-server"), "{line}");
}

#[test]
fn an_unwritable_directory_is_refused() {
    let dir = TempDir::new("unwritable");
    let locked = dir.path.join("locked");
    std::fs::create_dir(&locked).expect("directory made");
    let db = locked.join("chat.db").to_string_lossy().into_owned();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let line = if root {
        // Owned by root, mode 755: `nobody` cannot create the file.
        refused_at_start(&db, Some(&dir))
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        refused_at_start(&db, None)
    };
    assert!(line.contains("ermission denied"), "{line}");
}

/// Sets the file-size limit of a running process (soft limit; hard unlimited).
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let soft = bytes.unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: prlimit on a child we own, with a valid rlimit and no old-value pointer.
    let rc = unsafe {
        libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Files may not grow past their size now: a full disk, as far as the
/// daemon on `db` can tell.
fn fill_the_disk(server: &Server, db: &str) {
    let size = |path: String| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    limit_file_size(server.pid(), Some(size(db.to_owned()).max(size(format!("{db}-wal")))));
}

/// A daemon on its own database file with metrics, alice and bob in
/// `#lobby`, and a line of theirs already stored; returns the count stored.
async fn chatting_on_disk(dir: &TempDir) -> (String, Server, Client, Client, u64) {
    let db = dir.file("chat.db");
    let server = Server::start(&["--db", &db, "--rate", "0", "--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    barrier(&mut bob, &mut alice).await;
    let written = poll_until("the barrier line stored", WAIT, || {
        let written = metric(&http_get(metrics, "/metrics"), "chat_store_written_total");
        if written >= 1 { Ok(written) } else { Err(written) }
    })
    .await;
    (db, server, alice, bob, written)
}

#[tokio::test]
async fn a_full_disk_never_disconnects_anyone_and_writing_resumes() {
    let dir = TempDir::new("full");
    let (db, server, mut alice, mut bob, written_before) = chatting_on_disk(&dir).await;
    let metrics = server.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    let batches_before = read("chat_store_batches_total");
    assert!(
        (1..=written_before).contains(&batches_before),
        "{written_before} lines in {batches_before} transactions"
    );
    fill_the_disk(&server, &db);

    let filler = "x".repeat(2000);
    let said: Vec<String> = (0..150).map(|i| format!("while full {i} {filler}")).collect();
    for (i, line) in said.iter().enumerate() {
        bob.send(line).await;
        alice.expect_line(|l| l.contains(&format!("while full {i} "))).await;
    }
    poll_until("a failed write counted", WAIT, || match read("chat_store_write_failures_total") {
        0 => Err(0),
        n => Ok(n),
    })
    .await;
    // Chat went on for both, and nobody was disconnected.
    barrier(&mut alice, &mut bob).await;
    barrier(&mut bob, &mut alice).await;
    let complaints =
        |log: &[String]| log.iter().filter(|l| l.contains("cannot write to the database")).count();
    assert_eq!(complaints(&server.log.snapshot()), 1, "logged once a minute at most");

    limit_file_size(server.pid(), None);
    let expected = written_before + said.len() as u64 + 2;
    let written = poll_until("every line written once space returned", WAIT, || {
        let written = read("chat_store_written_total");
        if written >= expected { Ok(written) } else { Err(written) }
    })
    .await;
    // Failed transactions are not counted; the lines kept back went in
    // together once space returned, so fewer transactions than lines.
    let batches = read("chat_store_batches_total");
    assert!(
        batches > batches_before && batches - batches_before < written - written_before,
        "{batches_before} then {batches} transactions for {written_before} then {written} lines"
    );
    assert_eq!(read("chat_store_dropped_total"), 0, "nothing was dropped");
    server.log.wait_for("the store saying it writes again", |l| {
        l.contains("writing to the database again")
    });
    let (_, lines) = ask(&mut alice, "/history 200").await;
    let kept = lines.iter().filter(|l| l.contains("while full ")).count();
    assert_eq!(kept, said.len(), "nothing said while the disk was full was lost");
    assert_eq!(complaints(&server.log.snapshot()), 1);
}

/// While the disk is full the store keeps lines in memory, up to a bound
/// (200,000 lines); past it the oldest are dropped and counted. Once space
/// returns, every line said is either written or counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_beyond_what_a_full_disk_can_keep_back_are_dropped_and_counted() {
    const LINES: u64 = 205_000;
    let dir = TempDir::new("dropped");
    let (db, server, mut alice, bob, written_before) = chatting_on_disk(&dir).await;
    let metrics = server.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    fill_the_disk(&server, &db);

    // bob reads (and discards) whatever comes, so nobody is a slow reader;
    // alice says LINES short lines as fast as the daemon takes them.
    let (mut bob_reads, _bob_writes) = bob.into_parts();
    let reading = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut bob_reads, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let mut batch = String::with_capacity(64 * 1024);
    for i in 0..LINES {
        batch.push_str(&format!("d{i}\n"));
        if batch.len() >= 60 * 1024 || i + 1 == LINES {
            alice.send_raw(batch.as_bytes()).await;
            batch.clear();
        }
    }
    alice.send("the last line").await;
    let said = LINES + 1;
    let dropped = poll_until("lines dropped past the bound", WAIT, || {
        match read("chat_store_dropped_total") {
            0 => Err(0),
            n => Ok(n),
        }
    })
    .await;
    limit_file_size(server.pid(), None);
    let (written, dropped) = poll_until("every line written or dropped", WAIT, || {
        let written = read("chat_store_written_total") - written_before;
        let dropped = read("chat_store_dropped_total").max(dropped);
        if written + dropped >= said { Ok((written, dropped)) } else { Err((written, dropped)) }
    })
    .await;
    // How many are dropped depends on how much of the flood the full disk
    // still took (a checkpoint can free room in the WAL): that some were
    // (polled above) and that every line is accounted for is the contract.
    assert_eq!(written + dropped, said, "{written} written + {dropped} dropped");
    reading.abort();
}

/// Account changes made while the disk is full are refused with the reason,
/// never confirmed and then lost; where a registered user was when they left
/// is kept once space returns.
#[tokio::test]
async fn account_changes_on_a_full_disk_are_refused_or_kept_never_confirmed_and_lost() {
    let dir = TempDir::new("full-accounts");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db, "--rate", "0", "--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("/register alice-password").await;
    alice.expect_line(|l| l.contains("yours now")).await;
    alice.join("#rust").await;
    let mut carol = Client::named(server.addr, "carol").await;
    fill_the_disk(&server, &db);
    let filler = "x".repeat(2000);
    for i in 0..150 {
        carol.send(&format!("filling {i} {filler}")).await;
    }
    poll_until("a failed write counted", WAIT, || match read("chat_store_write_failures_total") {
        0 => Err(0),
        n => Ok(n),
    })
    .await;

    let refused = |l: &str| l.contains("Sorry") && l.contains("could not be kept");
    carol.send("/register carol-password").await;
    let refusal = strip_ansi(&carol.expect_line(|l| l.contains("yours now") || refused(l)).await);
    assert!(refusal.contains("carol is not registered"), "{refusal}");
    alice.send("/password alice-password alice-new-password").await;
    let refusal = strip_ansi(&alice.expect_line(|l| l.contains("changed") || refused(l)).await);
    assert!(refusal.contains("your password is unchanged"), "{refusal}");
    alice.send("/unregister alice-password").await;
    let refusal = strip_ansi(&alice.expect_line(|l| l.contains("no longer") || refused(l)).await);
    assert!(refusal.contains("alice is still registered"), "{refusal}");
    alice.send("/quit").await;
    alice.until_closed().await;

    limit_file_size(server.pid(), None);
    server.log.wait_for("the store writing again", |l| l.contains("writing to the database again"));
    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);

    let server = Server::start(&["--db", &db]);
    let mut carol = Client::connect(server.addr).await;
    carol.expect_line(|l| l.contains("name")).await;
    carol.send("carol").await;
    carol.expect_line(|l| l.contains("Welcome, carol")).await;
    let mut alice = Client::connect(server.addr).await;
    alice.expect_line(|l| l.contains("name")).await;
    alice.send("alice").await;
    alice.expect_line(|l| l.contains("password")).await;
    alice.send("alice-password").await;
    let back = alice.lines_until(|l| l.contains("#rust")).await;
    assert!(back.iter().any(|l| l.contains("Welcome, alice")), "the old password: {back:#?}");
    alice.send("/rooms").await;
    let rooms = alice.lines_until(|l| l.contains("#rust")).await.join("\n");
    assert!(rooms.contains("(yours"), "put back in #rust, where she left: {rooms}");
}

/// Adds a line said `days_ago` to a stopped daemon's database.
fn age_database(db: &str, days_ago: i64, text: &str) {
    let conn = rusqlite::Connection::open(db).expect("database opens");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    conn.execute(
        "INSERT INTO messages (room, at, kind, name, theme, text) VALUES ('lobby', ?1, 'say', 'old', 0, ?2)",
        rusqlite::params![now_ms - days_ago * 86_400_000, text],
    )
    .expect("old line added");
}

fn stored_texts(db: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("database opens");
    let mut query = conn.prepare("SELECT text FROM messages ORDER BY id").expect("query");
    query.query_map([], |r| r.get(0)).expect("rows").collect::<Result<_, _>>().expect("texts")
}

#[tokio::test]
async fn retention_deletes_old_lines_and_zero_keeps_them() {
    let dir = TempDir::new("retention");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db]);
    stop(&mut server, libc::SIGTERM);
    age_database(&db, 40, "forty days old");
    age_database(&db, 10, "ten days old");

    let mut forever = Server::start(&["--db", &db, "--retain-days", "0"]);
    let mut alice = Client::named(forever.addr, "alice").await;
    let (_, lines) = ask(&mut alice, "/history").await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    drop(alice);
    stop(&mut forever, libc::SIGTERM);
    assert_eq!(stored_texts(&db), ["forty days old", "ten days old"]);

    let mut month = Server::start(&["--db", &db, "--retain-days", "30"]);
    let mut alice = Client::named(month.addr, "alice").await;
    let (_, lines) = ask(&mut alice, "/history").await;
    assert!(lines.len() == 1 && lines[0].ends_with("old: ten days old"), "{lines:#?}");
    // The store deletes on its own thread, which gives way to the room: the
    // replay already leaves the old line out, the file once this is logged.
    month.log.wait_for("the old line deleted", |l| l.contains("old messages deleted"));
    drop(alice);
    stop(&mut month, libc::SIGTERM);
    assert_eq!(stored_texts(&db), ["ten days old"], "deleted from the file too");
}

#[tokio::test]
async fn daemons_on_a_backplane_share_one_history_that_outlives_them() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Server::start(&["--backplane", &url, "--rate", "0"]);
    let mut b = Server::start(&["--backplane", &url]);
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = Client::named(b.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    alice.join("#rust").await;
    bob.join("#rust").await;
    alice.expect_line(|l| l.contains("bob joined #rust")).await;
    say_all(&mut alice, &mut bob, &["shared one", "shared two, about tokio"]).await;
    let (_, on_b) = ask(&mut bob, "/history").await;
    assert_eq!(on_b.len(), 2, "{on_b:#?}");
    let (_, on_a) = ask(&mut alice, "/history").await;
    assert_eq!(on_a, on_b, "the same history on every daemon");
    let (_, found) = ask(&mut bob, "/search TOKIO").await;
    assert!(found.len() == 1 && found[0].ends_with("alice: shared two, about tokio"));

    // A daemon restarted later replays the shared history to whoever joins first.
    drop(bob);
    stop(&mut b, libc::SIGTERM);
    let b = Server::start(&["--backplane", &url]);
    let mut carol = Client::named(b.addr, "carol").await;
    let joined = carol.join("#rust").await;
    assert!(joined.iter().any(|l| l.ends_with("alice: shared one")), "{joined:#?}");
    assert!(joined.iter().any(|l| l.ends_with("alice: shared two, about tokio")), "{joined:#?}");
}

/// `/search` folds case and accents the same way whether the history is a
/// local file or shared through Redis.
#[tokio::test]
async fn search_answers_the_same_with_a_local_or_a_shared_history() {
    let redis = RedisServer::start();
    let local = Server::start(&["--rate", "0"]);
    let shared = Server::start(&["--backplane", &redis.url(), "--rate", "0"]);
    let said = ["un café noir", "a plain CAFE", "Ærøskøbing is naïve", "caffeine"];
    let mut answers = Vec::new();
    for server in [&local, &shared] {
        let mut alice = Client::named(server.addr, "alice").await;
        let mut bob = Client::named(server.addr, "bob").await;
        alice.expect_line(|l| l.contains("bob joined")).await;
        say_all(&mut bob, &mut alice, &said).await;
        let mut found = Vec::new();
        for query in ["/search cafe", "/search Café", "/search NAIVE", "/search Ærøskobing"] {
            let (_, lines) = ask(&mut alice, query).await;
            let texts: Vec<String> =
                lines.iter().map(|l| l.split("bob: ").nth(1).unwrap_or(l).to_owned()).collect();
            found.push(texts);
        }
        answers.push(found);
    }
    let cafe = vec!["un café noir".to_owned(), "a plain CAFE".to_owned()];
    assert_eq!(answers[0][0], cafe, "the local store folds accents");
    assert_eq!(answers[0][1], cafe, "typed with an accent, too");
    assert_eq!(answers[0][2], ["Ærøskøbing is naïve"], "{answers:#?}");
    assert_eq!(answers[1], answers[0], "the shared history answers as the local one");
}

#[tokio::test]
async fn the_store_gives_the_core_to_the_room() {
    const LOWEST_NICE: i64 = 19;
    let dir = TempDir::new("priority");
    let db = dir.file("chat.db");
    let server = Server::start(&["--db", &db, "--rate", "0", "--metrics", "127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    barrier(&mut bob, &mut alice).await;
    let threads = poll_until("the store's thread at the lowest priority", WAIT, || {
        let threads = thread_nices(server.pid());
        let store = threads.iter().filter(|(name, _)| name == "chat-store");
        if store.clone().count() == 1 && store.clone().all(|(_, nice)| *nice == LOWEST_NICE) {
            Ok(threads)
        } else {
            Err(threads)
        }
    })
    .await;
    let room: Vec<_> = threads.iter().filter(|(name, _)| name != "chat-store").collect();
    assert!(room.iter().any(|(name, _)| name == "tokio-rt-worker"), "{threads:?}");
    assert!(room.iter().all(|(_, nice)| *nice < LOWEST_NICE), "the room's threads: {threads:?}");

    // A flood the room delivers first; the store catches up afterwards and drops nothing.
    let flood: String = (0..20_000).map(|i| format!("flood {i}\n")).collect();
    bob.send_raw(flood.as_bytes()).await;
    alice.expect_line(|l| strip_ansi(l).ends_with("flood 19999")).await;
    let expected = 20_000 + 1;
    poll_until("every line of the flood stored", WAIT, || match read("chat_store_written_total") {
        written if written >= expected => Ok(written),
        written => Err(written),
    })
    .await;
    assert_eq!(read("chat_store_dropped_total"), 0);
}

#[tokio::test]
async fn with_db_none_nothing_is_kept_and_joins_replay_what_the_daemon_saw() {
    let dir = TempDir::new("none");
    let in_dir = |command: &mut Command| {
        command.current_dir(&dir.path);
    };
    let mut server = Server::start_with(&["--db", "none", "--rate", "0"], in_dir);
    server.log.wait_for("the startup line saying so", |l| l.contains("no history is kept"));
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    say_all(&mut bob, &mut alice, &["lobby one", "lobby two"]).await;
    bob.join("#quiet").await;
    bob.send("quiet one").await;
    bob.send("/part #quiet").await;
    bob.expect_line(|l| l.contains("You are now in #lobby")).await;

    // Joins replay from memory: an open room, and a room that closed meanwhile.
    let mut carol = Client::connect(server.addr).await;
    carol.expect_line(|l| l.contains("name")).await;
    carol.send("carol").await;
    let replay = carol.lines_until(|l| strip_ansi(l).ends_with("bob: lobby two")).await;
    assert!(replay.iter().any(|l| strip_ansi(l).ends_with("bob: lobby one")), "{replay:#?}");
    let joined = carol.join("#quiet").await;
    assert!(joined.iter().any(|l| l.ends_with("bob: quiet one")), "{joined:#?}");

    // /history and /search say plainly that nothing is kept.
    for command in ["/history", "/search one"] {
        carol.send(command).await;
        let answer = strip_ansi(&carol.expect_line(|l| strip_ansi(l).starts_with("*** ")).await);
        assert!(answer.contains("keeps no history"), "{command}: {answer}");
        assert!(!answer.contains("Sorry"), "not a failure: {answer}");
    }

    // A registered name works while the daemon runs.
    alice.send("/register correct-horse").await;
    alice.expect_line(|l| l.contains("yours now")).await;
    alice.send("/quit").await;
    alice.until_closed().await;
    let mut again = Client::connect(server.addr).await;
    again.expect_line(|l| l.contains("name")).await;
    again.send("alice").await;
    again.expect_line(|l| l.contains("password")).await;
    again.send("correct-horse").await;
    again.expect_line(|l| l.contains("Welcome, alice")).await;
    drop((again, bob, carol));
    stop(&mut server, libc::SIGTERM);
    let left: Vec<_> = std::fs::read_dir(&dir.path).expect("the directory").flatten().collect();
    assert!(left.is_empty(), "no file written: {left:?}");

    // After a restart nothing is replayed and the name is free again.
    let server = Server::start_with(&["--db", "none"], in_dir);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("/history").await;
    let seen = alice.lines_until(|l| strip_ansi(l).contains("keeps no history")).await;
    assert!(!seen.iter().any(|l| l.contains("lobby one")), "{seen:#?}");
}

//! Registered names, as PRODUCT.md describes them, against the real
//! `chat-server` over real sockets: registering, coming back with the right
//! and the wrong password, look-alikes of a registered name, the throttle on
//! guessing, a second login replacing the first, what a returning owner
//! missed (across a restart), and two daemons sharing registrations through
//! a real `redis-server`.

mod support;

use std::time::{Duration, Instant};

use support::{
    Client, RedisServer, Server, TempDir, WAIT, ask_for, log_in, poll_until, register, strip_ansi,
    thread_nices,
};

const PASSWORD: &str = "correct-horse";

/// One wrong guess at alice's password from each address, all at once:
/// every guesser is first brought to the password prompt, then all guess
/// together. Returns how long each took to be refused after the guesses
/// went out, shortest first.
async fn guess_at_once(addrs: &[std::net::SocketAddr]) -> Vec<Duration> {
    let mut guessers = Vec::new();
    for &addr in addrs {
        let mut guesser = Client::connect(addr).await;
        guesser.expect_line(|l| l.contains("name")).await;
        ask_for(&mut guesser, "alice").await;
        guessers.push(guesser);
    }
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(guessers.len() + 1));
    let guesses: Vec<_> = guessers
        .into_iter()
        .enumerate()
        .map(|(i, mut guesser)| {
            let go = std::sync::Arc::clone(&go);
            tokio::spawn(async move {
                go.wait().await;
                let sent = Instant::now();
                guesser.send(&format!("guess-number-{i}")).await;
                guesser.expect_line(|l| l.contains("wrong password")).await;
                sent.elapsed()
            })
        })
        .collect();
    go.wait().await;
    let mut answered = Vec::new();
    for guess in guesses {
        answered.push(guess.await.expect("guesser finished"));
    }
    answered.sort();
    answered
}

/// The first three failures on a name are free: the throttle holds none of
/// them back, and every later one (the daemons log how long each wrong
/// guess was held: `held_ms`). Read from the log rather than timed, so a
/// loaded machine, where checking a password at nice 19 can take seconds,
/// changes nothing. Waits until `guesses` wrong guesses are logged.
async fn assert_first_three_answered_at_once(servers: &[&Server], guesses: usize) {
    let held = poll_until("every wrong guess logged", WAIT, || {
        let held: Vec<u64> = servers
            .iter()
            .flat_map(|server| server.log.snapshot())
            .filter(|line| line.contains("wrong password"))
            .filter_map(|line| {
                let value = line.split("held_ms=").nth(1)?.split_whitespace().next()?;
                value.parse().ok()
            })
            .collect();
        if held.len() >= guesses { Ok(held) } else { Err(held) }
    })
    .await;
    let free = held.iter().filter(|&&ms| ms == 0).count();
    assert_eq!(free, 3, "three guesses go unthrottled, the rest wait: held {held:?} ms");
}

/// None of `secrets` (passwords typed so far) is anywhere in the daemon's log.
fn assert_never_logged(server: &Server, secrets: &[&str]) {
    let logged = server.log.snapshot().join("\n");
    for secret in secrets {
        assert!(!logged.contains(secret), "a password reached the log: {logged}");
    }
}

#[tokio::test]
async fn a_registered_name_takes_its_password_and_nothing_else() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    assert!(register(&mut alice, "short").await.contains("at least 8 characters"));
    let reply = register(&mut alice, PASSWORD).await;
    assert!(reply.contains("alice is yours now"), "{reply}");
    alice.send("/quit").await;
    alice.until_closed().await;
    let logged = server.log.snapshot().join("\n");
    assert!(!logged.contains(PASSWORD), "a password never reaches the log");

    let mut intruder = Client::connect(server.addr).await;
    intruder.expect_line(|l| l.contains("name")).await;
    let prompt = ask_for(&mut intruder, "alice").await;
    assert!(prompt.contains("alice is registered"), "{prompt}");
    intruder.send("wrong-horse").await;
    let refusal = strip_ansi(&intruder.expect_line(|l| l.contains("Sorry")).await);
    assert!(refusal.contains("wrong password"), "{refusal}");
    intruder.expect_line(|l| l.contains("Choose another name")).await;
    // A look-alike is the same name: it asks the same password.
    let prompt = ask_for(&mut intruder, "ALlCE").await;
    assert!(prompt.contains("is registered"), "{prompt}");
    intruder.send("wrong-again").await;
    intruder.expect_line(|l| l.contains("wrong password")).await;
    intruder.expect_line(|l| l.contains("Choose another name")).await;
    intruder.send("mallory").await;
    intruder.expect_line(|l| l.contains("Welcome, mallory")).await;
    intruder.send("/nick alice").await;
    let refusal = strip_ansi(&intruder.expect_line(|l| l.contains("Sorry")).await);
    assert!(refusal.contains("registered"), "{refusal}");

    let (_, welcome) = log_in(server.addr, "alice", PASSWORD).await;
    assert!(welcome.last().is_some_and(|l| l.contains("Welcome, alice")), "{welcome:#?}");
    let logged = server.log.snapshot().join("\n");
    assert!(logged.contains("wrong password") && !logged.contains("wrong-horse"), "{logged}");
}

/// Connects, gives `name`, and returns every line up to the welcome or a
/// password prompt, whichever comes first, without colour.
async fn choose_name(addr: std::net::SocketAddr, name: &str) -> (Client, Vec<String>) {
    let mut client = Client::connect(addr).await;
    client.expect_line(|l| l.contains("name")).await;
    client.send(name).await;
    let lines = client.lines_until(|l| l.contains("Welcome,") || l.contains("password")).await;
    (client, lines.iter().map(|l| strip_ansi(l)).collect())
}

/// Gives `password` at the password prompt and returns the refusal, after
/// which the name prompt comes again.
async fn refused_login(client: &mut Client, password: &str) -> String {
    client.send(password).await;
    let refusal = strip_ansi(&client.expect_line(|l| l.contains("Sorry")).await);
    client.expect_line(|l| l.contains("Choose another name")).await;
    refusal
}

#[tokio::test]
async fn password_changes_it_and_only_with_the_old_one() {
    const NEW: &str = "battery-staple";
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let changed = |l: &str| l.contains("Sorry") || l.contains("password is changed");
    alice.send(&format!("/password not-the-password {NEW}")).await;
    let refusal = strip_ansi(&alice.expect_line(changed).await);
    assert!(refusal.contains("wrong password"), "{refusal}");
    alice.send(&format!("/password {PASSWORD} short")).await;
    let refusal = strip_ansi(&alice.expect_line(changed).await);
    assert!(refusal.contains("at least 8 characters"), "{refusal}");
    alice.send(&format!("/password {PASSWORD} {NEW}")).await;
    let reply = strip_ansi(&alice.expect_line(changed).await);
    assert!(reply.contains("Your password is changed"), "{reply}");
    alice.send("/quit").await;
    alice.until_closed().await;

    // The old password is refused at the login, the new one accepted.
    let (mut returning, prompt) = choose_name(server.addr, "alice").await;
    assert!(prompt.last().is_some_and(|l| l.contains("password")), "{prompt:#?}");
    let refusal = refused_login(&mut returning, PASSWORD).await;
    assert!(refusal.contains("wrong password"), "the old password: {refusal}");
    ask_for(&mut returning, "alice").await;
    returning.send(NEW).await;
    returning.expect_line(|l| l.contains("Welcome, alice")).await;
    assert_never_logged(&server, &[PASSWORD, NEW, "not-the-password"]);
}

#[tokio::test]
async fn unregister_gives_the_name_back_only_with_the_password() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let unregistered = |l: &str| l.contains("Sorry") || l.contains("no longer registered");
    alice.send("/unregister not-the-password").await;
    let refusal = strip_ansi(&alice.expect_line(unregistered).await);
    assert!(refusal.contains("wrong password"), "{refusal}");
    alice.send("/register another-password").await;
    let registering = |l: &str| l.contains("registered already") || l.contains("yours now");
    let still = strip_ansi(&alice.expect_line(registering).await);
    assert!(still.contains("alice is registered already"), "still registered: {still}");
    alice.send(&format!("/unregister {PASSWORD}")).await;
    let reply = strip_ansi(&alice.expect_line(unregistered).await);
    assert!(reply.contains("alice is no longer registered"), "{reply}");
    alice.send("/quit").await;
    alice.until_closed().await;

    // Anyone may take the name now, and its look-alikes, with no password.
    for (taker, name) in [("bob", "ALlCE"), ("carol", "alice")] {
        let (mut user, lines) = choose_name(server.addr, name).await;
        let welcome = lines.last().expect("a reply to the name");
        assert!(welcome.contains(&format!("Welcome, {name}")), "{taker}: {lines:#?}");
        user.send("/quit").await;
        user.until_closed().await;
    }
    assert_never_logged(&server, &[PASSWORD, "not-the-password"]);
}

#[tokio::test]
async fn guesses_on_one_name_wait_longer_and_longer_whatever_the_connection() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    // Six guesses at once from six connections: three are answered at
    // once, then the others wait their turn, 1 s, 2 s and 4 s apart.
    let answered = guess_at_once(&[server.addr; 6]).await;
    assert_first_three_answered_at_once(&[&server], 6).await;
    // The contract's lower bounds: the 4th waited 1 s, the 5th 1 + 2, the 6th 1 + 2 + 4.
    assert!(answered[3] >= Duration::from_secs(1), "{answered:?}");
    assert!(answered[4] >= Duration::from_secs(3), "{answered:?}");
    assert!(answered[5] >= Duration::from_secs(7), "{answered:?}");
    // The owner's right password still works, after its turn.
    let (_, welcome) = log_in(server.addr, "alice", PASSWORD).await;
    assert!(welcome.iter().any(|l| l.contains("Welcome, alice")));
}

/// A burst of 100 wrong guesses, ten from each of ten connections, all
/// written at once: the server reads each connection's next guess only
/// after answering the last, and the k-th refusal, from whichever
/// connection, comes no sooner than the k-th slot of the contract's
/// schedule (0, 0, 0, 1, 3, 7, 15 s...). The first seven are watched here;
/// the whole hundred would take 46 minutes, which
/// `accounts::tests::a_burst_of_a_hundred_guesses_takes_at_least_what_the_schedule_says`
/// shows on the throttle itself.
#[tokio::test]
async fn a_burst_of_a_hundred_guesses_over_ten_connections_keeps_to_the_schedule() {
    const SLOTS: [u64; 7] = [0, 0, 0, 1, 3, 7, 15];
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let addr = server.addr;
    let started = Instant::now();
    let (refused, mut refusals) = tokio::sync::mpsc::unbounded_channel();
    let guessers: Vec<_> = (0..10)
        .map(|c| {
            let refused = refused.clone();
            tokio::spawn(async move {
                let mut guesser = Client::connect(addr).await;
                let burst: String = (0..10).map(|g| format!("alice\nguess-{c}-{g}\n")).collect();
                guesser.send_raw(burst.as_bytes()).await;
                while let Some(line) = guesser.next_line().await {
                    if line.contains("wrong password") && refused.send(started.elapsed()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let mut answered = Vec::new();
    while answered.len() < SLOTS.len() {
        let refusal = tokio::time::timeout(WAIT, refusals.recv()).await;
        answered.push(refusal.expect("a refusal in time").expect("guessers still guessing"));
    }
    guessers.iter().for_each(|guesser| guesser.abort());
    for (k, (at, slot)) in answered.iter().zip(SLOTS).enumerate() {
        assert!(*at >= Duration::from_secs(slot), "refusal {k} came too soon: {answered:?}");
    }
    assert_first_three_answered_at_once(&[&server], SLOTS.len()).await;
}

#[tokio::test]
async fn passwords_are_hashed_on_threads_that_yield_to_the_room() {
    const LOWEST_NICE: i64 = 19;
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let (hashers, others): (Vec<_>, Vec<_>) =
        thread_nices(server.pid()).into_iter().partition(|(name, _)| name.starts_with("chat-hash"));
    assert!(!hashers.is_empty(), "the hash ran on a thread of its own: {others:?}");
    assert!(hashers.iter().all(|(_, nice)| *nice == LOWEST_NICE), "{hashers:?}");
    // The store's writer gives way too (history::the_store_gives_the_core_to_the_room).
    let room = others.iter().filter(|(name, _)| name != "chat-store");
    assert!(room.clone().all(|(_, nice)| *nice < LOWEST_NICE), "only hashing: {others:?}");
}

#[tokio::test]
async fn a_second_login_replaces_the_first() {
    let server = Server::start(&[]);
    let mut first = Client::named(server.addr, "alice").await;
    register(&mut first, PASSWORD).await;
    let mut bob = Client::named(server.addr, "bob").await;
    let (mut second, _) = log_in(server.addr, "alice", PASSWORD).await;
    let goodbye = first.until_closed().await;
    assert!(
        goodbye.iter().any(|l| strip_ansi(l).contains("logged in from another connection")),
        "{goodbye:#?}"
    );
    second.send("still me").await;
    bob.expect_line(|l| strip_ansi(l).ends_with("alice: still me")).await;
}

#[tokio::test]
async fn a_returning_owner_is_put_back_and_told_what_they_missed_across_a_restart() {
    let dir = TempDir::new("returning");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    alice.join("#rust").await;
    alice.join("#quiet").await;
    alice.send("/quit").await;
    alice.until_closed().await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#rust").await;
    for i in 1..=3 {
        bob.send(&format!("rust news {i}")).await;
    }
    bob.send("/join #lobby").await;
    bob.expect_line(|l| l.contains("You are now in #lobby")).await;
    bob.send("lobby news").await;
    bob.send("/quit").await;
    bob.until_closed().await;
    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);

    let server = Server::start(&["--db", &db]);
    let (mut alice, _) = log_in(server.addr, "alice", PASSWORD).await;
    let told = alice.lines_until(|l| strip_ansi(l).ends_with("bob: rust news 3")).await;
    let told: Vec<String> = told.iter().map(|l| strip_ansi(l)).collect();
    assert!(told.iter().any(|l| l.contains("Nothing new in #quiet")), "{told:#?}");
    let rust = told.iter().position(|l| l.contains("3 new in #rust")).expect("#rust's count");
    assert!(told[rust + 1].ends_with("bob: rust news 1"), "{told:#?}");
    assert!(told[rust + 3].ends_with("bob: rust news 3"), "{told:#?}");
    assert!(told.iter().any(|l| l.contains("1 new in #lobby")), "{told:#?}");
    alice.send("/rooms").await;
    let rooms = alice.lines_until(|l| l.contains("#rust")).await.join("\n");
    assert!(rooms.contains("(yours"), "put back in #rust: {rooms}");
}

/// The rooms `client` is in, as `/rooms` marks them, and everything it
/// read before the listing.
async fn my_rooms(client: &mut Client) -> (Vec<String>, Vec<String>) {
    client.send("/rooms").await;
    let before = client.lines_until(|l| strip_ansi(l).ends_with(" rooms:")).await;
    let before: Vec<String> = before.iter().map(|l| strip_ansi(l)).collect();
    let count: usize = before
        .last()
        .and_then(|l| l.split_whitespace().rev().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of rooms: {before:#?}"));
    let mut mine = Vec::new();
    for _ in 0..count {
        let entry = strip_ansi(&client.next_line().await.expect("a room of the listing"));
        if entry.contains("(yours") {
            mine.push(entry.split_whitespace().next().expect("a room name").to_owned());
        }
    }
    mine.sort();
    (mine, before)
}

/// The rooms a returning owner was told they were not put back in.
fn not_put_back(lines: &[String]) -> Vec<String> {
    let mut rooms: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split("you were not put back in ").nth(1))
        .filter_map(|rest| rest.split(':').next())
        .map(str::to_owned)
        .collect();
    rooms.sort();
    rooms
}

/// A registered owner was in more rooms than a restarted daemon's lower
/// limits allow: they are put back in what fits, and told of each room
/// that did not, with the reason; no limit is exceeded.
#[tokio::test]
async fn a_returning_owner_is_put_back_within_the_room_limits_and_told_of_the_rest() {
    let dir = TempDir::new("returning-limits");
    let db = dir.file("chat.db");
    let mut server = Server::start(&["--db", &db]);
    let mut alice = Client::named(server.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let left_in = ["#a", "#b", "#c"];
    for room in left_in {
        alice.join(room).await;
    }
    alice.send("/quit").await;
    alice.until_closed().await;
    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);

    // Three rooms per user now, #lobby included: two of the three fit.
    let mut server = Server::start(&["--db", &db, "--rooms-per-user", "3"]);
    let (mut alice, _) = log_in(server.addr, "alice", PASSWORD).await;
    let (mine, told) = my_rooms(&mut alice).await;
    assert_eq!(mine.len(), 3, "#lobby and two rooms: {mine:?}");
    assert!(mine.contains(&"#lobby".to_owned()), "{mine:?}");
    let refused = not_put_back(&told);
    assert_eq!(refused.len(), 1, "told of the one room that did not fit: {told:#?}");
    let reason = told.iter().find(|l| l.contains("not put back")).expect("the notice");
    assert!(reason.contains("you are in 3 rooms already"), "{reason}");
    let mut accounted: Vec<String> =
        mine.iter().filter(|r| *r != "#lobby").chain(&refused).cloned().collect();
    accounted.sort();
    assert_eq!(accounted, left_in, "each room put back or told of, once: {told:#?}");
    let kept: Vec<String> = mine.into_iter().filter(|r| r != "#lobby").collect();
    alice.send("/quit").await;
    alice.until_closed().await;
    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT);

    // One room on the whole daemon besides #lobby: one of the two fits.
    let server = Server::start(&["--db", &db, "--max-rooms", "1"]);
    let (mut alice, _) = log_in(server.addr, "alice", PASSWORD).await;
    let (mine, told) = my_rooms(&mut alice).await;
    assert_eq!(mine.len(), 2, "#lobby and one room: {mine:?}");
    let refused = not_put_back(&told);
    assert_eq!(refused.len(), 1, "told of the room that did not fit: {told:#?}");
    let reason = told.iter().find(|l| l.contains("not put back")).expect("the notice");
    assert!(reason.contains("this server has 1 rooms already"), "{reason}");
    let mut accounted: Vec<String> =
        mine.iter().filter(|r| *r != "#lobby").chain(&refused).cloned().collect();
    accounted.sort();
    assert_eq!(accounted, kept, "each room put back or told of, once: {told:#?}");
}

#[tokio::test]
async fn a_name_registered_on_one_daemon_is_protected_on_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Server::start(&["--backplane", &url]);
    let b = Server::start(&["--backplane", &url]);
    let mut alice = Client::named(a.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    alice.send("/quit").await;
    alice.until_closed().await;
    let mut other = Client::connect(b.addr).await;
    other.expect_line(|l| l.contains("name")).await;
    ask_for(&mut other, "alice").await;
    other.send("not-the-password").await;
    other.expect_line(|l| l.contains("wrong password")).await;
    let (_, welcome) = log_in(b.addr, "alice", PASSWORD).await;
    assert!(welcome.iter().any(|l| l.contains("Welcome, alice")));
}

#[tokio::test]
async fn guesses_through_several_daemons_share_one_throttle() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Server::start(&["--backplane", &url]);
    let b = Server::start(&["--backplane", &url]);
    let mut alice = Client::named(a.addr, "alice").await;
    register(&mut alice, PASSWORD).await;
    let answered = guess_at_once(&[a.addr, b.addr, a.addr, b.addr, a.addr, b.addr]).await;
    assert_first_three_answered_at_once(&[&a, &b], 6).await;
    assert!(answered[5] >= Duration::from_secs(7), "half on each daemon: {answered:?}");
}

#[tokio::test]
async fn a_login_on_another_daemon_replaces_the_first() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Server::start(&["--backplane", &url]);
    let b = Server::start(&["--backplane", &url]);
    let mut first = Client::named(a.addr, "alice").await;
    register(&mut first, PASSWORD).await;
    let mut bob = Client::named(a.addr, "bob").await;
    let (mut second, welcome) = log_in(b.addr, "alice", PASSWORD).await;
    assert!(welcome.iter().any(|l| l.contains("Welcome, alice")), "{welcome:#?}");
    let goodbye = first.until_closed().await;
    assert!(
        goodbye.iter().any(|l| strip_ansi(l).contains("logged in from another connection")),
        "{goodbye:#?}"
    );
    second.send("still me, from b").await;
    bob.expect_line(|l| strip_ansi(l).ends_with("alice: still me, from b")).await;
}

//! Moderation across daemons that share rooms through a real
//! `redis-server` (`--backplane`): a ban, a mute or a topic set on one
//! daemon holds on the others, with its effects there (the banned user put
//! out of the room or off the server, an address refused, a muted line
//! refused, the topic shown), on a daemon started afterwards, and through
//! a Redis outage.
//!
//! The contract is one second; these tests wait up to [`WAIT`] and print
//! how long each change took, from the command typed on one daemon to its
//! effect seen on the other (run with `--nocapture` to read the figures).

mod support;

use std::time::{Duration, Instant};

use support::{Client, RedisServer, Server, WAIT, barrier, registered, strip_ansi};

/// A daemon on `redis` whose console the test types on.
fn node(redis: &RedisServer) -> Server {
    let server = Server::start(&["--backplane", &redis.url(), "--rate", "0"]);
    server.log.wait_for("backplane connected", |l| l.contains("backplane connected"));
    server
}

/// Types a moderation command on `server`'s console and waits for its answer.
fn console(server: &mut Server, command: &str, answer: &str) -> String {
    server.console_command(command);
    server.console.wait_for(answer, |l| l.contains(answer))
}

/// Answers `name` at `server`'s name prompt and returns the answer: the
/// welcome, or the refusal with its reason.
async fn try_name(server: &Server, name: &str) -> String {
    let mut client = Client::connect(server.addr).await;
    client.expect_line(|l| l.contains("name")).await;
    client.send(name).await;
    strip_ansi(&client.expect_line(|l| l.contains("Welcome") || l.contains("Sorry")).await)
}

/// Tries `attempt` every 20 ms until it yields a value, for at most [`WAIT`];
/// returns it and how long it took since `since`.
async fn poll<T, F: Future<Output = Option<T>>>(
    what: &str,
    since: Instant,
    mut attempt: impl FnMut() -> F,
) -> (T, Duration) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return (value, since.elapsed());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(what: &str, took: &mut [Duration]) {
    took.sort();
    let median = took[took.len() / 2];
    eprintln!("{what}: median {median:?} of {} (all: {took:?})", took.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_ban_on_one_daemon_puts_the_user_out_of_that_room_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut owen = registered(a.addr, "owen").await;
    owen.join("#den").await;
    let mut bob = Client::named(b.addr, "bob").await;
    let mut took = Vec::new();
    bob.join("#den").await;
    owen.expect_line(|l| l.contains("bob joined #den")).await;
    for round in 0..5 {
        owen.send(&format!("/ban bob 1h round {round}")).await;
        let sent = Instant::now();
        let out = strip_ansi(&bob.expect_line(|l| l.contains("banned")).await);
        took.push(sent.elapsed());
        assert!(out.contains("bob is banned from #den by owen until 20"), "{out}");
        assert!(out.contains(&format!("round {round}")), "{out}");
        owen.expect_line(|l| l.contains("bob left #den")).await;
        bob.send("/join #den").await;
        let refused = strip_ansi(&bob.expect_line(|l| l.contains("Sorry")).await);
        assert!(refused.contains("you are banned from #den until 20"), "{refused}");
        owen.send("/unban bob").await;
        owen.expect_line(|l| l.contains("bob is no longer banned from #den")).await;
        let lifted = Instant::now();
        // Until B hears of it, bob is still refused there.
        let deadline = lifted + WAIT;
        loop {
            bob.send("/join #den").await;
            let answer = strip_ansi(
                &bob.expect_line(|l| l.contains("Sorry") || l.contains("now in #den")).await,
            );
            if answer.contains("now in #den") {
                break;
            }
            assert!(Instant::now() < deadline, "bob still refused #den on B: {answer}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        owen.expect_line(|l| l.contains("bob joined #den")).await;
    }
    report("room ban, set on A, bob put out on B", &mut took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_banned_server_wide_is_refused_everywhere_and_known_to_a_daemon_started_later() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis), node(&redis));
    let mut took = Vec::new();
    for round in 0..5 {
        let name = format!("mallory{round}");
        let mut mallory = Client::named(b.addr, &name).await;
        let set = Instant::now();
        let done = console(&mut a, &format!("/ban {name} spamming"), &format!("{name} is banned"));
        assert!(done.contains("from the server by server until lifted: spamming"), "{done}");
        // On B, mallory is put off the server with the reason.
        let gone = mallory.until_closed().await;
        took.push(set.elapsed());
        assert!(gone.iter().any(|l| l.contains("spamming")), "{gone:?}");
        // And the name is refused at B's prompt (once B has let it go).
        let (b, name) = (&b, name.as_str());
        let (refused, _) = poll("the name refused at B", set, || async move {
            let answer = try_name(b, name).await;
            (!answer.contains("taken")).then_some(answer)
        })
        .await;
        assert!(refused.contains("that name is banned from this server"), "{refused}");
        assert!(refused.contains("spamming"), "{refused}");
    }
    report("server-wide name ban, set on A, user put off B", &mut took);
    // A daemon that starts afterwards reads the bans from Redis.
    let c = node(&redis);
    for round in 0..5 {
        let refused = try_name(&c, &format!("MALLORY{round}")).await;
        assert!(refused.contains("that name is banned from this server"), "{refused}");
    }
    let welcome = try_name(&c, "alice").await;
    assert!(welcome.contains("Welcome"), "{welcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_ban_on_one_daemon_refuses_connections_at_another() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis), node(&redis));
    let source = "127.0.0.2".parse().expect("an address");
    let mut there = Client::connect_from(b.addr, source).await;
    there.name_as("mallory").await;
    let set = Instant::now();
    console(&mut a, "/ban 127.0.0.2 flooding", "127.0.0.2 is banned");
    let gone = there.until_closed().await;
    let put_out = set.elapsed();
    assert!(gone.iter().any(|l| l.contains("flooding")), "{gone:?}");
    let b = &b;
    let (refused, took) = poll("a refusal from B", set, || async move {
        let mut again = Client::connect_from(b.addr, source).await;
        let lines = again.until_closed().await;
        lines.first().is_some_and(|l| l.contains("banned")).then_some(lines)
    })
    .await;
    eprintln!("address ban, set on A: put off B after {put_out:?}, refused at B after {took:?}");
    assert_eq!(refused.len(), 1, "one line: {refused:?}");
    assert!(refused[0].contains("address is banned") && refused[0].contains("flooding"));
    // Other addresses still get in.
    let welcome = try_name(b, "alice").await;
    assert!(welcome.contains("Welcome"), "{welcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_on_one_daemon_refuses_lines_on_another_until_unmuted() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = Client::named(b.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined") || l.contains("bob arrived")).await;
    let set = Instant::now();
    console(&mut a, "/mute bob", "bob is muted");
    bob.expect_line(|l| l.contains("bob is muted everywhere by server")).await;
    let took = set.elapsed();
    bob.send("can anyone hear me").await;
    let refused = strip_ansi(&bob.expect_line(|l| l.contains("not sent")).await);
    assert!(refused.contains("You are muted everywhere until lifted"), "{refused}");
    let lifted = Instant::now();
    console(&mut a, "/unmute bob", "bob may speak again");
    bob.expect_line(|l| l.contains("bob may speak again everywhere")).await;
    eprintln!("mute, set on A: told on B after {took:?}; unmute after {:?}", lifted.elapsed());
    bob.send("back again").await;
    let heard = alice.lines_until(|l| l.contains("back again")).await;
    assert!(heard.iter().all(|l| !l.contains("can anyone hear me")), "{heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_set_on_one_daemon_is_shown_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut owen = registered(a.addr, "owen").await;
    owen.join("#den").await;
    let mut bob = Client::named(b.addr, "bob").await;
    bob.join("#den").await;
    owen.expect_line(|l| l.contains("bob joined #den")).await;
    owen.send("/topic crabs only, please").await;
    let set = Instant::now();
    owen.expect_line(|l| l.contains("set the topic")).await;
    let told = strip_ansi(&bob.expect_line(|l| l.contains("topic")).await);
    eprintln!("topic, set on A: shown on B after {:?}", set.elapsed());
    assert!(told.contains("owen set the topic of #den: crabs only, please"), "{told}");
    let mut carol = Client::named(b.addr, "carol").await;
    let joined = carol.join("#den").await;
    assert!(
        joined.iter().any(|l| l.contains("Topic of #den: crabs only, please (set by owen)")),
        "{joined:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_on_one_daemon_puts_out_a_user_on_another_and_is_told_once() {
    let redis = RedisServer::start();
    let (mut a, b) = (node(&redis), node(&redis));
    let mut owen = registered(a.addr, "owen").await;
    owen.join("#den").await;
    let mut bob = Client::named(b.addr, "bob").await;
    bob.join("#den").await;
    owen.expect_line(|l| l.contains("bob joined #den")).await;
    let mut carol = Client::named(b.addr, "carol").await;
    carol.join("#den").await;
    owen.expect_line(|l| l.contains("carol joined #den")).await;
    owen.send("/kick bob calm down").await;
    let done = strip_ansi(&owen.expect_line(|l| l.contains("kicked")).await);
    assert!(done.contains("bob was kicked from #den by owen: calm down"), "{done}");
    let out = strip_ansi(&bob.expect_line(|l| l.contains("kicked")).await);
    assert!(out.contains("bob was kicked from #den by owen: calm down"), "{out}");
    owen.expect_line(|l| l.contains("bob left #den")).await;
    barrier(&mut owen, &mut carol).await;
    let told = carol.seen.iter().filter(|l| l.contains("bob was kicked from #den")).count();
    assert_eq!(told, 1, "carol, on bob's daemon, told once: {:#?}", carol.seen);
    // A kick is not a ban: bob may come back.
    bob.join("#den").await;
    owen.expect_line(|l| l.contains("bob joined #den")).await;
    // Off the server, from A's console.
    console(&mut a, "/kick bob enough", "bob was kicked from the server");
    let gone = bob.until_closed().await;
    assert!(gone.iter().any(|l| l.contains("enough")), "{gone:?}");
    owen.expect_line(|l| l.contains("bob was kicked (enough)")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_hold_through_a_redis_outage_and_one_set_meanwhile_reaches_the_others_once_back() {
    let mut redis = RedisServer::start();
    let (mut a, b) = (node(&redis), node(&redis));
    console(&mut a, "/ban eve before", "eve is banned");
    let b = &b;
    let (refused, _) = poll("eve refused at B", Instant::now(), || async move {
        let answer = try_name(b, "eve").await;
        answer.contains("banned").then_some(answer)
    })
    .await;
    assert!(refused.contains("before"), "{refused}");
    let mut alice = Client::named(a.addr, "alice").await;

    // Redis goes, and comes back without its data (no persistence here).
    redis.kill();
    alice.expect_line(|l| l.contains("degraded")).await;
    console(&mut a, "/ban mallory meanwhile", "mallory is banned");
    a.log.wait_for("the change logged as held here only", |l| {
        l.contains("moderation change holds here only")
    });
    let refused = try_name(&a, "mallory").await;
    assert!(refused.contains("banned") && refused.contains("meanwhile"), "{refused}");
    redis.restart();
    alice.expect_line(|l| l.contains("whole again")).await;
    let back = Instant::now();
    let (refused, took) = poll("mallory refused at B", back, || async move {
        let answer = try_name(b, "mallory").await;
        answer.contains("banned").then_some(answer)
    })
    .await;
    eprintln!("a ban set during the outage held on B {took:?} after Redis was back on A");
    assert!(refused.contains("meanwhile"), "{refused}");
    // Both bans held on B throughout, and a daemon started now finds them in Redis.
    assert!(try_name(b, "eve").await.contains("banned"));
    let c = node(&redis);
    for name in ["eve", "mallory"] {
        let refused = try_name(&c, name).await;
        assert!(refused.contains("that name is banned from this server"), "{name}: {refused}");
    }
}

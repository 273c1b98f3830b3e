//! Several real `chat-server` processes sharing one room through a real
//! `redis-server` (`--backplane`): cross-node chat, names, `/who`, `/msg`,
//! history, a node killed with SIGKILL, Redis killed and restarted.

mod support;

use std::time::Instant;

use chat_server::backplane::{HEARTBEAT, NODE_TIMEOUT};
use support::{Client, RedisServer, Server, WAIT, http_get, metric, poll_until, strip_ansi};

fn node(redis: &RedisServer) -> Server {
    let server = Server::start(&["--backplane", &redis.url(), "--rate", "0"]);
    server.log.wait_for("backplane connected", |l| l.contains("backplane connected"));
    server
}

/// Joins `name` on `server` and waits until `observer` (on any node) sees the join.
async fn join_seen_by(server: &Server, name: &str, observer: &mut Client) -> Client {
    let client = Client::named(server.addr, name).await;
    observer.expect_line(|l| l.contains(&format!("{name} joined"))).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_exactly_once_in_order() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = join_seen_by(&b, "bob", &mut alice).await;
    let mut carol = join_seen_by(&a, "carol", &mut bob).await;
    for i in 0..200 {
        alice.send(&format!("number {i}")).await;
    }
    let expected: Vec<String> = (0..200).map(|i| format!("alice: number {i}")).collect();
    // bob is on the other node (through Redis), carol on alice's own.
    for reader in [&mut bob, &mut carol] {
        let mut got = numbered(&reader.lines_until(|l| l.contains("alice: number 199")).await);
        // Exactly once: a line of alice's after the barrier from her own
        // node (the path her lines took) would be a duplicate.
        got.extend(numbered(&support::barrier(&mut alice, reader).await));
        assert_eq!(got, expected, "each line once, in order");
    }
    bob.send("/me waves from b").await;
    let line = strip_ansi(&alice.expect_line(|l| l.contains("waves from b")).await);
    assert!(line.ends_with("* bob waves from b"), "{line}");
    // And nothing of alice's came back late, on either node.
    let before = support::barrier(&mut bob, &mut carol).await;
    assert!(before.iter().all(|l| !l.contains("alice: number")), "duplicates: {before:?}");
    let before = support::barrier(&mut carol, &mut bob).await;
    assert!(before.iter().all(|l| !l.contains("alice: number")), "duplicates: {before:?}");
    bob.send("/nick robert").await;
    alice.expect_line(|l| l.contains("bob is now known as robert")).await;
    drop(bob);
    alice.expect_line(|l| l.contains("robert left")).await;
}

/// alice's numbered lines among `lines`, without colour.
fn numbered(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| strip_ansi(l))
        .filter_map(|l| l.find("alice: number").map(|at| l[at..].to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_unique_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let _alice = Client::named(a.addr, "alice").await;
    let mut other = Client::connect(b.addr).await;
    other.expect_line(|l| l.contains("name")).await;
    for attempt in ["alice", "ALICE", "\u{0430}lice"] {
        other.send(attempt).await;
        let reason = other.expect_line(|l| l.contains("Sorry")).await;
        assert!(reason.contains("taken"), "{attempt}: {reason}");
    }
    other.send("alicia").await;
    other.expect_line(|l| l.contains("Welcome, alicia")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_lists_everyone_and_themes_stay_distinct() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let _bob = join_seen_by(&b, "bob", &mut alice).await;
    let _carol = join_seen_by(&b, "carol", &mut alice).await;
    alice.send("/who").await;
    alice.expect_line(|l| l.contains("3 online")).await;
    let entries: Vec<String> =
        [alice.next_line().await, alice.next_line().await, alice.next_line().await]
            .into_iter()
            .map(|l| strip_ansi(&l.expect("entry")))
            .collect();
    let names: Vec<&str> =
        entries.iter().map(|e| e.split_whitespace().nth(1).unwrap_or("")).collect();
    assert_eq!(names, ["alice", "bob", "carol"], "{entries:?}");
    let themes: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(themes.len(), 3, "distinct themes across nodes: {entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_reach_a_user_on_another_node_only() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = join_seen_by(&b, "bob", &mut alice).await;
    let mut carol = join_seen_by(&b, "carol", &mut alice).await;
    alice.send("/msg BOB across the wire").await;
    alice.expect_line(|l| l.contains("-> bob: across the wire")).await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("across the wire")).await);
    assert!(line.contains("alice (private): across the wire"), "{line}");
    let carol_saw = support::barrier(&mut alice, &mut carol).await;
    assert!(carol_saw.iter().all(|l| !l.contains("across the wire")), "leaked: {carol_saw:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_holds_messages_from_every_node_even_for_a_new_node() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = join_seen_by(&b, "bob", &mut alice).await;
    alice.send("first from a").await;
    bob.expect_line(|l| l.contains("first from a")).await;
    bob.send("second from b").await;
    alice.expect_line(|l| l.contains("second from b")).await;
    let c = node(&redis);
    for server in [&b, &c] {
        let mut late = Client::connect(server.addr).await;
        late.expect_line(|l| l.contains("name")).await;
        late.send(&format!("late{}", server.addr.port())).await;
        let lines = late.lines_until(|l| l.contains("second from b")).await;
        let first =
            lines.iter().position(|l| l.contains("first from a")).expect("first in history");
        let recent =
            lines.iter().position(|l| l.contains("Recent messages")).expect("history header");
        assert!(recent < first, "{lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_killed_node_leave_within_seconds() {
    let redis = RedisServer::start();
    let (a, mut b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let _bob = join_seen_by(&b, "bob", &mut alice).await;
    b.kill(); // SIGKILL: no goodbye reaches Redis
    let killed = Instant::now();
    let left = strip_ansi(&alice.expect_line(|l| l.contains("bob")).await);
    let took = killed.elapsed();
    assert!(left.contains("bob lost connection"), "{left}");
    // A node silent for NODE_TIMEOUT is swept at the next heartbeat tick,
    // and a sweep waits for our own heartbeat to have come back within two
    // ticks: the departure is due by NODE_TIMEOUT + 3 heartbeats (7 s).
    // Twice that leaves room for a loaded machine and is still well under
    // the generic WAIT, which would accept any departure at all.
    let bound = (NODE_TIMEOUT + HEARTBEAT * 3) * 2;
    assert!(bound < WAIT / 2, "the bound must say more than WAIT does");
    assert!(took <= bound, "bob's departure seen {took:?} after the kill, over {bound:?}");
    alice.send("/who").await;
    alice.expect_line(|l| l.contains("1 online")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_degrades_to_local_then_the_room_is_whole_again() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = join_seen_by(&b, "bob", &mut alice).await;
    let mut carol = join_seen_by(&a, "carol", &mut bob).await;

    redis.kill();
    alice.expect_line(|l| l.contains("degraded")).await;
    bob.expect_line(|l| l.contains("degraded")).await;
    carol.expect_line(|l| l.contains("degraded")).await;
    alice.send("still local").await;
    carol.expect_line(|l| l.contains("alice: still local")).await;

    redis.restart();
    alice.expect_line(|l| l.contains("whole again")).await;
    bob.expect_line(|l| l.contains("whole again")).await;
    // Each node says the room is whole only once it is subscribed again.
    alice.send("after the outage").await;
    bob.expect_line(|l| l.contains("alice: after the outage")).await;
    carol.expect_line(|l| l.contains("alice: after the outage")).await;
    support::barrier(&mut bob, &mut alice).await;
    // Everyone has read past the outage: each was told of it exactly once.
    for (name, user) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        for notice in ["degraded", "whole again"] {
            let told = user.seen.iter().filter(|l| l.contains(notice)).count();
            assert_eq!(told, 1, "{name} told {notice:?} {told} times: {:#?}", user.seen);
        }
    }
    // One outage, one warning: the retries in between are not logged
    // again (at most once per 30 s, and the outage is shorter).
    let log = a.log.snapshot();
    let lost: Vec<&String> =
        log.iter().filter(|l| l.contains("degraded") || l.contains("backplane lost")).collect();
    assert_eq!(lost.len(), 1, "the outage logged once: {lost:#?}");
    let _ = (a, b);
}

#[tokio::test]
async fn newcomers_to_a_degraded_room_are_told_in_the_welcome() {
    // No Redis on this port: the daemon starts degraded and stays so.
    let url = format!("redis://127.0.0.1:{}/0", support::free_port());
    let server = Server::start(&["--backplane", &url]);
    server.log.wait_for("the backplane outage", |l| l.contains("backplane lost"));
    for name in ["alice", "bob"] {
        let mut user = Client::connect(server.addr).await;
        user.expect_line(|l| l.contains("name")).await;
        user.send(name).await;
        let welcome = user.lines_until(|l| l.contains("Online") || l.contains("Nobody")).await;
        let told = welcome.iter().filter(|l| l.contains("degraded")).count();
        assert_eq!(told, 1, "{name} must be told once that the room is degraded: {welcome:#?}");
        // Told once: the barrier of a round trip brings no second notice.
        user.send("/who").await;
        let after = user.lines_until(|l| l.contains(" online in ")).await;
        assert!(after.iter().all(|l| !l.contains("degraded")), "{after:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_daemons_that_carry_it_only_while_their_users_are_in_it() {
    let redis = RedisServer::start();
    let (one, two, three) = (node(&redis), node(&redis), node(&redis));
    let mut alice = Client::named(one.addr, "alice").await;
    let mut bob = join_seen_by(&two, "bob", &mut alice).await;
    let _carol = join_seen_by(&three, "carol", &mut alice).await;
    let channel = "chat:room:rust";
    alice.join("#rust").await;
    bob.join("#rust").await;
    let notice = strip_ansi(&alice.expect_line(|l| l.contains("bob joined")).await);
    assert!(notice.contains("bob joined #rust"), "{notice}");
    bob.send("hello from two").await;
    let line = strip_ansi(&alice.expect_line(|l| l.contains("hello from two")).await);
    assert!(line.ends_with("bob: hello from two") && !line.starts_with('['), "{line}");
    // Two daemons carry #rust; the third, with nobody in it, does not.
    support::poll_until("two daemons on #rust", support::WAIT, || {
        let n = redis.subscribers(channel);
        if n == 2 { Ok(()) } else { Err(n) }
    })
    .await;
    alice.send("/who #rust").await;
    let who = alice.lines_until(|l| l.contains("(you)")).await;
    assert!(who.iter().any(|l| l.contains("2 online in #rust")), "{who:#?}");
    alice.send("/rooms").await;
    let rooms = alice.lines_until(|l| l.contains("#rust")).await;
    let listing = rooms.iter().map(|l| strip_ansi(l)).collect::<Vec<_>>().join("\n");
    assert!(listing.contains("#lobby (3)") && listing.contains("#rust (2)"), "{listing}");
    bob.send("/part").await;
    alice.expect_line(|l| l.contains("bob left #rust")).await;
    support::poll_until("one daemon on #rust", support::WAIT, || {
        let n = redis.subscribers(channel);
        if n == 1 { Ok(()) } else { Err(n) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_departure_reaches_each_user_once_across_shared_rooms() {
    let redis = RedisServer::start();
    let (one, two) = (node(&redis), node(&redis));
    let mut alice = Client::named(one.addr, "alice").await;
    let mut bob = join_seen_by(&two, "bob", &mut alice).await;
    for room in ["#a", "#b"] {
        alice.join(room).await;
        bob.join(room).await;
        alice.expect_line(|l| l.contains(&format!("bob joined {room}"))).await;
    }
    bob.send("/nick robert").await;
    bob.expect_line(|l| l.contains("You are now known as robert")).await;
    bob.send("/quit bye").await;
    let seen = alice.lines_until(|l| l.contains("robert left")).await;
    let mut carol = Client::named(one.addr, "carol").await;
    carol.join("#b").await;
    let later = support::barrier(&mut carol, &mut alice).await;
    let all: Vec<&String> = seen.iter().chain(&later).collect();
    let renames = all.iter().filter(|l| l.contains("is now known as robert")).count();
    let leaves = all.iter().filter(|l| l.contains("robert left")).count();
    assert_eq!((renames, leaves), (1, 1), "{all:#?}");
}

/// The presence notices an observer on the same daemon reads, and one on
/// another daemon reads, are the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_parts_read_the_same_from_every_daemon() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut here = Client::named(a.addr, "here").await;
    let mut there = join_seen_by(&b, "there", &mut here).await;
    let mut bob = Client::named(a.addr, "bob").await;
    for observer in [&mut here, &mut there] {
        let arrival = strip_ansi(&observer.expect_line(|l| l.contains("bob joined")).await);
        assert!(arrival.ends_with("bob joined"), "an arrival names no room: {arrival}");
    }
    bob.join("#side").await;
    bob.send("/part #lobby").await;
    bob.expect_line(|l| l.contains("You left #lobby")).await;
    bob.send("/join #lobby").await;
    bob.expect_line(|l| l.contains("now in #lobby")).await;
    for observer in [&mut here, &mut there] {
        let part = strip_ansi(&observer.expect_line(|l| l.contains("bob left")).await);
        assert!(part.ends_with("bob left #lobby"), "{part}");
        let join = strip_ansi(&observer.expect_line(|l| l.contains("bob joined")).await);
        assert!(join.ends_with("bob joined #lobby"), "a /join names its room: {join}");
    }
}

/// The backplane's metrics: configured, up while Redis answers and down
/// while it does not, events dropped meanwhile, and users on every daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_backplane_through_an_outage() {
    let mut redis = RedisServer::start();
    let a =
        Server::start(&["--backplane", &redis.url(), "--rate", "0", "--metrics", "127.0.0.1:0"]);
    a.log.wait_for("backplane connected", |l| l.contains("backplane connected"));
    let metrics = a.metrics_addr();
    let read = |name: &str| metric(&http_get(metrics, "/metrics"), name);
    let b = node(&redis);
    assert_eq!(read("chat_backplane_configured"), 1);
    assert_eq!(read("chat_backplane_up"), 1);
    let mut alice = Client::named(a.addr, "alice").await;
    let mut bob = join_seen_by(&b, "bob", &mut alice).await;
    bob.send("hello from b").await;
    alice.expect_line(|l| l.contains("bob: hello from b")).await;
    // alice is here; bob counts among the users sharing the rooms.
    assert_eq!((read("chat_users"), read("chat_room_users")), (1, 2));
    let dropped = read("chat_backplane_dropped_total");

    redis.kill();
    alice.expect_line(|l| l.contains("degraded")).await;
    poll_until("the backplane down", WAIT, || match read("chat_backplane_up") {
        0 => Ok(()),
        n => Err(n),
    })
    .await;
    for i in 0..3 {
        alice.send(&format!("unheard {i}")).await;
    }
    // A round trip on the daemon: its lines were handed on by then.
    let mut carol = Client::named(a.addr, "carol").await;
    support::barrier(&mut alice, &mut carol).await;
    let during = read("chat_backplane_dropped_total");
    assert!(during >= dropped + 3, "{dropped} then {during}: alice's 3 lines not counted");

    redis.restart();
    alice.expect_line(|l| l.contains("whole again")).await;
    poll_until("the backplane up again", WAIT, || match read("chat_backplane_up") {
        1 => Ok(()),
        n => Err(n),
    })
    .await;
    let _ = b;
}

//! Rooms as PRODUCT.md describes them, over real sockets against the real
//! `chat-server`: joining, parting, the current room, tags on lines from
//! other rooms, `/rooms`, `/who #room`, limits, and one notice per person
//! however many rooms they share.

mod support;

use support::{Client, Server, barrier, strip_ansi};

#[tokio::test]
async fn joining_makes_a_room_current_and_its_members_are_told() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    let joined = alice.join("rust").await;
    assert!(joined.iter().any(|l| l.contains("You joined #rust")), "{joined:#?}");
    assert!(joined.last().is_some_and(|l| l.contains("You are now in #rust.")), "{joined:#?}");
    bob.join("#RUST").await;
    let notice = alice.expect_line(|l| l.contains("bob joined")).await;
    assert!(strip_ansi(&notice).contains("bob joined #rust"), "names the room: {notice}");
    bob.send("hello rustaceans").await;
    let line = strip_ansi(&alice.expect_line(|l| l.contains("hello rustaceans")).await);
    assert!(line.ends_with("bob: hello rustaceans") && !line.starts_with('['), "{line}");
}

#[tokio::test]
async fn lines_from_another_room_carry_its_name() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#rust").await;
    bob.join("#rust").await;
    bob.send("/join #lobby").await;
    bob.expect_line(|l| l.contains("You are now in #lobby")).await;
    alice.join("#lobby").await;
    alice.send("/join #rust").await;
    alice.expect_line(|l| l.contains("You are now in #rust")).await;
    alice.send("in rust").await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("in rust")).await);
    assert!(line.starts_with("[#rust] ") && line.ends_with("alice: in rust"), "{line}");
    alice.send("/me waves").await;
    let action = strip_ansi(&bob.expect_line(|l| l.contains("waves")).await);
    assert!(action.starts_with("[#rust] ") && action.contains("* alice waves"), "{action}");
}

#[tokio::test]
async fn a_message_goes_to_the_current_room_only() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let mut carol = Client::named(server.addr, "carol").await;
    alice.join("#rust").await;
    bob.join("#rust").await;
    alice.send("only for rust").await;
    bob.expect_line(|l| l.contains("only for rust")).await;
    // carol (lobby only) never sees it: bob's round trip through the lobby proves it.
    bob.send("/join #lobby").await;
    bob.expect_line(|l| l.contains("You are now in #lobby")).await;
    let before = barrier(&mut bob, &mut carol).await;
    assert!(before.iter().all(|l| !l.contains("only for rust")), "{before:#?}");
}

#[tokio::test]
async fn the_joiner_gets_who_is_there_and_the_rooms_history() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#go").await;
    bob.join("#go").await;
    alice.send("goroutines are cheap").await;
    bob.expect_line(|l| l.contains("goroutines")).await;
    let mut carol = Client::named(server.addr, "carol").await;
    let lines = carol.join("#go").await;
    let text = lines.iter().map(|l| strip_ansi(l)).collect::<Vec<_>>().join("\n");
    assert!(text.contains("alice") && text.contains("bob"), "who is there: {text}");
    assert!(text.contains("goroutines are cheap"), "history: {text}");
}

#[tokio::test]
async fn parting_tells_the_room_and_the_only_room_cannot_be_parted() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#rust").await;
    bob.join("#rust").await;
    bob.send("/part").await;
    let parted = bob.lines_until(|l| l.contains("You are now in")).await;
    assert!(parted.iter().any(|l| l.contains("You left #rust")), "{parted:#?}");
    assert!(parted.last().is_some_and(|l| l.contains("#lobby")), "{parted:#?}");
    let notice = strip_ansi(&alice.expect_line(|l| l.contains("bob left")).await);
    assert!(notice.contains("bob left #rust"), "{notice}");
    bob.send("/part #lobby").await;
    let refusal = bob.expect_line(|l| l.contains("Sorry")).await;
    assert!(refusal.contains("/quit"), "a hint to /quit: {refusal}");
    bob.send("/part #nowhere").await;
    bob.expect_line(|l| l.contains("not in that room")).await;
}

#[tokio::test]
async fn rooms_lists_rooms_with_members_and_marks_yours() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#rust").await;
    bob.join("#go").await;
    alice.send("/rooms").await;
    // Sorted by name, so #rust comes last.
    let lines = alice.lines_until(|l| l.contains("#rust")).await;
    let text = lines.iter().map(|l| strip_ansi(l)).collect::<Vec<_>>().join("\n");
    assert!(text.contains("3 rooms:"), "{text}");
    assert!(text.contains("#go (1)") && !text.contains("#go (1) (yours"), "{text}");
    assert!(text.contains("#lobby (2) (yours)"), "{text}");
    assert!(text.contains("#rust (1) (yours, current)"), "{text}");
    // An empty room disappears.
    bob.send("/part #go").await;
    bob.expect_line(|l| l.contains("You left #go")).await;
    alice.send("/rooms").await;
    let lines = alice.lines_until(|l| l.contains("#rust")).await;
    assert!(lines.iter().any(|l| l.contains("2 rooms:")), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("#go")), "{lines:#?}");
}

#[tokio::test]
async fn who_lists_the_current_room_or_the_one_named() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let _bob = Client::named(server.addr, "bob").await;
    alice.join("#rust").await;
    alice.send("/who").await;
    let lines = alice.lines_until(|l| l.contains("(you)")).await;
    assert!(lines.iter().any(|l| l.contains("1 online in #rust:")), "{lines:#?}");
    alice.send("/who #lobby").await;
    let header = alice.expect_line(|l| l.contains("online in")).await;
    assert!(header.contains("2 online in #lobby:"), "{header}");
    alice.send("/who #nowhere").await;
    alice.expect_line(|l| l.contains("no such room")).await;
}

#[tokio::test]
async fn room_names_ignore_case_and_lookalikes_and_bad_ones_are_refused() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#Rust").await;
    // Cyrillic ѕ for s, and capitals: the same room.
    bob.join("#RU\u{0455}T").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    bob.send("/join #no.dots").await;
    let refusal = bob.expect_line(|l| l.contains("Sorry")).await;
    assert!(refusal.contains("room name"), "{refusal}");
}

#[tokio::test]
async fn a_rename_and_a_departure_reach_each_user_once_across_shared_rooms() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    for room in ["#a", "#b", "#c"] {
        alice.join(room).await;
        bob.join(room).await;
    }
    bob.send("/nick robert").await;
    bob.expect_line(|l| l.contains("You are now known as robert")).await;
    let mut carol = Client::named(server.addr, "carol").await;
    bob.send("/quit bye").await;
    let seen = alice.lines_until(|l| l.contains("robert left")).await;
    let seen_later = barrier(&mut carol, &mut alice).await;
    let all: Vec<&String> = seen.iter().chain(&seen_later).collect();
    let renames = all.iter().filter(|l| l.contains("is now known as robert")).count();
    let leaves = all.iter().filter(|l| l.contains("robert left")).count();
    assert_eq!((renames, leaves), (1, 1), "{all:#?}");
}

#[tokio::test]
async fn alone_is_about_the_current_room() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let _bob = Client::named(server.addr, "bob").await;
    alice.join("#empty").await;
    alice.send("anyone here?").await;
    alice.expect_line(|l| l.contains("alone")).await;
}

#[tokio::test]
async fn room_limits_are_refused_with_a_reason() {
    let server = Server::start(&["--max-rooms", "3", "--rooms-per-user", "2"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#one").await;
    alice.send("/join #two").await;
    let refusal = alice.expect_line(|l| l.contains("Sorry")).await;
    assert!(refusal.contains("2 rooms already"), "{refusal}");
    bob.join("#two").await;
    bob.send("/part #two").await;
    bob.expect_line(|l| l.contains("You left #two")).await;
    bob.join("#three").await;
    // #lobby never counts: #one, #three and #four are the three rooms allowed.
    let mut carol = Client::named(server.addr, "carol").await;
    carol.join("#four").await;
    let mut dave = Client::named(server.addr, "dave").await;
    dave.send("/join #five").await;
    let refusal = dave.expect_line(|l| l.contains("Sorry")).await;
    assert!(refusal.contains("3 rooms already"), "{refusal}");
}

#[tokio::test]
async fn help_lists_the_room_commands() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("/help").await;
    let lines = alice.lines_until(|l| l.contains("//text")).await.join("\n");
    for command in ["/join #ROOM", "/part [#ROOM]", "/rooms", "/who [#ROOM]"] {
        assert!(lines.contains(command), "{command} missing from {lines}");
    }
}

#[tokio::test]
async fn the_console_lists_rooms_and_speaks_in_one_or_all() {
    let mut server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.join("#rust").await;
    server.console_command("/rooms");
    server.console.wait_for("the room list", |l| l.contains("#rust (1 users)"));
    server.console_command("/say #rust rust only");
    let line = strip_ansi(&alice.expect_line(|l| l.contains("rust only")).await);
    assert!(line.contains("server: rust only"), "{line}");
    server.console_command("/say everyone");
    alice.expect_line(|l| l.contains("everyone")).await;
    bob.expect_line(|l| l.contains("everyone")).await;
    // Once each, though alice is in two rooms.
    let after = barrier(&mut bob, &mut alice).await;
    assert!(after.iter().all(|l| !l.contains("everyone")), "{after:#?}");
    let before_barrier = bob.seen.iter().filter(|l| l.contains("rust only")).count();
    assert_eq!(before_barrier, 0, "bob is not in #rust");
}

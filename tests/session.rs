//! A session as PRODUCT.md describes it, over real sockets against the real
//! `chat-server` binary: greeting, naming, messages, notices, commands.

mod support;

use support::{Client, Server, barrier, strip_ansi};

#[tokio::test]
async fn greets_and_asks_for_a_name() {
    let server = Server::start(&[]);
    let mut alice = Client::connect(server.addr).await;
    let prompt = alice.expect_line(|l| l.contains("name")).await;
    assert!(strip_ansi(&prompt).starts_with("***"), "{prompt}");
}

#[tokio::test]
async fn message_reaches_others_with_theme_and_name_but_not_the_sender() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    alice.send("hello bob").await;
    let line = bob.expect_line(|l| l.contains("hello bob")).await;
    let plain = strip_ansi(&line);
    assert!(plain.ends_with("alice: hello bob"), "{plain}");
    let emoji = plain.split(' ').next().expect("theme emoji first");
    assert!(!emoji.is_empty() && !emoji.is_ascii(), "theme emoji in {plain:?}");
    assert!(line.starts_with("\x1b[38;5;"), "coloured with the theme: {line:?}");
    // No echo: alice sees bob's reply with nothing of her own before it.
    let before = barrier(&mut bob, &mut alice).await;
    assert!(before.iter().all(|l| !l.contains("hello bob")), "echoed: {before:?}");
}

#[tokio::test]
async fn lines_end_in_crlf_and_crlf_input_is_accepted() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send_raw(b"windows style\r\nunix style\n").await;
    for expected in ["windows style", "unix style"] {
        loop {
            let raw = bob.read_raw_line().await.expect("line");
            assert!(raw.ends_with(b"\r\n"), "CRLF ending: {raw:?}");
            let text = String::from_utf8_lossy(&raw);
            if text.contains("style") {
                assert!(strip_ansi(text.trim_end()).ends_with(expected), "{text:?}");
                assert_eq!(text.matches('\r').count(), 1, "no stray CR: {text:?}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_lonely_speaker_is_told_they_are_alone() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("anyone?").await;
    alice.expect_line(|l| l.contains("alone")).await;
}

#[tokio::test]
async fn leaving_is_announced_and_logged_with_the_peer_address() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let bob = Client::named(server.addr, "bob").await;
    let bob_addr = bob.local_addr();
    drop(bob);
    alice.expect_line(|l| l.contains("bob left")).await;
    let log =
        server.log.wait_for("disconnect log", |l| l.contains("disconnected") && l.contains("bob"));
    assert!(log.contains(&bob_addr.to_string()), "peer address in {log:?}");

    let mut carol = Client::named(server.addr, "carol").await;
    carol.send("/quit off to lunch").await;
    alice.expect_line(|l| l.contains("carol left (off to lunch)")).await;
    let goodbye = carol.until_closed().await;
    assert!(goodbye.iter().any(|l| l.contains("Goodbye")), "{goodbye:?}");
}

#[tokio::test]
async fn taken_names_are_refused_ignoring_case_and_lookalikes() {
    let server = Server::start(&[]);
    let _alice = Client::named(server.addr, "alice").await;
    let mut other = Client::connect(server.addr).await;
    other.expect_line(|l| l.contains("name")).await;
    for attempt in ["ALICE", "\u{0430}lice"] {
        other.send(attempt).await;
        let reason = other.expect_line(|l| l.contains("Sorry")).await;
        assert!(reason.contains("taken"), "{reason}");
        other.expect_line(|l| l.contains("name")).await;
    }
    other.send("alicia").await;
    other.expect_line(|l| l.contains("Welcome, alicia")).await;
}

#[tokio::test]
async fn reserved_and_malformed_names_get_a_reason_and_the_prompt_again() {
    let server = Server::start(&[]);
    let mut user = Client::connect(server.addr).await;
    user.expect_line(|l| l.contains("name")).await;
    for (attempt, reason) in [
        ("server", "reserved"),
        ("Admin", "reserved"),
        ("two words", "spaces"),
        (&"x".repeat(33)[..], "at most 32"),
    ] {
        user.send(attempt).await;
        let line = user.expect_line(|l| l.contains("Sorry")).await;
        assert!(line.contains(reason), "{attempt}: {line}");
        user.expect_line(|l| l.contains("name")).await;
    }
}

#[tokio::test]
async fn an_empty_name_gets_a_guest_name() {
    let server = Server::start(&[]);
    let mut user = Client::connect(server.addr).await;
    user.expect_line(|l| l.contains("name")).await;
    user.send("").await;
    let welcome = user.expect_line(|l| l.contains("Welcome,")).await;
    let name = strip_ansi(&welcome);
    assert!(name.contains("Welcome, guest-"), "{name}");
}

#[tokio::test]
async fn newcomer_sees_who_is_online_and_others_see_the_join() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::connect(server.addr).await;
    bob.name_as("bob").await;
    bob.expect_line(|l| l.contains("Online:") && l.contains("alice")).await;
    alice.expect_line(|l| l.contains("bob joined")).await;
}

#[tokio::test]
async fn themes_are_unique_while_the_pool_lasts() {
    let server = Server::start(&[]);
    let mut themes = std::collections::HashSet::new();
    let mut users = Vec::new();
    for i in 0..16 {
        let mut user = Client::connect(server.addr).await;
        user.expect_line(|l| l.contains("name")).await;
        user.send(&format!("user{i}")).await;
        let welcome = strip_ansi(&user.expect_line(|l| l.contains("Welcome,")).await);
        let theme = welcome.split("You are ").nth(1).expect("theme in welcome").to_owned();
        assert!(themes.insert(theme.clone()), "theme {theme} handed out twice");
        users.push(user);
    }
}

#[tokio::test]
async fn history_is_replayed_to_newcomers_in_order() {
    let server = Server::start(&["--history", "2"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    for text in ["first", "second", "third"] {
        alice.send(text).await;
        bob.expect_line(|l| l.contains(text)).await;
    }
    let mut carol = Client::connect(server.addr).await;
    carol.expect_line(|l| l.contains("name")).await;
    carol.send("carol").await;
    carol.expect_line(|l| l.contains("Recent messages")).await;
    let replay = [carol.next_line().await, carol.next_line().await];
    let replay: Vec<String> = replay.into_iter().map(|l| strip_ansi(&l.expect("line"))).collect();
    assert!(
        replay[0].ends_with("alice: second") && replay[1].ends_with("alice: third"),
        "{replay:?}"
    );
    assert!(!carol.seen.iter().any(|l| l.contains("first")), "{:?}", carol.seen);
}

#[tokio::test]
async fn help_lists_every_command() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    alice.send("/help").await;
    let help = alice.lines_until(|l| l.contains("//")).await.join("\n");
    for command in ["/help", "/who", "/nick", "/me", "/msg", "/color", "/quit"] {
        assert!(help.contains(command), "{command} missing from {help}");
    }
}

#[tokio::test]
async fn who_lists_names_with_themes() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let _bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    alice.send("/who").await;
    alice.expect_line(|l| l.contains("2 online")).await;
    let entries =
        [alice.next_line().await.expect("entry"), alice.next_line().await.expect("entry")];
    assert!(entries[0].contains("alice") && entries[0].contains("(you)"), "{entries:?}");
    assert!(entries[1].contains("bob") && !entries[1].is_ascii(), "theme emoji: {entries:?}");
}

#[tokio::test]
async fn nick_renames_and_tells_everyone() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/nick alice").await;
    bob.expect_line(|l| l.contains("taken")).await;
    bob.send("/nick robert").await;
    bob.expect_line(|l| l.contains("now known as robert")).await;
    alice.expect_line(|l| l.contains("bob is now known as robert")).await;
    bob.send("hi").await;
    let line = strip_ansi(&alice.expect_line(|l| l.contains(": hi")).await);
    assert!(line.ends_with("robert: hi"), "{line}");
    // The old name is free again.
    let _new_bob = Client::named(server.addr, "bob").await;
}

#[tokio::test]
async fn me_sends_an_action() {
    let server = Server::start(&[]);
    let alice = &mut Client::named(server.addr, "alice").await;
    let bob = &mut Client::named(server.addr, "bob").await;
    alice.send("/me waves").await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("waves")).await);
    assert!(line.ends_with("* alice waves"), "{line}");
}

#[tokio::test]
async fn private_messages_reach_only_their_recipient() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let mut carol = Client::named(server.addr, "carol").await;
    alice.send("/msg BOB the cake is a lie").await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("cake")).await);
    assert!(line.contains("alice (private): the cake is a lie"), "{line}");
    alice.expect_line(|l| l.contains("-> bob: the cake is a lie")).await;
    let carol_saw = barrier(&mut alice, &mut carol).await;
    assert!(carol_saw.iter().all(|l| !l.contains("cake")), "leaked: {carol_saw:?}");
    alice.send("/msg nobody hello").await;
    alice.expect_line(|l| l.contains("Not delivered")).await;
}

#[tokio::test]
async fn color_off_removes_every_escape_byte_for_that_connection() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/color off").await;
    bob.expect_line(|l| l.contains("Colour is off")).await;
    alice.send("/me is colourful").await;
    alice.send("plain please").await;
    bob.expect_line(|l| l.contains("plain please")).await;
    bob.send("/who").await;
    bob.expect_line(|l| l.contains("bob (")).await;
    let after: Vec<&String> =
        bob.seen.iter().skip_while(|l| !l.contains("Colour is off")).collect();
    assert!(after.iter().all(|l| !l.contains('\x1b')), "ESC after /color off: {after:?}");
}

#[tokio::test]
async fn server_no_color_sends_no_escape_at_all() {
    let server = Server::start(&["--no-color"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send("\x1b[31mhello").await;
    bob.expect_line(|l| l.contains("hello")).await;
    bob.send("/help").await;
    bob.expect_line(|l| l.contains("//")).await;
    assert!(bob.seen.iter().all(|l| !l.contains('\x1b')), "{:?}", bob.seen);
}

#[tokio::test]
async fn unknown_commands_get_a_hint_and_double_slash_sends_a_slash() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send("/dance").await;
    let hint = alice.expect_line(|l| l.contains("Unknown command")).await;
    assert!(hint.contains("/help"), "{hint}");
    alice.send("//shrug").await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("shrug")).await);
    assert!(line.ends_with("alice: /shrug"), "{line}");
    assert!(!bob.seen.iter().any(|l| l.contains("dance")), "{:?}", bob.seen);
}

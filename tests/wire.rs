//! The wire protocol as netcat sees it: what the server does with hostile or
//! malformed bytes, over real sockets against the real binary.

mod support;

use support::{Client, Server, strip_ansi};

/// The bytes of the received line, minus the server's own colour codes.
fn content_bytes(line: &str) -> Vec<u8> {
    strip_ansi(line).into_bytes()
}

#[tokio::test]
async fn escape_sequences_controls_and_bidi_never_reach_others() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice
        .send_raw(
            "x\x1b[2J\x1b]0;title\x07\x08\x00\x7f\u{9b}31m\u{202E}gnp.exe\u{2066}\u{200B}\u{2028}\u{FEFF}end\n"
                .as_bytes(),
        )
        .await;
    let line = bob.expect_line(|l| l.contains("end")).await;
    // The only ESC bytes are the server's SGR colour at the start and the reset at the end.
    let inner = line
        .strip_prefix("\x1b[")
        .and_then(|rest| rest.split_once('m'))
        .map(|(_, rest)| rest.strip_suffix("\x1b[0m").expect("reset at the end"))
        .expect("coloured line");
    assert!(!inner.contains('\x1b'), "{inner:?}");
    for c in inner.chars() {
        assert!(!c.is_control(), "control {c:?} in {inner:?}");
        assert!(
            !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{2028}' | '\u{FEFF}'),
            "{c:?}"
        );
    }
    assert!(inner.ends_with("alice: x[2J]0;title31mgnp.exeend"), "{inner:?}");
}

#[tokio::test]
async fn a_message_cannot_fake_a_second_line() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send_raw(b"innocent\r*** server: you have been banned\n").await;
    let line = strip_ansi(&bob.expect_line(|l| l.contains("innocent")).await);
    assert!(line.contains("alice: innocent*** server"), "one line, attributed to alice: {line}");
}

#[tokio::test]
async fn invalid_utf8_is_replaced_and_the_connection_stays_up() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    // Each invalid sequence becomes one U+FFFD and nothing around it is
    // lost: a lone Latin-1 byte, a truncated three-byte sequence, a stray
    // continuation byte, next to valid two- and four-byte characters.
    // (`\xff\xfe ` is a telnet IAC DONT, removed before decoding.)
    let sent: [(&[u8], &str); 2] = [
        (b"caf\xe9 \xff\xfe ok\n", "caf\u{FFFD} ok"),
        (
            b"na\xc3\xafve \xe2\x82 \xf0\x9f\xa6\x8a\x80 end\n",
            "na\u{EF}ve \u{FFFD} \u{1F98A}\u{FFFD} end",
        ),
    ];
    for (bytes, expected) in sent {
        alice.send_raw(bytes).await;
        let raw = loop {
            let raw = bob.read_raw_line().await.expect("bob still connected");
            if String::from_utf8_lossy(&raw).contains("alice: ") {
                break raw;
            }
        };
        // The bytes as sent, so that the test's own lossy reading cannot
        // stand in for the server's.
        let line = std::str::from_utf8(&raw).expect("the server sends valid UTF-8");
        let plain = strip_ansi(line.trim_end_matches("\r\n"));
        assert!(plain.ends_with(&format!("alice: {expected}")), "{plain:?} for {bytes:?}");
        let text = plain.split("alice: ").nth(1).expect("attributed to alice");
        assert_eq!(text, expected, "exactly the text, the invalid bytes replaced");
    }
    alice.send("still here").await;
    bob.expect_line(|l| l.contains("still here")).await;
}

#[tokio::test]
async fn telnet_negotiation_is_removed_from_names_and_text() {
    let server = Server::start(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Client::connect(server.addr).await;
    alice.expect_line(|l| l.contains("name")).await;
    // IAC DO ECHO, IAC WILL NAWS + subnegotiation, inside the name and the text.
    alice.send_raw(b"\xff\xfd\x01ali\xff\xfb\x1fce\r\n").await;
    alice.expect_line(|l| l.contains("Welcome, alice")).await;
    alice.send_raw(b"hel\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0lo\xff\xf1\r\n").await;
    let line = bob.expect_line(|l| l.contains("alice:")).await;
    assert_eq!(
        content_bytes(&line).split(|&b| b == b' ').next_back(),
        Some(&b"hello"[..]),
        "{line:?}"
    );
}

#[tokio::test]
async fn an_8_mib_line_without_newline_is_discarded_and_the_next_line_works() {
    let server = Server::start(&[]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..128 {
        alice.send_raw(&chunk).await;
    }
    alice.send_raw(b"\nafter the flood\n").await;
    let notice = alice.expect_line(|l| l.contains("discarded")).await;
    assert!(notice.contains("8388608 bytes") && notice.contains("4096"), "{notice}");
    bob.expect_line(|l| l.contains("after the flood")).await;
    assert!(bob.seen.iter().all(|l| !l.contains("AAAA")), "overlong line leaked");
}

#[tokio::test]
async fn max_line_flag_sets_the_limit() {
    let server = Server::start(&["--max-line", "100"]);
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.send(&"b".repeat(100)).await;
    bob.expect_line(|l| l.contains(&"b".repeat(100))).await;
    alice.send(&"c".repeat(101)).await;
    alice.expect_line(|l| l.contains("discarded")).await;
}

#[tokio::test]
async fn an_http_request_gets_one_plain_line_and_is_closed() {
    let server = Server::start(&[]);
    let mut browser = Client::connect(server.addr).await;
    browser.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let lines = browser.until_closed().await;
    let answer: Vec<&String> = lines.iter().filter(|l| !l.contains("***")).collect();
    assert_eq!(answer.len(), 1, "{lines:?}");
    assert!(answer[0].contains("chat server") && !answer[0].contains('\x1b'), "{answer:?}");
}

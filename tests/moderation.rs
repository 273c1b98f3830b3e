//! Moderation end to end: ranks, mutes, bans by name and address, and the
//! control socket. Real binary, real sockets.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Client, Server, barrier, register, strip_ansi};

/// A client that registers `name` and stays logged in.
async fn registered(addr: std::net::SocketAddr, name: &str) -> Client {
    let mut client = Client::named(addr, name).await;
    let answer = register(&mut client, "correct-horse").await;
    assert!(answer.contains("yours now"), "{answer}");
    client
}

#[tokio::test]
async fn a_guest_is_refused_every_moderation_command() {
    let server = Server::start(&["--db", "none"]);
    let mut guest = Client::named(server.addr, "guest1").await;
    let _bob = Client::named(server.addr, "bob").await;
    guest.join("#den").await;
    for command in [
        "/topic hello",
        "/kick bob",
        "/ban bob",
        "/ban 10.0.0.0/8",
        "/unban bob",
        "/mute bob",
        "/unmute bob",
        "/bans",
        "/op bob",
        "/deop bob",
    ] {
        guest.send(command).await;
        let answer = strip_ansi(&guest.expect_line(|l| l.contains("Sorry")).await);
        assert!(answer.contains("needs") && answer.contains("a guest"), "{command}: {answer}");
    }
    guest.send("/help").await;
    let help = guest.lines_until(|l| l.contains("//text")).await.join("\n");
    assert!(help.contains("/topic") && !help.contains("/ban") && !help.contains("/op "), "{help}");
}

#[tokio::test]
async fn an_owner_mutes_and_unmutes_and_a_muted_line_reaches_nobody() {
    let server = Server::start(&["--db", "none"]);
    let mut owner = registered(server.addr, "owen").await;
    owner.join("#den").await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#den").await;
    owner.send("/mute bob 1h").await;
    let done = strip_ansi(&owner.expect_line(|l| l.contains("muted")).await);
    assert!(done.contains("bob is muted in #den by owen until 20"), "{done}");
    bob.expect_line(|l| l.contains("bob is muted in #den")).await;
    bob.send("can you hear me").await;
    let refusal = strip_ansi(&bob.expect_line(|l| l.contains("not sent")).await);
    assert!(refusal.contains("You are muted in #den until 20"), "{refusal}");
    owner.send("/unmute bob").await;
    bob.expect_line(|l| l.contains("bob may speak again in #den")).await;
    bob.send("back again").await;
    let heard = owner.lines_until(|l| l.contains("back again")).await;
    assert!(!heard.iter().any(|l| l.contains("can you hear me")), "{heard:?}");
    // Nobody acts on an equal or higher rank: bob, a guest, cannot mute the owner.
    bob.send("/mute owen").await;
    bob.expect_line(|l| l.contains("Sorry") && l.contains("needs")).await;
    barrier(&mut bob, &mut owner).await;
}

#[tokio::test]
async fn an_address_ban_refuses_at_connect_with_one_line_and_the_control_socket_kicks() {
    let dir = std::env::temp_dir().join(format!("chat-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("control.sock");
    let path_text = path.to_str().expect("a path").to_owned();
    let server = Server::start(&["--db", "none", "--control", &path_text]);
    server.log.wait_for("control socket", |l| l.contains("control socket listening"));
    let mode = std::fs::metadata(&path).expect("the socket").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");

    let mut alice = Client::named(server.addr, "alice").await;
    let mut mallory = Client::connect_from(server.addr, "127.0.0.2".parse().expect("ip")).await;
    mallory.name_as("mallory").await;

    let ask = |line: &str| {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        stream.set_read_timeout(Some(support::WAIT)).expect("timeout");
        writeln!(stream, "{line}").expect("write");
        let mut answer = String::new();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0 || line.trim().is_empty() {
                break;
            }
            answer.push_str(&line);
        }
        answer
    };
    let answer = ask("/ban 127.0.0.2/32 flooding");
    assert!(
        answer.contains("127.0.0.2 is banned from the server by server until lifted"),
        "{answer}"
    );
    let gone = mallory.until_closed().await;
    assert!(gone.iter().any(|l| l.contains("flooding")), "{gone:?}");
    let mut again = Client::connect_from(server.addr, "127.0.0.2".parse().expect("ip")).await;
    let refused = again.until_closed().await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("banned") && refused[0].contains("flooding"), "{refused:?}");

    let _bob = Client::named(server.addr, "bob").await;
    let answer = ask("/kick bob enough");
    assert!(answer.contains("bob was kicked from the server by server"), "{answer}");
    alice.expect_line(|l| l.contains("bob was kicked (enough)")).await;
    let _ = std::fs::remove_dir_all(&dir);
}

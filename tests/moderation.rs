//! Moderation end to end: ranks, mutes, bans by name and address, and the
//! control socket. Real binary, real sockets.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::{Client, Server, TempDir, barrier, log_in, register, registered, strip_ansi};

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

// ---------------------------------------------------------------------------
// Every command, by every rank that may use it and by one rank too low.

const PASSWORD: &str = "correct-horse";

/// Everyone a moderation test needs, each in place: `olive` is the server
/// operator (`--operator olive`), `owen` owns `#den` (he opened it),
/// `olga` operates it (owen made her one), `reggie` is registered and
/// `bob` a guest; all five are in `#den`, which is everyone's current room.
struct Cast {
    server: Server,
    olive: Client,
    owen: Client,
    olga: Client,
    reggie: Client,
    bob: Client,
}

impl Cast {
    async fn start(args: &[&str]) -> Cast {
        let mut all = vec!["--operator", "olive"];
        all.extend_from_slice(args);
        let server = Server::start(&all);
        let mut owen = registered(server.addr, "owen").await;
        owen.join("#den").await;
        let mut olive = registered(server.addr, "olive").await;
        let mut olga = registered(server.addr, "olga").await;
        let mut reggie = registered(server.addr, "reggie").await;
        let mut bob = Client::named(server.addr, "bob").await;
        for client in [&mut olive, &mut olga, &mut reggie, &mut bob] {
            client.join("#den").await;
        }
        done(&mut owen, "/op olga", "olga is now an operator of #den (owen)").await;
        olga.expect_line(|l| l.contains("olga is now an operator of #den")).await;
        Cast { server, olive, owen, olga, reggie, bob }
    }
}

/// Sends `command` and returns the refusal it gets, without colour.
async fn refused(client: &mut Client, command: &str) -> String {
    client.send(command).await;
    strip_ansi(&client.expect_line(|l| l.contains("Sorry")).await)
}

/// Sends `command` and waits for the answer that contains `answer`.
async fn done(client: &mut Client, command: &str, answer: &str) -> String {
    client.send(command).await;
    let line = strip_ansi(&client.expect_line(|l| strip_ansi(l).contains(answer)).await);
    assert!(!line.contains("Sorry"), "{command}: {line}");
    line
}

/// Reads until `client` sees a line containing `text`; returns it without colour.
async fn sees(client: &mut Client, text: &str) -> String {
    strip_ansi(&client.expect_line(|l| strip_ansi(l).contains(text)).await)
}

/// One command on the control socket at `path`, and its answer (up to the empty line).
fn control(path: &std::path::Path, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
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
}

/// Every room command by `by` on the guest `bob`, in `#den`, with what
/// `bob` (the target) and `watcher` see.
async fn room_commands(actor: &mut Client, by: &str, bob: &mut Client, watcher: &mut Client) {
    // /topic: the room sees it.
    done(actor, &format!("/topic crabs by {by}"), &format!("{by} set the topic of #den")).await;
    sees(bob, &format!("{by} set the topic of #den: crabs by {by}")).await;

    // /mute: the target is told until when, and nothing it says gets through.
    done(actor, "/mute bob 30m", &format!("bob is muted in #den by {by} until 20")).await;
    sees(bob, &format!("bob is muted in #den by {by} until 20")).await;
    bob.send(&format!("muted line {by}")).await;
    let refusal = sees(bob, "not sent").await;
    assert!(refusal.contains("You are muted in #den until 20"), "{refusal}");
    // /unmute: its next line reaches the room, and the muted one never did.
    done(actor, "/unmute bob", &format!("bob may speak again in #den ({by})")).await;
    sees(bob, &format!("bob may speak again in #den ({by})")).await;
    bob.send(&format!("free line {by}")).await;
    let heard = watcher.lines_until(|l| l.contains(&format!("free line {by}"))).await;
    assert!(!heard.iter().any(|l| l.contains("muted line")), "{heard:?}");

    // /ban with a duration and a reason: out of the room, and kept out.
    let told = format!("bob is banned from #den by {by} until 20");
    done(actor, &format!("/ban bob 1h spam from {by}"), &told).await;
    let seen = sees(bob, &told).await;
    assert!(seen.ends_with(&format!(": spam from {by}")), "{seen}");
    sees(bob, "You are now in #lobby").await;
    let again = refused(bob, "/join #den").await;
    assert!(
        again.contains("you are banned from #den until 20")
            && again.contains(&format!("(spam from {by})")),
        "{again}"
    );
    // /bans: who set it, and when it ends.
    actor.send("/bans").await;
    let bans = actor.lines_until(|l| l.contains(&format!("  bob by {by}"))).await;
    let listed = strip_ansi(bans.last().expect("a line"));
    assert!(
        listed.contains("until 20") && listed.contains(&format!(": spam from {by}")),
        "{listed}"
    );
    assert!(bans.iter().any(|l| strip_ansi(l).contains("1 banned from #den:")), "{bans:?}");
    // /unban: back in.
    done(actor, "/unban bob", &format!("bob is no longer banned from #den ({by})")).await;
    bob.join("#den").await;

    // /kick: out of the room with the reason; free to come back.
    let told = format!("bob was kicked from #den by {by}: go away {by}");
    done(actor, &format!("/kick bob go away {by}"), &told).await;
    sees(bob, &told).await;
    sees(bob, "You are now in #lobby").await;
    bob.join("#den").await;
}

#[tokio::test]
async fn each_rank_may_use_its_room_commands_and_one_rank_lower_is_refused() {
    let Cast { server: _server, mut olive, mut owen, mut olga, mut reggie, mut bob } =
        Cast::start(&[]).await;

    // A room operator, the owner and a server operator may use every room command.
    room_commands(&mut olga, "olga", &mut bob, &mut reggie).await;
    room_commands(&mut owen, "owen", &mut bob, &mut reggie).await;
    room_commands(&mut olive, "olive", &mut bob, &mut reggie).await;

    // One rank lower, a registered user, may use none of them.
    for command in [
        "/topic mine now",
        "/kick bob",
        "/ban bob 1h",
        "/unban bob",
        "/mute bob",
        "/unmute bob",
        "/bans",
    ] {
        let answer = refused(&mut reggie, command).await;
        assert!(
            answer.contains("needs a room operator in #den; you are a registered user"),
            "{command}: {answer}"
        );
    }
    // /topic alone, though, is anyone's.
    done(&mut reggie, "/topic", "Topic of #den: crabs by olive (set by olive)").await;

    // /op and /deop: the owner and a server operator; a room operator is refused.
    for (actor, by) in [(&mut owen, "owen"), (&mut olive, "olive")] {
        let opped = format!("reggie is now an operator of #den ({by})");
        done(actor, "/op reggie", &opped).await;
        sees(&mut reggie, &opped).await;
        let deopped = format!("reggie is no longer an operator of #den ({by})");
        done(actor, "/deop reggie", &deopped).await;
        sees(&mut reggie, &deopped).await;
    }
    for command in ["/op reggie", "/deop reggie"] {
        let answer = refused(&mut olga, command).await;
        assert!(
            answer.contains("needs the room's owner in #den; you are a room operator"),
            "{command}: {answer}"
        );
    }
    // Only registered names can be made operators.
    let answer = refused(&mut owen, "/op bob").await;
    assert!(answer.contains("bob is not registered"), "{answer}");
}

#[tokio::test]
async fn nobody_acts_on_an_equal_or_higher_rank_and_help_shows_what_a_rank_may_use() {
    let dir = TempDir::new("equal-rank");
    let path = dir.path.join("control.sock");
    let path_text = path.to_str().expect("a path").to_owned();
    let Cast { server, mut olive, mut owen, mut olga, mut reggie, bob: _bob } =
        Cast::start(&["--control", &path_text]).await;
    server.log.wait_for("control socket", |l| l.contains("control socket listening"));

    done(&mut owen, "/op reggie", "reggie is now an operator of #den (owen)").await;
    // (actor, command, the rank the refusal names)
    let table = [
        ("olga", "/kick owen", "owen is the room's owner"),
        ("olga", "/ban reggie", "reggie is a room operator"),
        ("olga", "/mute olive", "olive is a server operator"),
        ("owen", "/ban olive", "olive is a server operator"),
        ("owen", "/deop owen", "owen is the room's owner"),
        ("olive", "/mute olive", "olive is a server operator"),
    ];
    for (who, command, rank) in table {
        let actor = match who {
            "olga" => &mut olga,
            "owen" => &mut owen,
            _ => &mut olive,
        };
        let answer = refused(actor, command).await;
        assert!(
            answer.contains(&format!("{rank}: nobody acts on an equal or higher rank")),
            "{who} {command}: {answer}"
        );
    }
    // Nor does the control socket act on a server operator.
    let answer = control(&path, "/kick olive");
    assert!(answer.contains("olive is a server operator: nobody acts"), "{answer}");
    done(&mut owen, "/deop reggie", "reggie is no longer an operator of #den (owen)").await;

    // /help lists what the rank may use in the current room.
    let help = |rank: &str, help: &[String]| {
        let text = help.join("\n");
        let has = |usage: &str| text.contains(&format!("  {usage} "));
        match rank {
            "registered" => assert!(has("/topic") && !has("/kick") && !has("/op"), "{text}"),
            "room operator" => {
                for usage in ["/topic", "/kick", "/ban", "/unban", "/mute", "/unmute", "/bans"] {
                    assert!(has(usage), "{rank} lacks {usage}: {text}");
                }
                assert!(!has("/op") && !has("/deop"), "{text}");
            }
            _ => assert!(has("/kick") && has("/op") && has("/deop"), "{rank}: {text}"),
        }
        // The console's own commands, for server operators only.
        let console = has("/say") && has("/stats");
        assert_eq!(console, rank == "server operator", "{rank}: {text}");
        assert!(console || !has("/say") && !has("/stats"), "{rank}: {text}");
    };
    for (client, rank) in [
        (&mut reggie, "registered"),
        (&mut olga, "room operator"),
        (&mut owen, "owner"),
        (&mut olive, "server operator"),
    ] {
        client.send("/help").await;
        let lines = client.lines_until(|l| l.contains("//text")).await;
        help(rank, &lines);
    }
    // In #lobby the owner of #den is a registered user like any other.
    owen.join("#lobby").await;
    owen.send("/help").await;
    help("registered", &owen.lines_until(|l| l.contains("//text")).await);
}

#[tokio::test]
async fn the_topic_shows_on_join_in_rooms_and_in_who() {
    let server = Server::start(&[]);
    let mut owen = registered(server.addr, "owen").await;
    owen.join("#den").await;
    done(&mut owen, "/topic all about crabs", "owen set the topic of #den: all about crabs").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let joined = bob.join("#den").await;
    assert!(
        joined.iter().any(|l| l.contains("Topic of #den: all about crabs (set by owen)")),
        "{joined:?}"
    );
    bob.send("/rooms").await;
    let rooms = bob.lines_until(|l| l.contains("#lobby")).await;
    assert!(
        rooms.iter().any(|l| strip_ansi(l).contains("#den (2) (yours, current): all about crabs")),
        "{rooms:?}"
    );
    bob.send("/who").await;
    let who = bob.lines_until(|l| l.contains("(you)")).await;
    assert!(
        who.iter().any(|l| strip_ansi(l).contains("Topic of #den: all about crabs (set by owen)")),
        "{who:?}"
    );
    // `-` clears it, and the room is told.
    done(&mut owen, "/topic -", "owen cleared the topic of #den").await;
    sees(&mut bob, "owen cleared the topic of #den").await;
    done(&mut bob, "/topic", "#den has no topic.").await;
}

// ---------------------------------------------------------------------------
// Server operators: from a client, as from the console.

#[tokio::test]
async fn a_server_operator_logged_in_from_a_client_bans_mutes_and_kicks_server_wide() {
    let server = Server::start(&["--operator", "olive", "--metrics", "127.0.0.1:0"]);
    // The name alone is nothing: a guest under it has no powers.
    let mut guest = Client::named(server.addr, "olive").await;
    let answer = refused(&mut guest, "/kick anyone").await;
    assert!(answer.contains("needs a server operator here; you are a guest"), "{answer}");
    assert!(register(&mut guest, PASSWORD).await.contains("yours now"));
    guest.send("/quit").await;
    guest.until_closed().await;
    // Logged in with the password, it has the console's powers.
    let (mut olive, _) = log_in(server.addr, "olive", PASSWORD).await;

    // One rank too low: the owner of #den, in #lobby and in #den.
    let mut owen = registered(server.addr, "owen").await;
    for command in ["/ban mallory", "/mute bob", "/kick bob"] {
        let answer = refused(&mut owen, command).await;
        assert!(
            answer.contains("needs a server operator here; you are a registered user"),
            "{command}: {answer}"
        );
    }
    owen.join("#den").await;
    let answer = refused(&mut owen, "/ban 127.0.0.3").await;
    assert!(
        answer.contains("needs a server operator in #den; you are the room's owner"),
        "{answer}"
    );

    // /ban NAME: off the server at once, with the reason; then refused at
    // the name prompt, look-alikes too.
    let mut mallory = Client::named(server.addr, "mallory").await;
    done(
        &mut olive,
        "/ban mallory 1h trolling",
        "mallory is banned from the server by olive until 20",
    )
    .await;
    let gone = mallory.until_closed().await;
    assert!(
        gone.iter().any(|l| strip_ansi(l).contains("banned until 20") && l.contains("trolling")),
        "{gone:?}"
    );
    for typed in ["mallory", "MАLLORY", "ma11ory"] {
        let mut again = Client::connect(server.addr).await;
        again.expect_line(|l| l.contains("name")).await;
        again.send(typed).await;
        let answer = strip_ansi(&again.expect_line(|l| l.contains("Sorry")).await);
        assert!(
            answer.contains("that name is banned from this server until 20")
                && answer.contains("(trolling)"),
            "{typed}: {answer}"
        );
    }

    // /ban CIDR: refused at connect with one line.
    done(&mut olive, "/ban 127.0.0.3/32 flooding", "127.0.0.3 is banned from the server by olive")
        .await;
    let mut flooder = Client::connect_from(server.addr, "127.0.0.3".parse().expect("ip")).await;
    let refused_lines = flooder.until_closed().await;
    assert_eq!(refused_lines.len(), 1, "{refused_lines:?}");
    assert!(refused_lines[0].contains("flooding"), "{refused_lines:?}");

    // /mute NAME in #lobby: everywhere, until lifted.
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#den").await;
    done(&mut olive, "/mute bob", "bob is muted everywhere by olive until lifted").await;
    sees(&mut bob, "bob is muted everywhere by olive until lifted").await;
    bob.send("anyone there").await;
    let refusal = sees(&mut bob, "not sent").await;
    assert!(refusal.contains("You are muted everywhere until lifted"), "{refusal}");
    done(&mut olive, "/unmute bob", "bob may speak again everywhere (olive)").await;
    sees(&mut bob, "bob may speak again everywhere (olive)").await;
    bob.send("heard at last").await;
    let heard = owen.lines_until(|l| l.contains("heard at last")).await;
    assert!(!heard.iter().any(|l| l.contains("anyone there")), "{heard:?}");

    // /kick NAME in #lobby: off the server.
    done(&mut olive, "/kick bob enough", "bob was kicked from the server by olive: enough").await;
    let gone = bob.until_closed().await;
    assert!(
        gone.iter().any(|l| l.contains("You were removed by the operator: enough")),
        "{gone:?}"
    );

    // Counted: 5 actions (ban, address ban, mute, unmute, kick), 5 refusals
    // (the guest's, the owner's four), 1 connection refused for its address.
    let page = support::http_get(server.metrics_addr(), "/metrics");
    assert_eq!(support::metric(&page, "chat_moderation_actions_total"), 5, "{page}");
    assert_eq!(support::metric(&page, "chat_moderation_refused_total"), 5, "{page}");
    assert_eq!(support::metric(&page, "chat_connections_banned_total"), 1, "{page}");

    // The console's other powers: /stats and /say, the server operator's only.
    let answer = refused(&mut owen, "/stats").await;
    assert!(
        answer.contains("/stats needs a server operator; you are the room's owner"),
        "{answer}"
    );
    refused(&mut owen, "/say hello").await;
    olive.send("/stats").await;
    let stats = sees(&mut olive, "uptime").await;
    assert!(stats.contains("moderation actions 5, moderation refused 5"), "{stats}");
    olive.send("/say #den maintenance at noon").await;
    sees(&mut owen, "maintenance at noon").await;
    sees(&mut olive, "said to 1 users").await;

    // Logged: who did what to whom, and who was refused what.
    for what in [
        "mallory is banned from the server by olive",
        "127.0.0.3 is banned from the server by olive",
        "bob is muted everywhere by olive",
        "bob may speak again everywhere (olive)",
        "bob was kicked from the server by olive",
    ] {
        server.log.wait_for(what, |l| l.contains("moderation") && l.contains(what));
    }
    server.log.wait_for("the refusal", |l| {
        l.contains("moderation refused") && l.contains("by=owen") && l.contains("mallory")
    });
}

#[tokio::test]
async fn the_console_stats_count_moderation() {
    let mut server = Server::start(&[]);
    let mut owen = registered(server.addr, "owen").await;
    owen.join("#den").await;
    done(&mut owen, "/topic counted", "owen set the topic of #den").await;
    refused(&mut owen, "/kick owen").await;
    server.console_command("/stats");
    let stats = server.console.wait_for("/stats", |l| l.contains("moderation actions"));
    assert!(
        stats.contains("moderation actions 1, moderation refused 1, banned connections 0"),
        "{stats}"
    );
}

// ---------------------------------------------------------------------------
// Across a restart, and in time.

/// Types `name` at a fresh connection's name prompt: the answer (a welcome or a refusal).
async fn try_name(addr: std::net::SocketAddr, name: &str) -> String {
    let mut client = Client::connect(addr).await;
    client.expect_line(|l| l.contains("name")).await;
    client.send(name).await;
    strip_ansi(&client.expect_line(|l| l.contains("Welcome,") || l.contains("Sorry")).await)
}

#[tokio::test]
async fn a_ban_outlives_a_restart_and_a_short_one_ends_on_time() {
    let dir = TempDir::new("ban-restart");
    let (db, path) = (dir.file("chat.db"), dir.path.join("control.sock"));
    let path_text = path.to_str().expect("a path").to_owned();
    let args = ["--db", &db, "--control", &path_text];
    let mut server = Server::start(&args);
    server.log.wait_for("control socket", |l| l.contains("control socket listening"));

    let answer = control(&path, "/ban mallory 1h spam");
    assert!(answer.contains("mallory is banned from the server by server until 20"), "{answer}");
    let answer = control(&path, "/topic welcome back");
    assert!(answer.contains("server set the topic of #lobby: welcome back"), "{answer}");
    let set = std::time::Instant::now();
    let answer = control(&path, "/ban eve 2s hush");
    assert!(answer.contains("eve is banned from the server by server until 20"), "{answer}");
    let early = try_name(server.addr, "eve").await;
    if set.elapsed() < Duration::from_secs(2) {
        assert!(
            early.contains("that name is banned from this server") && early.contains("(hush)"),
            "{early}"
        );
    }

    server.signal(libc::SIGTERM);
    server.wait_exit(support::WAIT);
    let server = Server::start(&args);
    server.log.wait_for("control socket", |l| l.contains("control socket listening"));

    let answer = try_name(server.addr, "mallory").await;
    assert!(
        answer.contains("that name is banned from this server until 20")
            && answer.contains("(spam)"),
        "{answer}"
    );
    let bans = control(&path, "/bans");
    assert!(bans.contains("\n  mallory by server ") && bans.contains(": spam"), "{bans}");
    let topic = control(&path, "/topic");
    assert!(topic.contains("Topic of #lobby: welcome back (set by server)"), "{topic}");

    // The short ban ends by its stored end: eve is let in once it is over, not before.
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let answer = try_name(server.addr, "eve").await;
        if answer.contains("Welcome, eve") {
            assert!(set.elapsed() >= Duration::from_secs(2), "let in early: {answer}");
            break;
        }
        assert!(answer.contains("(hush)"), "{answer}");
        assert!(std::time::Instant::now() < deadline, "eve still banned: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

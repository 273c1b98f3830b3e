//! The IRC door (`--listen-irc`) against the real `chat-server` over real
//! sockets: registration (CAP, NICK, USER, PASS, SASL PLAIN), each
//! command and error numeric, IRCv3 server-time, echo-message, batch and
//! chathistory, the answers irssi and WeeChat wait for after a JOIN, and
//! IRC users in the same rooms as netcat users, each way.

mod support;

use std::time::{Duration, Instant};

use support::irc::{Irc, base64, command_of, untagged};
use support::{Client, Process, Server, registered_and_gone, strip_ansi};

/// A daemon with a netcat listener and an IRC one, both on free ports.
fn daemon(args: &[&str]) -> Server {
    let mut all = vec!["--listen-irc", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start(&all)
}

#[tokio::test]
async fn registration_welcomes_with_isupport_the_motd_and_the_lobby() {
    let server = daemon(&[]);
    let mut alice = Irc::connect(server.irc_addr()).await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let welcome = alice.until_command("366").await;
    let find = |code: &str| {
        welcome
            .iter()
            .find(|l| command_of(l) == code)
            .unwrap_or_else(|| panic!("{code} in {welcome:#?}"))
    };
    assert!(find("001").starts_with(":chat 001 alice "), "{welcome:#?}");
    for code in ["002", "003", "004", "376"] {
        find(code);
    }
    let isupport = find("005");
    for token in [
        "CASEMAPPING=",
        "CHANTYPES=#",
        "NICKLEN=32",
        "CHANNELLEN=33",
        "TOPICLEN=",
        "NETWORK=",
        "UTF8ONLY",
        "PREFIX=",
        "CHANMODES=",
    ] {
        assert!(isupport.contains(token), "{token} in {isupport}");
    }
    assert!(find("372").contains("alice"), "the MOTD names the theme others see");
    assert_eq!(find("JOIN"), ":alice!alice@chat JOIN #lobby");
    assert!(find("353").ends_with(":alice"), "{welcome:#?}");
    // PING and PONG the client's way.
    alice.send("PING :are-you-there").await;
    assert_eq!(alice.expect_command("PONG").await, ":chat PONG chat :are-you-there");
}

#[tokio::test]
async fn registration_waits_for_cap_end_once_negotiation_started() {
    let server = daemon(&[]);
    let mut alice = Irc::connect(server.irc_addr()).await;
    alice.send("CAP LS 302").await;
    let ls = alice.expect_command("CAP").await;
    for cap in [
        "server-time",
        "message-tags",
        "echo-message",
        "sasl=PLAIN",
        "multi-prefix",
        "batch",
        "draft/chathistory",
    ] {
        assert!(ls.contains(cap), "{cap} offered: {ls}");
    }
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    alice.send("CAP REQ :server-time echo-message").await;
    assert_eq!(alice.expect_command("CAP").await, ":chat CAP alice ACK :server-time echo-message");
    alice.send("CAP REQ :no-such-thing").await;
    assert!(alice.expect_command("CAP").await.contains(" NAK :no-such-thing"));
    let before_end = alice.sync("before-end").await;
    assert!(before_end.iter().all(|l| command_of(l) != "001"), "{before_end:#?}");
    alice.send("CAP LIST").await;
    assert!(alice.expect_command("CAP").await.ends_with("LIST :server-time echo-message"));
    alice.send("CAP END").await;
    alice.expect_command("001").await;
}

#[tokio::test]
async fn error_numerics_say_what_is_wrong() {
    let server = daemon(&[]);
    let _bob = Client::named(server.addr, "bob").await;
    let mut irc = Irc::connect(server.irc_addr()).await;
    irc.send("JOIN #rust").await;
    assert!(irc.expect_command("451").await.contains("JOIN :You have not registered"));
    irc.send("NICK admin").await;
    let refused = irc.expect_command("432").await;
    assert!(refused.starts_with(":chat 432 * admin :"), "{refused}");
    assert!(refused.contains("reserved"), "the reason from the name rules: {refused}");
    irc.send("NICK a!b").await;
    irc.expect_command("432").await;
    irc.send("NICK BOB").await;
    irc.send("USER x 0 * :x").await;
    assert!(irc.expect_command("433").await.contains("BOB :that name is taken"));
    irc.send("NICK carol").await;
    irc.expect_command("001").await;
    irc.expect_command("366").await;
    irc.send("JOIN").await;
    assert_eq!(irc.expect_command("461").await, ":chat 461 carol JOIN :Not enough parameters");
    irc.send("FROBNICATE now").await;
    assert_eq!(irc.expect_command("421").await, ":chat 421 carol FROBNICATE :Unknown command");
    irc.send("JOIN rust").await;
    assert!(irc.expect_command("403").await.contains("rust :No such channel"));
    irc.send("JOIN #no!way").await;
    irc.expect_command("403").await;
    irc.send("PART #elsewhere").await;
    assert!(irc.expect_command("442").await.contains("#elsewhere :You're not on that channel"));
    irc.send("MODE #lobby +b bob").await;
    let not_op = irc.expect_command("482").await;
    assert!(not_op.starts_with(":chat 482 carol #lobby :"), "{not_op}");
    irc.send("TOPIC #lobby :mine now").await;
    irc.expect_command("482").await;
    irc.send("KICK #lobby bob :out").await;
    irc.expect_command("482").await;
    irc.send("PRIVMSG nobody :hello?").await;
    assert_eq!(irc.expect_command("401").await, ":chat 401 carol nobody :No such nick/channel");
    irc.send("WHOIS nobody").await;
    irc.expect_command("401").await;
    irc.expect_command("318").await;
    irc.send("PRIVMSG #elsewhere :hello?").await;
    irc.expect_command("404").await;
    irc.send("USER again 0 * :x").await;
    irc.expect_command("462").await;
    // An overlong line is refused and the next one works.
    irc.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600))).await;
    irc.expect_command("417").await;
    irc.send("PING :still-here").await;
    irc.expect_command("PONG").await;
}

#[tokio::test]
async fn irc_and_netcat_users_share_a_room_each_way() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice joined")).await;

    alice.send("PRIVMSG #lobby :hello from irc").await;
    assert!(
        strip_ansi(&bob.expect_line(|l| l.contains("hello")).await)
            .contains("alice: hello from irc")
    );
    bob.send("hi from netcat").await;
    assert_eq!(
        alice.expect_command("PRIVMSG").await,
        ":bob!bob@chat PRIVMSG #lobby :hi from netcat"
    );

    bob.send("/me waves").await;
    assert_eq!(
        alice.expect_command("PRIVMSG").await,
        ":bob!bob@chat PRIVMSG #lobby :\u{1}ACTION waves\u{1}"
    );
    alice.send("PRIVMSG #lobby :\u{1}ACTION dances\u{1}").await;
    let action = strip_ansi(&bob.expect_line(|l| l.contains("dances")).await);
    assert!(action.contains("alice dances"), "the usual /me rendering: {action}");

    bob.send("/msg alice psst").await;
    assert_eq!(alice.expect_command("PRIVMSG").await, ":bob!bob@chat PRIVMSG alice :psst");
    alice.send("PRIVMSG bob :hush").await;
    assert!(
        strip_ansi(&bob.expect_line(|l| l.contains("hush")).await)
            .contains("alice (private): hush")
    );

    bob.send("/nick robert").await;
    assert_eq!(alice.expect_command("NICK").await, ":bob!bob@chat NICK :robert");
    alice.send("NICK alicia").await;
    assert_eq!(alice.expect_command("NICK").await, ":alice!alice@chat NICK :alicia");
    bob.expect_line(|l| strip_ansi(l).contains("alice is now known as alicia")).await;

    alice.send("JOIN #rust").await;
    alice.expect_command("366").await;
    bob.send("/join #rust").await;
    assert_eq!(alice.expect_command("JOIN").await, ":robert!robert@chat JOIN #rust");
    alice.send("PRIVMSG #rust :in rust").await;
    bob.expect_line(|l| strip_ansi(l).contains("alicia: in rust")).await;
    alice.send("PART #rust").await;
    assert_eq!(alice.expect_command("PART").await, ":alicia!alicia@chat PART #rust");
    bob.expect_line(|l| strip_ansi(l).contains("alicia left #rust")).await;

    bob.send("/who #lobby").await;
    bob.expect_line(|l| strip_ansi(l).contains("alicia")).await;
    bob.send("/quit").await;
    assert_eq!(alice.expect_command("QUIT").await, ":robert!robert@chat QUIT :left");

    alice.send("QUIT :bye now").await;
    let last = alice.client.until_closed().await;
    assert!(last.iter().any(|l| l.starts_with("ERROR :")), "{last:#?}");
}

#[tokio::test]
async fn after_join_mode_bans_who_and_names_get_complete_answers() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#rust").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    alice.send("JOIN #rust").await;
    let joined = alice.until_command("366").await;
    assert_eq!(joined[0], ":alice!alice@chat JOIN #rust");
    let names = joined.iter().find(|l| command_of(l) == "353").expect("names");
    assert!(names.contains("bob") && names.contains("alice"), "{names}");
    // What irssi and WeeChat send after a JOIN.
    alice.send("MODE #rust").await;
    assert_eq!(alice.expect_command("324").await, ":chat 324 alice #rust +nt");
    alice.send("MODE #rust b").await;
    assert_eq!(alice.expect_command("368").await, ":chat 368 alice #rust :End of channel ban list");
    alice.send("WHO #rust").await;
    let who = alice.until_command("315").await;
    let listed: Vec<&String> = who.iter().filter(|l| command_of(l) == "352").collect();
    assert_eq!(listed.len(), 2, "{who:#?}");
    assert!(listed.iter().any(|l| l.contains(" bob H :0 ")), "{who:#?}");
    alice.send("NAMES #rust").await;
    let names = alice.until_command("366").await;
    assert!(names.iter().any(|l| command_of(l) == "353" && l.contains("bob")), "{names:#?}");
    alice.send("MODE alice").await;
    assert_eq!(alice.expect_command("221").await, ":chat 221 alice +i");
    alice.send("WHOIS bob").await;
    let whois = alice.until_command("318").await;
    assert!(whois.iter().any(|l| command_of(l) == "311" && l.contains("bob")), "{whois:#?}");
    assert!(whois.iter().any(|l| command_of(l) == "319" && l.contains("#rust")), "{whois:#?}");
    alice.send("USERHOST bob nobody").await;
    assert_eq!(alice.expect_command("302").await, ":chat 302 alice :bob=+bob@chat");
    alice.send("LIST").await;
    let list = alice.until_command("323").await;
    assert!(list.iter().any(|l| command_of(l) == "322" && l.contains("#rust 2")), "{list:#?}");
    alice.send("AWAY :lunch").await;
    alice.expect_command("306").await;
    alice.send("AWAY").await;
    alice.expect_command("305").await;
    // JOIN 0 leaves every channel.
    alice.send("JOIN 0").await;
    assert_eq!(alice.expect_command("PART").await, ":alice!alice@chat PART #lobby");
    bob.expect_line(|l| strip_ansi(l).contains("alice")).await;
}

#[tokio::test]
async fn sasl_plain_logs_a_registered_name_in_and_wrong_passwords_are_throttled() {
    let server = daemon(&[]);
    registered_and_gone(server.addr, "bob", "correcthorse").await;

    let mut irc = Irc::connect(server.irc_addr()).await;
    irc.send("CAP LS 302").await;
    irc.send("CAP REQ :sasl").await;
    irc.expect(|l| l.contains(" ACK :sasl")).await;
    let attempt = |password: &str| base64(format!("\0bob\0{password}").as_bytes());
    let mut slowest = Duration::ZERO;
    for try_number in 0..4 {
        irc.send("AUTHENTICATE PLAIN").await;
        assert_eq!(irc.expect_command("AUTHENTICATE").await, "AUTHENTICATE +");
        let started = Instant::now();
        irc.send(&format!("AUTHENTICATE {}", attempt("wrong guess"))).await;
        assert!(irc.expect_command("904").await.contains("SASL authentication failed"));
        if try_number == 3 {
            slowest = started.elapsed();
        }
    }
    assert!(slowest >= Duration::from_millis(900), "the fourth guess waited {slowest:?}");
    irc.send("AUTHENTICATE PLAIN").await;
    irc.expect_command("AUTHENTICATE").await;
    irc.send(&format!("AUTHENTICATE {}", attempt("correcthorse"))).await;
    assert!(irc.expect_command("900").await.contains("You are now logged in as bob"));
    irc.expect_command("903").await;
    irc.send("NICK whoever").await;
    irc.send("USER bob 0 * :Bob").await;
    irc.send("CAP END").await;
    assert!(irc.expect_command("001").await.starts_with(":chat 001 bob "));
    assert!(!server.log.snapshot().iter().any(|l| l.contains("correcthorse")));
}

#[tokio::test]
async fn pass_logs_a_registered_name_in_and_a_wrong_one_gets_464() {
    let server = daemon(&[]);
    registered_and_gone(server.addr, "bob", "correcthorse").await;

    let mut irc = Irc::connect(server.irc_addr()).await;
    irc.send("NICK bob").await;
    irc.send("USER bob 0 * :Bob").await;
    assert!(irc.expect_command("433").await.contains("registered"));
    irc.send("PASS not-the-one").await;
    irc.send("NICK bob").await;
    irc.expect_command("464").await;
    irc.send("PASS correcthorse").await;
    irc.send("NICK bob").await;
    assert!(irc.expect_command("001").await.starts_with(":chat 001 bob "));
}

#[tokio::test]
async fn chathistory_comes_from_the_store_in_a_batch_with_times() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    for n in 1..=3 {
        bob.send(&format!("line {n}")).await;
        // Not a synchronisation: each line gets a millisecond of its own,
        // as timestamps are the references CHATHISTORY takes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bob.send("/history 3").await;
    bob.expect_line(|l| strip_ansi(l).contains("line 3")).await;
    let caps = "batch server-time message-tags draft/chathistory";
    let mut alice = Irc::registered_with(server.irc_addr(), "alice", caps).await;
    let replayed = alice.sync("replayed").await;
    assert!(replayed.iter().any(|l| l == ":chat BATCH -recent"), "{replayed:#?}");
    alice.send("CHATHISTORY LATEST #lobby * 10").await;
    let batch = alice.until(|l| l.starts_with(":chat BATCH -")).await;
    let start = batch.iter().find(|l| command_of(l) == "BATCH").expect("batch start");
    assert!(start.ends_with(" chathistory #lobby"), "{batch:#?}");
    let lines: Vec<&String> = batch.iter().filter(|l| l.starts_with("@batch=")).collect();
    assert_eq!(lines.len(), 3, "{batch:#?}");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.starts_with("@batch=") && line.contains(";time=20"), "{line}");
        assert!(untagged(line).ends_with(&format!("PRIVMSG #lobby :line {}", n + 1)), "{line}");
    }
    let third_time =
        lines[2].split("time=").nth(1).and_then(|t| t.split(' ').next()).expect("time");
    alice.send(&format!("CHATHISTORY BEFORE #lobby timestamp={third_time} 10")).await;
    let before = alice.until(|l| l.starts_with(":chat BATCH -")).await;
    let texts: Vec<&str> =
        before.iter().filter(|l| l.starts_with("@batch=")).map(|l| untagged(l)).collect();
    let wanted = [":bob!bob@chat PRIVMSG #lobby :line 1", ":bob!bob@chat PRIVMSG #lobby :line 2"];
    assert_eq!(texts, wanted, "{before:#?}");
    let first_time =
        lines[0].split("time=").nth(1).and_then(|t| t.split(' ').next()).expect("time");
    alice.send(&format!("CHATHISTORY AFTER #lobby timestamp={first_time} 1")).await;
    let after = alice.until(|l| l.starts_with(":chat BATCH -")).await;
    let texts: Vec<&str> =
        after.iter().filter(|l| l.starts_with("@batch=")).map(|l| untagged(l)).collect();
    assert_eq!(texts, [":bob!bob@chat PRIVMSG #lobby :line 2"], "{after:#?}");
    alice.send("CHATHISTORY LATEST #elsewhere * 10").await;
    assert!(alice.expect_command("FAIL").await.contains("INVALID_TARGET"));
}

#[tokio::test]
async fn history_replayed_on_joining_is_a_batch_for_clients_that_take_batches() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    bob.send("/join #den").await;
    bob.send("first").await;
    bob.send("second").await;
    bob.send("/history 2").await;
    bob.expect_line(|l| strip_ansi(l).contains("bob: second")).await;
    let plain = |text: &str| format!(":bob!bob@chat PRIVMSG #den :{text}");

    let mut alice = Irc::registered_with(server.irc_addr(), "alice", "batch server-time").await;
    alice.send("JOIN #den").await;
    let joined = alice.sync("joined").await;
    let at = |line: &str| joined.iter().position(|l| l == line);
    let (start, end) = (at(":chat BATCH +recent chathistory #den"), at(":chat BATCH -recent"));
    let (Some(start), Some(end)) = (start, end) else { panic!("a batch: {joined:#?}") };
    let inside = &joined[start + 1..end];
    assert_eq!(inside.len(), 2, "{joined:#?}");
    for (line, text) in inside.iter().zip(["first", "second"]) {
        assert!(line.starts_with("@batch=recent;time=20"), "{line}");
        assert_eq!(untagged(line), plain(text));
    }

    let mut carol = Irc::registered(server.irc_addr(), "carol").await;
    carol.send("JOIN #den").await;
    let joined = carol.sync("joined").await;
    assert!(!joined.iter().any(|l| command_of(l) == "BATCH"), "{joined:#?}");
    let said: Vec<&String> = joined.iter().filter(|l| command_of(l) == "PRIVMSG").collect();
    assert_eq!(said, [&plain("first"), &plain("second")], "plain lines, untagged");
}

#[tokio::test]
async fn server_time_tags_and_echo_message_on_live_lines() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice =
        Irc::registered_with(server.irc_addr(), "alice", "server-time echo-message").await;
    bob.send("tagged?").await;
    let line = alice.expect_command("PRIVMSG").await;
    assert!(line.starts_with("@time=20") && line.contains("Z :bob!bob@chat PRIVMSG"), "{line}");
    alice.send("PRIVMSG #lobby :echoed").await;
    let echo = alice.expect_command("PRIVMSG").await;
    assert_eq!(untagged(&echo), ":alice!alice@chat PRIVMSG #lobby :echoed");
    bob.expect_line(|l| l.contains("echoed")).await;
}

#[tokio::test]
async fn a_room_owner_on_irc_sets_topics_mutes_kicks_and_bans_through_moderation() {
    let server = daemon(&[]);
    let mut boss = Irc::registered(server.irc_addr(), "boss").await;
    boss.send("REGISTER longenoughpassword").await;
    boss.expect(|l| l.contains("NOTICE boss") && l.contains("yours now")).await;
    // A registered user who opens a room owns it.
    boss.send("JOIN #rust").await;
    boss.expect_command("366").await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#rust").await;
    let mut carol = Client::named(server.addr, "carol").await;
    carol.join("#rust").await;
    boss.send("NAMES #rust").await;
    let names = boss.expect_command("353").await;
    assert!(names.contains("@boss"), "the owner is marked as an operator: {names}");

    boss.send("TOPIC #rust :all about rust").await;
    assert_eq!(boss.expect_command("TOPIC").await, ":boss!boss@chat TOPIC #rust :all about rust");
    bob.expect_line(|l| l.contains("all about rust")).await;
    boss.send("TOPIC #rust").await;
    assert!(boss.expect_command("332").await.ends_with("#rust :all about rust"));
    boss.expect_command("333").await;

    boss.send("MODE #rust +q carol").await;
    assert_eq!(boss.expect_command("MODE").await, ":boss!boss@chat MODE #rust +q carol!*@*");
    carol.send("can anyone hear me").await;
    carol.expect_line(|l| strip_ansi(l).contains("muted")).await;
    boss.send("MODE #rust -q carol").await;
    assert_eq!(boss.expect_command("MODE").await, ":boss!boss@chat MODE #rust -q carol!*@*");

    boss.send("KICK #rust carol :calm down").await;
    assert_eq!(boss.expect_command("KICK").await, ":boss!boss@chat KICK #rust carol :calm down");
    carol.expect_line(|l| l.contains("calm down")).await;

    boss.send("MODE #rust +b bob").await;
    assert_eq!(boss.expect_command("MODE").await, ":boss!boss@chat MODE #rust +b bob!*@*");
    boss.send("MODE #rust b").await;
    let bans = boss.until_command("368").await;
    let listed = |l: &String| command_of(l) == "367" && l.contains("#rust bob!*@* boss");
    assert!(bans.iter().any(listed), "{bans:#?}");
    boss.send("MODE #rust -b bob!*@*").await;
    assert_eq!(boss.expect_command("MODE").await, ":boss!boss@chat MODE #rust -b bob!*@*");
}

#[tokio::test]
async fn a_quiet_client_is_pinged_and_a_silent_one_let_go() {
    let server = daemon(&["--irc-ping", "1"]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    assert_eq!(alice.expect_command("PING").await, "PING :chat");
    alice.send("PONG :chat").await;
    alice.expect_command("PING").await;
    let started = Instant::now();
    alice.client.until_closed().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    bob.expect_line(|l| strip_ansi(l).contains("alice lost connection")).await;
}

#[tokio::test]
async fn irc_connections_count_against_max_clients_with_the_others() {
    let server = daemon(&["--max-clients", "1"]);
    let _bob = Client::named(server.addr, "bob").await;
    let mut irc = Irc::connect(server.irc_addr()).await;
    let refused = irc.client.until_closed().await;
    assert!(refused.iter().any(|l| l.starts_with("ERROR :") && l.contains("full")), "{refused:#?}");
}

#[tokio::test]
async fn rate_delays_an_irc_flood_without_dropping_a_line() {
    let server = daemon(&["--rate", "5", "--burst", "1"]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    let started = Instant::now();
    for n in 0..10 {
        alice.send(&format!("PRIVMSG #lobby :flood {n}")).await;
    }
    for n in 0..10 {
        let line = strip_ansi(&bob.expect_line(|l| l.contains("flood")).await);
        assert!(line.ends_with(&format!("alice: flood {n}")), "in order, none lost: {line}");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn irc_over_tls_reaches_the_same_room() {
    let dir = std::env::temp_dir().join(format!("chat-irc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).expect("certificate generated");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("key written");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen-irc-tls",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
    ]);
    let mut bob = Client::named(server.addr, "bob").await;
    let addr = server.irc_tls_addr().to_string();
    let mut openssl = Process::spawn(
        std::process::Command::new("openssl").args(["s_client", "-quiet", "-connect", &addr]),
    );
    openssl.type_line("NICK alice\r");
    openssl.type_line("USER alice 0 * :Alice\r");
    openssl.stdout.wait_for("the welcome", |l| l.contains(" 001 alice "));
    openssl.type_line("PRIVMSG #lobby :over tls\r");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("over tls")).await);
    assert!(line.ends_with("alice: over tls"), "{line}");
    openssl.type_line("QUIT\r");
    openssl.finish(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn irc_users_span_daemons_on_a_backplane() {
    let redis = support::RedisServer::start();
    let one = daemon(&["--backplane", &redis.url()]);
    let two = Server::start(&["--backplane", &redis.url()]);
    let mut bob = Client::named(two.addr, "bob").await;
    let mut alice = Irc::registered(one.irc_addr(), "alice").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice joined")).await;
    alice.send("NAMES #lobby").await;
    let names = alice.expect_command("353").await;
    assert!(names.contains("bob") && names.contains("alice"), "{names}");
    alice.send("PRIVMSG #lobby :across daemons").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice: across daemons")).await;
    bob.send("and back").await;
    assert_eq!(alice.expect_command("PRIVMSG").await, ":bob!bob@chat PRIVMSG #lobby :and back");
    alice.send("NICK alicia").await;
    alice.expect_command("NICK").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice is now known as alicia")).await;
    alice.send("QUIT").await;
    bob.expect_line(|l| strip_ansi(l).contains("alicia left")).await;
}

#[tokio::test]
async fn text_from_irc_is_sanitised_before_anyone_reads_it() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    alice.send("PRIVMSG #lobby :\u{1b}[2Jclear\u{202e}screen").await;
    let line = bob.expect_line(|l| l.contains("clear")).await;
    assert!(!line.contains("\u{1b}[2J") && !line.contains('\u{202e}'), "{line:?}");
    alice.send("QUIT :\u{1b}]0;owned\u{7}gone").await;
    let line = bob.expect_line(|l| l.contains("gone")).await;
    assert!(!line.contains("\u{1b}]0") && !line.contains('\u{7}'), "{line:?}");
}

#[tokio::test]
async fn max_per_ip_counts_irc_and_tcp_connections_together() {
    let server = daemon(&["--max-per-ip", "1"]);
    let _bob = Client::named(server.addr, "bob").await;
    let mut irc = Irc::connect(server.irc_addr()).await;
    let refused = irc.client.until_closed().await;
    assert!(refused.iter().any(|l| l.starts_with("ERROR :")), "{refused:#?}");
    let from_elsewhere = "127.0.0.2".parse().expect("loopback address");
    let client = Client::connect_from(server.irc_addr(), from_elsewhere).await;
    let mut carol = Irc { client, nick: "*".to_owned() };
    carol.send("NICK carol").await;
    carol.send("USER carol 0 * :Carol").await;
    carol.expect_command("001").await;
}

#[tokio::test]
async fn a_returning_owner_on_irc_is_put_back_in_their_channels() {
    let server = daemon(&[]);
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    alice.send("REGISTER longenoughpassword").await;
    alice.expect(|l| l.contains("yours now")).await;
    alice.send("JOIN #rust").await;
    alice.expect_command("366").await;
    alice.send("QUIT").await;
    alice.client.until_closed().await;
    let mut bob = Client::named(server.addr, "bob").await;
    bob.join("#rust").await;
    bob.send("while you were away").await;
    bob.send("/history 1").await;
    bob.expect_line(|l| strip_ansi(l).contains("] ") && l.contains("while you were away")).await;

    let mut back = Irc::connect(server.irc_addr()).await;
    back.send("PASS longenoughpassword").await;
    back.send("NICK alice").await;
    back.send("USER alice 0 * :Alice").await;
    back.expect_command("001").await;
    let rejoined = back.until(|l| command_of(l) == "366" && l.contains("#rust")).await;
    assert!(rejoined.iter().any(|l| l == ":alice!alice@chat JOIN #rust"), "{rejoined:#?}");
    let names = rejoined.iter().rev().find(|l| command_of(l) == "353").expect("names");
    assert!(names.contains("bob") && names.contains("alice"), "{names}");
    back.expect(|l| l.contains("while you were away")).await;
}

#[tokio::test]
async fn an_irc_user_parts_its_last_channel_and_stays_online_in_none() {
    let server = daemon(&[]);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Irc::registered(server.irc_addr(), "alice").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice joined")).await;

    alice.send("PART #lobby").await;
    assert_eq!(alice.expect_command("PART").await, ":alice!alice@chat PART #lobby");
    bob.expect_line(|l| strip_ansi(l).contains("alice left #lobby")).await;
    let after = alice.sync("parted").await;
    assert!(after.iter().all(|l| command_of(l) != "NOTICE"), "no refusal: {after:#?}");

    // Online, in no room's member list.
    bob.send("/who").await;
    let who = bob.lines_until(|l| l.contains("(you)")).await;
    assert!(who.iter().any(|l| l.contains("1 online in #lobby:")), "{who:#?}");
    assert!(who.iter().all(|l| !l.contains("alice")), "{who:#?}");
    bob.send("/rooms").await;
    let rooms = bob.lines_until(|l| l.contains("#lobby (")).await;
    assert!(rooms.last().is_some_and(|l| l.contains("#lobby (1)")), "{rooms:#?}");

    // A channel it is not in answers as IRC servers do; a line meant for
    // the current room is refused with the reason.
    alice.send("PRIVMSG #lobby :anyone?").await;
    assert!(alice.expect_command("404").await.starts_with(":chat 404 alice #lobby :"));
    alice.send("PART #lobby").await;
    alice.expect_command("442").await;
    alice.send("ME waves").await;
    let refused = alice.expect_command("NOTICE").await;
    assert!(refused.contains("in no room"), "{refused}");

    // Still registered: private lines both ways, WHOIS, LIST.
    bob.send("/msg alice psst").await;
    assert_eq!(alice.expect_command("PRIVMSG").await, ":bob!bob@chat PRIVMSG alice :psst");
    alice.send("PRIVMSG bob :hush").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice (private): hush")).await;
    alice.send("WHOIS bob").await;
    alice.expect_command("311").await;
    alice.expect_command("318").await;
    alice.send("LIST").await;
    assert!(alice.expect_command("322").await.contains("#lobby 1"));
    alice.expect_command("323").await;

    // Back in, and `JOIN 0` leaves every channel again.
    alice.send("JOIN #lobby,#rust").await;
    alice.expect_command("366").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice joined")).await;
    alice.expect_command("366").await;
    alice.send("PRIVMSG #lobby :back").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice: back")).await;
    alice.send("JOIN 0").await;
    let parts = alice.until(|l| l.ends_with("PART #rust")).await;
    assert!(parts.iter().any(|l| l.ends_with("PART #lobby")), "{parts:#?}");
    bob.expect_line(|l| strip_ansi(l).contains("alice left #lobby")).await;
    alice.send("PRIVMSG #rust :gone?").await;
    alice.expect_command("404").await;

    // A netcat user keeps its last room.
    bob.send("/part").await;
    bob.expect_line(|l| strip_ansi(l).contains("your only room")).await;
}

#[tokio::test]
async fn an_irc_user_in_no_channel_is_known_across_daemons() {
    let redis = support::RedisServer::start();
    let one = daemon(&["--backplane", &redis.url()]);
    let two = Server::start(&["--backplane", &redis.url()]);
    let mut bob = Client::named(two.addr, "bob").await;
    let mut alice = Irc::registered(one.irc_addr(), "alice").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice joined")).await;
    alice.send("PART #lobby").await;
    alice.expect_command("PART").await;
    bob.expect_line(|l| strip_ansi(l).contains("alice left #lobby")).await;
    bob.send("/who").await;
    let who = bob.lines_until(|l| l.contains("(you)")).await;
    assert!(who.iter().all(|l| !l.contains("alice")), "{who:#?}");
    bob.send("/msg alice across").await;
    assert_eq!(alice.expect_command("PRIVMSG").await, ":bob!bob@chat PRIVMSG alice :across");

    // A daemon that starts later hears of her from the roster.
    let three = Server::start(&["--backplane", &redis.url()]);
    let mut carol = Client::named(three.addr, "carol").await;
    // Each try waits for the daemon's answer; the roster comes once.
    let mut tries = 0;
    loop {
        carol.send("/msg alice hello").await;
        let answer = carol.expect_line(|l| l.contains("-> alice") || l.contains("nobody")).await;
        if answer.contains("-> alice") {
            break;
        }
        tries += 1;
        assert!(tries < 200, "the roster never named alice");
    }
    assert_eq!(alice.expect_command("PRIVMSG").await, ":carol!carol@chat PRIVMSG alice :hello");
}

#[tokio::test]
async fn an_irc_user_kicked_from_its_last_channel_is_in_none() {
    let server = daemon(&[]);
    let mut boss = Irc::registered(server.irc_addr(), "boss").await;
    boss.send("REGISTER longenoughpassword").await;
    boss.expect(|l| l.contains("NOTICE boss") && l.contains("yours now")).await;
    boss.send("JOIN #rust").await;
    boss.expect_command("366").await;
    let mut dave = Irc::registered(server.irc_addr(), "dave").await;
    dave.send("JOIN #rust").await;
    dave.expect_command("366").await;
    dave.send("PART #lobby").await;
    assert_eq!(dave.expect_command("PART").await, ":dave!dave@chat PART #lobby");

    boss.send("KICK #rust dave :out").await;
    boss.expect_command("KICK").await;
    assert_eq!(dave.expect_command("KICK").await, ":boss!boss@chat KICK #rust dave :out");
    let after = dave.sync("kicked").await;
    assert!(after.iter().all(|l| command_of(l) != "JOIN"), "not put in #lobby: {after:#?}");
    dave.send("PRIVMSG #rust :let me back").await;
    dave.expect_command("404").await;
    boss.send("PRIVMSG dave :still there?").await;
    assert_eq!(dave.expect_command("PRIVMSG").await, ":boss!boss@chat PRIVMSG dave :still there?");
}

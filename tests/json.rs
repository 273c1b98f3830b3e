//! The second door on the one session: JSON lines (`--listen-json`), one
//! object per line each way, against the real `chat-server` over real
//! sockets, beside netcat users in the same rooms.

mod support;

use serde_json::{Value, json};
use support::{Client, Server, listening_addr, strip_ansi};

/// A program on the JSON door.
struct Bot(Client);

impl Bot {
    async fn connect(server: &Server) -> Bot {
        let listening =
            server.log.wait_for("the JSON listener", |l| l.contains("JSON lines listening"));
        Bot(Client::connect(listening_addr(&listening)).await)
    }

    /// Sends what a netcat user would type.
    async fn type_line(&mut self, line: &str) {
        self.0.send(&json!({ "line": line }).to_string()).await;
    }

    /// Reads objects until one matches, and returns it.
    async fn expect(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self.0.next_line().await.expect("the connection stays open");
            let object: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
            assert!(object["type"].is_string(), "every object has a type: {object}");
            if matches(&object) {
                return object;
            }
        }
    }

    async fn expect_type(&mut self, kind: &str) -> Value {
        self.expect(|o| o["type"] == kind).await
    }
}

#[tokio::test]
async fn a_program_on_json_lines_and_a_netcat_user_share_a_room() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--listen-json", "127.0.0.1:0"]);
    let mut bot = Bot::connect(&server).await;
    bot.expect_type("greeting").await;
    bot.expect(|o| o["type"] == "name_prompt" && o["again"] == false).await;
    bot.type_line("robot").await;
    let welcome = bot.expect_type("welcome").await;
    assert_eq!(welcome["you"]["name"], "robot");
    assert!(welcome["you"]["emoji"].is_string(), "{welcome}");

    let mut alice = Client::named(server.addr, "alice").await;
    let arrival = bot.expect_type("join").await;
    assert_eq!((&arrival["who"]["name"], &arrival["arrival"]), (&json!("alice"), &json!(true)));
    assert_eq!(arrival["room"], "#lobby");

    alice.send("hello <b>robot</b>").await;
    let message = bot.expect_type("message").await;
    assert_eq!(message["from"]["name"], "alice");
    assert_eq!(message["text"], "hello <b>robot</b>", "text as sent: {message}");
    assert_eq!(message["room"], "#lobby");

    bot.type_line("beep, alice").await;
    let line = strip_ansi(&alice.expect_line(|l| l.contains("beep")).await);
    assert!(line.ends_with("robot: beep, alice"), "netcat sees the bot as anyone: {line}");

    bot.type_line("/join #rust").await;
    let joined = bot.expect_type("joined").await;
    assert_eq!(joined["room"], "#rust");
    assert_eq!(bot.expect_type("current").await["room"], "#rust");
    alice.join("#rust").await;
    bot.expect(|o| o["type"] == "join" && o["to"] == "#rust").await;
    alice.send("/me waves").await;
    let action = bot.expect_type("action").await;
    assert_eq!((&action["text"], &action["room"]), (&json!("waves"), &json!("#rust")));

    bot.type_line("/who").await;
    let members = bot.expect_type("members").await;
    let names: Vec<&str> = members["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "robot"], "{members}");

    bot.0.send("not json at all").await;
    let refusal = bot.expect_type("refusal").await;
    assert!(refusal["reason"].as_str().is_some_and(|r| r.contains("JSON")), "{refusal}");
    bot.type_line("/quit").await;
    bot.expect(|o| o["type"] == "goodbye" && o["reason"] == "quit").await;
    let left = strip_ansi(&alice.expect_line(|l| l.contains("robot left")).await);
    assert!(left.contains("robot left"), "{left}");
}

#[tokio::test]
async fn the_json_door_obeys_the_same_limits_as_netcat() {
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen-json",
        "127.0.0.1:0",
        "--max-line",
        "64",
    ]);
    let mut bot = Bot::connect(&server).await;
    bot.expect_type("name_prompt").await;
    bot.type_line("alice").await;
    bot.expect_type("welcome").await;
    let mut nc = Client::connect(server.addr).await;
    nc.expect_line(|l| l.contains("name")).await;
    nc.send("ALICE").await;
    let taken = strip_ansi(&nc.expect_line(|l| l.contains("Sorry")).await);
    assert!(taken.contains("taken"), "one set of names for every door: {taken}");
    bot.type_line(&"x".repeat(100)).await;
    let too_long = bot.expect_type("too_long").await;
    assert_eq!(too_long["limit"], 64, "{too_long}");
    bot.type_line("/nick").await;
    bot.expect(|o| o["type"] == "usage").await;
}

#[tokio::test]
async fn a_program_sees_the_topic_and_moderation_as_objects() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--listen-json", "127.0.0.1:0"]);
    let mut owen = Client::named(server.addr, "owen").await;
    assert!(support::register(&mut owen, "correct-horse").await.contains("yours now"));
    owen.join("#den").await;
    let mut bot = Bot::connect(&server).await;
    bot.expect_type("name_prompt").await;
    bot.type_line("robot").await;
    bot.expect_type("welcome").await;
    bot.type_line("/join #den").await;
    bot.expect_type("current").await;

    owen.send("/topic crabs only").await;
    let topic = bot.expect_type("topic").await;
    assert_eq!(
        (&topic["room"], &topic["by"], &topic["text"]),
        (&json!("#den"), &json!("owen"), &json!("crabs only"))
    );
    assert!(topic["at_ms"].is_u64(), "an event: {topic}");
    bot.type_line("/who").await;
    assert_eq!(bot.expect_type("members").await["topic"], "crabs only");
    bot.type_line("/rooms").await;
    let rooms = bot.expect_type("rooms").await;
    let den = rooms["rooms"].as_array().and_then(|r| r.iter().find(|r| r["room"] == "#den"));
    assert_eq!(den.map(|d| &d["topic"]), Some(&json!("crabs only")), "{rooms}");

    owen.send("/mute robot 1h").await;
    let mute = bot.expect_type("moderation").await;
    assert_eq!(
        (&mute["action"], &mute["who"], &mute["room"], &mute["by"]),
        (&json!("mute"), &json!("robot"), &json!("#den"), &json!("owen"))
    );
    assert!(mute["until_ms"].as_u64() > topic["at_ms"].as_u64(), "{mute}");
    bot.type_line("beep").await;
    let muted = bot.expect_type("muted").await;
    assert_eq!((&muted["room"], &muted["until_ms"]), (&json!("#den"), &mute["until_ms"]));

    owen.send("/ban robot 7d spam").await;
    let ban = bot.expect(|o| o["action"] == "ban").await;
    assert_eq!(
        (&ban["who"], &ban["room"], &ban["reason"]),
        (&json!("robot"), &json!("#den"), &json!("spam"))
    );
    assert!(ban["until_ms"].is_u64(), "{ban}");
    assert_eq!(bot.expect_type("current").await["room"], "#lobby");
}

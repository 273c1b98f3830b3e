//! The web door without a browser: the page's files and their policy, and
//! the WebSocket at `/ws` spoken to as a bot would, beside netcat users in
//! the same rooms. Every limit of a TCP connection holds for a WebSocket.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Client, Server, WAIT, strip_ansi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A program on the web door: one JSON object per WebSocket message.
struct WebUser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every object received so far.
    seen: Vec<Value>,
}

impl WebUser {
    /// Opens `/ws` as a program would (no `Origin`).
    async fn connect(addr: SocketAddr) -> WebUser {
        Self::connect_with(addr, &[]).await.expect("the WebSocket is accepted")
    }

    /// Opens `/ws` with extra request headers (`Origin`, `X-Forwarded-For`).
    async fn connect_with(
        addr: SocketAddr,
        headers: &[(&'static str, &str)],
    ) -> Result<WebUser, WsError> {
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).expect("a header value");
            request.headers_mut().insert(*name, value);
        }
        let connecting = tokio_tungstenite::connect_async(request);
        let (ws, _) = tokio::time::timeout(WAIT, connecting).await.expect("upgraded in time")?;
        Ok(WebUser { ws, seen: Vec::new() })
    }

    /// Connects and takes `name`, up to the welcome.
    async fn named(addr: SocketAddr, name: &str) -> WebUser {
        let mut user = Self::connect(addr).await;
        user.name_as(name).await;
        user
    }

    async fn name_as(&mut self, name: &str) {
        self.expect("the name prompt", |o| o["type"] == "name_prompt").await;
        self.line(name).await;
        self.expect("the welcome", |o| o["type"] == "welcome").await;
    }

    /// Sends what a user typed, as the page does: `{"line": ...}`.
    async fn line(&mut self, typed: &str) {
        self.text(&json!({ "line": typed }).to_string()).await;
    }

    /// Sends one text message as it is.
    async fn text(&mut self, text: &str) {
        let sent = self.ws.send(Message::text(text));
        tokio::time::timeout(WAIT, sent).await.expect("sent in time").expect("the daemon takes it");
    }

    /// Says it is alive without reading anything (an unsolicited pong).
    async fn alive(&mut self) {
        let sent = self.ws.send(Message::Pong(Default::default()));
        tokio::time::timeout(WAIT, sent).await.expect("sent in time").expect("the daemon takes it");
    }

    /// The next object; `None` once the server closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing for {WAIT:?}; seen: {:#?}", self.seen));
            match message {
                Some(Ok(Message::Text(text))) => {
                    let object: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text:?}"));
                    self.seen.push(object.clone());
                    return Some(object);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until an object matches, returning it.
    async fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next().await {
                Some(object) if matches(&object) => return object,
                Some(_) => {}
                None => panic!("closed while waiting for {what}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Reads until the server closes; everything after what was seen.
    async fn until_closed(&mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        while let Some(object) = self.next().await {
            rest.push(object);
        }
        rest
    }
}

/// A message event from `name` saying exactly `text`.
fn said(object: &Value, name: &str, text: &str) -> bool {
    object["type"] == "message" && object["from"]["name"] == name && object["text"] == text
}

/// A plain HTTP/1.1 request over a raw socket: the status line, the
/// headers (lower-case names) and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.expect("the web listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .expect("the answer is read");
    let text = String::from_utf8(raw).expect("an answer in UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines.next().expect("a status line").to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(n, _)| n == name).map_or("", |(_, value)| value.as_str())
}

#[tokio::test]
async fn a_program_on_the_web_socket_and_a_netcat_user_chat_both_ways() {
    let server = Server::start(&["--listen-web", "127.0.0.1:0", "--rate", "0"]);
    let mut web = WebUser::named(server.web_addr(), "wendy").await;
    let mut nick = Client::named(server.addr, "nick").await;

    let joined = web.expect("nick's arrival", |o| o["type"] == "join").await;
    assert_eq!(joined["who"]["name"], "nick");
    assert_eq!(joined["room"], "#lobby");
    assert!(joined["who"]["css"].as_str().is_some_and(|c| c.starts_with('#') && c.len() == 7));
    assert!(joined["at_ms"].as_i64().is_some_and(|at| at > 1_700_000_000_000), "{joined}");

    // Plain text is a typed line on this door; so is {"line": ...}.
    web.text("hello from a browser").await;
    nick.expect_line(|l| strip_ansi(l).ends_with("wendy: hello from a browser")).await;
    web.line("/me waves").await;
    nick.expect_line(|l| strip_ansi(l).contains("wendy waves")).await;

    nick.send("hi wendy, <b>bold</b> & \"quoted\"").await;
    let message =
        web.expect("nick's line", |o| said(o, "nick", "hi wendy, <b>bold</b> & \"quoted\"")).await;
    assert_eq!(message["room"], "#lobby");
    assert!(message["at_ms"].as_i64().is_some(), "{message}");
    // The stored copy carries the same time, so a page can tell it is the same line.
    web.line("/history 5").await;
    let page = web.expect("the history page", |o| o["type"] == "history").await;
    let stored = page["lines"].as_array().and_then(|lines| {
        lines.iter().find(|l| l["text"] == message["text"] && l["from"]["name"] == "nick")
    });
    assert_eq!(stored.map(|l| &l["at_ms"]), Some(&message["at_ms"]), "{page}");

    // Rooms: a join answers, and the netcat user's arrival there is an event of that room.
    web.line("/join #web").await;
    let answer = web.expect("the join's answer", |o| o["type"] == "joined").await;
    assert_eq!(answer["room"], "#web");
    web.expect("the room is current", |o| o["type"] == "current" && o["room"] == "#web").await;
    nick.join("#web").await;
    let arrival =
        web.expect("nick joins #web", |o| o["type"] == "join" && o["room"] == "#web").await;
    assert_eq!(arrival["to"], "#web");
    nick.send("in the room").await;
    let line = web.expect("nick's line in #web", |o| said(o, "nick", "in the room")).await;
    assert_eq!(line["room"], "#web");

    web.line("/quit").await;
    let rest = web.until_closed().await;
    assert!(rest.iter().any(|o| o["type"] == "goodbye" && o["reason"] == "quit"), "{rest:#?}");
    nick.expect_line(|l| strip_ansi(l).contains("wendy left")).await;
}

#[tokio::test]
async fn the_page_is_served_with_a_policy_that_forbids_inline_and_foreign_scripts() {
    let server = Server::start(&["--listen-web", "127.0.0.1:0"]);
    let web = server.web_addr();
    let (status, headers, body) = http_get(web, "/").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(header(&headers, "content-type").starts_with("text/html"));
    let policy = header(&headers, "content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    for id in ["log", "input", "rooms", "members", "status", "password"] {
        assert!(body.contains(&format!("id=\"{id}\"")), "the page has no #{id}");
    }
    assert!(!body.contains("<script>") && !body.contains("http://") && !body.contains("https://"));
    let (status, headers, _) = http_get(web, "/app.js").await;
    assert!(status.contains(" 200 ") && header(&headers, "content-type").contains("javascript"));
    let (status, _, _) = http_get(web, "/app.css").await;
    assert!(status.contains(" 200 "), "{status}");
    let (status, _, _) = http_get(web, "/no-such-page").await;
    assert!(status.contains(" 404 "), "{status}");
}

#[tokio::test]
async fn a_page_of_a_foreign_origin_is_refused_with_403() {
    let server =
        Server::start(&["--listen-web", "127.0.0.1:0", "--web-origin", "https://friend.example"]);
    let web = server.web_addr();
    match WebUser::connect_with(web, &[("origin", "https://evil.example")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("refused, but not with 403: {other}"),
        Ok(_) => panic!("a page of another origin opened the chat"),
    }
    let own = format!("http://{web}");
    let mut user = WebUser::connect_with(web, &[("origin", &own)]).await.expect("own origin");
    user.name_as("own").await;
    let mut friend = WebUser::connect_with(web, &[("origin", "https://friend.example")])
        .await
        .expect("an origin allowed with --web-origin");
    friend.name_as("friend").await;
    server.log.wait_for("the refusal logged", |l| l.contains("foreign origin refused"));
}

#[tokio::test]
async fn an_over_long_message_is_refused_and_the_connection_goes_on() {
    let server = Server::start(&["--listen-web", "127.0.0.1:0", "--max-line", "64"]);
    let mut web = WebUser::named(server.web_addr(), "wordy").await;
    let mut nick = Client::named(server.addr, "nick").await;
    web.expect("nick's arrival", |o| o["type"] == "join").await;
    web.text(&"a".repeat(200)).await;
    let refused = web.expect("the refusal", |o| o["type"] == "too_long").await;
    assert_eq!(refused["limit"], 64);
    assert!(refused["bytes"].as_u64().is_some_and(|b| b > 64), "{refused}");
    web.text("short after all").await;
    let lines = nick.lines_until(|l| strip_ansi(l).ends_with("wordy: short after all")).await;
    assert!(
        lines.iter().all(|l| !l.contains("aaaa")),
        "the long message reached others: {lines:?}"
    );
}

#[tokio::test]
async fn rate_slows_a_web_socket_without_dropping_lines() {
    const LINES: usize = 30;
    const BURST: usize = 5;
    const RATE: f64 = 20.0;
    let server = Server::start(&["--listen-web", "127.0.0.1:0", "--rate", "20", "--burst", "5"]);
    let mut web = WebUser::named(server.web_addr(), "eager").await;
    let mut nick = Client::named(server.addr, "nick").await;
    web.expect("nick's arrival", |o| o["type"] == "join").await;
    let started = Instant::now();
    for i in 0..LINES {
        web.text(&format!("line {i}")).await;
    }
    let mut next = 0;
    while next < LINES {
        let line = strip_ansi(&nick.next_line().await.expect("nick keeps receiving"));
        if let Some(number) = line.split("eager: line ").nth(1) {
            assert_eq!(number, next.to_string(), "lost or out of order");
            next += 1;
        }
    }
    // A burst, then one line per interval, however slow the machine.
    let allowed = BURST as f64 + RATE * started.elapsed().as_secs_f64() + 2.0;
    assert!(LINES as f64 <= allowed, "{LINES} lines in {:?}: not throttled", started.elapsed());
}

#[tokio::test]
async fn max_per_ip_counts_web_sockets_and_tcp_together() {
    let server = Server::start(&["--listen-web", "127.0.0.1:0", "--max-per-ip", "2"]);
    let web = server.web_addr();
    let mut nick = Client::named(server.addr, "nick").await;
    let _first = WebUser::named(web, "first").await;
    let mut third = WebUser::connect(web).await;
    let refused = third.until_closed().await;
    let reason = refused
        .iter()
        .find(|o| o["type"] == "refused")
        .and_then(|o| o["reason"].as_str())
        .unwrap_or_else(|| panic!("no refusal: {refused:#?}"));
    assert!(reason.contains("too many connections from your address"), "{reason}");
    // And the other way round: two WebSockets leave no room for netcat.
    let mut netcat = Client::connect(server.addr).await;
    let told = netcat.until_closed().await;
    assert!(told.iter().any(|l| l.contains("too many connections")), "{told:?}");
    // A slot given back is a slot for anyone.
    nick.send("/quit").await;
    nick.until_closed().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = WebUser::connect(web).await;
        let first = again.next().await.expect("an answer");
        if first["type"] != "refused" {
            again.expect("the name prompt", |o| o["type"] == "name_prompt").await;
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let trusting = Server::start(&[
        "--listen-web",
        "127.0.0.1:0",
        "--max-per-ip",
        "1",
        "--trusted-proxy",
        "127.0.0.0/8",
    ]);
    let web = trusting.web_addr();
    let via = |client: &str| vec![("x-forwarded-for", client.to_owned())];
    let connect = |headers: Vec<(&'static str, String)>| async move {
        let borrowed: Vec<(&'static str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        WebUser::connect_with(web, &borrowed).await.expect("upgraded")
    };
    let mut one = connect(via("203.0.113.1")).await;
    one.name_as("one").await;
    let mut two = connect(via("198.51.100.2, 203.0.113.2")).await;
    two.name_as("two").await;
    trusting.log.wait_for("the forwarded address", |l| l.contains("peer=203.0.113.2:"));
    let mut again = connect(via("203.0.113.1")).await;
    let told = again.until_closed().await;
    assert!(told.iter().any(|o| o["type"] == "refused"), "one address, two sockets: {told:#?}");

    // Without --trusted-proxy the header is the client's own word: ignored.
    let wary = Server::start(&["--listen-web", "127.0.0.1:0", "--max-per-ip", "1"]);
    let web = wary.web_addr();
    let headers = [("x-forwarded-for", "203.0.113.1")];
    let mut first = WebUser::connect_with(web, &headers).await.expect("upgraded");
    first.name_as("first").await;
    let other = [("x-forwarded-for", "203.0.113.9")];
    let mut second = WebUser::connect_with(web, &other).await.expect("upgraded");
    let told = second.until_closed().await;
    assert!(told.iter().any(|o| o["type"] == "refused"), "a forged header was believed: {told:#?}");
    assert!(!wary.log.snapshot().iter().any(|l| l.contains("peer=203.0.113.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_reader_that_never_reads_slows_nobody_and_is_told_what_it_missed() {
    let server = Server::start(&["--listen-web", "127.0.0.1:0", "--rate", "0", "--queue", "64"]);
    let mut slow = WebUser::named(server.web_addr(), "slow").await;
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    alice.expect_line(|l| l.contains("bob joined")).await;
    let total = 30_000;
    let sender = support::numbered_flood(alice, total);
    // bob gets every line, in order, while the web reader reads nothing
    // (it only says, now and then, that it is alive, as a browser answers
    // pings while its page is busy).
    let mut next = 0;
    while next < total {
        let line = strip_ansi(&bob.next_line().await.expect("bob keeps receiving"));
        if let Some(text) = line.split("alice: ").nth(1) {
            let number: usize =
                text.split(' ').next().and_then(|n| n.parse().ok()).expect("numbered");
            assert_eq!(number, next, "bob lost or reordered a line");
            next += 1;
            if next % 1_000 == 0 {
                slow.alive().await;
            }
        }
    }
    let mut alice = sender.await.expect("sender finished");
    // Every line reached the web reader or was counted as skipped, in order.
    let mut tally = WebTally::default();
    while tally.accounted() < total {
        tally.add(&slow.next().await.expect("the slow web reader stays connected"));
    }
    // Then nothing more of the flood comes before a later line.
    alice.send("after the flood").await;
    loop {
        let object = slow.next().await.expect("the slow web reader stays connected");
        if said(&object, "alice", "after the flood") {
            break;
        }
        tally.add(&object);
    }
    let WebTally { received, skipped } = tally;
    assert!(received.windows(2).all(|w| w[0] < w[1]), "out of order or twice");
    assert!(!skipped.is_empty() && skipped.iter().all(|&n| n > 0), "{skipped:?}");
    let (got, told) = (received.len(), skipped.iter().sum::<usize>());
    assert!(got < total, "the slow reader got all {total}: nothing to skip");
    // The counts may also include the two join notices published after the
    // slow reader came in, and nothing else.
    assert!(got + told <= total + 2, "received {got} + told skipped {told} for {total} sent");
}

/// What a slow web reader got of a numbered flood: the numbers, and the
/// counts of `skipped` objects.
#[derive(Default)]
struct WebTally {
    received: Vec<usize>,
    skipped: Vec<usize>,
}

impl WebTally {
    fn add(&mut self, object: &Value) {
        if object["type"] == "skipped" {
            self.skipped.push(object["count"].as_u64().expect("a count") as usize);
        } else if object["type"] == "message" && object["from"]["name"] == "alice" {
            let text = object["text"].as_str().expect("text");
            let number = text.split(' ').next().and_then(|n| n.parse().ok());
            self.received.push(number.unwrap_or_else(|| panic!("not numbered: {text:?}")));
        }
    }

    fn accounted(&self) -> usize {
        self.received.len() + self.skipped.iter().sum::<usize>()
    }
}

#[tokio::test]
async fn a_web_socket_that_accepts_no_bytes_is_disconnected_after_the_write_timeout() {
    let server = Server::start(&[
        "--listen-web",
        "127.0.0.1:0",
        "--rate",
        "0",
        "--queue",
        "16",
        "--write-timeout",
        "1",
    ]);
    let _stalled = WebUser::named(server.web_addr(), "stalled").await;
    let mut alice = Client::named(server.addr, "alice").await;
    let mut bob = Client::named(server.addr, "bob").await;
    let gone = support::busy_until_disconnected(&mut alice, &mut bob, "stalled").await;
    assert!(gone, "the stalled web reader was never disconnected");
    server.log.wait_for("slow disconnect log", |l| {
        l.contains("stalled") && l.contains("write timed out")
    });
}

//! The web page in a real browser (headless Chromium through chromedriver),
//! against the real daemon, beside netcat and IRC users: what a person can do with
//! it (PRODUCT.md, "The web page"). One browser runs at a time; every wait
//! polls the page or the socket with a deadline.

mod support;

#[path = "support/browser.rs"]
mod browser;

use std::net::SocketAddr;
use std::path::PathBuf;

use browser::Browser;
use serde_json::json;
use support::irc::Irc;
use support::{Client, Server, TempDir, strip_ansi};

/// A daemon with its text listener (for netcat users) and its web page.
struct Daemon {
    server: Server,
    web: SocketAddr,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        Daemon::start_on("127.0.0.1:0", args)
    }

    /// With the page on `web` (an address, port 0 for any).
    fn start_on(web: &str, args: &[&str]) -> Daemon {
        let mut all = vec!["--listen", "127.0.0.1:0", "--listen-web", web];
        all.extend_from_slice(args);
        let server = Server::start(&all);
        let web = server.web_addr();
        Daemon { server, web }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

/// Reads until a line (without colour) contains `text`; returns it.
async fn heard(client: &mut Client, text: &str) -> String {
    strip_ansi(&client.expect_line(|l| strip_ansi(l).contains(text)).await)
}

#[tokio::test]
async fn a_browser_user_and_a_netcat_user_chat_both_ways() {
    let daemon = Daemon::start(&[]);
    let mut bob = Client::named(daemon.addr(), "bob").await;
    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    heard(&mut bob, "ana").await;

    page.say("hello from the web").await;
    let line = heard(&mut bob, "hello from the web").await;
    assert!(line.contains("ana: hello from the web"), "bob sees ana's line: {line:?}");
    assert_eq!(page.log_lines_with("hello from the web").await, 1, "ana sees her own line once");

    bob.send("hello from netcat").await;
    page.wait_log("hello from netcat").await;
    let shown = page
        .eval(
            "const line = [...document.querySelectorAll('#log .line')]\
             .find((l) => l.textContent.includes('hello from netcat'));\
             const name = line.querySelector('.who .name');\
             return { name: name.textContent, emoji: line.querySelector('.who .emoji')?.textContent,\
             colour: name.closest('.who').style.getPropertyValue('--c-light'),\
             time: line.querySelector('time').textContent, text: line.querySelector('.text').textContent };",
        )
        .await;
    assert_eq!(shown["name"], "bob", "{shown}");
    assert_eq!(shown["text"], "hello from netcat", "{shown}");
    assert!(!shown["emoji"].as_str().unwrap_or_default().is_empty(), "bob's emoji: {shown}");
    let colour = shown["colour"].as_str().unwrap_or_default();
    assert!(colour.len() == 7 && colour.starts_with('#'), "bob's colour: {shown}");
    let time = shown["time"].as_str().unwrap_or_default();
    assert!(
        time.len() == 5 && time.as_bytes()[2] == b':',
        "a time as HH:MM beside the line: {shown}"
    );

    // A /me both ways, a private line, and a line that names ana.
    page.say("/me waves").await;
    let line = heard(&mut bob, "waves").await;
    assert!(line.contains("ana waves"), "{line:?}");
    bob.send("/me waves back").await;
    page.wait_for(
        "bob's action",
        "return document.querySelector('#log .action:last-child')?.textContent.includes('bob')",
    )
    .await;
    bob.send("/msg ana just between us").await;
    page.wait_for(
        "the private line, marked",
        "return [...document.querySelectorAll('#log .private')]\
         .some((l) => l.textContent.includes('just between us') && l.textContent.includes('private'));",
    )
    .await;
    bob.send("ana, are you there?").await;
    page.wait_for(
        "the line naming ana, highlighted",
        "return [...document.querySelectorAll('#log .mention')]\
         .some((l) => l.textContent.includes('are you there?'));",
    )
    .await;
    page.say("/msg bob yes, here").await;
    let line = heard(&mut bob, "yes, here").await;
    assert!(line.contains("ana"), "the private line names ana: {line:?}");
    page.quit().await;
}

#[tokio::test]
async fn a_browser_an_irc_and_a_netcat_user_share_a_room() {
    let daemon = Daemon::start(&["--listen-irc", "127.0.0.1:0"]);
    let mut bob = Client::named(daemon.addr(), "bob").await;
    let mut alice = Irc::registered(daemon.server.irc_addr(), "alice").await;
    heard(&mut bob, "alice").await;
    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    assert_eq!(alice.expect_command("JOIN").await, ":ana!ana@chat JOIN #lobby");
    heard(&mut bob, "ana").await;
    page.wait_member("alice", true).await;
    page.wait_member("bob", true).await;

    alice.send("PRIVMSG #lobby :hello from irc").await;
    page.wait_log("hello from irc").await;
    assert!(heard(&mut bob, "hello from irc").await.contains("alice: hello from irc"));
    page.say("hello from the web").await;
    let line = alice.expect_command("PRIVMSG").await;
    assert_eq!(line, ":ana!ana@chat PRIVMSG #lobby :hello from the web");
    assert!(heard(&mut bob, "hello from the web").await.contains("ana: hello from the web"));
    bob.send("hello from netcat").await;
    page.wait_log("hello from netcat").await;
    let line = alice.expect_command("PRIVMSG").await;
    assert_eq!(line, ":bob!bob@chat PRIVMSG #lobby :hello from netcat");

    alice.send("NICK alicia").await;
    assert_eq!(alice.expect_command("NICK").await, ":alice!alice@chat NICK :alicia");
    page.wait_log("alice is now alicia").await;
    page.wait_member("alicia", true).await;
    page.wait_member("alice", false).await;
    heard(&mut bob, "alice is now known as alicia").await;
    page.say("/nick anabel").await;
    page.wait_member("anabel", true).await;
    page.wait_member("ana", false).await;
    assert_eq!(alice.expect_command("NICK").await, ":ana!ana@chat NICK :anabel");
    heard(&mut bob, "ana is now known as anabel").await;
    bob.send("/nick robert").await;
    page.wait_log("bob is now robert").await;
    assert_eq!(alice.expect_command("NICK").await, ":bob!bob@chat NICK :robert");

    alice.send("PART #lobby").await;
    page.wait_log("alicia left #lobby").await;
    heard(&mut bob, "alicia left #lobby").await;
    page.screenshot(&screenshot_path("mixed-room.png")).await;
    page.quit().await;
}

#[tokio::test]
async fn markup_in_messages_and_names_is_shown_as_text_and_never_runs() {
    let daemon = Daemon::start(&[]);
    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    // Names cannot hold `<`, but quotes and backticks can break out of
    // attributes and template strings.
    let mut mallory = Client::named(daemon.addr(), "o'mal`{x}").await;
    page.wait_member("o'mal`{x}", true).await;

    let payloads = [
        "<img src=x onerror=\"window.pwned=1\"><b>bold</b>",
        "<script>window.pwned=2</script>",
        "<svg onload=window.pwned=3>&lt;i&gt;",
    ];
    for payload in payloads {
        mallory.send(payload).await;
    }
    mallory.send("/me <b onmouseover=window.pwned=4>acts</b>").await;
    mallory.send("/msg ana <img src=y onerror=window.pwned=5>").await;
    page.say("<i>my own</i> <img src=z onerror=window.pwned=6>").await;
    page.wait_log("<img src=y onerror=window.pwned=5>").await;
    for payload in payloads {
        page.wait_log(payload).await;
    }
    page.wait_log("<b onmouseover=window.pwned=4>acts</b>").await;
    page.wait_log("<i>my own</i>").await;
    // A quit reason reaches the page as the departure's wording.
    mallory.send("/quit <img src=q onerror=window.pwned=7>").await;
    mallory.until_closed().await;
    page.wait_log("<img src=q onerror=window.pwned=7>").await;

    let made = page
        .eval(
            "return { elements: document.querySelectorAll('#app img, #app b, #app i, #app script, #app svg').length,\
             pwned: typeof window.pwned };",
        )
        .await;
    assert_eq!(made, json!({ "elements": 0, "pwned": "undefined" }), "{}", page.describe().await);
    // Nothing even tried to run: the page made no element the policy had to stop.
    assert_eq!(page.csp_violations().await, json!([]), "blocked by the Content-Security-Policy");
    page.quit().await;
}

#[tokio::test]
async fn rooms_show_unread_counts_switch_on_a_click_and_list_their_members() {
    let daemon = Daemon::start(&[]);
    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    page.say("/join #alpha").await;
    page.wait_current("#alpha").await;
    // The small join control does the same as typing /join.
    page.type_into("join-room", "beta").await;
    page.click("#join-button").await;
    page.wait_current("#beta").await;

    let mut bob = Client::named(daemon.addr(), "bob").await;
    bob.join("#alpha").await;
    bob.send("news in alpha").await;
    bob.send("more news in alpha").await;
    page.wait_for(
        "an unread count of 2 on #alpha",
        "const li = [...document.querySelectorAll('#rooms li')]\
         .find((l) => l.querySelector('.room-name').textContent === '#alpha');\
         return li && li.querySelector('.unread')?.textContent === '2';",
    )
    .await;
    let entry = page.room_entry("#alpha").await.expect("#alpha listed");
    assert!(entry.contains("#alpha") && entry.contains('2'), "{entry:?}");
    assert_eq!(page.log_lines_with("news in alpha").await, 0, "#beta's log shows only #beta");

    page.open_room("#alpha").await;
    page.wait_log("more news in alpha").await;
    let entry = page.room_entry("#alpha").await.expect("#alpha listed");
    assert_eq!(entry, "#alpha", "opening the room clears its count");
    page.wait_member("bob", true).await;
    page.wait_member("ana", true).await;
    // Plain lines go to the room shown.
    page.say("seen it").await;
    let line = heard(&mut bob, "seen it").await;
    assert!(!line.contains("[#"), "in bob's current room, untagged: {line:?}");

    bob.send("/part #alpha").await;
    page.wait_member("bob", false).await;
    page.wait_log("bob left #alpha").await;

    // Leaving a room from the page.
    page.say("/part #beta").await;
    page.wait_for(
        "#beta gone from the rooms list",
        "return ![...document.querySelectorAll('#rooms .room-name')].some((n) => n.textContent === '#beta');",
    )
    .await;
    page.quit().await;
}

#[tokio::test]
async fn the_topic_shows_under_the_room_title_and_moderation_as_notices() {
    let daemon = Daemon::start(&[]);
    let mut owen = Client::named(daemon.addr(), "owen").await;
    owen.send("/register correct-horse").await;
    heard(&mut owen, "yours now").await;
    owen.join("#den").await;
    owen.send("/topic crabs only").await;
    heard(&mut owen, "owen set the topic of #den").await;

    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    page.say("/join #den").await;
    page.wait_current("#den").await;
    let topic =
        "const t = document.getElementById('room-topic'); return !t.hidden && t.textContent;";
    let shown = page.wait_for("the topic under the title", topic).await;
    assert_eq!(shown, json!("crabs only"));

    owen.send("/topic crabs and shrimps").await;
    page.wait_log("owen set the topic of #den: crabs and shrimps").await;
    page.wait_for(
        "the new topic under the title",
        "return document.getElementById('room-topic').textContent === 'crabs and shrimps';",
    )
    .await;
    owen.send("/mute ana 30m").await;
    page.wait_log("ana is muted in #den by owen until").await;
    page.say("can anyone hear me").await;
    page.wait_log("You are muted in #den until").await;
    page.wait_for(
        "the muted line struck through",
        "return [...document.querySelectorAll('#log .line.failed')]\
         .some((l) => l.textContent.includes('can anyone hear me'));",
    )
    .await;
    owen.send("/unmute ana").await;
    page.wait_log("ana may speak again in #den (owen)").await;
    owen.send("/kick ana enough").await;
    page.wait_log("ana was kicked from #den by owen: enough").await;
    page.wait_current("#lobby").await;
    page.wait_for("no topic in #lobby", "return document.getElementById('room-topic').hidden;")
        .await;
    page.quit().await;
}

#[tokio::test]
async fn a_registered_name_asks_for_its_password_in_the_password_field() {
    let daemon = Daemon::start(&[]);
    let mut owner = Client::named(daemon.addr(), "dora").await;
    let registered = support::register(&mut owner, "correct-horse").await;
    assert!(registered.contains("yours now"), "{registered}");
    owner.send("/quit").await;
    owner.until_closed().await;

    let page = Browser::at(daemon.web).await;
    page.wait_status("the name prompt", "choose a name").await;
    let hidden = page.eval("return document.getElementById('password').hidden;").await;
    assert_eq!(hidden, json!(true), "no password field until one is asked");
    page.enter("input", "dora").await;
    let asked = "the password field, shown";
    page.wait_for(asked, "return !document.getElementById('password').hidden;").await;
    assert!(page.text("prompt").await.contains("password"));

    page.enter("password", "wrong-horse").await;
    page.wait_for(
        "a refusal and the name prompt again",
        "return document.getElementById('password').hidden && \
         document.getElementById('prompt').textContent.includes('name');",
    )
    .await;
    page.enter("input", "dora").await;
    page.wait_for(asked, "return !document.getElementById('password').hidden;").await;
    page.enter("password", "correct-horse").await;
    page.wait_status("being in as dora", "connected as dora").await;
    let field = page.eval("return document.getElementById('password').hidden;").await;
    assert_eq!(field, json!(true), "the password field goes once in");

    // The owner logging in elsewhere takes the name over: the page says so
    // and does not come back by itself.
    let (_elsewhere, _) = support::log_in(daemon.addr(), "dora", "correct-horse").await;
    page.wait_status("the page told it was replaced", "taken over").await;
    let status = page.text("status").await;
    assert!(status.contains("offline") && !status.contains("retrying"), "{status:?}");
    page.quit().await;
}

#[tokio::test]
async fn the_page_sits_through_a_daemon_restart_and_sends_what_was_typed_meanwhile() {
    let dir = TempDir::new("web-restart");
    let db = dir.file("chat.db");
    let mut daemon = Daemon::start(&["--db", &db]);
    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    page.say("/join #den").await;
    page.wait_current("#den").await;
    let mut bob = Client::named(daemon.addr(), "bob").await;
    bob.join("#den").await;
    bob.send("said before the restart").await;
    page.wait_log("said before the restart").await;
    page.say("ana before the restart").await;
    heard(&mut bob, "ana before the restart").await;

    daemon.server.kill();
    page.wait_status("the page to say it is offline", "offline").await;
    page.wait_for(
        "the retry time",
        "return /retrying in \\d+ s/.test(document.getElementById('status').textContent);",
    )
    .await;
    page.say("typed while the daemon was down").await;
    page.wait_for(
        "the offline line shown as waiting",
        "return [...document.querySelectorAll('#log .pending')]\
         .some((l) => l.textContent.includes('typed while the daemon was down'));",
    )
    .await;
    let typing = "half a thought";
    page.type_into("input", typing).await;

    let web = daemon.web.to_string();
    drop(daemon);
    let daemon = Daemon::start_on(&web, &["--db", &db]);
    let mut bob = Client::named(daemon.addr(), "bob").await;
    bob.join("#den").await;
    bob.send("said while ana was away").await;

    page.wait_status("the page back in under its name", "connected as ana").await;
    page.wait_current("#den").await;
    page.wait_log("said while ana was away").await;
    // The offline line reaches bob once (live, or in the room's replay if
    // the page was back first), and nothing after it repeats it.
    page.wait_for(
        "no line left waiting",
        "return document.querySelectorAll('#log .pending').length === 0;",
    )
    .await;
    let value = page.eval("return document.getElementById('input').value;").await;
    assert_eq!(value, json!(typing), "what was being typed is still there");
    page.eval("document.getElementById('input').value = '';").await;
    page.say("back after the restart").await;
    let seen = bob.lines_until(|l| l.contains("back after the restart")).await;
    let copies = seen.iter().filter(|l| l.contains("typed while the daemon was down")).count();
    assert_eq!(copies, 1, "the offline line arrives once: {seen:#?}");

    // What the page already showed is not shown again by the replay.
    for line in ["said before the restart", "ana before the restart", "said while ana was away"] {
        assert_eq!(page.log_lines_with(line).await, 1, "{line:?} once:\n{}", page.describe().await);
    }
    assert_eq!(page.log_lines_with("typed while the daemon was down").await, 1);
    page.quit().await;
}

#[tokio::test]
async fn a_registered_name_comes_back_after_a_graceful_restart_with_the_password_it_kept() {
    let dir = TempDir::new("web-comeback");
    let db = dir.file("chat.db");
    let daemon = Daemon::start(&["--db", &db]);
    let page = Browser::at(daemon.web).await;
    page.choose_name("dora").await;
    page.say("/register correct-horse").await;
    page.wait_log("is yours now").await;
    page.say("/join #den").await;
    page.wait_current("#den").await;

    // SIGTERM: the daemon says it is going down, which is not a goodbye
    // for good: the page comes back by itself.
    daemon.server.signal(libc::SIGTERM);
    page.wait_status("the page to say it is offline", "offline").await;
    page.wait_log("going down").await;
    let web = daemon.web.to_string();
    drop(daemon);
    let daemon = Daemon::start_on(&web, &["--db", &db]);
    let mut bob = Client::named(daemon.addr(), "bob").await;
    bob.join("#den").await;
    bob.send("said while dora was away").await;

    // No password typed: the one kept in memory answers the prompt.
    page.wait_status("dora back in", "connected as dora").await;
    page.wait_current("#den").await;
    page.wait_log("said while dora was away").await;
    assert_eq!(page.log_lines_with("said while dora was away").await, 1);
    let stored = page.eval("return localStorage.length + sessionStorage.length;").await;
    assert_eq!(stored, json!(0), "nothing kept in the browser's storage");
    let asked = page.eval("return document.getElementById('password').hidden;").await;
    assert_eq!(asked, json!(true), "the password field was never needed");
    page.say("dora is back").await;
    heard(&mut bob, "dora: dora is back").await;
    page.quit().await;
}

#[tokio::test]
async fn at_a_phones_width_nothing_scrolls_sideways() {
    let daemon = Daemon::start(&[]);
    let page = Browser::at(daemon.web).await;
    page.viewport(360, 740).await;
    page.choose_name("ana").await;
    let mut bob = Client::named(daemon.addr(), "bob_with_a_long_name_for_a_phone").await;
    let word = "w".repeat(400);
    bob.send(&word).await;
    page.say(&format!("https://example.invalid/{}", "p".repeat(300))).await;
    page.say("/join #a_rather_long_room_name_here").await;
    page.say("/join #another_long_room_name").await;
    page.open_room("#lobby").await;
    page.wait_log(&word).await;
    let widths = page
        .eval(
            "const d = document.documentElement, log = document.getElementById('log');\
             return { page: d.scrollWidth, view: d.clientWidth, log: log.scrollWidth, logView: log.clientWidth,\
             body: document.body.scrollWidth };",
        )
        .await;
    let at = |k: &str| widths[k].as_u64().expect("a width");
    assert_eq!(at("view"), 360, "{widths}");
    assert!(at("page") <= at("view"), "the page scrolls sideways: {widths}");
    assert!(at("body") <= at("view"), "the body scrolls sideways: {widths}");
    assert!(at("log") <= at("logView"), "a long word is cut instead of wrapped: {widths}");
    page.quit().await;
}

#[tokio::test]
async fn scrolling_to_the_top_loads_earlier_lines_once_each() {
    let daemon = Daemon::start(&["--rate", "0"]);
    let mut bob = Client::named(daemon.addr(), "bob").await;
    let mut eve = Client::named(daemon.addr(), "eve").await;
    for n in 0..130 {
        bob.send(&format!("line {n:03} of the backlog")).await;
    }
    heard(&mut eve, "line 129 of the backlog").await;

    let page = Browser::at(daemon.web).await;
    page.choose_name("ana").await;
    page.wait_log("line 129 of the backlog").await;
    let first = "return [...document.querySelectorAll('#log .message .text')].map((t) => t.textContent)\
                 .filter((t) => t.startsWith('line ')).sort()[0];";
    let before = page.eval(first).await;
    assert_ne!(before, json!("line 000 of the backlog"), "the join replays only recent lines");

    // Scroll to the top until the first line of the room is shown.
    page.wait_for(
        "scroll-back to reach line 000",
        "const log = document.getElementById('log'); log.scrollTop = 0;\
         log.dispatchEvent(new Event('scroll'));\
         return log.textContent.includes('line 000 of the backlog');",
    )
    .await;
    let counts = page
        .eval(
            "const texts = [...document.querySelectorAll('#log .message .text')].map((t) => t.textContent);\
             return { all: texts.length, distinct: new Set(texts).size };",
        )
        .await;
    assert_eq!(counts, json!({ "all": 130, "distinct": 130 }), "each line once");

    // A search shows its results as a block in the log.
    page.say("/search backlog 042").await;
    page.wait_for(
        "the search results",
        "const block = document.querySelector('#log .search');\
         return block && block.textContent.includes('line 042 of the backlog');",
    )
    .await;
    page.quit().await;
}

/// Where the screenshots go: `docs/` when `CHAT_UPDATE_SCREENSHOTS` is set
/// (to refresh the committed ones), else the target directory, so a test
/// run leaves the work tree as it was.
fn screenshot_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("CHAT_UPDATE_SCREENSHOTS").is_some() {
        return root.join("docs").join(name);
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let target = exe.ancestors().nth(3).map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    target.join("screenshots").join(name)
}

#[tokio::test]
async fn screenshots_of_a_lively_room_on_a_desktop_and_a_phone() {
    let mut daemon = Daemon::start(&[]);
    let page = Browser::at(daemon.web).await;
    page.viewport(1280, 800).await;
    page.choose_name("dana").await;
    page.say("/join #rust").await;
    page.wait_current("#rust").await;
    page.open_room("#lobby").await;

    let addr = daemon.addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    let mut carol = Client::named(addr, "carol").await;
    let mut eve = Client::named(addr, "eve").await;
    page.wait_member("eve", true).await;
    bob.join("#rust").await;
    carol.join("#rust").await;

    alice.send("morning all! the 0.4 release is out 🎉").await;
    page.wait_log("release is out").await;
    page.say("nice, upgrading the staging box now").await;
    heard(&mut alice, "upgrading the staging box").await;
    eve.send("/me waves from the train").await;
    alice.send("dana, did the database migration finish?").await;
    page.wait_log("database migration").await;
    page.say("yes, all green; took 40 s").await;
    heard(&mut alice, "all green").await;
    daemon.server.console_command("/say #lobby Maintenance tonight at 22:00 UTC, about 5 minutes");
    page.wait_log("Maintenance tonight").await;
    eve.send("see https://example.org/notes for the change list").await;
    bob.send("anyone tried the new borrow checker diagnostics?").await;
    carol.send("yes, the lifetime hints are much clearer").await;
    bob.send("/msg dana lunch at noon?").await;
    page.wait_log("lunch at noon?").await;
    alice.send("thanks for the heads-up").await;
    page.wait_log("heads-up").await;
    page.wait_for(
        "two unread in #rust",
        "const li = [...document.querySelectorAll('#rooms li')]\
         .find((l) => l.querySelector('.room-name').textContent === '#rust');\
         return li && li.querySelector('.unread')?.textContent === '2';",
    )
    .await;
    page.type_into("input", "sounds good, see you").await;
    page.screenshot(&screenshot_path("web-desktop.png")).await;

    page.viewport(360, 740).await;
    page.wait_for(
        "the phone layout, members behind their button",
        "return getComputedStyle(document.getElementById('members-toggle')).display !== 'none' \
         && getComputedStyle(document.getElementById('people')).visibility === 'hidden';",
    )
    .await;
    page.screenshot(&screenshot_path("web-phone.png")).await;
    // Narrowing the window may scroll the log to the top, which loads
    // history: the stored copies must not show a line twice.
    let lines = page
        .eval(
            "const texts = [...document.querySelectorAll('#log .line:not(.notice)')].map((l) => l.textContent);\
             return { all: texts.length, distinct: new Set(texts).size };",
        )
        .await;
    assert_eq!(lines["all"], lines["distinct"], "a line shown twice:\n{}", page.describe().await);
    page.quit().await;
}

//! A real browser for the web page's tests: Debian's Chromium, driven
//! through its chromedriver (WebDriver) by fantoccini.
//!
//! Each [`Browser`] starts its own chromedriver on a free loopback port
//! with a fresh profile. Chromium is heavy on two cores, so a test process
//! runs one browser at a time: [`Browser::open`] waits its turn. Dropping a
//! browser (a failed test included) kills chromedriver's process group,
//! which holds the Chromium it started; [`Browser::quit`] first ends the
//! session politely. Every wait polls the page with a deadline ([`WAIT`]).
//!
//! The helpers after the plumbing read like the page's contract (its
//! stable element ids, PRODUCT.md "The web page"): choose a name, say a
//! line, wait until the log shows something.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Driver, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, MutexGuard};

use crate::support::{TempDir, WAIT, free_port};

/// Where Debian puts them (`chromium`, `chromium-driver`; scripts/test installs both).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time in this process (a `tokio` mutex: it is held across
/// awaits, by tests that each run on their own runtime).
static TURN: Mutex<()> = Mutex::const_new(());

/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(50);

/// A Chromium session, and the chromedriver process that drives it.
pub struct Browser {
    driver: Option<Driver>,
    chromedriver: Child,
    _profile: TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280x900), once no other
    /// browser of this process is open.
    pub async fn open() -> Browser {
        let turn = TURN.lock().await;
        let port = free_port();
        let profile = TempDir::new("chromium");
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which the Chromium it starts joins:
            // one kill ends them all.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts (scripts/test installs chromium-driver)");
        let mut browser = Browser { driver: None, chromedriver, _profile: profile, _turn: turn };
        wait_until_ready(port).await;
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--disable-extensions",
            "--password-store=basic",
            &format!("--user-data-dir={}", browser._profile.path.display()),
            "--window-size=1280,900",
        ];
        let options = json!({ "binary": CHROMIUM, "args": args });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let driver = tokio::time::timeout(
            WAIT,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("Chromium starts in time")
        .expect("chromedriver opens a Chromium session");
        browser.driver = Some(driver);
        browser
    }

    /// A browser showing the page served at `web` (the daemon's `--listen-web`),
    /// noting from then on what the Content-Security-Policy blocks.
    pub async fn at(web: SocketAddr) -> Browser {
        let browser = Browser::open().await;
        browser.goto(&format!("http://{web}/")).await;
        browser
            .eval(
                "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
                 (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));",
            )
            .await;
        browser
    }

    /// What the Content-Security-Policy blocked since the page was opened.
    pub async fn csp_violations(&self) -> Value {
        self.eval("return window.cspViolations;").await
    }

    fn driver(&self) -> &Driver {
        self.driver.as_ref().expect("a session while the browser is open")
    }

    /// Ends the session, which closes Chromium, then chromedriver.
    pub async fn quit(mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = tokio::time::timeout(WAIT, driver.close()).await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.driver().goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.eval_with(script, Vec::new()).await
    }

    /// Runs `script` with `arguments[0..]`.
    pub async fn eval_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.driver()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("the page runs {script:?}: {e}"))
    }

    /// Polls `script` until it returns something truthy, and returns it;
    /// fails with `what` and the page's state after [`WAIT`].
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        self.wait_for_with(what, script, Vec::new()).await
    }

    pub async fn wait_for_with(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.eval_with(script, args.clone()).await;
            if truthy(&value) {
                return value;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; the page shows:\n{}", self.describe().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What the page shows, for a failure message.
    pub async fn describe(&self) -> String {
        let state = self
            .eval(
                "const t = (id) => { const e = document.getElementById(id); \
                 return e ? e.innerText : '(no #' + id + ')'; }; \
                 return `status: ${t('status')}\\nprompt: ${t('prompt')}\\nrooms: ${t('rooms')}\\n\
                 members: ${t('members')}\\nlog:\\n${t('log')}`;",
            )
            .await;
        state.as_str().unwrap_or_default().to_owned()
    }

    /// Types `text` into the element with this id, as keystrokes.
    pub async fn type_into(&self, id: &str, text: &str) {
        let field = self
            .driver()
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("the page has #{id}: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("#{id} takes keystrokes: {e}"));
    }

    /// Types `text` into the element with this id and presses Enter.
    pub async fn enter(&self, id: &str, text: &str) {
        self.type_into(id, &format!("{text}\u{e007}")).await;
    }

    /// Clicks the first element matching the CSS selector.
    pub async fn click(&self, css: &str) {
        let element = self
            .driver()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("the page has {css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("{css} can be clicked: {e}"));
    }

    /// The visible text of the element with this id.
    pub async fn text(&self, id: &str) -> String {
        let value = self
            .eval_with(
                "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;",
                vec![json!(id)],
            )
            .await;
        value.as_str().unwrap_or_else(|| panic!("the page has #{id}")).to_owned()
    }

    /// Makes the page's viewport exactly `width` x `height` CSS pixels: the
    /// window is set, what the browser keeps for itself is measured, and
    /// the window is grown by that much.
    pub async fn viewport(&self, width: u32, height: u32) {
        let driver = self.driver();
        driver.set_window_size(width, height).await.expect("the window can be resized");
        let inner = self.eval("return [window.innerWidth, window.innerHeight];").await;
        let extra = |at: usize, wanted: u32| {
            let got = inner[at].as_u64().expect("a size") as u32;
            wanted.saturating_sub(got)
        };
        let (outer_w, outer_h) = (width + extra(0, width), height + extra(1, height));
        driver.set_window_size(outer_w, outer_h).await.expect("the window can be resized");
        let size =
            format!("return window.innerWidth === {width} && window.innerHeight === {height};");
        self.wait_for(&format!("a viewport of {width}x{height}"), &size).await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.driver().screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    // The page, as a person uses it.

    /// Waits for the name prompt, types `name` (empty: a guest name) and
    /// waits until the page says it is connected as that name.
    pub async fn choose_name(&self, name: &str) {
        self.wait_status("the name prompt", "choose a name").await;
        self.enter("input", name).await;
        self.wait_status(&format!("being in as {name:?}"), &format!("connected as {name}")).await;
    }

    /// Waits until `#status` contains `text`.
    pub async fn wait_status(&self, what: &str, text: &str) {
        self.wait_for_with(
            what,
            "return document.getElementById('status').textContent.includes(arguments[0]);",
            vec![json!(text)],
        )
        .await;
    }

    /// Types a line (a message or any command) and presses Enter.
    pub async fn say(&self, line: &str) {
        self.enter("input", line).await;
    }

    /// Waits until the log (the current room's lines) shows `text`.
    pub async fn wait_log(&self, text: &str) {
        self.wait_for_with(
            &format!("the log to show {text:?}"),
            "return document.getElementById('log').textContent.includes(arguments[0]);",
            vec![json!(text)],
        )
        .await;
    }

    /// How many lines of the log contain `text`.
    pub async fn log_lines_with(&self, text: &str) -> usize {
        let count = self
            .eval_with(
                "return [...document.querySelectorAll('#log .line')]\
                 .filter((l) => l.textContent.includes(arguments[0])).length;",
                vec![json!(text)],
            )
            .await;
        count.as_u64().expect("a count") as usize
    }

    /// Waits until the page's current room is `room`.
    pub async fn wait_current(&self, room: &str) {
        self.wait_for_with(
            &format!("{room} to be the current room"),
            "return document.getElementById('room-title').textContent === arguments[0];",
            vec![json!(room)],
        )
        .await;
    }

    /// The text of the `#rooms` entry naming `room` (its name and unread count).
    pub async fn room_entry(&self, room: &str) -> Option<String> {
        let text = self
            .eval_with(
                "const li = [...document.querySelectorAll('#rooms li')]\
                 .find((l) => l.querySelector('.room-name')?.textContent === arguments[0]);\
                 return li ? li.querySelector('.room').textContent : null;",
                vec![json!(room)],
            )
            .await;
        text.as_str().map(str::to_owned)
    }

    /// Clicks `room` in the rooms list.
    pub async fn open_room(&self, room: &str) {
        let found = self
            .eval_with(
                "const li = [...document.querySelectorAll('#rooms li')]\
                 .find((l) => l.querySelector('.room-name')?.textContent === arguments[0]);\
                 if (!li) return false; li.querySelector('.room').click(); return true;",
                vec![json!(room)],
            )
            .await;
        assert_eq!(found, json!(true), "{room} is in the rooms list:\n{}", self.describe().await);
        self.wait_current(room).await;
    }

    /// Waits until `#members` does (`true`) or does not list `name`.
    pub async fn wait_member(&self, name: &str, listed: bool) {
        let what = format!("#members {} {name}", if listed { "to list" } else { "to drop" });
        self.wait_for_with(
            &what,
            "return [...document.querySelectorAll('#members .name')]\
             .some((n) => n.textContent === arguments[0]) === arguments[1];",
            vec![json!(name), json!(listed)],
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started. The
        // group is named by chromedriver's pid, not yet reaped, so it is
        // still ours.
        let group = self.chromedriver.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group of a child we spawned.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.chromedriver.wait();
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Polls chromedriver's `/status` until it says it is ready.
async fn wait_until_ready(port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(2), ready(port)).await {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
        tokio::time::sleep(POLL).await;
    }
}

async fn ready(port: u16) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    // chromedriver keeps the connection open whatever the request says:
    // read until the answer is in, not to the end.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(false);
        }
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(at) = text.find("\"ready\":") {
            return Ok(text[at..]
                .trim_start_matches("\"ready\":")
                .trim_start()
                .starts_with("true"));
        }
    }
}

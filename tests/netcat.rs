//! The real `nc` and `telnet` binaries chatting with the real server, as a
//! user without the bundled client would. These tools must be installed
//! (`scripts/test` installs them); a missing one fails the test by name.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use support::{Client, Server, WAIT, strip_ansi};

/// A terminal tool (nc, telnet) whose stdin we type into and whose stdout we read.
struct Tool {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Tool {
    fn spawn(program: &str, args: &[String]) -> Tool {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "`{program}` must be installed for this test (scripts/test installs it): {e}"
                )
            });
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tool { child, lines, seen: Vec::new() }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        writeln!(stdin, "{line}").expect("tool accepts input");
        stdin.flush().expect("flushed");
    }

    fn expect(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no expected line; saw {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_netcat_users_chat_with_a_raw_client() {
    let server = Server::start(&[]);
    let args = [server.addr.ip().to_string(), server.addr.port().to_string()];
    let mut alice = Tool::spawn("nc", &args);
    alice.expect(|l| l.contains("name"));
    alice.type_line("alice");
    alice.expect(|l| l.contains("Welcome, alice"));
    let mut carol = Tool::spawn("nc", &args);
    carol.expect(|l| l.contains("name"));
    carol.type_line("carol");
    carol.expect(|l| l.contains("Welcome, carol"));

    let mut bob = Client::named(server.addr, "bob").await;
    alice.type_line("hello from netcat");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("hello from netcat")).await);
    assert!(line.ends_with("alice: hello from netcat"), "{line}");
    let at_carol = carol.expect(|l| l.contains("hello from netcat"));
    assert!(strip_ansi(&at_carol).ends_with("alice: hello from netcat"), "{at_carol:?}");

    bob.send("hi netcat").await;
    let line = strip_ansi(&alice.expect(|l| l.contains("hi netcat")));
    assert!(line.trim_end().ends_with("bob: hi netcat"), "{line}");
}

#[tokio::test]
async fn a_telnet_user_chats() {
    let server = Server::start(&[]);
    let args = [server.addr.ip().to_string(), server.addr.port().to_string()];
    let mut alice = Tool::spawn("telnet", &args);
    alice.expect(|l| l.contains("name"));
    alice.type_line("alice");
    alice.expect(|l| l.contains("Welcome, alice"));
    let mut bob = Client::named(server.addr, "bob").await;
    alice.type_line("hello from telnet");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("hello from telnet")).await);
    assert!(line.ends_with("alice: hello from telnet"), "{line}");
    bob.send("hi telnet").await;
    alice.expect(|l| l.contains("bob: hi telnet"));
}

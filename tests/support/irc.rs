//! An IRC client for the tests: a raw line client that registers, reads
//! messages and numerics, and answers nothing by itself (a test that wants
//! the server's PING answered says so).

use std::net::SocketAddr;

use super::Client;

/// An IRC connection: every line it sent and received stays readable.
pub struct Irc {
    pub client: Client,
    pub nick: String,
}

/// The command (or numeric) of a message, past its tags and source.
pub fn command_of(line: &str) -> &str {
    let mut words = line.split(' ').filter(|w| !w.is_empty()).peekable();
    if words.peek().is_some_and(|w| w.starts_with('@')) {
        words.next();
    }
    if words.peek().is_some_and(|w| w.starts_with(':')) {
        words.next();
    }
    words.next().unwrap_or("")
}

/// The message without its tags.
pub fn untagged(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
        None => line,
    }
}

/// Base64 (RFC 4648, with padding), for SASL PLAIN.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Irc {
    pub async fn connect(addr: SocketAddr) -> Irc {
        Irc { client: Client::connect(addr).await, nick: "*".to_owned() }
    }

    /// Connects and registers as `nick` with no capabilities; returns once
    /// the welcome's names for `#lobby` are in.
    pub async fn registered(addr: SocketAddr, nick: &str) -> Irc {
        let mut irc = Irc::connect(addr).await;
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick} the tester")).await;
        irc.expect_command("001").await;
        irc.expect_command("366").await;
        irc.nick = nick.to_owned();
        irc
    }

    /// Connects, asks for `caps` and registers as `nick`.
    pub async fn registered_with(addr: SocketAddr, nick: &str, caps: &str) -> Irc {
        let mut irc = Irc::connect(addr).await;
        irc.send("CAP LS 302").await;
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick}")).await;
        irc.send(&format!("CAP REQ :{caps}")).await;
        let ack = irc
            .expect(|l| l.contains(" CAP ") && (l.contains(" ACK ") || l.contains(" NAK ")))
            .await;
        assert!(ack.contains(" ACK "), "capabilities {caps} acknowledged: {ack}");
        irc.send("CAP END").await;
        irc.expect_command("001").await;
        irc.expect_command("366").await;
        irc.nick = nick.to_owned();
        irc
    }

    pub async fn send(&mut self, line: &str) {
        self.client.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads until a line matches, and returns it.
    pub async fn expect(&mut self, matches: impl Fn(&str) -> bool) -> String {
        self.client.expect_line(matches).await
    }

    /// Every line up to and including the first that matches.
    pub async fn until(&mut self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        self.client.lines_until(matches).await
    }

    /// Reads until a message with this command or numeric.
    pub async fn expect_command(&mut self, command: &str) -> String {
        self.expect(|l| command_of(l) == command).await
    }

    /// Every line up to and including the next message with this command.
    pub async fn until_command(&mut self, command: &str) -> Vec<String> {
        self.until(|l| command_of(l) == command).await
    }

    /// Sends `PING :token` and returns what came before its `PONG`: a
    /// barrier that shows what the server had to say first.
    pub async fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING :{token}")).await;
        let mut lines = self.until(|l| command_of(l) == "PONG" && l.ends_with(token)).await;
        lines.pop();
        lines
    }
}

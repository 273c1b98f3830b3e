//! TLS end to end: `--listen-tls` beside a plain listener, the bundled
//! client with `--tls --ca`, and `openssl s_client` as the netcat of TLS.
//! The certificate is generated at test time.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use support::{
    Client, Process, Server, WAIT, bin_path, is_chat_listener, listening_addr, strip_ansi,
};

/// A self-signed certificate for localhost and 127.0.0.1, in a temp dir.
struct TestCert {
    dir: PathBuf,
}

impl TestCert {
    fn new(tag: &str) -> TestCert {
        let dir = std::env::temp_dir().join(format!("chat-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = rcgen::generate_simple_self_signed(names).expect("certificate generated");
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("cert written");
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("key written");
        TestCert { dir }
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with a plain and a TLS listener; returns it and the TLS address.
fn start_tls_server(cert: &TestCert) -> (Server, SocketAddr) {
    let (c, k) = (cert.cert(), cert.key());
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        &c,
        "--tls-key",
        &k,
    ];
    let server = Server::start(&args);
    let line = server.log.wait_for("TLS listener", |l| is_chat_listener(l, true));
    let tls_addr = listening_addr(&line);
    assert_ne!(tls_addr, server.addr, "plain and TLS listeners side by side");
    (server, tls_addr)
}

#[tokio::test]
async fn the_client_chats_over_tls_with_a_plain_user() {
    let cert = TestCert::new("client");
    let (server, tls_addr) = start_tls_server(&cert);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut alice = Process::spawn(Command::new(bin_path("chat-client")).args([
        &tls_addr.to_string(),
        "--name",
        "alice",
        "--no-color",
        "--ca",
        &cert.cert(),
    ]));
    bob.expect_line(|l| l.contains("alice joined")).await;
    alice.type_line("secret hello");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("secret hello")).await);
    assert!(line.ends_with("alice: secret hello"), "{line}");
    bob.send("hello over tls").await;
    // Closing stdin makes the client say /quit: only once bob's line is on
    // its screen, or the goodbye could end the session before it arrives.
    alice.stdout.wait_for("bob's line", |l| l.contains("bob: hello over tls"));
    alice.close_stdin();
    let output = alice.finish(WAIT);
    assert!(output.status.success(), "{:?} {}", output.status, output.stderr);
    assert!(output.stdout.contains("bob: hello over tls"), "{}", output.stdout);
}

#[test]
fn an_untrusted_certificate_is_refused_by_the_client() {
    let cert = TestCert::new("untrusted");
    let (_server, tls_addr) = start_tls_server(&cert);
    let output = support::run(Command::new(bin_path("chat-client")).args([
        &tls_addr.to_string(),
        "--name",
        "alice",
        "--tls",
    ]));
    assert_eq!(output.status.code(), Some(3), "unreachable exit code: {}", output.stderr);
    let stderr = output.stderr;
    assert!(stderr.contains("cannot connect") && stderr.contains("certificate"), "{stderr}");
}

#[tokio::test]
async fn openssl_s_client_can_chat() {
    let cert = TestCert::new("openssl");
    let (server, tls_addr) = start_tls_server(&cert);
    let mut bob = Client::named(server.addr, "bob").await;
    let mut openssl = Process::spawn(Command::new("openssl").args([
        "s_client",
        "-connect",
        &tls_addr.to_string(),
        "-CAfile",
        &cert.cert(),
        "-quiet",
    ]));
    openssl.stdout.wait_for("the name prompt", |l| l.contains("name"));
    openssl.type_line("carol");
    openssl.stdout.wait_for("the welcome", |l| l.contains("Welcome, carol"));
    openssl.type_line("hi from openssl");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("hi from openssl")).await);
    assert!(line.ends_with("carol: hi from openssl"), "{line}");
    bob.send("hi carol").await;
    openssl.stdout.wait_for("bob's line", |l| l.contains("bob: hi carol"));
}

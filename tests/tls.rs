//! TLS end to end: `--listen-tls` beside a plain listener, the bundled
//! client with `--tls --ca`, and `openssl s_client` as the netcat of TLS.
//! The certificate is generated at test time.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use support::{Client, Server, WAIT, bin_path, is_chat_listener, listening_addr, strip_ansi};

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
    let mut client = tokio::process::Command::new(bin_path("chat-client"))
        .args([&tls_addr.to_string(), "--name", "alice", "--no-color", "--ca", &cert.cert()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat-client starts");
    bob.expect_line(|l| l.contains("alice joined")).await;
    let mut stdin = client.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"secret hello\n").await.expect("typed");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("secret hello")).await);
    assert!(line.ends_with("alice: secret hello"), "{line}");
    bob.send("hello over tls").await;
    drop(stdin);
    let output = tokio::time::timeout(WAIT, client.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("bob: hello over tls"), "{stdout}");
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
    let mut openssl = Command::new("openssl")
        .args(["s_client", "-connect", &tls_addr.to_string(), "-CAfile", &cert.cert(), "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`openssl` must be installed for this test (scripts/test installs it)");
    let (tx, lines) = mpsc::channel();
    let stdout = openssl.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let expect = |what: &str| loop {
        let line =
            lines.recv_timeout(WAIT).unwrap_or_else(|_| panic!("openssl never showed {what:?}"));
        if line.contains(what) {
            return line;
        }
    };
    expect("name");
    let mut stdin = openssl.stdin.take().expect("stdin");
    writeln!(stdin, "carol").expect("typed");
    expect("Welcome, carol");
    writeln!(stdin, "hi from openssl").expect("typed");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("hi from openssl")).await);
    assert!(line.ends_with("carol: hi from openssl"), "{line}");
    bob.send("hi carol").await;
    expect("bob: hi carol");
    let _ = openssl.kill();
    let _ = openssl.wait();
}

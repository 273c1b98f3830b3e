//! TLS end to end: `--listen-tls` beside a plain listener, the bundled
//! client with `--tls --ca`, and `openssl s_client` as the netcat of TLS.
//! The certificate is generated at test time.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

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

/// `--listen-web-tls`: the page over https and its WebSocket over wss, with
/// the daemon's certificate, in the same room as a plain netcat user; the
/// page's own origin is its https origin.
#[tokio::test]
async fn the_web_page_and_its_web_socket_are_served_over_tls() {
    use futures::{SinkExt, StreamExt};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    let cert = TestCert::new("web");
    let (c, k) = (cert.cert(), cert.key());
    let server =
        Server::start(&["--listen-web-tls", "127.0.0.1:0", "--tls-cert", &c, "--tls-key", &k]);
    let web = server.web_tls_addr();
    let mut bob = Client::named(server.addr, "bob").await;

    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(cert.cert()).expect("the test certificate reads back");
    roots.add(ca).expect("the test certificate is a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let open = |origin: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(web).await.expect("the web listener accepts");
            let name = ServerName::try_from("localhost").expect("a server name");
            let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
                .await
                .expect("handshake in time")
                .expect("the daemon's certificate is trusted");
            let url = format!("wss://localhost:{}/ws", web.port());
            let mut request = url.into_client_request().expect("a request");
            let origin = origin.replace("PORT", &web.port().to_string());
            request.headers_mut().insert("origin", origin.parse().expect("a header value"));
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tls))
                .await
                .expect("upgraded in time")
        }
    };
    // The page served over http would be another origin than this one.
    match open("http://localhost:PORT").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a plain-http origin opened the https door: {:?}", other.map(|_| ())),
    }
    let (ws, _) = open("https://localhost:PORT").await.expect("the page's own origin");
    let (mut ws, mut incoming) = ws.split();
    let mut next = async || loop {
        let message = tokio::time::timeout(WAIT, incoming.next()).await.expect("a message in time");
        if let Some(Ok(Message::Text(text))) = message {
            return serde_json::from_str::<serde_json::Value>(&text).expect("one JSON object");
        }
        assert!(matches!(message, Some(Ok(_))), "closed: {message:?}");
    };
    while next().await["type"] != "name_prompt" {}
    ws.send(Message::text("tess")).await.expect("the name is sent");
    while next().await["type"] != "welcome" {}
    ws.send(Message::text("hello over wss")).await.expect("the line is sent");
    let line = strip_ansi(&bob.expect_line(|l| l.contains("hello over wss")).await);
    assert!(line.ends_with("tess: hello over wss"), "{line}");
    bob.send("hi tess").await;
    loop {
        let object = next().await;
        if object["type"] == "message" && object["text"] == "hi tess" {
            break;
        }
    }
}

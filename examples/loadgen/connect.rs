//! Opening many connections: one socket, a spread of loopback source addresses, and a bounded
//! number of connection attempts in flight.
//!
//! Traffic goes only to loopback: `main` refuses any other server address. Binding the client
//! side to 127.0.0.(1 + i % 250) before connecting spreads tens of thousands of connections over
//! many address/port pairs, so ephemeral ports never run out.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::receipt::request_timestamps;

/// Connects to `server` over TCP with Nagle off, from `source` (port chosen by the kernel) if
/// given, with kernel receive timestamps if `stamped`.
pub async fn connect(
    server: SocketAddr,
    source: Option<IpAddr>,
    stamped: bool,
) -> Result<TcpStream> {
    let socket = if server.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .context("creating a socket")?;
    if let Some(ip) = source {
        socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding the source address {ip}"))?;
    }
    socket.set_nodelay(true).context("setting TCP_NODELAY")?;
    let stream = socket.connect(server).await.with_context(|| format!("connecting to {server}"))?;
    if stamped {
        request_timestamps(&stream).context("setting SO_TIMESTAMPNS")?;
    }
    Ok(stream)
}

/// The i-th source address of a spread over 127.0.0.1 ..= 127.0.0.250.
pub fn spread_source(i: usize) -> IpAddr {
    let last = 1 + (i % 250) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Runs `start(i)` for every i in `0..n`, at most `width` at once, and returns the results in
/// order. The first failure aborts the rest and is returned with the client's number.
pub async fn in_parallel<T, F, Fut>(n: usize, width: usize, start: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let mut running = JoinSet::new();
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut next = 0;
    let launch = |running: &mut JoinSet<(usize, Result<T>)>, i: usize| {
        let attempt = start(i);
        running.spawn(async move { (i, attempt.await) });
    };
    while next < n.min(width.max(1)) {
        launch(&mut running, next);
        next += 1;
    }
    while let Some(done) = running.join_next().await {
        let (i, result) = done.context("a connecting task failed")?;
        results[i] = Some(result.with_context(|| format!("client {i}"))?);
        if next < n {
            launch(&mut running, next);
            next += 1;
        }
    }
    Ok(results.into_iter().flatten().collect())
}

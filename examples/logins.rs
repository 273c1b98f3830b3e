//! Times registered logins, for `bench/logins.sh`.
//!
//! With `--hashes N` it times the daemon's own password functions
//! (`chat_server::accounts::hash` and `verify`, argon2id on the blocking
//! pool) N times each, here, with no daemon. With `--addr` it registers
//! `--name` on that running daemon (if it is free), then logs in as it
//! `--count` times one after another: connect, name, password, welcome,
//! `/quit`, close; each login is timed from the connect to the welcome. One
//! JSON line on stdout; every read has a 30 s deadline, so a stalled daemon
//! fails the run.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Times password hashing and registered logins of a chat-server")]
struct Args {
    /// Time this many hashes and verifications, without a daemon.
    #[arg(long)]
    hashes: Option<usize>,
    /// A running daemon to log in to.
    #[arg(long, conflicts_with = "hashes")]
    addr: Option<SocketAddr>,
    #[arg(long, default_value = "loginbench")]
    name: String,
    #[arg(long, default_value = "bench-password-1")]
    password: String,
    /// Logins one after another.
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

const READ_DEADLINE: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match (args.hashes, args.addr) {
        (Some(count), _) => time_hashes(count),
        (None, Some(addr)) => time_logins(addr, &args),
        (None, None) => bail!("give --hashes N or --addr ADDR"),
    }
}

fn time_hashes(count: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut hashing = Vec::with_capacity(count);
    let mut verifying = Vec::with_capacity(count);
    runtime.block_on(async {
        for _ in 0..count {
            let start = Instant::now();
            let hash = chat_server::accounts::hash("correct-horse-battery".into())
                .await
                .map_err(anyhow::Error::msg)?;
            hashing.push(start.elapsed());
            let start = Instant::now();
            let right = chat_server::accounts::verify("correct-horse-battery".into(), hash).await;
            verifying.push(start.elapsed());
            anyhow::ensure!(right, "the password did not verify against its own hash");
        }
        anyhow::Ok(())
    })?;
    println!(
        "{{\"mode\":\"hashes\",\"count\":{count},\"hash_ms_p50\":{:.2},\"hash_ms_max\":{:.2},\"verify_ms_p50\":{:.2},\"verify_ms_max\":{:.2}}}",
        ms(quantile(&mut hashing, 0.5)),
        ms(quantile(&mut hashing, 1.0)),
        ms(quantile(&mut verifying, 0.5)),
        ms(quantile(&mut verifying, 1.0)),
    );
    Ok(())
}

fn time_logins(addr: SocketAddr, args: &Args) -> anyhow::Result<()> {
    register(addr, &args.name, &args.password)?;
    let started = Instant::now();
    let mut took = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let login = Instant::now();
        let mut conn = Conn::open(addr)?;
        conn.until(|l| l.contains("What is your name?"))?;
        conn.send(&args.name)?;
        conn.until(|l| l.contains("is registered"))?;
        conn.send(&args.password)?;
        conn.until(|l| l.contains("Welcome, "))
            .with_context(|| format!("login {i} got no welcome"))?;
        took.push(login.elapsed());
        conn.send("/quit")?;
        conn.until_closed()?;
    }
    let total = started.elapsed();
    println!(
        "{{\"mode\":\"logins\",\"count\":{},\"total_s\":{:.2},\"login_ms_p50\":{:.2},\"login_ms_p99\":{:.2},\"login_ms_max\":{:.2}}}",
        args.count,
        total.as_secs_f64(),
        ms(quantile(&mut took, 0.5)),
        ms(quantile(&mut took, 0.99)),
        ms(quantile(&mut took, 1.0)),
    );
    Ok(())
}

/// Makes `name` registered with `password`, unless it is already.
fn register(addr: SocketAddr, name: &str, password: &str) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr)?;
    conn.until(|l| l.contains("What is your name?"))?;
    conn.send(name)?;
    let answer = conn.until(|l| l.contains("Welcome, ") || l.contains("is registered"))?;
    if answer.contains("is registered") {
        return Ok(()); // from an earlier run against the same daemon
    }
    conn.send(&format!("/register {password}"))?;
    conn.until(|l| l.contains("yours now"))?;
    conn.send("/quit")?;
    conn.until_closed()
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_DEADLINE))?;
        Ok(Conn { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes()).context("send")
    }

    /// Reads lines until one matches, returning it.
    fn until(&mut self, matches: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).context("read")? == 0 {
                bail!("the daemon closed the connection first");
            }
            if matches(&line) {
                return Ok(line);
            }
        }
    }

    fn until_closed(&mut self) -> anyhow::Result<()> {
        let mut line = String::new();
        while self.reader.read_line(&mut line).context("read")? > 0 {
            line.clear();
        }
        Ok(())
    }
}

fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index.min(values.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

//! Times the history as a user sees it, for `bench/store.sh`.
//!
//! With `--server BIN --db PATH` it starts that daemon on a free loopback
//! port and reports how long it took to listen and then to serve a join
//! with its replay (connect, name, the welcome and the `--replay` recent
//! lines), then stops it with SIGTERM. With `--addr` it joins a running
//! daemon as `--name` and sends `/history N` and `/search WORDS`
//! `--queries` times each, one after another, timing each from the send to
//! the last line of the answer. One JSON line on stdout either way; every
//! read has a 30 s deadline, so a stalled daemon fails the run.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Times restart, join replay, /history and /search of a chat-server")]
struct Args {
    /// Start this chat-server binary (with --db) and time its start and first join.
    #[arg(long, requires = "db")]
    server: Option<String>,
    #[arg(long)]
    db: Option<String>,
    /// A running daemon to query.
    #[arg(long, conflicts_with = "server")]
    addr: Option<SocketAddr>,
    #[arg(long, default_value = "probe")]
    name: String,
    /// Lines the daemon replays on join (its --history).
    #[arg(long, default_value_t = 20)]
    replay: usize,
    #[arg(long, default_value_t = 100)]
    queries: usize,
    #[arg(long, default_value_t = 500)]
    history: usize,
    #[arg(long, default_value = "word3 word5")]
    search: String,
}

const DEADLINE: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match (&args.server, args.addr) {
        (Some(server), _) => restart(&args, server),
        (None, Some(addr)) => queries(&args, addr),
        (None, None) => bail!("give --server BIN --db PATH, or --addr ADDR"),
    }
}

/// Starts the daemon, times listen and the first join with replay, stops it.
fn restart(args: &Args, server: &str) -> anyhow::Result<()> {
    let db = args.db.as_deref().context("--db")?;
    let started = Instant::now();
    let mut child = Command::new(server)
        .args(["--listen", "127.0.0.1:0", "--db", db, "--no-color"])
        .args(["--history", &args.replay.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {server}"))?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut log = BufReader::new(stderr).lines();
    let addr = loop {
        let line = log.next().context("the daemon ended before listening")??;
        if let Some(addr) = listening_addr(&line) {
            break addr;
        }
        if started.elapsed() > DEADLINE {
            bail!("the daemon did not listen within {DEADLINE:?}");
        }
    };
    let listen = started.elapsed();
    // Keep reading the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || log.for_each(drop));
    let joining = Instant::now();
    let mut client = Client::connect(addr)?;
    client.name_as(&args.name)?;
    client.until(|l| l.contains("Recent messages"))?;
    for _ in 0..args.replay {
        client.line()?;
    }
    let join = joining.elapsed();
    // SAFETY: kill(2) on the child we started and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    child.wait()?;
    println!("{{\"listen_ms\":{:.1},\"join_with_replay_ms\":{:.1}}}", ms(listen), ms(join));
    Ok(())
}

/// `/history N` and `/search WORDS`, timed one after another.
fn queries(args: &Args, addr: SocketAddr) -> anyhow::Result<()> {
    let mut client = Client::connect(addr)?;
    client.name_as(&args.name)?;
    let mut history = Vec::with_capacity(args.queries);
    let mut search = Vec::with_capacity(args.queries);
    let mut found = 0;
    for _ in 0..args.queries {
        let (took, lines) = client.ask(&format!("/history {}", args.history))?;
        if lines != args.history {
            bail!("/history {} gave {lines} lines", args.history);
        }
        history.push(took);
        let (took, lines) = client.ask(&format!("/search {}", args.search))?;
        found = lines;
        search.push(took);
    }
    let (h, s) = (summary(&mut history), summary(&mut search));
    println!(
        "{{\"queries\":{},\"history_n\":{},\"history_p50_ms\":{:.2},\"history_p99_ms\":{:.2},\"history_max_ms\":{:.2},\"search\":{:?},\"search_found\":{found},\"search_p50_ms\":{:.2},\"search_p99_ms\":{:.2},\"search_max_ms\":{:.2}}}",
        args.queries, args.history, h.0, h.1, h.2, args.search, s.0, s.1, s.2
    );
    Ok(())
}

/// p50, p99 and max in milliseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| ms(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
    (at(0.5), at(0.99), times.last().map_or(0.0, |t| ms(*t)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The address in a chat listener's log line (`listening addr=... tls=false`).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") || line.contains("metrics") {
        return None;
    }
    line.split_whitespace().find_map(|w| w.strip_prefix("addr=")?.parse().ok())
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_nodelay(true)?;
        Ok(Client { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn name_as(&mut self, name: &str) -> anyhow::Result<()> {
        self.until(|l| l.contains("name"))?;
        self.send(name)?;
        self.until(|l| l.contains("Welcome,")).map(drop)
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        Ok(())
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("no line within the deadline")? == 0 {
            bail!("the daemon closed the connection");
        }
        Ok(line.trim_end().to_owned())
    }

    fn until(&mut self, matches: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        loop {
            let line = self.line()?;
            if matches(&line) {
                return Ok(line);
            }
        }
    }

    /// Sends a history command; returns how long the whole answer took and its line count.
    fn ask(&mut self, command: &str) -> anyhow::Result<(Duration, usize)> {
        let sent = Instant::now();
        self.send(command)?;
        let heading = self.until(|l| {
            l.starts_with("*** ")
                && (l.contains("UTC") || l.contains("No messages") || l.contains("Sorry"))
        })?;
        if heading.contains("Sorry") {
            bail!("{heading}");
        }
        let count = if heading.contains("No messages") {
            0
        } else {
            heading.split_whitespace().find_map(|w| w.parse::<usize>().ok()).unwrap_or(0)
        };
        for _ in 0..count {
            self.line()?;
        }
        Ok((sent.elapsed(), count))
    }
}

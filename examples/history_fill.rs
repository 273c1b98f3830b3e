//! Fills a chat-server database with many messages, for the history
//! benchmarks (`bench/store.sh`): a stopped daemon's file, or a new one,
//! opened and written exactly as the daemon's store does (its schema, its
//! batched inserts with the full-text index), only faster than chat could.
//!
//! Messages go to `#lobby` (a tenth of them) and `--rooms` other rooms, from
//! 1,000 speakers, spread evenly over the last `--days` days; each is eight
//! words drawn from 1,000 (`word0`..`word999`, the low numbers far more
//! often, as in real text), so `/search` has common and rare words to find.
//!
//! `cargo run --release --example history_fill -- --db big.db --messages 10000000`

use std::collections::VecDeque;
use std::time::Instant;

use chat_proto::{Name, RoomName};
use chat_server::event::Message;
use chat_server::store::local::{LocalStore, insert_all};
use chat_server::store::{Said, Stored, now_ms};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fills a chat-server database with many messages, as the daemon writes them")]
struct Args {
    /// The database file (created if missing; the daemon must not be running on it).
    #[arg(long)]
    db: String,
    /// Messages to add.
    #[arg(long)]
    messages: u64,
    /// Rooms besides #lobby.
    #[arg(long, default_value_t = 99)]
    rooms: u64,
    /// The messages are spread over this many days up to now.
    #[arg(long, default_value_t = 30)]
    days: u64,
}

/// Lines per transaction.
const BATCH: u64 = 20_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut conn = LocalStore::open_for_tools(&args.db).map_err(anyhow::Error::msg)?;
    let rooms = room_names(args.rooms)?;
    let speakers: Vec<Name> =
        (0..1000).map(|i| Name::parse(&format!("user{i}"))).collect::<Result<_, _>>()?;
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let span_ms = args.days * 86_400_000;
    let start_ms = now_ms() - span_ms as i64;
    let started = Instant::now();
    let mut batch = VecDeque::with_capacity(BATCH as usize);
    for n in 0..args.messages {
        let room = if random.below(10) == 0 { 0 } else { 1 + random.below(args.rooms.max(1)) };
        let speaker = random.below(speakers.len() as u64) as usize;
        let text: Vec<String> = (0..8).map(|_| format!("word{}", random.zipf_like(1000))).collect();
        let message = Message {
            name: speakers[speaker].clone(),
            theme: speaker % chat_proto::THEMES.len(),
            text: text.join(" "),
            action: false,
        };
        let at_ms = start_ms + (n * span_ms / args.messages.max(1)) as i64;
        let room = rooms[(room as usize).min(rooms.len() - 1)].clone();
        batch.push_back((room, Stored { at_ms, said: Said::Message(message) }));
        if batch.len() as u64 == BATCH || n + 1 == args.messages {
            insert_all(&mut conn, &batch)?;
            batch.clear();
        }
        if (n + 1) % 1_000_000 == 0 {
            eprintln!("{} messages in {:.0?}", n + 1, started.elapsed());
        }
    }
    let size = std::fs::metadata(&args.db).map(|m| m.len()).unwrap_or(0);
    println!(
        "{{\"db\":{:?},\"messages\":{},\"seconds\":{:.1},\"file_bytes\":{size}}}",
        args.db,
        args.messages,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn room_names(others: u64) -> anyhow::Result<Vec<RoomName>> {
    let mut rooms = vec![RoomName::lobby()];
    for i in 1..=others {
        rooms.push(RoomName::parse(&format!("#room{i}"))?);
    }
    Ok(rooms)
}

/// A small, fast, seeded generator: the same file every time.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// 0..n, small numbers much more often (the square of a uniform draw).
    fn zipf_like(&mut self, n: u64) -> u64 {
        let u = self.below(1 << 20) as f64 / f64::from(1 << 20);
        ((u * u) * n as f64) as u64
    }
}

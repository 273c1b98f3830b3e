//! A small bot on the JSON door (`chat-server --listen-json ADDR`, see
//! docs/json.md): it takes a name, answers `!ping` with `pong` and
//! `!time` with the time in UTC, greets whoever arrives, and leaves at
//! end of input or when the server says goodbye.
//!
//! ```sh
//! chat-server --listen 127.0.0.1:7878 --listen-json 127.0.0.1:7879 &
//! cargo run --example json_bot -- 127.0.0.1:7879 pingbot
//! ```

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7879".to_owned());
    let name = args.next().unwrap_or_else(|| "pingbot".to_owned());
    let stream = TcpStream::connect(&addr).await.with_context(|| format!("cannot reach {addr}"))?;
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        let event: Value =
            serde_json::from_str(&line).context("the server sent something not JSON")?;
        let reply = match event["type"].as_str() {
            Some("name_prompt") if event["again"] == true => bail!("the name {name} was refused"),
            Some("name_prompt") => Some(name.clone()),
            Some("refusal") => {
                eprintln!("refused: {}", event["reason"]);
                None
            }
            Some("join") if event["arrival"] == true => {
                Some(format!("hello {}! try !ping", event["who"]["name"].as_str().unwrap_or("")))
            }
            Some("message") => match event["text"].as_str() {
                Some("!ping") => Some("pong".to_owned()),
                Some("!time") => Some(format!("{} s since 1970 (UTC)", unix_seconds())),
                _ => None,
            },
            Some("goodbye") => return Ok(()),
            _ => None,
        };
        if let Some(reply) = reply {
            let mut out = json!({ "line": reply }).to_string();
            out.push('\n');
            writer.write_all(out.as_bytes()).await?;
        }
    }
    Ok(())
}

fn unix_seconds() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_secs()).unwrap_or(0)
}

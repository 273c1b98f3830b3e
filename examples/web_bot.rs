//! A small bot on the web page's WebSocket (`chat-server --listen-web ADDR`,
//! see docs/json.md): it takes a name, joins a room if asked, answers
//! `!ping` with `pong` and `!who` with who spoke last, greets whoever
//! joins its room, and leaves when the server says goodbye.
//!
//! ```sh
//! chat-server --listen 127.0.0.1:7878 --listen-web 127.0.0.1:7880 &
//! cargo run --example web_bot -- ws://127.0.0.1:7880/ws webbot '#lobby'
//! ```

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:7880/ws".to_owned());
    let name = args.next().unwrap_or_else(|| "webbot".to_owned());
    let room = args.next().unwrap_or_else(|| "#lobby".to_owned());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let mut last_speaker: Option<String> = None;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message.context("the connection failed")? else { continue };
        let event: Value =
            serde_json::from_str(&text).context("the server sent something not JSON")?;
        let says = |line: String| Message::text(json!({ "line": line }).to_string());
        let reply = match event["type"].as_str() {
            Some("name_prompt") if event["again"] == true => bail!("the name {name} was refused"),
            Some("name_prompt") => Some(says(name.clone())),
            Some("welcome") if room != "#lobby" => Some(says(format!("/join {room}"))),
            Some("refusal" | "refused") => {
                eprintln!("refused: {}", event["reason"]);
                None
            }
            Some("join") if event["room"] == room.as_str() => {
                let who = event["who"]["name"].as_str().unwrap_or("you");
                Some(says(format!("hello {who}! try !ping or !who")))
            }
            Some("message") => {
                let speaker = event["from"]["name"].as_str().map(str::to_owned);
                let answer = match event["text"].as_str() {
                    Some("!ping") => Some("pong".to_owned()),
                    Some("!who") => Some(match &last_speaker {
                        Some(last) => format!("before you, {last} spoke"),
                        None => "nobody spoke before you".to_owned(),
                    }),
                    _ => None,
                };
                last_speaker = speaker;
                answer.map(says)
            }
            Some("goodbye") => return Ok(()),
            _ => None,
        };
        if let Some(reply) = reply {
            ws.send(reply).await.context("the server stopped listening")?;
        }
    }
    Ok(())
}

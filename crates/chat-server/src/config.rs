//! Every command-line flag of the daemon, its default, and its environment
//! variable. `Config` is parsed once in `main` and shared read-only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ipnet::IpNet;

/// Default address: loopback only, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default address of the web page, also loopback only.
pub const DEFAULT_LISTEN_WEB: &str = "127.0.0.1:7880";
/// Default address of the IRC listener, also loopback only.
pub const DEFAULT_LISTEN_IRC: &str = "127.0.0.1:6667";

#[derive(Debug, Clone, Parser)]
#[command(group = clap::ArgGroup::new("tls_listeners").args(["listen_tls", "listen_web_tls", "listen_irc_tls"]).multiple(true))]
#[command(
    name = "chat-server",
    version,
    about = "A chat daemon over plain TCP: connect with chat-client, nc or telnet, pick a name, talk.",
    long_about = None
)]
pub struct Config {
    /// Address to listen on for plain TCP (IPv4 or IPv6, e.g. `0.0.0.0:7878`, `[::]:7878`);
    /// repeat for several. With no listener of any kind named, the daemon opens
    /// 127.0.0.1:7878 and the web page on 127.0.0.1:7880; naming any listener
    /// replaces both defaults.
    #[arg(long = "listen", value_name = "ADDR", env = "CHAT_LISTEN", value_delimiter = ',')]
    pub listen: Vec<SocketAddr>,

    /// Address to listen on for TLS (needs --tls-cert and --tls-key); repeat for several.
    #[arg(long = "listen-tls", value_name = "ADDR", env = "CHAT_LISTEN_TLS", value_delimiter = ',',
          requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Vec<SocketAddr>,

    /// Address to listen on for JSON lines, for programs: one JSON object
    /// per line each way, the same session as --listen (see docs/json.md);
    /// repeat for several. Off unless given.
    #[arg(
        long = "listen-json",
        value_name = "ADDR",
        env = "CHAT_LISTEN_JSON",
        value_delimiter = ','
    )]
    pub listen_json: Vec<SocketAddr>,

    /// Address of the web page: the page at `/`, the chat over WebSocket at
    /// `/ws` (see docs/json.md); repeat for several. Default 127.0.0.1:7880
    /// when no listener of any kind is named; name only the listeners you
    /// want (e.g. just --listen) to turn the page off.
    #[arg(
        long = "listen-web",
        value_name = "ADDR",
        env = "CHAT_LISTEN_WEB",
        value_delimiter = ','
    )]
    pub listen_web: Vec<SocketAddr>,

    /// Address of the web page over TLS (https and wss, with --tls-cert and
    /// --tls-key); repeat for several.
    #[arg(long = "listen-web-tls", value_name = "ADDR", env = "CHAT_LISTEN_WEB_TLS",
          value_delimiter = ',', requires_all = ["tls_cert", "tls_key"])]
    pub listen_web_tls: Vec<SocketAddr>,

    /// Address for IRC clients (irssi, WeeChat, HexChat...): rooms as
    /// channels, names as nicks. Default 127.0.0.1:6667 when no listener of
    /// any kind is named; name only the listeners you want (e.g. just
    /// --listen) to turn IRC off. Repeat for several.
    #[arg(
        long = "listen-irc",
        value_name = "ADDR",
        env = "CHAT_LISTEN_IRC",
        value_delimiter = ','
    )]
    pub listen_irc: Vec<SocketAddr>,

    /// Address for IRC over TLS (with --tls-cert and --tls-key); repeat for several.
    #[arg(long = "listen-irc-tls", value_name = "ADDR", env = "CHAT_LISTEN_IRC_TLS",
          value_delimiter = ',', requires_all = ["tls_cert", "tls_key"])]
    pub listen_irc_tls: Vec<SocketAddr>,

    /// Seconds of silence after which an IRC client is sent a PING; one
    /// that stays silent as long again is disconnected.
    #[arg(long, value_name = "SECS", env = "CHAT_IRC_PING", default_value_t = 60.0)]
    pub irc_ping: f64,

    /// A reverse proxy (address or CIDR range, e.g. 127.0.0.1/32 or
    /// 10.0.0.0/8) whose `X-Forwarded-For` names the web client's real
    /// address, for per-address limits; repeat for several. From anyone
    /// else the header is ignored.
    #[arg(long = "trusted-proxy", value_name = "CIDR", env = "CHAT_TRUSTED_PROXIES",
          value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxy: Vec<IpNet>,

    /// Another origin (e.g. https://chat.example.org) whose pages may open
    /// the chat's WebSocket; the page's own origin always may. Repeat for several.
    #[arg(long = "web-origin", value_name = "URL", env = "CHAT_WEB_ORIGINS",
          value_delimiter = ',', value_parser = parse_origin)]
    pub web_origin: Vec<String>,

    /// PEM file with the TLS certificate chain (leaf first).
    #[arg(long, value_name = "PATH", env = "CHAT_TLS_CERT", requires = "tls_listeners")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", env = "CHAT_TLS_KEY", requires = "tls_listeners")]
    pub tls_key: Option<PathBuf>,

    /// Most connections at once (named or not); one more is told the server is full.
    #[arg(long, value_name = "N", env = "CHAT_MAX_CLIENTS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,

    /// Most connections from one IP address; one more is told why. 0 = no cap
    /// (the default, since behind a proxy or on loopback everyone shares one address).
    #[arg(long, value_name = "N", env = "CHAT_MAX_PER_IP", default_value_t = 0)]
    pub max_per_ip: u32,

    /// Longest accepted line in bytes; a longer one is discarded with a notice to its sender.
    #[arg(long, value_name = "BYTES", env = "CHAT_MAX_LINE", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub max_line: u32,

    /// Lines per second each client may send; faster input is read more slowly, never dropped. 0 disables.
    #[arg(long, value_name = "LINES", env = "CHAT_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Lines a client may send at once before --rate applies.
    #[arg(long, value_name = "LINES", env = "CHAT_BURST", default_value_t = 20)]
    pub burst: u32,

    /// Seconds a new connection has to choose a name before it is closed.
    #[arg(long, value_name = "SECS", env = "CHAT_NAME_TIMEOUT", default_value_t = 60.0)]
    pub name_timeout: f64,

    /// Rooms open at once on this daemon; one more is refused with a notice.
    #[arg(long, value_name = "N", env = "CHAT_MAX_ROOMS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms: u32,

    /// Rooms one user may be in at once.
    #[arg(long, value_name = "N", env = "CHAT_ROOMS_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms_per_user: u32,

    /// Messages of recent history replayed to a user who joins a room. 0 disables.
    #[arg(long, value_name = "N", env = "CHAT_HISTORY", default_value_t = 20)]
    pub history: usize,

    /// The database file that keeps every room's messages and the registered
    /// names across restarts (SQLite; `:memory:` keeps nothing on disk; `none`
    /// keeps no history at all, and registered names only until the daemon
    /// stops). Not used with --backplane, whose daemons share their history in Redis.
    #[arg(long, value_name = "PATH", env = "CHAT_DB", default_value = "chat.db")]
    pub db: String,

    /// Days messages are kept; older ones are deleted. 0 keeps them forever.
    #[arg(long, value_name = "DAYS", env = "CHAT_RETAIN_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub retain_days: u32,

    /// Lines the room keeps queued for a client that reads slowly; past that it skips ahead and is told how many it missed.
    #[arg(long, value_name = "LINES", env = "CHAT_QUEUE", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub queue: u32,

    /// Seconds a client may accept no bytes at all while output waits for it before it is disconnected.
    #[arg(long, value_name = "SECS", env = "CHAT_WRITE_TIMEOUT", default_value_t = 30.0)]
    pub write_timeout: f64,

    /// Share one room with other daemons through Redis pub/sub, e.g. redis://127.0.0.1:6379/0.
    #[arg(long, value_name = "URL", env = "CHAT_BACKPLANE")]
    pub backplane: Option<String>,

    /// Serve Prometheus metrics over HTTP at this address (GET /metrics), e.g. 127.0.0.1:9878.
    #[arg(long, value_name = "ADDR", env = "CHAT_METRICS")]
    pub metrics: Option<SocketAddr>,

    /// A registered name that, logged in with its password, is a server
    /// operator: every power of the console, from any client. Repeat for several.
    #[arg(long = "operator", value_name = "NAME", env = "CHAT_OPERATORS", value_delimiter = ',')]
    pub operators: Vec<String>,

    /// Open a Unix socket here, readable and writable only by the daemon's
    /// user, that speaks the console's commands line by line (`nc -U PATH`).
    #[arg(long, value_name = "PATH", env = "CHAT_CONTROL")]
    pub control: Option<PathBuf>,

    /// Send no ANSI colour to anyone (users may still turn colour off for themselves with /color off).
    #[arg(long, env = "CHAT_NO_COLOR")]
    pub no_color: bool,

    /// Log format on stderr; the level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, value_name = "FORMAT", env = "CHAT_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The limits a running server enforces, in the units the code uses.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_clients: usize,
    pub max_per_ip: Option<usize>,
    pub max_line: usize,
    /// Time between lines once the burst is spent; `None` when unthrottled.
    pub line_interval: Option<Duration>,
    pub burst: u32,
    pub name_timeout: Duration,
    pub history: usize,
    /// How long messages are kept; `None` keeps them forever.
    pub retain: Option<Duration>,
    pub max_rooms: usize,
    pub rooms_per_user: usize,
    pub queue: usize,
    pub write_timeout: Duration,
    pub color: bool,
    /// Silence after which an IRC client is pinged (and as long again, dropped).
    pub irc_ping: Duration,
}

impl Config {
    /// The plain listen addresses: as given, or the default when no listener
    /// of any kind was named.
    pub fn plain_listen_addrs(&self) -> Vec<SocketAddr> {
        if self.names_no_listener() {
            return vec![SocketAddr::from(([127, 0, 0, 1], 7878))];
        }
        self.listen.clone()
    }

    /// The web page's plain addresses: as given, or the default when no
    /// listener of any kind was named.
    pub fn web_listen_addrs(&self) -> Vec<SocketAddr> {
        if self.names_no_listener() {
            return vec![SocketAddr::from(([127, 0, 0, 1], 7880))];
        }
        self.listen_web.clone()
    }

    /// The IRC listener's plain addresses: as given, or the default when no
    /// listener of any kind was named.
    pub fn irc_listen_addrs(&self) -> Vec<SocketAddr> {
        if self.names_no_listener() {
            return vec![SocketAddr::from(([127, 0, 0, 1], 6667))];
        }
        self.listen_irc.clone()
    }

    fn names_no_listener(&self) -> bool {
        [
            &self.listen,
            &self.listen_tls,
            &self.listen_json,
            &self.listen_web,
            &self.listen_web_tls,
            &self.listen_irc,
            &self.listen_irc_tls,
        ]
        .iter()
        .all(|addrs| addrs.is_empty())
    }

    /// Checks what clap cannot and converts to [`Limits`].
    pub fn limits(&self) -> Result<Limits, String> {
        let seconds = |flag: &str, value: f64| {
            if value.is_finite() && value > 0.0 && value <= 86_400.0 * 365.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(format!("--{flag} must be a positive number of seconds, not {value}"))
            }
        };
        let line_interval = match self.rate {
            0.0 => None,
            r if r.is_finite() && r > 0.0 => Some(Duration::from_secs_f64(1.0 / r)),
            r => {
                return Err(format!(
                    "--rate must be 0 (off) or a positive number of lines, not {r}"
                ));
            }
        };
        Ok(Limits {
            max_clients: self.max_clients as usize,
            max_per_ip: (self.max_per_ip > 0).then_some(self.max_per_ip as usize),
            max_line: self.max_line as usize,
            line_interval,
            burst: self.burst.max(1),
            name_timeout: seconds("name-timeout", self.name_timeout)?,
            history: self.history,
            retain: (self.retain_days > 0)
                .then(|| Duration::from_secs(u64::from(self.retain_days) * 86_400)),
            max_rooms: self.max_rooms as usize,
            rooms_per_user: self.rooms_per_user as usize,
            queue: self.queue as usize,
            write_timeout: seconds("write-timeout", self.write_timeout)?,
            color: !self.no_color,
            irc_ping: seconds("irc-ping", self.irc_ping)?,
        })
    }
}

/// A CIDR range, or one address (a range of one).
fn parse_cidr(typed: &str) -> Result<IpNet, String> {
    let typed = typed.trim();
    typed
        .parse::<IpNet>()
        .or_else(|_| typed.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{typed:?} is neither an address nor a CIDR range (10.0.0.0/8)"))
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
fn parse_origin(typed: &str) -> Result<String, String> {
    let origin = typed.trim().trim_end_matches('/');
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
            Ok(origin.to_ascii_lowercase())
        }
        _ => Err(format!("{typed:?} is not an origin like https://chat.example.org")),
    }
}

impl Default for Limits {
    fn default() -> Self {
        Config::parse_from(["chat-server"])
            .limits()
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = Config::parse_from(["chat-server"]);
        let default: SocketAddr = DEFAULT_LISTEN.parse().expect("valid");
        assert_eq!(config.plain_listen_addrs(), vec![default]);
        let web: SocketAddr = DEFAULT_LISTEN_WEB.parse().expect("valid");
        assert_eq!(config.web_listen_addrs(), vec![web]);
        let irc: SocketAddr = DEFAULT_LISTEN_IRC.parse().expect("valid");
        assert_eq!(config.irc_listen_addrs(), vec![irc]);
        let limits = config.limits().expect("defaults are valid");
        assert_eq!(limits.max_line, 4096);
        assert_eq!(limits.history, 20);
        assert_eq!(config.db, "chat.db");
        assert_eq!(limits.retain, Some(Duration::from_secs(90 * 86_400)));
        let forever = Config::parse_from(["chat-server", "--retain-days", "0"]);
        assert_eq!(forever.limits().expect("valid").retain, None);
    }

    #[test]
    fn rate_zero_disables_throttling() {
        let limits = Config::parse_from(["chat-server", "--rate", "0"]).limits().expect("valid");
        assert_eq!(limits.line_interval, None);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_name() {
        let err = Config::parse_from(["chat-server", "--name-timeout=-1"]).limits().unwrap_err();
        assert!(err.contains("--name-timeout"), "{err}");
        assert!(Config::try_parse_from(["chat-server", "--listen", "nowhere"]).is_err());
        assert!(Config::try_parse_from(["chat-server", "--max-clients", "0"]).is_err());
    }

    #[test]
    fn tls_listener_needs_certificate_and_key_and_replaces_the_default() {
        assert!(Config::try_parse_from(["chat-server", "--listen-tls", "127.0.0.1:1"]).is_err());
        assert!(Config::try_parse_from(["chat-server", "--tls-cert", "c.pem"]).is_err());
        let config = Config::parse_from([
            "chat-server",
            "--listen-tls",
            "127.0.0.1:1",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        assert!(config.plain_listen_addrs().is_empty());
        assert!(config.web_listen_addrs().is_empty());
    }

    #[test]
    fn naming_any_listener_replaces_every_default() {
        let text = Config::parse_from(["chat-server", "--listen", "127.0.0.1:1"]);
        assert!(text.web_listen_addrs().is_empty());
        let web = Config::parse_from(["chat-server", "--listen-web", "127.0.0.1:2"]);
        assert!(web.plain_listen_addrs().is_empty());
        assert!(web.irc_listen_addrs().is_empty());
        assert_eq!(web.web_listen_addrs().len(), 1);
        let irc = Config::parse_from(["chat-server", "--listen-irc", "127.0.0.1:4"]);
        assert!(irc.plain_listen_addrs().is_empty() && irc.web_listen_addrs().is_empty());
        assert_eq!(irc.irc_listen_addrs().len(), 1);
        let web_tls =
            ["chat-server", "--listen-web-tls", "127.0.0.1:3", "--tls-cert", "c", "--tls-key", "k"];
        let web_tls = Config::parse_from(web_tls);
        assert!(web_tls.plain_listen_addrs().is_empty() && web_tls.web_listen_addrs().is_empty());
    }

    #[test]
    fn proxies_are_ranges_or_addresses_and_origins_are_checked() {
        let config = Config::parse_from([
            "chat-server",
            "--trusted-proxy",
            "10.0.0.0/8,127.0.0.1",
            "--web-origin",
            "https://Chat.Example.org/",
        ]);
        assert_eq!(config.trusted_proxy.len(), 2);
        assert_eq!(config.trusted_proxy[1].prefix_len(), 32);
        assert_eq!(config.web_origin, vec!["https://chat.example.org".to_owned()]);
        assert!(Config::try_parse_from(["chat-server", "--trusted-proxy", "10.0.0/8"]).is_err());
        assert!(
            Config::try_parse_from(["chat-server", "--web-origin", "chat.example.org"]).is_err()
        );
        assert!(Config::try_parse_from(["chat-server", "--web-origin", "https://a/b"]).is_err());
    }

    #[test]
    fn listen_accepts_ipv6_and_repeats() {
        let config =
            Config::parse_from(["chat-server", "--listen", "127.0.0.1:1", "--listen", "[::1]:2"]);
        assert_eq!(config.listen.len(), 2);
        assert!(config.listen[1].is_ipv6());
    }
}

//! `chat-server`: parses flags, sets up logging and signals, runs the daemon.

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::info;

use chat_server::{Config, logging};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    logging::init(config.log_format);
    match run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-server: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<()> {
    let limits = config.limits().map_err(anyhow::Error::msg)?;
    let store = chat_server::open_store(&config, &limits)?;
    let bound = chat_server::bind_all(&config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(
        cancel_on_signal(shutdown.clone()).await.context("cannot install signal handlers")?,
    );
    let (backplane, operators) = (config.backplane.as_deref(), &config.operators);
    chat_server::run(bound, limits, operators, backplane, store, shutdown, true).await?;
    info!("stopped");
    Ok(())
}

/// Installs SIGINT and SIGTERM handlers (and ignores SIGXFSZ); the returned
/// future cancels `shutdown` when SIGINT or SIGTERM arrives.
async fn cancel_on_signal(
    shutdown: CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // Past a file-size limit a write should fail (and the store retry), not
    // kill the daemon, which is SIGXFSZ's default.
    let file_too_large = signal(SignalKind::from_raw(libc::SIGXFSZ))?;
    Ok(async move {
        let _file_too_large = file_too_large;
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        info!(signal = name, "shutdown requested");
        shutdown.cancel();
    })
}

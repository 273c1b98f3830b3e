//! The control socket (`--control PATH`): the console's commands on a Unix
//! socket, so an operator can moderate a daemon whose stdin is /dev/null
//! (under systemd), with `nc -U PATH`.
//!
//! The socket is created owner-only (mode 0600, through the umask while it
//! is bound, so it is never open to others even for a moment): whoever can
//! open it is the daemon's own user, and has the console's powers. Each
//! connection reads lines and answers each with the console's reply,
//! ended by an empty line so a script knows where an answer ends.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use crate::console;
use crate::context::Context;

/// Binds the control socket owner-only, replacing a stale one (a socket
/// nobody answers on); a socket in use, or any other file, is an error.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "cannot open the control socket {shown}: a file that is not a socket is there"
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("cannot open the control socket {shown}: another daemon is using it");
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot replace the stale control socket {shown}"))?;
    }
    // SAFETY: umask only changes the process's file-creation mask; it is
    // restored at once, and nothing else creates files while the daemon starts.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(previous) };
    let listener = bound.with_context(|| format!("cannot open the control socket {shown}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make the control socket {shown} owner-only"))?;
    info!(path = %shown, "control socket listening");
    Ok(listener)
}

/// Serves the control socket until shutdown, one task per connection.
pub async fn serve(listener: UnixListener, ctx: Arc<Context>) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(session(stream, Arc::clone(&ctx)));
            }
            Err(error) => {
                warn!(%error, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    if let Ok(addr) = listener.local_addr()
        && let Some(path) = addr.as_pathname()
    {
        let _ = std::fs::remove_file(path);
    }
}

/// One operator's connection: each line is a console command, each answer
/// ends with an empty line.
async fn session(stream: UnixStream, ctx: Arc<Context>) {
    let (reader, mut writer) = stream.into_split();
    // Owner-only: whoever writes here is the daemon's own user, so lines are read as they come.
    let mut lines = BufReader::new(reader).lines();
    info!("control socket: an operator connected");
    loop {
        let line = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            line = lines.next_line() => line,
        };
        let Ok(Some(line)) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        info!(command = line.trim(), "control socket command");
        let mut answer = console::execute(&ctx, &line).await;
        answer.push_str("\n\n");
        if writer.write_all(answer.as_bytes()).await.is_err() {
            break;
        }
    }
}

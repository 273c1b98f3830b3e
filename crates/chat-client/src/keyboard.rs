//! What the person at the terminal does: the line editor and stop signals.
//!
//! [`Keyboard`] owns the [`Readline`] editor (raw mode, prompt, the line
//! being typed, history) and the termination signals (SIGTERM, SIGHUP). A
//! signal reads as Ctrl-D: the default action, dying on the spot, would leave
//! the terminal in raw mode, so the session leaves cleanly instead. Dropping
//! the keyboard drops the editor, which turns raw mode off.

use rustyline_async::{Readline, ReadlineError, ReadlineEvent, SharedWriter};

use crate::error::Error;

/// The line editor plus the signals that ask us to stop.
pub struct Keyboard {
    editor: Readline,
    /// What the editor shows before the line being typed.
    prompt: String,
    stop: StopSignals,
}

impl Keyboard {
    /// Switches the terminal to raw mode and shows an empty prompt; the
    /// writer prints above the prompt.
    pub fn open() -> Result<(Keyboard, SharedWriter), Error> {
        let (mut editor, writer) = Readline::new(String::new()).map_err(terminal_error)?;
        // Enter leaves the typed line on screen (the server does not echo our
        // own lines); Ctrl-C leaves the session, so its line need not stay.
        editor.should_print_line_on(true, false);
        Ok((Keyboard { editor, prompt: String::new(), stop: StopSignals::new() }, writer))
    }

    /// The next thing the user does: a line, Ctrl-D (`Eof`, also for a stop
    /// signal) or Ctrl-C (`Interrupted`). While this is awaited, lines
    /// written to the [`SharedWriter`] are printed; it is cancel-safe.
    pub async fn next(&mut self) -> Result<ReadlineEvent, Error> {
        tokio::select! {
            biased;
            event = self.editor.readline() => event.map_err(terminal_error),
            () = self.stop.recv() => Ok(ReadlineEvent::Eof),
        }
    }

    /// Shows `prompt` before the line being typed, which stays as it is
    /// (text and cursor). The editor redraws the input row only when the
    /// prompt really changes, so this may be called for every received line.
    pub fn set_prompt(&mut self, prompt: &str) -> Result<(), Error> {
        if prompt == self.prompt {
            return Ok(());
        }
        self.editor.update_prompt(prompt).map_err(terminal_error)?;
        self.prompt = prompt.to_owned();
        Ok(())
    }

    /// Makes `line` reachable with Up (empty lines are not kept).
    pub fn remember(&mut self, line: &str) {
        self.editor.add_history_entry(line.to_owned());
    }

    /// Prints what is still queued in the writer and clears the prompt.
    /// Without it, the last lines written before leaving would be lost.
    pub fn flush(&mut self) {
        let _ = self.editor.flush();
    }
}

fn terminal_error(error: ReadlineError) -> Error {
    Error::Terminal(error.to_string())
}

/// SIGTERM and SIGHUP, when they can be listened to.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    #[cfg(unix)]
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        StopSignals {}
    }

    /// Resolves when a stop signal arrives; never, if none can be listened to.
    #[cfg(unix)]
    async fn recv(&mut self) {
        tokio::select! {
            Some(()) = next_signal(&mut self.terminate) => {}
            Some(()) = next_signal(&mut self.hangup) => {}
            else => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        std::future::pending().await
    }
}

#[cfg(unix)]
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

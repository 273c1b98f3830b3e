//! What the person at the terminal does: the line editor and stop signals.
//!
//! [`Keyboard`] owns the [`Readline`] editor (raw mode, prompt, the line
//! being typed, history) and the termination signals (SIGTERM, SIGHUP). A
//! signal reads as Ctrl-D: the default action, dying on the spot, would leave
//! the terminal in raw mode, so the session leaves cleanly instead. Dropping
//! the keyboard drops the editor, which turns raw mode off. A password is
//! read with the editor closed, by `rpassword`, which turns echo off.

use rustyline_async::{Readline, ReadlineError, ReadlineEvent, SharedWriter};

use crate::error::Error;

/// The line editor plus the signals that ask us to stop.
pub struct Keyboard {
    /// `None` only while a password is being read.
    editor: Option<Readline>,
    /// What the editor shows before the line being typed.
    prompt: String,
    stop: StopSignals,
}

impl Keyboard {
    /// Switches the terminal to raw mode and shows an empty prompt; the
    /// writer prints above the prompt.
    pub fn open() -> Result<(Keyboard, SharedWriter), Error> {
        let (editor, writer) = new_editor(String::new())?;
        let keyboard =
            Keyboard { editor: Some(editor), prompt: String::new(), stop: StopSignals::new() };
        Ok((keyboard, writer))
    }

    fn editor(&mut self) -> Result<&mut Readline, Error> {
        self.editor.as_mut().ok_or_else(|| Error::Terminal("the line editor is closed".into()))
    }

    /// Asks for a secret with echo off, the line editor closed meanwhile;
    /// `None` when the user gave up (Ctrl-D). Returns the reopened
    /// editor's writer, which replaces the old one.
    pub async fn read_secret(
        &mut self,
        prompt: &str,
    ) -> Result<(Option<String>, SharedWriter), Error> {
        if let Some(mut editor) = self.editor.take() {
            let _ = editor.flush();
        }
        let prompt = prompt.to_owned();
        let read = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt)).await;
        let (editor, writer) = new_editor(self.prompt.clone())?;
        self.editor = Some(editor);
        match read {
            Ok(Ok(secret)) => Ok((Some(secret), writer)),
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Ok((None, writer))
            }
            Ok(Err(error)) => Err(Error::Terminal(error.to_string())),
            Err(error) => Err(Error::Terminal(error.to_string())),
        }
    }

    /// The next thing the user does: a line, Ctrl-D (`Eof`, also for a stop
    /// signal) or Ctrl-C (`Interrupted`). While this is awaited, lines
    /// written to the [`SharedWriter`] are printed; it is cancel-safe.
    pub async fn next(&mut self) -> Result<ReadlineEvent, Error> {
        let Some(editor) = self.editor.as_mut() else {
            return Err(Error::Terminal("the line editor is closed".into()));
        };
        tokio::select! {
            biased;
            event = editor.readline() => event.map_err(terminal_error),
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
        self.editor()?.update_prompt(prompt).map_err(terminal_error)?;
        self.prompt = prompt.to_owned();
        Ok(())
    }

    /// Makes `line` reachable with Up (empty lines are not kept).
    pub fn remember(&mut self, line: &str) {
        if let Some(editor) = self.editor.as_mut() {
            editor.add_history_entry(line.to_owned());
        }
    }

    /// Prints what is still queued in the writer and clears the prompt.
    /// Without it, the last lines written before leaving would be lost.
    pub fn flush(&mut self) {
        if let Some(editor) = self.editor.as_mut() {
            let _ = editor.flush();
        }
    }
}

/// A line editor showing `prompt`; Enter leaves the typed line on screen
/// (the server does not echo our own lines), Ctrl-C's line need not stay.
fn new_editor(prompt: String) -> Result<(Readline, SharedWriter), Error> {
    let (mut editor, writer) = Readline::new(prompt).map_err(terminal_error)?;
    editor.should_print_line_on(true, false);
    Ok((editor, writer))
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

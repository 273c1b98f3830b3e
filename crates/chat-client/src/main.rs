//! `chat-client`: parses the command line, runs the client, and turns the
//! outcome into an exit code (0 clean leave, 2 usage, 3 unreachable, 4 lost)
//! with one `chat-client: ` line on stderr for an error.

use std::process::ExitCode;

use clap::Parser;

use chat_client::{Args, run};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chat-client: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // The terminal is restored by now (the editor was dropped inside `run`).
    // A thread may still be blocked reading stdin; do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-client: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

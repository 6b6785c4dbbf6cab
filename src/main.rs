//! The binary: parse flags, validate, start logging on stderr, run, exit with the run's code.

// Production code handles every failure; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use bitrix24_mcp::config::{self, Cli, Command};
use bitrix24_mcp::{logging, run, transport};

#[tokio::main]
async fn main() {
    // First of all, so that no signal finds the process without its handlers.
    let shutdown = transport::shutdown_signal();
    let cli =
        Cli::read_from(std::env::args_os()).unwrap_or_else(|err| config::explain_parse_error(err));
    let config = match cli.settings.validate() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("bitrix24-mcp: {err}");
            std::process::exit(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // One-shot commands print JSON on stdout; keep their stderr quiet unless RUST_LOG asks.
    let default_level = match command {
        Command::Serve => "info",
        Command::Call { .. } | Command::Tools | Command::Check { .. } | Command::Grants { .. } => {
            "warn"
        }
    };
    logging::init(config.log_format, default_level);
    let code = match run(command, config, shutdown).await {
        Ok(code) => code,
        Err(err) => {
            // One line, once: a log line as well would say the same thing twice.
            eprintln!("bitrix24-mcp: {err}");
            err.exit_code()
        }
    };
    // Exit here rather than return: after a signal, Tokio's runtime would wait for a stdin read
    // that only ends when the client closes the pipe.
    std::process::exit(code);
}

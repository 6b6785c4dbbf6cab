//! Logging setup: always to stderr (stdout is the protocol in stdio mode), level from `RUST_LOG`,
//! text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset or invalid.
/// A second call (as in tests) leaves the first subscriber in place.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr's reader went away) is dropped: the default
        // reports the failure with eprintln!, which panics on that same closed stderr, inside
        // whatever request was logging.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

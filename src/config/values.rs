//! How single values are read: empty means unset, an unexpanded `${…}` placeholder is named,
//! yes/no in every spelling, durations and rates with units, secrets wrapped at once; and how a
//! bad value is reported under the name the user set (the variable's or the flag's).

use std::time::Duration;

use super::{Cli, ConfigError};
use crate::bitrix::Secret;

/// A setting's value, with empty meaning unset — how `${VAR}` expands when the user has not set
/// it — and an unexpanded placeholder refused by name.
pub(super) fn given<'a>(
    name: &'static str,
    value: Option<&'a str>,
) -> Result<Option<&'a str>, ConfigError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) if raw.starts_with("${") => Err(ConfigError::Placeholder(
            name,
            placeholder(raw),
            unexpanded_because(raw, is_set),
        )),
        Some(raw) => Ok(Some(raw)),
    }
}

/// Whether a variable holds a value here. One that holds nothing but an unexpanded placeholder
/// (`"env": {"X": "${X}"}` in `.mcp.json`, with X unset) is not set either.
fn is_set(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| !v.trim().is_empty() && !v.trim().starts_with("${"))
}

/// Why a placeholder reached the server unexpanded, and what to do. Two causes look the same
/// from here: the variable was not set where the MCP client started (Claude Code then leaves
/// `${NAME}` as written), or the client does not expand that form. The server inherits the
/// client's environment, so whether the variable is set here says which comes first.
pub(super) fn unexpanded_because(raw: &str, is_set: impl Fn(&str) -> bool) -> String {
    let forms = "Claude Code expands ${NAME}, Cursor expands ${env:NAME}";
    match parse_placeholder(raw).variable {
        Some(var) if !is_set(var) => format!(
            "{var} is not set where the MCP client started, so the client left the placeholder as \
             written (Claude Code does that for an unset variable); set {var} there and restart \
             the client, or put the value itself in the configuration. If it is set there, the \
             client does not expand this form ({forms})"
        ),
        Some(var) => format!(
            "{var} is set, but the MCP client did not substitute it: write the placeholder in a \
             form the client expands ({forms})"
        ),
        None => format!(
            "either the variable it names is not set where the MCP client started (Claude Code \
             then leaves the placeholder as written), or the client does not expand this form \
             ({forms})"
        ),
    }
}

/// An unexpanded `${…}` placeholder, described without its default value (which may be a webhook
/// URL or a token) and naming the variable only when it looks like one (upper case, digits and
/// underscores, optionally behind `env:`).
pub(super) fn placeholder(raw: &str) -> String {
    match parse_placeholder(raw) {
        Placeholder {
            variable: Some(_),
            written,
            has_default: true,
        } => format!("${{{written}:-…}} (its default is not shown)"),
        Placeholder {
            variable: Some(_),
            written,
            has_default: false,
        } => format!("${{{written}}}"),
        Placeholder { variable: None, .. } => "${…} (not shown)".to_owned(),
    }
}

/// A `${…}` placeholder taken apart.
struct Placeholder<'a> {
    /// The name as written, `env:` included.
    written: &'a str,
    /// The variable it names, without `env:`, when the name looks like one.
    variable: Option<&'a str>,
    /// Whether a default or another modifier follows the name.
    has_default: bool,
}

/// Takes a placeholder apart; only the variable's name is ever shown, never a default.
fn parse_placeholder(raw: &str) -> Placeholder<'_> {
    let inner = raw[2..].split('}').next().unwrap_or_default();
    let (name, has_default) = match inner.find([':', '-', '=', '?', '+']) {
        Some(at) if !inner[..at].eq_ignore_ascii_case("env") => (&inner[..at], true),
        Some(at) if inner[..at].eq_ignore_ascii_case("env") => {
            let rest = &inner[at + 1..];
            match rest.find([':', '-', '=', '?', '+']) {
                Some(end) => (&inner[..at + 1 + end], true),
                None => (inner, false),
            }
        }
        _ => (inner, false),
    };
    let bare = name.strip_prefix("env:").unwrap_or(name);
    let looks_like_a_variable = !bare.is_empty()
        && bare.len() <= 64
        && bare
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    Placeholder {
        written: name,
        variable: looks_like_a_variable.then_some(bare),
        has_default,
    }
}

/// A yes/no setting, in any of the spellings people use in environment files.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "n" | "" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a yes/no value; use one of true, false, 1, 0, yes, no, on, off"
        )),
    }
}

/// Prints a command-line error and exits 2. An invalid value that came from an environment
/// variable is reported under that variable's name — the user never typed the flag.
pub fn explain_parse_error(err: clap::Error) -> ! {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        let flag = match err.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg.split_whitespace().next().map(str::to_owned),
            _ => None,
        };
        let command = Cli::command();
        let env = flag.as_deref().and_then(|flag| {
            let long = flag.trim_start_matches('-');
            let typed = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
            command
                .get_arguments()
                .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
                .find(|arg| arg.get_long() == Some(long))
                .and_then(|arg| arg.get_env())
                .filter(|_| !typed)
                .map(|env| env.to_string_lossy().into_owned())
        });
        if let Some(env) = env {
            let reason = match (
                std::error::Error::source(&err),
                err.get(ContextKind::ValidValue),
            ) {
                (Some(source), _) => source.to_string(),
                (None, Some(ContextValue::Strings(valid))) => {
                    format!("the value is not one of: {}", valid.join(", "))
                }
                _ => "the value is not valid".to_owned(),
            };
            eprintln!("bitrix24-mcp: {env}: {reason}");
            std::process::exit(2);
        }
    }
    err.exit()
}

/// A list setting without its empty items (`BITRIX24_TOOLS=` or a trailing comma).
pub(super) fn nonempty(items: &[String]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Wraps a secret the moment clap reads it, so `Settings` never holds one in the clear.
pub(super) fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// The value of a secret setting, for validation only.
pub(super) fn exposed(value: &Option<Secret>) -> Option<&str> {
    value.as_ref().map(Secret::expose)
}

/// A rate in requests per second: positive, at most a million (benchmarks lift the limit that
/// high to measure the server rather than the bucket).
pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 1_000_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: use a number of requests per second, e.g. 2 or 5"
        )),
    }
}

/// A duration as people write it: `30s`, `500ms`, `2m`, or bare seconds (`10`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 30s, 500ms or 2m"))?;
    let secs = value * unit_secs;
    if !(0.001..=3600.0).contains(&secs) {
        return Err(format!("{text:?} is out of range: use 1ms to 60m"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").unwrap_err().contains("out of range"));
        assert!(parse_duration("-1s").unwrap_err().contains("out of range"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    /// An unexpanded placeholder has two causes that look the same here; the message says both,
    /// leading with the one the environment points to.
    #[test]
    fn an_unexpanded_placeholder_says_unset_and_unexpanded() {
        let unset = unexpanded_because("${BITRIX24_WEBHOOK_URL}", |_| false);
        assert!(
            unset.starts_with("BITRIX24_WEBHOOK_URL is not set where the MCP client started"),
            "{unset}"
        );
        assert!(unset.contains("does not expand this form"), "{unset}");
        let set = unexpanded_because("${env:BITRIX24_WEBHOOK_URL}", |var| {
            var == "BITRIX24_WEBHOOK_URL"
        });
        assert!(
            set.starts_with(
                "BITRIX24_WEBHOOK_URL is set, but the MCP client did not substitute it"
            ),
            "{set}"
        );
        let unnamed = unexpanded_because("${s3cr3t value}", |_| true);
        assert!(
            unnamed.contains("not set where the MCP client started"),
            "{unnamed}"
        );
        assert!(unnamed.contains("does not expand this form"), "{unnamed}");
        assert!(!unnamed.contains("s3cr3t"), "{unnamed}");
    }
}

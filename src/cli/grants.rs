//! `bitrix24-mcp grants list|revoke`: who is signed in to a server run with `--auth oauth`, and
//! signing them out. Grants are read from the state store the servers share; without one they
//! exist only in the running server's memory, out of this command's reach. Nothing printed holds
//! a secret or a token hash.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{EXIT_TOOL_ERROR, EXIT_USAGE, Outcome, print};
use crate::bitrix::state::{RedisStore, StateSettings};
use crate::config::GrantsAction;
use crate::signin::grants::Grants;
use crate::signin::{Grant, SigninStore};

/// How many characters of a user or client name are shown (both come from outside).
const NAME_WIDTH: usize = 40;

/// Runs `grants list` or `grants revoke` and returns the exit code.
pub async fn run(action: &GrantsAction, state: Option<&StateSettings>) -> i32 {
    let Some(settings) = state else {
        return print(&failure(
            "grants are kept in the state store, and none is configured (BITRIX24_STATE_URL / \
             --state-url): without one they live only in the running server's memory, out of \
             this command's reach; restarting that server signs everyone out"
                .to_owned(),
            EXIT_USAGE,
        ));
    };
    let store = match RedisStore::new(settings) {
        Ok(store) => store,
        Err(reason) => return print(&failure(reason, EXIT_USAGE)),
    };
    let grants = Grants::in_store(SigninStore::redis(Arc::new(store)));
    print(&execute(action, &grants).await)
}

async fn execute(action: &GrantsAction, grants: &Grants) -> Outcome {
    match action {
        GrantsAction::List { json } => match grants.list().await {
            Ok(list) if *json => {
                done(serde_json::to_string_pretty(&listing(&list)).unwrap_or_default())
            }
            Ok(list) => done(table(&list)),
            Err(err) => failure(format!("cannot read the grants: {err}"), EXIT_TOOL_ERROR),
        },
        GrantsAction::Revoke { all: true, .. } => match grants.revoke_all().await {
            Ok(0) => done("no one was signed in; nothing to revoke".to_owned()),
            Ok(n) => done(format!(
                "signed everyone out: {} ended; running servers refuse their tokens within 5 \
                 seconds",
                sign_ins(n)
            )),
            Err(err) => failure(format!("cannot revoke the grants: {err}"), EXIT_TOOL_ERROR),
        },
        GrantsAction::Revoke {
            user_id: Some(user_id),
            ..
        } => match grants.revoke_user(*user_id).await {
            Ok(0) => done(format!(
                "user {user_id} is not signed in; nothing to revoke"
            )),
            Ok(n) => done(format!(
                "signed out user {user_id}: {} ended; running servers refuse their tokens \
                 within 5 seconds",
                sign_ins(n)
            )),
            Err(err) => failure(format!("cannot revoke the grants: {err}"), EXIT_TOOL_ERROR),
        },
        // clap requires one of the two.
        GrantsAction::Revoke { user_id: None, .. } => failure(
            "name a user ID to sign out, or --all".to_owned(),
            EXIT_USAGE,
        ),
    }
}

/// `grants list --json`: one object per sign-in.
fn listing(grants: &[Grant]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|g| {
                json!({
                    "user_id": g.user_id,
                    "user_name": g.user_name,
                    "member_id": g.member_id,
                    "client_id": g.client_id,
                    "client_name": g.client_name,
                    "since": utc(g.created_at, 'T').map(|t| format!("{t}Z")),
                    "last_used": (g.last_used_at > 0)
                        .then(|| utc(g.last_used_at, 'T').map(|t| format!("{t}Z")))
                        .flatten(),
                })
            })
            .collect(),
    )
}

/// `grants list`: a table for people.
fn table(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "no one is signed in".to_owned();
    }
    let mut rows = vec![[
        "USER".to_owned(),
        "NAME".to_owned(),
        "CLIENT".to_owned(),
        "SINCE".to_owned(),
        "LAST USE".to_owned(),
    ]];
    for g in grants {
        let when = |unix: i64| {
            utc(unix, ' ')
                .map(|t| format!("{t} UTC"))
                .unwrap_or_else(|| "never".to_owned())
        };
        rows.push([
            g.user_id.to_string(),
            shown(&g.user_name),
            shown(&g.client_name),
            when(g.created_at),
            when(g.last_used_at),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let users = {
        let mut ids: Vec<u64> = grants.iter().map(|g| g.user_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    out.push_str(&format!(
        "{} of {} {}",
        sign_ins(grants.len()),
        users,
        if users == 1 { "user" } else { "users" }
    ));
    out
}

/// A name from outside, safe for a terminal: control characters dropped, length bounded.
fn shown(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return "-".to_owned();
    }
    if clean.chars().count() > NAME_WIDTH {
        let cut: String = clean.chars().take(NAME_WIDTH - 1).collect();
        return format!("{cut}…");
    }
    clean.to_owned()
}

fn sign_ins(n: usize) -> String {
    if n == 1 {
        "1 sign-in".to_owned()
    } else {
        format!("{n} sign-ins")
    }
}

/// `2026-12-05<sep>06:10:00` for a Unix time in UTC; `None` for 0 (never).
fn utc(unix: i64, separator: char) -> Option<String> {
    if unix <= 0 {
        return None;
    }
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = crate::bitrix::clock::civil_from_days(days);
    Some(format!(
        "{year:04}-{month:02}-{day:02}{separator}{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    ))
}

fn done(stdout: String) -> Outcome {
    Outcome {
        stdout,
        stderr: String::new(),
        exit_code: 0,
    }
}

fn failure(message: String, exit_code: i32) -> Outcome {
    Outcome {
        stdout: String::new(),
        stderr: format!("bitrix24-mcp: {message}"),
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user_id: u64, name: &str, created_at: i64, last_used_at: i64) -> Grant {
        Grant {
            grant_id: format!("g{user_id}"),
            user_id,
            user_name: name.to_owned(),
            member_id: "m1".to_owned(),
            client_id: "c1".to_owned(),
            client_name: "Claude Code".to_owned(),
            resource: "https://mcp.example.com/mcp".to_owned(),
            scope: None,
            created_at,
            last_used_at,
        }
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0, 'T'), None);
        assert_eq!(utc(951_782_400, 'T').unwrap(), "2000-02-29T00:00:00");
        assert_eq!(utc(1_764_915_000, ' ').unwrap(), "2025-12-05 06:10:00");
    }

    #[test]
    fn the_table_shows_user_client_since_and_last_use_with_names_made_safe() {
        let list = [
            grant(1, "Anna Petrova", 1_764_915_000, 1_764_915_600),
            grant(12, "Evil\u{1b}[2J Name", 1_764_915_060, 0),
        ];
        assert_eq!(
            table(&list),
            "USER  NAME          CLIENT       SINCE                    LAST USE\n\
             1     Anna Petrova  Claude Code  2025-12-05 06:10:00 UTC  2025-12-05 06:20:00 UTC\n\
             12    Evil[2J Name  Claude Code  2025-12-05 06:11:00 UTC  never\n\
             2 sign-ins of 2 users"
        );
        assert_eq!(table(&[]), "no one is signed in");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), NAME_WIDTH);
    }
}

//! The token file's lock (`<token file>.lock`) is refused, like the token file itself, when
//! something this server did not make is at its path: a directory (which no retry can get past)
//! or a symbolic link (which would be followed, creating and locking a file elsewhere). At start
//! the server refuses to open; a lock path spoilt while it runs fails the call with
//! `STATE_MISCONFIGURED`, not retryable, saying what to fix — and sends nothing.

mod common;

use std::path::{Path, PathBuf};

use bitrix24_mcp::bitrix::auth::OAuthSession;
use bitrix24_mcp::tools::Bitrix24Tools;
use common::*;

const HINT: &str = "Something in the way of the state this server keeps on disk: the description names the path and what to change; retrying cannot help until that is fixed.";

/// What spoils the lock path, and how the refusal names it.
#[derive(Clone, Copy, Debug)]
enum Spoiler {
    Directory,
    Link,
}

impl Spoiler {
    /// Puts the spoiler at `lock`; returns the path a followed link would create.
    fn place(self, lock: &Path) -> PathBuf {
        let target = lock.parent().unwrap().join("elsewhere").join("target.lock");
        match self {
            Spoiler::Directory => std::fs::create_dir(lock).unwrap(),
            Spoiler::Link => {
                std::fs::create_dir(target.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&target, lock).unwrap();
            }
        }
        target
    }

    fn kind(self) -> &'static str {
        match self {
            Spoiler::Directory => "a directory",
            Spoiler::Link => "a symbolic link",
        }
    }
}

fn lock_path(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", file.display()))
}

#[tokio::test]
async fn a_lock_path_spoilt_while_running_fails_the_call_with_what_to_fix() {
    for spoiler in [Spoiler::Directory, Spoiler::Link] {
        let portal = oauth_portal(oauth_app(), None).await;
        let file = temp_dir("spoilt-lock").join("tokens.json");
        // No access token: the first call refreshes, under the lock.
        let client = oauth_client(oauth_settings(
            &portal,
            None,
            Some(REFRESH),
            Some(file.clone()),
        ));
        let lock = lock_path(&file);
        let target = spoiler.place(&lock);
        let tools = mcp_client(Bitrix24Tools::new(Some(client))).await;
        let error = error_object(&chat_users(&tools, 2935).await);
        assert_eq!(
            error["error"], "STATE_MISCONFIGURED",
            "{spoiler:?}: {error}"
        );
        assert_eq!(error["retryable"], false, "{spoiler:?}: {error}");
        assert_eq!(error["category"], "configuration", "{spoiler:?}: {error}");
        assert_eq!(error["hint"], HINT, "{spoiler:?}");
        assert_eq!(
            error["error_description"],
            format!(
                "the token file's lock {} is {}, not a regular file; remove or rename it (the \
                 server creates the lock itself), or point BITRIX24_TOKEN_FILE elsewhere; \
                 nothing was sent.",
                lock.display(),
                spoiler.kind()
            ),
            "{spoiler:?}"
        );
        assert!(
            portal.requests().is_empty(),
            "{spoiler:?}: something was sent"
        );
        assert!(!target.exists(), "{spoiler:?}: the link was followed");
        // A second try fails the same way: nothing changed.
        let again = error_object(&chat_users(&tools, 2935).await);
        assert_eq!(again["error"], "STATE_MISCONFIGURED");
        assert!(!target.exists() && portal.requests().is_empty());

        // Once the path is cleared, the call goes through.
        match spoiler {
            Spoiler::Directory => std::fs::remove_dir(&lock).unwrap(),
            Spoiler::Link => std::fs::remove_file(&lock).unwrap(),
        }
        let users = success_object(&chat_users(&tools, 2935).await);
        assert_eq!(users["user_ids"], serde_json::json!([99, 1269, 1271]));
        assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
        tools.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn a_lock_path_spoilt_before_start_is_refused_at_start() {
    for spoiler in [Spoiler::Directory, Spoiler::Link] {
        let portal = oauth_portal(oauth_app(), None).await;
        let file = temp_dir("spoilt-lock-start").join("tokens.json");
        let lock = lock_path(&file);
        let target = spoiler.place(&lock);
        let err = OAuthSession::open(oauth_settings(&portal, None, Some(REFRESH), Some(file)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "the token file's lock {} is {}, not a regular file; remove or rename it (the \
                 server creates the lock itself), or point BITRIX24_TOKEN_FILE elsewhere",
                lock.display(),
                spoiler.kind()
            ),
            "{spoiler:?}"
        );
        assert!(!target.exists(), "{spoiler:?}: the link was followed");
        assert!(portal.requests().is_empty());
    }
}

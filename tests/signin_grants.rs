//! Sign-in grants kept in a real Redis: several instances see one another's codes, tokens and
//! revocations; the store, read raw, holds no code or token; `bitrix24-mcp grants list|revoke`
//! as a real process. Every test starts its own `redis-server` (see `common::redis_server`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, StateSettings, StateUrl};
use bitrix24_mcp::signin::grants::{Grants, NewGrant, Rejection, TokenPair};
use bitrix24_mcp::signin::{PendingAuthorization, PublicUrl, SigninStore, digest};
use common::BIN;
use common::redis_server::RedisServer;
use serde_json::{Value, json};

const PUBLIC: &str = "https://mcp.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const CLIENT: &str = "https://claude.ai/oauth/claude-code-client-metadata";
const REDIRECT: &str = "http://localhost:51234/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The sign-in store in `redis` under the default prefix, as a server configured with
/// `BITRIX24_STATE_URL` uses it.
fn store(redis: &RedisServer) -> SigninStore {
    let settings = StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(bitrix24_mcp::bitrix::state::StateKey::parse(&"7".repeat(64)).unwrap()),
        lock_ttl: Duration::from_secs(5),
    };
    SigninStore::redis(Arc::new(RedisStore::new(&settings).unwrap()))
}

/// One instance's grants over `redis`, re-checking every token in the store (cache time zero).
fn instance(redis: &RedisServer) -> Grants {
    Grants::new(store(redis), PublicUrl::parse(PUBLIC).unwrap()).with_cache_ttl(Duration::ZERO)
}

fn pending() -> PendingAuthorization {
    PendingAuthorization {
        client_id: CLIENT.to_owned(),
        client_name: "Claude Code".to_owned(),
        redirect_uri: REDIRECT.to_owned(),
        code_challenge: CHALLENGE.to_owned(),
        resource: RESOURCE.to_owned(),
        scope: None,
        state: None,
    }
}

async fn grant(grants: &Grants, user_id: u64, name: &str) -> String {
    grants
        .create(NewGrant {
            user_id,
            user_name: name.to_owned(),
            member_id: "a223c0d5e2a0e1c1".to_owned(),
            client_id: CLIENT.to_owned(),
            client_name: "Claude Code".to_owned(),
            resource: RESOURCE.to_owned(),
            scope: None,
        })
        .await
        .unwrap()
}

async fn code(grants: &Grants, grant_id: &str) -> String {
    grants.issue_code(grant_id, &pending()).await.unwrap()
}

async fn redeem(grants: &Grants, code: &str) -> Result<TokenPair, String> {
    grants
        .redeem_code(code, CLIENT, REDIRECT, VERIFIER, Some(RESOURCE))
        .await
        .map_err(|e| format!("{}: {}", e.code(), e.description()))
}

fn rejected(result: Result<bitrix24_mcp::signin::Grant, Rejection>) -> bool {
    matches!(result, Err(Rejection::Invalid))
}

#[tokio::test]
async fn a_code_from_one_instance_is_exchanged_refreshed_and_revoked_through_others() {
    let Some(redis) = RedisServer::start("grants-instances") else {
        return;
    };
    let (a, b, c) = (instance(&redis), instance(&redis), instance(&redis));
    let grant_id = grant(&a, 5, "Anna Petrova").await;
    let code = code(&a, &grant_id).await;
    let first = redeem(&b, &code).await.unwrap();
    assert_eq!(
        c.authenticate(&first.access_token).await.unwrap().user_id,
        5
    );
    let second = c.refresh(&first.refresh_token, CLIENT, None).await.unwrap();
    assert_eq!(
        a.authenticate(&second.access_token).await.unwrap().grant_id,
        grant_id
    );

    // Revoked on A: B and C refuse every token of the grant at once (their cache time is zero).
    assert_eq!(a.revoke(&grant_id).await.unwrap().unwrap().user_id, 5);
    assert!(rejected(b.authenticate(&second.access_token).await));
    assert!(rejected(c.authenticate(&first.access_token).await));
    assert_eq!(
        b.refresh(&second.refresh_token, CLIENT, None)
            .await
            .map_err(|e| e.code()),
        Err("invalid_grant")
    );
}

#[tokio::test]
async fn a_code_replayed_on_another_instance_revokes_the_grant_everywhere() {
    let Some(redis) = RedisServer::start("grants-replay") else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let grant_id = grant(&a, 5, "Anna Petrova").await;
    let code = code(&a, &grant_id).await;
    let pair = redeem(&a, &code).await.unwrap();
    assert!(b.authenticate(&pair.access_token).await.is_ok());
    assert_eq!(
        redeem(&b, &code).await.unwrap_err(),
        "invalid_grant: the authorization code was already used; the sign-in it belongs to is \
         revoked: sign in again"
    );
    assert!(rejected(a.authenticate(&pair.access_token).await));
    assert_eq!(a.list().await.unwrap(), vec![]);
}

#[tokio::test]
async fn an_old_refresh_token_used_on_another_instance_revokes_the_grant() {
    let Some(redis) = RedisServer::start("grants-rotation") else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    let grant_id = grant(&a, 5, "Anna Petrova").await;
    let first = redeem(&a, &code(&a, &grant_id).await).await.unwrap();
    let second = a.refresh(&first.refresh_token, CLIENT, None).await.unwrap();
    let reuse = b.refresh(&first.refresh_token, CLIENT, None).await;
    assert_eq!(reuse.map_err(|e| e.code()), Err("invalid_grant"));
    assert!(rejected(a.authenticate(&second.access_token).await));
    assert_eq!(a.get(&grant_id).await.unwrap(), None);
}

/// Everything a sign-in leaves in the store, read raw: no code, token or verifier, in any key or
/// value; only their SHA-256.
#[tokio::test]
async fn the_store_read_raw_holds_no_code_or_token() {
    let Some(redis) = RedisServer::start("grants-at-rest") else {
        return;
    };
    let grants = instance(&redis);
    let grant_id = grant(&grants, 5, "Anna Petrova").await;
    let first_code = code(&grants, &grant_id).await;
    let first = redeem(&grants, &first_code).await.unwrap();
    let second = grants
        .refresh(&first.refresh_token, CLIENT, None)
        .await
        .unwrap();
    grants.authenticate(&second.access_token).await.unwrap();
    let unused_code = code(&grants, &grant_id).await;
    let secrets = [
        first_code.as_str(),
        unused_code.as_str(),
        &first.access_token,
        &first.refresh_token,
        &second.access_token,
        &second.refresh_token,
        VERIFIER,
    ];
    let dump = redis.dump();
    let keys: BTreeSet<&str> = dump.iter().map(|(k, _)| k.as_str()).collect();
    for secret in secrets {
        for (key, value) in &dump {
            assert!(!key.contains(secret), "a key holds a code or token: {key}");
            assert!(
                !String::from_utf8_lossy(value).contains(secret),
                "the value at {key} holds a code or token"
            );
        }
    }
    // What is there: the grant, and codes and tokens by hash only.
    let expected = [
        format!("bitrix24-mcp:signin:grant:{grant_id}"),
        format!("bitrix24-mcp:signin:code:{}", digest(&unused_code)),
        format!("bitrix24-mcp:signin:code-used:{}", digest(&first_code)),
        // Rotation ended the first access token; the grant lists its spent refresh tokens.
        format!(
            "bitrix24-mcp:signin:access:{}",
            digest(&second.access_token)
        ),
        format!(
            "bitrix24-mcp:signin:refresh:{}",
            digest(&second.refresh_token)
        ),
        format!(
            "bitrix24-mcp:signin:refresh-used:{}",
            digest(&first.refresh_token)
        ),
        format!("bitrix24-mcp:signin:last-use:{grant_id}"),
        format!("bitrix24-mcp:signin:spent:{grant_id}"),
    ];
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(keys, expected);
}

// ---- `bitrix24-mcp grants` as a real process ----------------------------------------------------

/// The binary with nothing configured but what the test adds.
fn grants_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command.env_clear().arg("grants").args(args);
    command
}

fn run(command: &mut std::process::Command) -> (i32, String, String) {
    let output = command.output().expect("binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn with_store(redis: &RedisServer, args: &[&str]) -> (i32, String, String) {
    run(grants_command(args).env("BITRIX24_STATE_URL", redis.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_list_and_revoke_work_on_the_store_the_servers_share() {
    let Some(redis) = RedisServer::start("grants-cli") else {
        return;
    };
    let server = instance(&redis);
    let (empty_code, empty_out, _) = with_store(&redis, &["list"]);
    assert_eq!(
        (empty_code, empty_out.as_str()),
        (0, "no one is signed in\n")
    );

    let anna = grant(&server, 5, "Anna Petrova").await;
    let anna_again = grant(&server, 5, "Anna Petrova").await;
    let boris = grant(&server, 9, "Boris Ivanov").await;
    let pair = redeem(&server, &code(&server, &anna).await).await.unwrap();
    server.authenticate(&pair.access_token).await.unwrap();
    for grant_id in [&anna, &anna_again, &boris] {
        for key in bitrix24_mcp::signin::users::pair_keys(server.store(), grant_id) {
            server
                .store()
                .put(&key, b"sealed", Duration::from_secs(600))
                .await
                .unwrap();
        }
    }
    let listed = server.list().await.unwrap();

    let (status, stdout, stderr) = with_store(&redis, &["list", "--json"]);
    assert_eq!((status, stderr.as_str()), (0, ""));
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    let stamp = |unix: i64| {
        let out = grants_utc(unix);
        Value::String(out)
    };
    let expected: Vec<Value> = listed
        .iter()
        .map(|g| {
            json!({
                "user_id": g.user_id,
                "user_name": g.user_name,
                "member_id": "a223c0d5e2a0e1c1",
                "client_id": CLIENT,
                "client_name": "Claude Code",
                "since": stamp(g.created_at),
                "last_used": if g.last_used_at > 0 { stamp(g.last_used_at) } else { Value::Null },
            })
        })
        .collect();
    assert_eq!(rows, Value::Array(expected));
    assert_eq!(
        listed.iter().filter(|g| g.last_used_at > 0).count(),
        1,
        "Anna's first sign-in was used"
    );
    let (status, table, _) = with_store(&redis, &["list"]);
    assert_eq!(status, 0);
    assert!(
        table.starts_with("USER  NAME          CLIENT       SINCE"),
        "{table}"
    );
    assert!(table.ends_with("3 sign-ins of 2 users\n"), "{table}");
    for secret in [
        &anna,
        &anna_again,
        &boris,
        &pair.access_token,
        &digest(&pair.access_token),
    ] {
        assert!(!stdout.contains(secret.as_str()) && !table.contains(secret.as_str()));
    }

    let (status, stdout, _) = with_store(&redis, &["revoke", "5"]);
    assert_eq!(
        (status, stdout.as_str()),
        (
            0,
            "signed out user 5: 2 sign-ins ended; running servers refuse their tokens within 5 \
             seconds\n"
        )
    );
    assert!(rejected(server.authenticate(&pair.access_token).await));
    let left: Vec<u64> = server
        .list()
        .await
        .unwrap()
        .iter()
        .map(|g| g.user_id)
        .collect();
    assert_eq!(left, vec![9]);
    for grant_id in [&anna, &anna_again] {
        for key in bitrix24_mcp::signin::users::pair_keys(server.store(), grant_id) {
            assert_eq!(
                redis.get(&key),
                None,
                "the Bitrix24 pair of a revoked grant"
            );
        }
    }
    let boris_pair = bitrix24_mcp::signin::users::pair_keys(server.store(), &boris);
    assert!(redis.get(&boris_pair[0]).is_some());

    let (status, stdout, _) = with_store(&redis, &["revoke", "5"]);
    assert_eq!(
        (status, stdout.as_str()),
        (0, "user 5 is not signed in; nothing to revoke\n")
    );
    let (status, stdout, _) = with_store(&redis, &["revoke", "--all"]);
    assert_eq!(
        (status, stdout.as_str()),
        (
            0,
            "signed everyone out: 1 sign-in ended; running servers refuse their tokens within 5 \
             seconds\n"
        )
    );
    assert_eq!(server.list().await.unwrap(), vec![]);
    assert_eq!(redis.get(&boris_pair[0]), None);
}

#[test]
fn without_a_state_store_grants_says_they_are_in_the_servers_memory_and_exits_2() {
    for args in [&["list"][..], &["revoke", "5"], &["revoke", "--all"]] {
        let (status, stdout, stderr) = run(&mut grants_command(args));
        assert_eq!(
            (status, stdout.as_str(), stderr.as_str()),
            (
                2,
                "",
                "bitrix24-mcp: grants are kept in the state store, and none is configured \
                 (BITRIX24_STATE_URL / --state-url): without one they live only in the running \
                 server's memory, out of this command's reach; restarting that server signs \
                 everyone out\n"
            ),
            "{args:?}"
        );
    }
    let (status, _, stderr) = run(&mut grants_command(&["revoke"]));
    assert_eq!(status, 2, "{stderr}");
    let (status, _, stderr) = run(&mut grants_command(&["revoke", "5", "--all"]));
    assert_eq!(status, 2, "{stderr}");
}

#[test]
fn an_unreachable_store_is_an_error_not_an_empty_list() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, stdout, stderr) =
        run(grants_command(&["list"])
            .env("BITRIX24_STATE_URL", format!("redis://127.0.0.1:{port}/0")));
    assert_eq!((status, stdout.as_str()), (1, ""));
    assert!(
        stderr.starts_with("bitrix24-mcp: cannot read the grants: "),
        "{stderr}"
    );
}

/// `2026-12-05T06:10:00Z`, as `grants list --json` prints times (computed independently here,
/// through the system's `date`).
fn grants_utc(unix: i64) -> String {
    let output = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date runs");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

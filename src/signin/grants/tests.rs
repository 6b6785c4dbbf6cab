//! Unit tests of grants, codes and tokens, in memory with paused time (no sleeps).

use std::time::Duration;

use super::*;
use crate::signin::records::PendingAuthorization;

const PUBLIC: &str = "https://mcp.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const CLIENT: &str = "client-1";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
/// RFC 7636 appendix B: this verifier's S256 challenge is the one below.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn grants() -> Grants {
    Grants::new(SigninStore::memory(), PublicUrl::parse(PUBLIC).unwrap())
}

fn new_grant(user_id: u64) -> NewGrant {
    NewGrant {
        user_id,
        user_name: format!("User {user_id}"),
        member_id: "m1".to_owned(),
        client_id: CLIENT.to_owned(),
        client_name: "Claude Code".to_owned(),
        resource: RESOURCE.to_owned(),
        scope: None,
    }
}

fn pending() -> PendingAuthorization {
    PendingAuthorization {
        client_id: CLIENT.to_owned(),
        client_name: "Claude Code".to_owned(),
        redirect_uri: REDIRECT.to_owned(),
        code_challenge: CHALLENGE.to_owned(),
        resource: RESOURCE.to_owned(),
        scope: None,
        state: Some("xyz".to_owned()),
    }
}

/// A grant for `user_id` and a code for it.
async fn signed_in(grants: &Grants, user_id: u64) -> (String, String) {
    let grant_id = grants.create(new_grant(user_id)).await.unwrap();
    let code = grants.issue_code(&grant_id, &pending()).await.unwrap();
    (grant_id, code)
}

async fn redeem(grants: &Grants, code: &str) -> Result<TokenPair, TokenError> {
    grants
        .redeem_code(code, CLIENT, REDIRECT, VERIFIER, None)
        .await
}

/// The error's OAuth code and description.
fn refusal<T: std::fmt::Debug>(result: Result<T, TokenError>) -> (&'static str, &'static str) {
    let err = result.unwrap_err();
    (err.code(), err.description())
}

fn invalid(result: Result<Grant, Rejection>) -> bool {
    matches!(result, Err(Rejection::Invalid))
}

#[test]
fn s256_follows_rfc_7636() {
    assert!(issue::verifier_matches(VERIFIER, CHALLENGE));
    assert!(!issue::verifier_matches(CHALLENGE, CHALLENGE));
    // plain (verifier == challenge) never matches, nor does a short or odd verifier.
    assert!(!issue::verifier_matches("short", "short"));
    assert!(!issue::verifier_matches(&format!("{VERIFIER} "), CHALLENGE));
}

#[tokio::test(start_paused = true)]
async fn a_code_gives_tokens_once_and_a_replay_revokes_the_grant() {
    let grants = grants();
    let (grant_id, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    assert_eq!(pair.expires_in, 3600);
    assert_eq!(pair.access_token.len(), 43);
    assert_ne!(pair.access_token, pair.refresh_token);
    let grant = grants.authenticate(&pair.access_token).await.unwrap();
    assert_eq!(
        (grant.user_id, grant.grant_id.as_str()),
        (7, grant_id.as_str())
    );

    assert_eq!(
        refusal(redeem(&grants, &code).await),
        (
            "invalid_grant",
            "the authorization code was already used; the sign-in it belongs to is revoked: \
             sign in again"
        )
    );
    assert_eq!(grants.get(&grant_id).await.unwrap(), None);
    assert!(invalid(grants.authenticate(&pair.access_token).await));
    assert_eq!(
        refusal(grants.refresh(&pair.refresh_token, CLIENT, None).await),
        ("invalid_grant", "the sign-in was revoked; sign in again")
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_verifier_redirect_or_client_is_refused_and_spends_the_code() {
    let grants = grants();
    let cases = [
        (
            (CLIENT, REDIRECT, "x".repeat(43)),
            "the code_verifier does not match the code_challenge (S256)",
        ),
        (
            (CLIENT, "http://127.0.0.1:33418/other", VERIFIER.to_owned()),
            "redirect_uri differs from the one the authorization code was issued for",
        ),
        (
            ("client-2", REDIRECT, VERIFIER.to_owned()),
            "the authorization code was issued to another client",
        ),
    ];
    for ((client, redirect, verifier), description) in cases {
        let (grant_id, code) = signed_in(&grants, 7).await;
        let result = grants
            .redeem_code(&code, client, redirect, &verifier, None)
            .await;
        assert_eq!(refusal(result), ("invalid_grant", description));
        // Spent: the rightful exchange that follows is a replay, and ends the grant.
        assert_eq!(refusal(redeem(&grants, &code).await).0, "invalid_grant");
        assert_eq!(grants.get(&grant_id).await.unwrap(), None);
    }
}

#[tokio::test(start_paused = true)]
async fn a_code_expires_after_five_minutes_without_revoking_its_grant() {
    let grants = grants();
    let (grant_id, code) = signed_in(&grants, 7).await;
    tokio::time::advance(Duration::from_secs(5 * 60 + 1)).await;
    assert_eq!(
        refusal(redeem(&grants, &code).await),
        (
            "invalid_grant",
            "the authorization code is unknown or expired; sign in again"
        )
    );
    assert!(grants.get(&grant_id).await.unwrap().is_some());
    // Just inside the five minutes, a fresh code works.
    let code = grants.issue_code(&grant_id, &pending()).await.unwrap();
    tokio::time::advance(Duration::from_secs(5 * 60 - 1)).await;
    assert!(redeem(&grants, &code).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn refresh_tokens_rotate_and_an_old_one_revokes_the_grant() {
    let grants = grants();
    let (grant_id, code) = signed_in(&grants, 7).await;
    let first = redeem(&grants, &code).await.unwrap();
    let second = grants
        .refresh(
            &first.refresh_token,
            CLIENT,
            Some("https://MCP.example.com/mcp/"),
        )
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        grants
            .authenticate(&second.access_token)
            .await
            .unwrap()
            .grant_id,
        grant_id
    );
    assert_eq!(
        refusal(grants.refresh(&first.refresh_token, CLIENT, None).await),
        (
            "invalid_grant",
            "the refresh token was already used (refresh tokens rotate); the sign-in is \
             revoked: sign in again"
        )
    );
    assert_eq!(grants.get(&grant_id).await.unwrap(), None);
    assert!(invalid(grants.authenticate(&second.access_token).await));
    assert_eq!(
        refusal(grants.refresh(&second.refresh_token, CLIENT, None).await),
        ("invalid_grant", "the sign-in was revoked; sign in again")
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_by_another_client_or_for_another_resource_is_refused() {
    let grants = grants();
    let (_, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    assert_eq!(
        refusal(grants.refresh(&pair.refresh_token, "client-2", None).await),
        ("invalid_grant", "the token was issued to another client")
    );
    let (_, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    let other = Some("https://other.example.com/mcp");
    assert_eq!(
        refusal(grants.refresh(&pair.refresh_token, CLIENT, other).await),
        (
            "invalid_target",
            "resource must name this server's MCP endpoint"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn tokens_for_another_audience_are_not_accepted() {
    let store = SigninStore::memory();
    let here = Grants::new(store.clone(), PublicUrl::parse(PUBLIC).unwrap());
    let elsewhere = Grants::new(
        store,
        PublicUrl::parse("https://other.example.com").unwrap(),
    );
    let (_, code) = signed_in(&here, 7).await;
    let pair = redeem(&here, &code).await.unwrap();
    assert!(here.authenticate(&pair.access_token).await.is_ok());
    assert!(invalid(elsewhere.authenticate(&pair.access_token).await));
    // A code bound to this server is not exchanged by another, nor for another resource.
    let (_, code) = signed_in(&here, 7).await;
    assert_eq!(
        refusal(redeem(&elsewhere, &code).await),
        (
            "invalid_target",
            "the grant is for another resource than this server's MCP endpoint; sign in again"
        )
    );
    let (_, code) = signed_in(&here, 7).await;
    let result = here
        .redeem_code(
            &code,
            CLIENT,
            REDIRECT,
            VERIFIER,
            Some("https://other.example.com/mcp"),
        )
        .await;
    assert_eq!(refusal(result).0, "invalid_target");
    assert!(invalid(here.authenticate("not-a-token").await));
    assert!(invalid(here.authenticate(&"x".repeat(10_000)).await));
}

#[tokio::test(start_paused = true)]
async fn an_access_token_ends_after_an_hour() {
    let grants = grants().with_cache_ttl(Duration::ZERO);
    let (_, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert!(grants.authenticate(&pair.access_token).await.is_ok());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(invalid(grants.authenticate(&pair.access_token).await));
}

/// Another instance's revocation deletes the record; this one notices once its cache entry is
/// older than the cache time, and not before.
#[tokio::test(start_paused = true)]
async fn a_cached_grant_is_checked_again_after_the_cache_time() {
    let grants = grants();
    let (grant_id, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    assert!(grants.authenticate(&pair.access_token).await.is_ok());
    grants
        .store()
        .delete(&grants.grant_key(&grant_id))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(1900)).await;
    assert!(grants.authenticate(&pair.access_token).await.is_ok());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(invalid(grants.authenticate(&pair.access_token).await));
}

#[tokio::test(start_paused = true)]
async fn last_use_is_written_at_most_once_a_minute() {
    let grants = grants().with_cache_ttl(Duration::ZERO);
    let (grant_id, code) = signed_in(&grants, 7).await;
    assert_eq!(grants.list().await.unwrap()[0].last_used_at, 0);
    let pair = redeem(&grants, &code).await.unwrap();
    grants.authenticate(&pair.access_token).await.unwrap();
    let used = grants.list().await.unwrap()[0].last_used_at;
    assert!(used > 0);
    let mark = grants.key("last-use", &grant_id);
    grants.store().delete(&mark).await.unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    grants.authenticate(&pair.access_token).await.unwrap();
    assert_eq!(grants.store().get(&mark).await.unwrap(), None);
    tokio::time::advance(Duration::from_secs(1)).await;
    grants.authenticate(&pair.access_token).await.unwrap();
    assert!(grants.store().get(&mark).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn revocation_ends_a_users_grants_and_their_bitrix24_pairs() {
    let grants = grants();
    let mut tokens = Vec::new();
    for user in [7, 7, 8] {
        let (grant_id, code) = signed_in(&grants, user).await;
        for key in crate::signin::users::pair_keys(grants.store(), &grant_id) {
            grants
                .store()
                .put(&key, b"sealed", REFRESH_TTL)
                .await
                .unwrap();
        }
        tokens.push((grant_id, redeem(&grants, &code).await.unwrap()));
    }
    for (_, pair) in &tokens {
        assert!(grants.authenticate(&pair.access_token).await.is_ok());
    }
    assert_eq!(grants.revoke_user(7).await.unwrap(), 2);
    assert_eq!(grants.revoke_user(7).await.unwrap(), 0);
    let left: Vec<u64> = grants
        .list()
        .await
        .unwrap()
        .iter()
        .map(|g| g.user_id)
        .collect();
    assert_eq!(left, vec![8]);
    for (i, (grant_id, pair)) in tokens.iter().enumerate() {
        let pairs = crate::signin::users::pair_keys(grants.store(), grant_id);
        let alive = i == 2;
        assert_eq!(grants.authenticate(&pair.access_token).await.is_ok(), alive);
        assert_eq!(
            grants.store().get(&pairs[0]).await.unwrap().is_some(),
            alive
        );
        assert_eq!(
            grants.store().get(&pairs[1]).await.unwrap().is_some(),
            alive
        );
    }
    assert_eq!(grants.revoke_all().await.unwrap(), 1);
    assert!(grants.list().await.unwrap().is_empty());
    assert!(invalid(
        grants.authenticate(&tokens[2].1.access_token).await
    ));
}

/// A refresh that rewrites the grant just after a revocation deleted it does not bring it back.
#[tokio::test(start_paused = true)]
async fn a_refresh_racing_a_revocation_does_not_revive_the_grant() {
    let grants = grants();
    let (grant_id, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    let grant = grants.get(&grant_id).await.unwrap().unwrap();
    grants.revoke(&grant_id).await.unwrap();
    // What the refresh does after it read the grant (before the revocation).
    assert_eq!(
        refusal(grants.extend(&grant).await),
        ("invalid_grant", "the sign-in was revoked; sign in again")
    );
    assert_eq!(grants.get(&grant_id).await.unwrap(), None);
    assert!(
        grants
            .refresh(&pair.refresh_token, CLIENT, None)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_records_count_as_absent() {
    let grants = grants().with_cache_ttl(Duration::ZERO);
    let (grant_id, code) = signed_in(&grants, 7).await;
    let pair = redeem(&grants, &code).await.unwrap();
    let key = grants.grant_key(&grant_id);
    grants
        .store()
        .put(&key, b"{not json", REFRESH_TTL)
        .await
        .unwrap();
    assert_eq!(grants.get(&grant_id).await.unwrap(), None);
    assert!(grants.list().await.unwrap().is_empty());
    assert!(invalid(grants.authenticate(&pair.access_token).await));
    let access = grants.key("access", &crate::signin::digest(&pair.access_token));
    grants
        .store()
        .put(&access, b"[]", ACCESS_TTL)
        .await
        .unwrap();
    assert!(invalid(grants.authenticate(&pair.access_token).await));
}

#[tokio::test]
async fn names_from_outside_are_kept_bounded() {
    let grants = grants();
    let mut new = new_grant(7);
    new.user_name = "ж".repeat(500);
    new.client_name = "c".repeat(500);
    let grant_id = grants.create(new).await.unwrap();
    let grant = grants.get(&grant_id).await.unwrap().unwrap();
    assert_eq!(grant.user_name, "ж".repeat(200));
    assert_eq!(grant.client_name, "c".repeat(200));
}

#[tokio::test]
async fn revoking_a_user_ends_the_grants_in_their_own_list_too_and_drops_the_list() {
    let grants = grants();
    let (listed, _) = signed_in(&grants, 8).await;
    let (other, _) = signed_in(&grants, 9).await;
    let index = grants.key("user-grants", "8");
    // The user's list names a grant the scan also finds, and one whose record is already gone.
    let names = serde_json::to_vec(&[listed.as_str(), "gone"]).unwrap();
    grants
        .store()
        .put(&index, &names, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(grants.revoke_user(8).await.unwrap(), 1);
    assert_eq!(grants.get(&listed).await.unwrap(), None);
    assert_eq!(grants.store().get(&index).await.unwrap(), None);
    assert!(grants.get(&other).await.unwrap().is_some());
}

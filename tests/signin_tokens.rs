//! `POST /token` and `POST /revoke` over real HTTP on loopback: both grant types, the exact
//! answers and error objects, `no-store`, CORS for browser clients.

#[path = "signin/server.rs"]
mod server;

use bitrix24_mcp::signin::SigninStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::*;

/// A token request's fields.
type Form<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn both_grant_types_answer_tokens_that_no_cache_keeps() {
    let server = Server::start(SigninStore::memory()).await;
    let code = server.code(Some("chat")).await;
    let (status, headers, first) = server.exchange(&code).await;
    assert_tokens(status, &headers, &first, Some("chat"));
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(
        server
            .signin
            .grants()
            .authenticate(access)
            .await
            .unwrap()
            .user_id,
        5
    );

    // A public client: a client_secret is ignored; the resource may be spelled another way.
    let slashed = format!("{}/", server.resource());
    let (status, headers, second) = server
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
                ("client_id", CLIENT),
                ("client_secret", "anything"),
                ("resource", &slashed),
            ],
        )
        .await;
    assert_tokens(status, &headers, &second, Some("chat"));
    assert_ne!(second["refresh_token"], first["refresh_token"]);

    // The old refresh token again: refused, and the grant with every token of it is gone.
    let (status, headers, body) = server
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
                ("client_id", CLIENT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(
        body,
        oauth_error(
            "invalid_grant",
            "the refresh token was already used (refresh tokens rotate); the sign-in is \
             revoked: sign in again"
        )
    );
    let second_access = second["access_token"].as_str().unwrap();
    assert!(
        server
            .signin
            .grants()
            .authenticate(second_access)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_ends_the_first_exchanges_tokens() {
    let server = Server::start(SigninStore::memory()).await;
    let code = server.code(None).await;
    let (status, headers, first) = server.exchange(&code).await;
    assert_tokens(status, &headers, &first, None);
    let (status, _, body) = server.exchange(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        oauth_error(
            "invalid_grant",
            "the authorization code was already used; the sign-in it belongs to is revoked: \
             sign in again"
        )
    );
    let access = first["access_token"].as_str().unwrap();
    assert!(server.signin.grants().authenticate(access).await.is_err());
}

#[tokio::test]
async fn bad_token_requests_get_the_oauth_error_for_each_fault() {
    let server = Server::start(SigninStore::memory()).await;
    let other = "https://elsewhere.example.com/mcp";
    let cases: Vec<(Form, StatusCode, Value)> = vec![
        (
            vec![("code", "x")],
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_request", "the grant_type parameter is missing"),
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            StatusCode::BAD_REQUEST,
            oauth_error(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ),
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
            ],
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_request",
                "the code_verifier parameter is missing (PKCE with S256 is required)",
            ),
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            StatusCode::UNAUTHORIZED,
            oauth_error(
                "invalid_client",
                "client_id is missing: a public client names itself with client_id",
            ),
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", VERIFIER),
                ("resource", other),
            ],
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_target",
                "resource must name this server's MCP endpoint",
            ),
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "never-issued"),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", VERIFIER),
            ],
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_grant",
                "the authorization code is unknown or expired; sign in again",
            ),
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "a"),
                ("refresh_token", "b"),
                ("client_id", CLIENT),
            ],
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_request", "a parameter is given more than once"),
        ),
    ];
    for (form, status, expected) in cases {
        let (got_status, headers, body) = server.post("/token", &form).await;
        assert_eq!((got_status, &body), (status, &expected), "{form:?}");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    }

    // Each binding of the code, wrong: refused as invalid_grant.
    for (field, value, description) in [
        (
            "code_verifier",
            "x".repeat(43),
            "the code_verifier does not match the code_challenge (S256)",
        ),
        (
            "redirect_uri",
            "http://localhost:51234/other".to_owned(),
            "redirect_uri differs from the one the authorization code was issued for",
        ),
        (
            "client_id",
            "another-client".to_owned(),
            "the authorization code was issued to another client",
        ),
    ] {
        let code = server.code(None).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", VERIFIER),
        ];
        form.retain(|(name, _)| *name != field);
        form.push((field, &value));
        let (status, _, body) = server.post("/token", &form).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                oauth_error("invalid_grant", description)
            ),
            "{field}"
        );
    }

    let (status, _, body) = server
        .post_raw(
            "/token",
            "application/json",
            r#"{"grant_type":"refresh_token"}"#.into(),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded"
            )
        )
    );
    let big = format!(
        "grant_type=refresh_token&refresh_token={}",
        "a".repeat(17 * 1024)
    );
    let (status, _, body) = server
        .post_raw("/token", "application/x-www-form-urlencoded", big)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            oauth_error("invalid_request", "the request body is larger than 16 KB")
        )
    );
}

#[tokio::test]
async fn browsers_may_call_token_and_revoke_from_any_origin() {
    let server = Server::start(SigninStore::memory()).await;
    for path in ["/token", "/revoke"] {
        let response = server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.base))
            .header("origin", "http://localhost:6274")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), "*");
        assert_eq!(
            header(headers, "access-control-allow-methods"),
            "POST, OPTIONS"
        );
        assert!(
            header(headers, "access-control-allow-headers")
                .to_ascii_lowercase()
                .contains("content-type"),
            "{path}"
        );
    }
    let response = server
        .http
        .get(format!("{}/token", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn revoke_ends_the_grant_of_an_access_or_refresh_token_and_always_answers_200() {
    let server = Server::start(SigninStore::memory()).await;
    for kind in ["access_token", "refresh_token"] {
        let (_, _, pair) = server.exchange(&server.code(None).await).await;
        let token = pair[kind].as_str().unwrap();
        let (status, headers, body) = server.post("/revoke", &[("token", token)]).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})), "{kind}");
        assert_eq!(header(&headers, "access-control-allow-origin"), "*");
        let access = pair["access_token"].as_str().unwrap();
        assert!(
            server.signin.grants().authenticate(access).await.is_err(),
            "{kind}"
        );
        let (status, _, body) = server
            .post(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", pair["refresh_token"].as_str().unwrap()),
                    ("client_id", CLIENT),
                ],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
    // Unknown tokens: 200 all the same. Another client's name: 200, and nothing is revoked.
    let (status, _, _) = server.post("/revoke", &[("token", "never-issued")]).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, pair) = server.exchange(&server.code(None).await).await;
    let access = pair["access_token"].as_str().unwrap();
    let (status, _, _) = server
        .post(
            "/revoke",
            &[("token", access), ("client_id", "another-client")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(server.signin.grants().authenticate(access).await.is_ok());
    let (status, _, body) = server
        .post("/revoke", &[("token_type_hint", "access_token")])
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_request", "the token parameter is missing")
        )
    );
}

/// Some clients name themselves with HTTP Basic (RFC 6749 §2.3.1: the ID form-encoded): that
/// name counts, its secret is ignored; a form naming another client is refused.
#[tokio::test]
async fn a_client_named_by_http_basic_is_accepted_and_its_secret_ignored() {
    use base64::Engine;
    let server = Server::start(SigninStore::memory()).await;
    let encoded: String = url::form_urlencoded::byte_serialize(CLIENT.as_bytes()).collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{encoded}:whatever"));
    let send = |form: Vec<(&'static str, String)>| {
        let request = server
            .http
            .post(format!("{}/token", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", format!("Basic {basic}"))
            .body(serde_urlencoded::to_string(form).unwrap());
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let code = server.code(None).await;
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ];
    let (status, body) = send(form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = send(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh),
        ("client_id", "another-client".to_owned()),
    ])
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            oauth_error(
                "invalid_request",
                "client_id differs from the client named in the Authorization header"
            )
        )
    );
}

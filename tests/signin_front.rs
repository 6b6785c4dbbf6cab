//! The sign-in's front door over real HTTP on loopback: the discovery documents, client
//! registration, and the consent page with its decision. A browser is played by reqwest without
//! redirects, carrying cookies by hand so every cookie attribute is seen. (Client ID metadata
//! documents: `signin_cimd.rs`.)

mod common;
mod front;

use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, StateSettings, StateUrl};
use bitrix24_mcp::signin::consent::upstream_key;
use bitrix24_mcp::signin::records::UpstreamState;
use bitrix24_mcp::signin::{SigninStore, digest};
use common::redis_server::RedisServer;
use front::{CHALLENGE, Front, authorize_url};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_documents_name_this_server_field_by_field() {
    let front = Front::start(false).await;
    let base = &front.base;
    for (path, endpoint) in [
        ("/.well-known/oauth-protected-resource/mcp", "/mcp"),
        ("/.well-known/oauth-protected-resource", "/mcp"),
        // The legacy SSE endpoint's own: its clients check the resource against `…/sse`.
        ("/.well-known/oauth-protected-resource/sse", "/sse"),
    ] {
        let response = front.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({
                "resource": format!("{base}{endpoint}"),
                "authorization_servers": [base],
                "bearer_methods_supported": ["header"],
                "resource_name": "Bitrix24 MCP server",
            })
        );
    }
    let response = front.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let text = response.text().await.unwrap();
    assert!(!text.contains("offline_access"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"),
            "revocation_endpoint": format!("{base}/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        })
    );
    assert!(!base.ends_with('/'));
    for path in ["/.well-known/oauth-authorization-server", "/register"] {
        let preflight = front
            .http
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", "http://localhost:6274")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    }
}

#[tokio::test]
async fn bad_authorize_requests_get_a_local_400_and_never_a_redirect() {
    let front = Front::start(false).await;
    let client = front.register(&["http://localhost/callback"]).await;
    let good = |over: &[(&str, Option<&str>)]| {
        let mut params = vec![
            ("client_id", Some(client.as_str())),
            ("redirect_uri", Some("http://localhost:51234/callback")),
            ("response_type", Some("code")),
            ("code_challenge", Some(CHALLENGE)),
            ("code_challenge_method", Some("S256")),
            ("state", Some("st")),
        ];
        for (name, value) in over {
            params.retain(|(n, _)| n != name);
            params.push((name, *value));
        }
        authorize_url(&front.base, &params)
    };
    let cases = [
        (good(&[("client_id", Some("nobody"))]), "not registered"),
        (
            good(&[("redirect_uri", Some("https://evil.example/callback"))]),
            "not one the client registered",
        ),
        (
            good(&[("redirect_uri", Some("http://localhost:51234/other"))]),
            "not one the client registered",
        ),
        (good(&[("code_challenge", None)]), "no PKCE code_challenge"),
        (
            good(&[("code_challenge_method", Some("plain"))]),
            "must be &quot;S256&quot;",
        ),
        (
            good(&[("code_challenge_method", None)]),
            "must be &quot;S256&quot;",
        ),
        (
            good(&[("resource", Some("https://other.example/mcp"))]),
            "invalid_target",
        ),
        (
            good(&[("response_type", Some("token"))]),
            "response_type must be",
        ),
        (format!("{}&state=again", good(&[])), "more than once"),
    ];
    for (url, expected) in cases {
        let response = front.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(response.headers().get("location").is_none(), "{url}");
        assert!(response.headers().get("set-cookie").is_none(), "{url}");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let page = response.text().await.unwrap();
        assert!(page.contains(expected), "{url}: {page}");
    }
    assert!(front.keys("pending:").await.is_empty());
    // The same request, well formed, is shown its consent page; the resource may be given in any
    // of the accepted spellings, and is stored canonical.
    let resource = format!(
        "{}/mcp/",
        front.base.to_uppercase().replace("HTTP:", "http:")
    );
    let response = front
        .http
        .get(good(&[("resource", Some(&resource))]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_consent_page_names_client_destination_and_portal_and_cannot_be_framed() {
    let front = Front::start(false).await;
    let client = front
        .register_named(&["http://localhost/callback"], "Tool <b>\u{202E}X</b>")
        .await;
    let shown = front
        .consent(&client, "http://localhost:51234/callback", "s1")
        .await;
    let headers = &shown.headers;
    assert_eq!(
        headers["content-security-policy"],
        "frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let page = &shown.page;
    assert!(page.contains("Tool &lt;b&gt;X&lt;/b&gt;"), "{page}");
    assert!(!page.contains('\u{202E}'));
    assert!(page.contains("unverified"));
    assert!(page.contains("an application on this computer (localhost)"));
    assert!(page.contains("portal.example.com"));
    assert!(page.contains("name=\"decision\" value=\"approve\""));
    assert!(page.contains("name=\"decision\" value=\"deny\""));
    assert!(page.contains("<form method=\"post\" action=\"/authorize\">"));
    // Plain-http loopback: the cookie without the __Host- prefix and without Secure.
    assert_eq!(
        shown.set_cookie,
        format!(
            "b24mcp-csrf={}; Path=/; Max-Age=600; HttpOnly; SameSite=Strict",
            shown.csrf
        )
    );
    // Nothing toward Bitrix24 exists before the user answers.
    assert!(front.keys("upstream:").await.is_empty());
    assert_eq!(front.keys("pending:").await.len(), 1);
}

#[tokio::test]
async fn approval_binds_the_browser_and_sends_it_to_the_portal_with_a_single_use_state() {
    let front = Front::start(false).await;
    let client = front.register(&["http://localhost/callback"]).await;
    let shown = front
        .consent(&client, "http://localhost:51234/callback", "client-state")
        .await;
    let response = front
        .answer(&shown, "approve", &[("origin", &front.base)])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let prefix = "https://portal.example.com/oauth/authorize/?client_id=app.test&state=";
    assert!(location.starts_with(prefix), "{location}");
    let state = &location[prefix.len()..];
    assert_eq!(state.len(), 43);
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let binding = cookies
        .iter()
        .find_map(|c| c.strip_prefix("b24mcp-binding="))
        .expect("binding cookie");
    let (binding_value, attributes) = binding.split_once(';').unwrap();
    assert_eq!(attributes, " Path=/; Max-Age=600; HttpOnly; SameSite=Lax");
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("b24mcp-csrf=; Path=/; Max-Age=0"))
    );
    let store = front.signin.store();
    let stored = store
        .get(&upstream_key(store, state))
        .await
        .unwrap()
        .unwrap();
    let upstream: UpstreamState = serde_json::from_slice(&stored).unwrap();
    assert_eq!(upstream.binding_hash, digest(binding_value));
    assert_eq!(upstream.portal_host, "portal.example.com");
    assert_eq!(upstream.request.client_id, client);
    assert_eq!(
        upstream.request.redirect_uri,
        "http://localhost:51234/callback"
    );
    assert_eq!(upstream.request.code_challenge, CHALLENGE);
    assert_eq!(upstream.request.resource, format!("{}/mcp", front.base));
    assert_eq!(upstream.request.state.as_deref(), Some("client-state"));
    // The same answer again: the page was used up.
    let replay = front.answer(&shown, "approve", &[]).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(replay.headers().get("location").is_none());
    assert!(replay.text().await.unwrap().contains("already answered"));
    assert_eq!(front.keys("upstream:").await.len(), 1);
}

#[tokio::test]
async fn denial_returns_access_denied_with_state_and_iss_and_bitrix24_sees_nothing() {
    let front = Front::start(false).await;
    let client = front
        .register(&["cursor://anysphere.cursor-mcp/oauth/callback"])
        .await;
    let shown = front
        .consent(
            &client,
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "st 1",
        )
        .await;
    assert!(
        shown
            .page
            .contains("the application that opens cursor: links (anysphere.cursor-mcp)")
    );
    let response = front
        .answer(&shown, "deny", &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    let iss = serde_urlencoded::to_string([("iss", &front.base)]).unwrap();
    assert_eq!(
        location,
        format!(
            "cursor://anysphere.cursor-mcp/oauth/callback?error=access_denied&\
             error_description=the+user+denied+the+sign-in&state=st+1&{iss}"
        )
    );
    assert!(
        !response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("binding"))
    );
    assert!(front.keys("upstream:").await.is_empty());
}

#[tokio::test]
async fn answers_without_the_pages_csrf_or_from_another_site_are_refused() {
    let front = Front::start(false).await;
    let client = front.register(&["http://127.0.0.1/cb"]).await;

    // From another site: refused before the page's record is touched.
    let shown = front.consent(&client, "http://127.0.0.1:9/cb", "s").await;
    for header in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = front.answer(&shown, "approve", &[header]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header:?}");
        assert!(response.headers().get("location").is_none());
    }
    assert_eq!(front.keys("pending:").await.len(), 1);
    assert!(front.keys("upstream:").await.is_empty());

    // The right page, but another browser's cookie (or none).
    let mut forged = shown.clone();
    forged.cookie = "b24mcp-csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let response = front.answer(&forged, "approve", &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(front.keys("upstream:").await.is_empty());

    let shown = front.consent(&client, "http://127.0.0.1:9/cb", "s").await;
    let mut bare = shown.clone();
    bare.cookie = String::new();
    assert_eq!(
        front.answer(&bare, "approve", &[]).await.status(),
        StatusCode::FORBIDDEN
    );

    // Cookie and form agree, but not with the page's record.
    let shown = front.consent(&client, "http://127.0.0.1:9/cb", "s").await;
    let mut swapped = shown.clone();
    swapped.csrf = "B".repeat(43);
    swapped.cookie = format!("b24mcp-csrf={}", swapped.csrf);
    assert_eq!(
        front.answer(&swapped, "approve", &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(front.keys("upstream:").await.is_empty());
}

#[tokio::test]
async fn registration_checks_its_limits_and_answers_public_clients_only() {
    let front = Front::start(false).await;
    let response = front
        .post_json(
            "/register",
            &json!({
                "client_name": "Codex",
                "redirect_uris": ["http://127.0.0.1/callback/abc", "cursor://anysphere.cursor-mcp/oauth/callback"],
                "application_type": "native",
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["client_name"], "Codex");
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["client_id"].as_str().unwrap().len(), 43);
    assert!(body["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);

    let refused = [
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["data:text/html,x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": (0..11).map(|i| format!("http://localhost/{i}")).collect::<Vec<_>>()}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [format!("https://e.example/{}", "a".repeat(2_000))]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "client_name": "n".repeat(201)}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (ask, code) in refused {
        let response = front.post_json("/register", &ask).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{ask}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{ask}");
    }
    let huge = json!({"redirect_uris": ["http://localhost/cb"], "x": "y".repeat(17 * 1024)});
    let response = front.post_json("/register", &huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Only the one good registration was stored.
    assert_eq!(front.keys("client:").await.len(), 1);
}

#[tokio::test]
async fn registrations_from_one_address_are_rate_limited() {
    let front = Front::start(false).await;
    let ask = json!({"redirect_uris": ["http://localhost/cb"]});
    for i in 0..20 {
        let response = front.post_json("/register", &ask).await;
        assert_eq!(response.status(), StatusCode::CREATED, "registration {i}");
    }
    let response = front.post_json("/register", &ask).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(front.keys("client:").await.len(), 20);
}

#[tokio::test]
async fn consent_pages_opened_from_one_address_are_rate_limited() {
    let front = Front::start(false).await;
    let client = front.register(&["http://localhost/callback"]).await;
    for _ in 0..30 {
        front
            .consent(&client, "http://localhost/callback", "s")
            .await;
    }
    let url = authorize_url(
        &front.base,
        &front::params(&client, "http://localhost/callback", "s"),
    );
    let response = front.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("location").is_none());
    assert_eq!(front.keys("pending:").await.len(), 30);
}

#[tokio::test]
async fn an_unreachable_store_is_a_503_page_and_never_a_redirect() {
    let Some(mut redis) = RedisServer::start("signin-front-503") else {
        return;
    };
    let store = RedisStore::new(&StateSettings {
        url: StateUrl::parse(&redis.url(), None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(bitrix24_mcp::bitrix::state::StateKey::parse(&"7".repeat(64)).unwrap()),
        lock_ttl: Duration::from_secs(60),
    })
    .unwrap();
    let front = Front::start_with(false, SigninStore::redis(Arc::new(store))).await;
    let client = front.register(&["http://localhost/callback"]).await;
    let shown = front
        .consent(&client, "http://localhost:1/callback", "s")
        .await;
    redis.stop();
    let url = authorize_url(
        &front.base,
        &front::params(&client, "http://localhost/callback", "s"),
    );
    let response = front.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("location").is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("could not reach its sign-in records")
    );
    let response = front.answer(&shown, "approve", &[]).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("location").is_none());
    let response = front
        .post_json(
            "/register",
            &json!({"redirect_uris": ["http://localhost/cb"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

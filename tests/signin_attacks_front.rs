//! The sign-in's front door attacked over real HTTP on loopback: redirect-URI tricks at
//! registration and at `/authorize`, a consent answer posted from another site or another
//! browser, markup in a client's name. Every refusal is local: no redirect anywhere.

mod common;
mod front;

use front::{Front, authorize_url, params};
use reqwest::StatusCode;
use serde_json::json;

/// Return addresses that look like this machine, or like a safe scheme, but are not: refused at
/// registration, with `invalid_redirect_uri`.
#[tokio::test]
async fn look_alike_redirect_uris_cannot_be_registered() {
    let front = Front::start(false).await;
    for trick in [
        "http://localhost@evil.example/cb",
        "http://localhost:80@evil.example/cb",
        "http://localhost.evil.example/cb",
        "http://127.0.0.1.nip.io/cb",
        "http://localhost./cb",
        "http://[::ffff:7f00:1]/cb",
        "http://evil.example%2flocalhost/cb",
        "JAVASCRIPT:alert(1)",
        "javascript://localhost/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://localhost/cb#x",
        "https://user:pw@app.example/cb",
    ] {
        let response = front
            .post_json(
                "/register",
                &json!({"client_name": "x", "redirect_uris": [trick]}),
            )
            .await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{trick}: {body}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{trick}");
    }
}

/// A client that registered `http://localhost/cb` (any port) and `cursor://app/cb` asks for
/// look-alikes of them: each is a local 400 page, never a redirect, and no consent record.
#[tokio::test]
async fn look_alikes_of_a_registered_redirect_get_a_local_400() {
    let front = Front::start(false).await;
    let client = front
        .register(&["http://localhost/cb", "cursor://app/cb"])
        .await;
    for trick in [
        "http://localhost:5000@evil.example/cb",
        "http://localhost.evil.example:5000/cb",
        "http://127.0.0.1:5000/cb",
        "http://localhost:5000/cb/../../evil",
        "http://localhost:5000/cb%2f..%2fevil",
        "http://localhost:5000/CB",
        "https://localhost/cb",
        "cursor://app/cb/../evil",
        "cursor://APP/cb",
        "cursor://app/cb?x=1",
        "CURSOR://app/cb#",
        "javascript://app/cb",
    ] {
        let url = authorize_url(&front.base, &params(&client, trick, "s"));
        let response = front.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{trick}");
        assert!(response.headers().get("location").is_none(), "{trick}");
    }
    assert!(front.keys("pending:").await.is_empty());
    // The real ones work (any port on loopback).
    front
        .consent(&client, "http://localhost:5000/cb", "s")
        .await;
    front.consent(&client, "cursor://app/cb", "s").await;
}

/// A page on another site posts the consent decision (auto-submitting form): refused before the
/// page's record is touched, so the user's own answer still works. Another browser's page values
/// without its cookie are refused too.
#[tokio::test]
async fn a_consent_answer_from_another_site_or_browser_is_refused() {
    let front = Front::start(false).await;
    let client = front.register(&["http://localhost/cb"]).await;
    let shown = front
        .consent(&client, "http://localhost:5000/cb", "s")
        .await;
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let response = front.answer(&shown, "approve", &headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(response.headers().get("location").is_none());
    }
    // Another browser: the page's values, without the page's cookie.
    let mut stolen = shown.clone();
    stolen.cookie = String::new();
    let response = front.answer(&stolen, "approve", &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(front.keys("upstream:").await.is_empty());
}

/// Markup and direction tricks in a client's name are shown as text.
#[tokio::test]
async fn markup_in_a_client_name_is_shown_as_text() {
    let front = Front::start(false).await;
    let name = "<img src=x onerror=alert(1)>\"'\u{202E}edoC";
    let client = front.register_named(&["http://localhost/cb"], name).await;
    let shown = front
        .consent(&client, "http://localhost:5000/cb", "<b>s</b>")
        .await;
    assert!(!shown.page.contains("<img"), "{}", shown.page);
    assert!(
        shown
            .page
            .contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;edoC")
    );
    assert!(!shown.page.contains('\u{202E}'));
    assert!(!shown.page.contains("<b>s</b>"));
}

/// A metadata document's `client_id` with a line break: URL parsing drops it when fetching, so
/// the document at the cleaned URL could name itself with the break and be accepted; the raw ID
/// then went into the logs as text at approval ("client_id=https://…\nINFO forged line"). Such
/// an ID is refused before anything is fetched.
#[tokio::test]
async fn a_client_id_with_a_line_break_names_no_metadata_document() {
    let host = front::MetadataHost::start().await;
    let front = Front::start(true).await;
    front.trust(&host);
    let client_id = format!("https://localhost:{}/new\nline.json", host.port);
    let url = authorize_url(
        &front.base,
        &params(&client_id, "http://localhost:4000/callback", "s"),
    );
    let response = front.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("cannot name a metadata document"), "{page}");
    assert_eq!(host.hits("/newline.json"), 0);
    assert!(front.keys("pending:").await.is_empty());
}

/// Loopback spelt as decimal, octal, hex, short or IPv4-mapped IPv6 in a metadata document's
/// URL: each is refused as not public before any connection.
#[tokio::test]
async fn loopback_in_disguise_is_not_fetched_from() {
    let host = front::MetadataHost::start().await;
    let front = Front::start(false).await;
    front.trust(&host);
    let port = host.port;
    for authority in [
        format!("2130706433:{port}"),
        format!("0177.0.0.1:{port}"),
        format!("0x7f.1:{port}"),
        format!("127.1:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("[::ffff:7f00:1]:{port}"),
        format!("[::1]:{port}"),
        format!("[::]:{port}"),
        format!("0.0.0.0:{port}"),
    ] {
        let client_id = format!("https://{authority}/client.json");
        let url = authorize_url(
            &front.base,
            &params(&client_id, "http://localhost/callback", "s"),
        );
        let response = front.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client_id}");
        let page = response.text().await.unwrap();
        assert!(page.contains("public addresses"), "{client_id}: {page}");
    }
    assert_eq!(host.hits("/client.json"), 0);
}

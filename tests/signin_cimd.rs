//! Client ID metadata documents over real HTTP: a sign-in whose `client_id` is an https URL,
//! with the document served by a real https server on loopback (a test certificate the fetcher
//! is told to trust): fetched once and cached, refused with the reason when unusable (redirect,
//! size, mismatch, private address without the opt-in), pinned copies when a host refuses.

mod front;

use std::net::SocketAddr;

use front::{Front, MetadataHost, authorize_url};
use reqwest::StatusCode;

#[tokio::test]
async fn a_metadata_document_client_signs_in_and_its_document_is_cached() {
    let host = MetadataHost::start().await;
    let front = Front::start(true).await;
    front.trust(&host);
    let client_id = host.url("/client.json");
    let shown = front
        .consent(&client_id, "http://localhost:40404/callback", "s")
        .await;
    assert!(shown.page.contains("Metadata Tool"), "{}", shown.page);
    assert!(
        shown
            .page
            .contains("published by <strong>localhost</strong>")
    );
    assert!(!shown.page.contains("unverified"));
    // A second sign-in within the document's max-age does not fetch it again.
    front
        .consent(&client_id, "http://127.0.0.1:1/callback", "s")
        .await;
    assert_eq!(host.hits("/client.json"), 1);
    // Its javascript: redirect URI was dropped, never matched.
    let url = authorize_url(
        &front.base,
        &front::params(&client_id, "javascript:alert(1)", "s"),
    );
    let response = front.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unusable_metadata_documents_are_refused_with_the_reason() {
    let host = MetadataHost::start().await;
    let front = Front::start(true).await;
    front.trust(&host);
    let cases = [
        ("/moved.json", "redirect"),
        ("/big.json", "larger than 64 KB"),
        ("/mismatch.json", "client_id is not the URL"),
        ("/no-redirects.json", "no redirect_uris"),
        ("/missing.json", "404"),
    ];
    for (path, expected) in cases {
        let url = authorize_url(
            &front.base,
            &front::params(&host.url(path), "http://localhost/callback", "s"),
        );
        let response = front.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains(expected), "{path}: {page}");
        assert_eq!(host.hits(path), 1, "{path}");
    }
    // The redirect's target was never asked for.
    assert_eq!(host.hits("/client.json"), 0);
    // A client_id that is not https is no metadata document.
    let plain = host.url("/client.json").replace("https:", "http:");
    let url = authorize_url(
        &front.base,
        &front::params(&plain, "http://localhost/callback", "s"),
    );
    let response = front.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(host.hits("/client.json"), 0);
}

#[tokio::test]
async fn metadata_documents_on_private_addresses_need_the_opt_in() {
    let host = MetadataHost::start().await;
    let front = Front::start(false).await;
    front.trust(&host);
    for client_id in [
        host.url("/client.json"),
        host.url("/client.json").replace("localhost", "127.0.0.1"),
    ] {
        let url = authorize_url(
            &front.base,
            &front::params(&client_id, "http://localhost/callback", "s"),
        );
        let response = front.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client_id}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("fetched only from public addresses"),
            "{page}"
        );
    }
    assert_eq!(host.hits("/client.json"), 0);
    // With the opt-in the same document is fetched.
    let allowed = Front::start(true).await;
    allowed.trust(&host);
    allowed
        .consent(&host.url("/client.json"), "http://localhost/callback", "s")
        .await;
    assert_eq!(host.hits("/client.json"), 1);
}

#[tokio::test]
async fn well_known_clients_fall_back_to_pinned_documents_when_their_host_refuses() {
    let host = MetadataHost::start().await;
    let front = Front::start(true).await;
    front.trust(&host);
    let fetcher = front.signin.clients().fetcher();
    fetcher.pin_host("claude.ai", SocketAddr::from(([127, 0, 0, 1], host.port)));
    fetcher.pin_host("vscode.dev", SocketAddr::from(([127, 0, 0, 1], host.port)));
    let claude = "https://claude.ai/oauth/claude-code-client-metadata";
    let shown = front
        .consent(claude, "http://localhost:51234/callback", "s")
        .await;
    assert_eq!(host.hits("/oauth/claude-code-client-metadata"), 1);
    assert!(shown.page.contains("Claude Code"));
    assert!(
        shown
            .page
            .contains("published by <strong>claude.ai</strong>")
    );
    front
        .consent(claude, "http://127.0.0.1:5/callback", "s")
        .await;
    let vscode = "https://vscode.dev/oauth/client-metadata.json";
    front.consent(vscode, "http://127.0.0.1:33418/", "s").await;
    front
        .consent(vscode, "https://vscode.dev/redirect", "s")
        .await;
    assert_eq!(host.hits("/oauth/client-metadata.json"), 1);
}

#[tokio::test]
async fn a_metadata_host_that_never_answers_is_given_up_on() {
    // Accepts connections and says nothing, not even the TLS handshake.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let front = Front::start(true).await;
    let client_id = format!("https://localhost:{port}/client.json");
    let url = authorize_url(
        &front.base,
        &front::params(&client_id, "http://localhost/callback", "s"),
    );
    let response = front.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("did not answer within 5 s"), "{page}");
    holder.abort();
}

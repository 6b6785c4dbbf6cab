//! A headless browser for the sign-in: registers a client, opens `/authorize`, approves on the
//! consent page, follows the redirects through the portal and the callback, and exchanges the
//! code at `/token`, the way an MCP client and its user's browser do. Used by the sign-in tests
//! and by the bench (which includes this file by path), so it depends on nothing else in
//! tests/common.

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where the client says it listens for the redirect (nothing listens: the browser stops there).
pub const REDIRECT: &str = "http://127.0.0.1:3030/callback";

const FORM: &str = "application/x-www-form-urlencoded";

/// What a finished sign-in gives the client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub client_id: String,
}

/// The cookies one browser holds, by name (one host: the server; the portal sets none).
#[derive(Debug, Default)]
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    /// Every consent page shown, for assertions.
    pub pages: Vec<String>,
    /// Every address a redirect sent the browser to, in order (the portal's sign-in with the
    /// upstream state, the callback with Bitrix24's code, the client's redirect URI).
    pub visited: Vec<String>,
    /// Every cookie any response set (name, value), in order, cleared ones included.
    pub cookies_set: Vec<(String, String)>,
}

/// A PKCE pair: the verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!("v{:032x}{:032x}", fastrand::u128(..), fastrand::u128(..));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("http client"),
            cookies: BTreeMap::new(),
            pages: Vec::new(),
            visited: Vec::new(),
            cookies_set: Vec::new(),
        }
    }

    /// Registers a public client by dynamic registration; its client ID.
    pub async fn register(&self, base: &str, name: &str) -> String {
        let answer = self
            .http
            .post(format!("{base}/register"))
            .json(&json!({
                "client_name": name,
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .expect("register");
        assert_eq!(answer.status(), 201, "registration");
        let body: Value = answer.json().await.expect("registration JSON");
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    /// A whole sign-in with a fresh client; the portal's browser session decides who signs in
    /// (`DemoPortal::sign_in_browser_as`).
    pub async fn sign_in(&mut self, base: &str) -> Tokens {
        let client_id = self.register(base, "Test client").await;
        self.sign_in_as_client(base, &client_id).await
    }

    /// A sign-in with a client that is already registered.
    pub async fn sign_in_as_client(&mut self, base: &str, client_id: &str) -> Tokens {
        let (verifier, challenge) = pkce();
        let code = self.authorize(base, client_id, &challenge).await;
        self.exchange(base, client_id, &code, &verifier).await
    }

    /// Exchanges a code at `/token` (with the PKCE verifier), as the client does.
    pub async fn exchange(
        &self,
        base: &str,
        client_id: &str,
        code: &str,
        verifier: &str,
    ) -> Tokens {
        let answer = self
            .http
            .post(format!("{base}/token"))
            .header("content-type", FORM)
            .body(
                serde_urlencoded::to_string([
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", client_id),
                    ("code_verifier", verifier),
                    ("resource", &format!("{base}/mcp")),
                ])
                .expect("form"),
            )
            .send()
            .await
            .expect("token");
        let status = answer.status();
        let body: Value = answer.json().await.expect("token JSON");
        assert_eq!(status, 200, "token exchange: {body}");
        Tokens {
            access_token: body["access_token"].as_str().expect("access").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh").to_owned(),
            client_id: client_id.to_owned(),
        }
    }

    /// From `/authorize` to the code the client receives at its redirect URI (`iss` checked).
    pub async fn authorize(&mut self, base: &str, client_id: &str, challenge: &str) -> String {
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("resource", &format!("{base}/mcp")),
        ])
        .expect("query");
        let redirect = self
            .approve(base, &format!("{base}/authorize?{query}"))
            .await;
        let params: BTreeMap<String, String> =
            serde_urlencoded::from_str(redirect.split_once('?').map_or("", |(_, q)| q))
                .expect("redirect query");
        assert_eq!(params["state"], "client-state");
        params.get("code").expect("code").clone()
    }

    /// From an authorization URL (built by whichever client) to the address the browser is sent
    /// back to at [`REDIRECT`]: opens the consent page, approves it, follows the portal's sign-in
    /// and the callback. Checks `iss`; returns the whole address (code, state, iss).
    pub async fn approve(&mut self, base: &str, authorization_url: &str) -> String {
        let page = self.get(authorization_url).await;
        assert_eq!(page.status(), 200, "consent page");
        let html = page.text().await.expect("page");
        let form = hidden_fields(&html);
        self.pages.push(html);
        let mut fields: Vec<(String, String)> = form.into_iter().collect();
        fields.push(("decision".into(), "approve".into()));
        let mut step = self
            .with_cookies(self.http.post(format!("{base}/authorize")))
            .header("origin", base)
            .header("content-type", FORM)
            .body(serde_urlencoded::to_string(&fields).expect("form"))
            .send()
            .await
            .expect("consent");
        self.keep_cookies(&step);
        for _ in 0..6 {
            let location = step
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                step.status().is_redirection() && !location.is_empty(),
                "the sign-in stopped at {}: {}",
                step.status(),
                step.text().await.unwrap_or_default()
            );
            self.visited.push(location.clone());
            if let Some(query) = location.strip_prefix(&format!("{REDIRECT}?")) {
                let params: BTreeMap<String, String> =
                    serde_urlencoded::from_str(query).expect("redirect query");
                assert_eq!(params.get("iss").map(String::as_str), Some(base), "iss");
                return location;
            }
            let next = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            step = self.get(&next).await;
        }
        panic!("too many redirects");
    }

    /// Renews the tokens at `/token`.
    pub async fn refresh(&self, base: &str, tokens: &Tokens) -> reqwest::Response {
        self.http
            .post(format!("{base}/token"))
            .header("content-type", FORM)
            .body(
                serde_urlencoded::to_string([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", tokens.refresh_token.as_str()),
                    ("client_id", tokens.client_id.as_str()),
                ])
                .expect("form"),
            )
            .send()
            .await
            .expect("refresh")
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .with_cookies(self.http.get(url))
            .send()
            .await
            .expect("browser GET");
        self.keep_cookies(&response);
        response
    }

    fn with_cookies(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cookies.is_empty() {
            return request;
        }
        let header: Vec<String> = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        request.header("cookie", header.join("; "))
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let Some((pair, _)) = value
                .to_str()
                .ok()
                .map(|v| v.split_once(';').unwrap_or((v, "")))
            else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
                self.cookies_set.push((name.clone(), value.clone()));
                self.cookies.insert(name, value);
            }
        }
    }
}

/// The hidden inputs of a page's form, by name (values unescaped).
pub fn hidden_fields(html: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for tag in html.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        if !tag.contains("hidden") {
            continue;
        }
        let attribute = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            let end = tag[start..].find('"')? + start;
            Some(unescape(&tag[start..end]))
        };
        if let (Some(name), Some(value)) = (attribute("name"), attribute("value")) {
            fields.insert(name, value);
        }
    }
    fields
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// One MCP request with a bearer token over streamable HTTP (stateless JSON answers expected
/// unless a session is used); the status and the body.
pub async fn mcp(base: &str, token: &str, message: &Value) -> (u16, String) {
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(message.to_string())
        .send()
        .await
        .expect("mcp request");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

//! The sign-in's token endpoints on a loopback port, for the tests of `/token` and `/revoke`
//! and of their logs (included by `#[path]`).
#![allow(dead_code)]

use bitrix24_mcp::bitrix::{ClientOptions, HttpPolicy, Secret, ServiceUrl};
use bitrix24_mcp::signin::grants::NewGrant;
use bitrix24_mcp::signin::users::Users;
use bitrix24_mcp::signin::{PendingAuthorization, PublicUrl, Signin, SigninSettings, SigninStore};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const CLIENT: &str = "https://claude.ai/oauth/claude-code-client-metadata";
pub const REDIRECT: &str = "http://localhost:51234/callback";
/// RFC 7636 appendix B: this verifier's S256 challenge is `CHALLENGE`.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The sign-in's endpoints served on a loopback port; its public URL is that address.
pub struct Server {
    pub signin: Signin,
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(store: SigninStore) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let policy = HttpPolicy::HttpsOnly;
        let settings = SigninSettings {
            public: PublicUrl::parse(&base).unwrap(),
            portal: ServiceUrl::portal("https://acme.bitrix24.com/rest/", policy).unwrap(),
            token_server: ServiceUrl::token_server(
                "https://oauth.bitrix.info/oauth/token/",
                policy,
            )
            .unwrap(),
            client_id: "local.app".to_owned(),
            client_secret: Secret::new("app-secret"),
            allow_private_metadata: false,
        };
        let users = Users::new(&settings, ClientOptions::default(), None, store.clone()).unwrap();
        let signin = Signin::new(settings, store, users);
        let app = signin.routes();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            signin,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// A user signed in through the client: the grant exists and a code waits for `/token`.
    pub async fn code(&self, scope: Option<&str>) -> String {
        let grants = self.signin.grants();
        let grant_id = grants
            .create(NewGrant {
                user_id: 5,
                user_name: "Anna Petrova".to_owned(),
                member_id: "m1".to_owned(),
                client_id: CLIENT.to_owned(),
                client_name: "Claude Code".to_owned(),
                resource: self.resource(),
                scope: scope.map(str::to_owned),
            })
            .await
            .unwrap();
        let request = PendingAuthorization {
            client_id: CLIENT.to_owned(),
            client_name: "Claude Code".to_owned(),
            redirect_uri: REDIRECT.to_owned(),
            code_challenge: CHALLENGE.to_owned(),
            resource: self.resource(),
            scope: scope.map(str::to_owned),
            state: None,
        };
        grants.issue_code(&grant_id, &request).await.unwrap()
    }

    /// POSTs a form to `path`; returns the status, the headers and the JSON body.
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.post_raw(path, "application/x-www-form-urlencoded", body)
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("origin", "http://localhost:6274")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn exchange(&self, code: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", VERIFIER),
                ("resource", &self.resource()),
            ],
        )
        .await
    }
}

pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A successful answer: the exact fields, the token type, and headers no cache keeps.
pub fn assert_tokens(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    scope: Option<&str>,
) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(headers, "cache-control"), "no-store");
    assert_eq!(header(headers, "access-control-allow-origin"), "*");
    assert_eq!(header(headers, "content-type"), "application/json");
    let mut expected = json!({
        "access_token": body["access_token"],
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": body["refresh_token"],
    });
    if let Some(scope) = scope {
        expected["scope"] = json!(scope);
    }
    assert_eq!(body, &expected);
    assert_eq!(body["access_token"].as_str().unwrap().len(), 43);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
}

pub fn oauth_error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

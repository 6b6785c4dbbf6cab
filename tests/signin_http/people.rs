//! The stand-in for the sign-in behind the transport's `Callers` seam: two people (Anna and
//! Maria) signed in for real at the sample portal (its chooser and code exchange), each with their
//! own Bitrix24 pair, and the MCP token that names each; and a server on loopback serving them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use bitrix24_mcp::bitrix::{
    Auth, Client, HttpPolicy, OAuthSession, OAuthSettings, Secret, ServiceUrl,
};
use bitrix24_mcp::demo::{DemoPortal, OAuthApp, PortalData};
use bitrix24_mcp::signin::PublicUrl;
use bitrix24_mcp::tools::registry::{Selection, Writes};
use bitrix24_mcp::tools::{Acting, Bitrix24Tools};
use bitrix24_mcp::transport::gate::{self, Callers, Refusal};
use bitrix24_mcp::transport::http::{self, HttpOptions};
use bitrix24_mcp::transport::security::{DEFAULT_HOSTS, DEFAULT_ORIGINS, Guard, OriginPattern};
use futures::future::BoxFuture;
use reqwest::StatusCode;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::Value;
use tokio::sync::oneshot;

use super::common::{CODE, fast_options};

pub const APP_ID: &str = "local.signin0http0.00000001";
pub const APP_SECRET: &str = "s1gn1nHttpAppS3cret";
/// The MCP access tokens of the two test users.
pub const ANNA: &str = "mcp-access-anna-0001";
pub const MARIA: &str = "mcp-access-maria-0002";
/// The token the stand-in cannot check (its store is "down").
pub const UNCHECKABLE: &str = "mcp-access-store-down";

/// Who each MCP token is: the users signed in to the sample portal.
#[derive(Debug)]
struct People {
    public: PublicUrl,
    by_token: HashMap<&'static str, Acting>,
}

impl Callers for People {
    fn routes(&self) -> Router {
        Router::new()
    }

    fn caller<'a>(&'a self, bearer: Option<&'a str>) -> BoxFuture<'a, Result<Acting, Refusal>> {
        Box::pin(async move {
            if bearer == Some(UNCHECKABLE) {
                return Err(Refusal::Unavailable("the store is down".into()));
            }
            bearer
                .and_then(|token| self.by_token.get(token))
                .cloned()
                .ok_or(Refusal::Unauthenticated)
        })
    }

    fn challenge(&self, path: &str) -> Response {
        gate::challenge(&self.public, path)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The sample portal with an application people sign in to.
pub async fn portal() -> DemoPortal {
    let mut app = OAuthApp::signin(APP_ID, APP_SECRET);
    app.redirect_uri = Some("http://127.0.0.1:9/oauth/callback".into());
    DemoPortal::start(PortalData::sample_with_signin(CODE, app))
        .await
        .unwrap()
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user_id` in at the portal (its chooser, then the code exchange) and returns a client
/// with that user's own Bitrix24 pair, and the access token of the pair.
pub async fn signed_in(portal: &DemoPortal, user_id: u64, name: &str) -> (Acting, String) {
    let user = user_id.to_string();
    let chosen = browser()
        .post(portal.authorize_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("client_id", APP_ID),
                ("state", "s"),
                ("user_id", &user),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::FOUND);
    let location = url::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let pair: Value = browser()
        .post(portal.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("client_id", APP_ID),
                ("client_secret", APP_SECRET),
                ("code", &code),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let settings = OAuthSettings {
        portal: ServiceUrl::portal(&portal.rest_root(), HttpPolicy::HttpsOnly).unwrap(),
        token_server: ServiceUrl::token_server(&portal.token_url(), HttpPolicy::HttpsOnly).unwrap(),
        client_id: APP_ID.into(),
        client_secret: Secret::new(APP_SECRET),
        access_token: Some(Secret::new(&access)),
        refresh_token: pair["refresh_token"].as_str().map(Secret::new),
        token_file: None,
    };
    let session = OAuthSession::open(settings).unwrap();
    let client = Client::new(Auth::OAuth(Box::new(session)), fast_options()).unwrap();
    let acting = Acting {
        client: Arc::new(client),
        user_id,
        user_name: name.to_owned(),
    };
    (acting, access)
}

/// A server where Anna (99) and Maria (1271) are signed in; stopped when dropped.
pub struct Server {
    pub base: String,
    pub portal: DemoPortal,
    /// Each user's Bitrix24 access token.
    bitrix_tokens: HashMap<u64, String>,
    _stop: oneshot::Sender<()>,
}

impl Server {
    pub async fn start(writes: bool) -> Self {
        Self::start_with(writes, false).await
    }

    pub async fn start_with(writes: bool, stateless: bool) -> Self {
        let portal = portal().await;
        let (anna, anna_token) = signed_in(&portal, 99, "Anna Petrova").await;
        let (maria, maria_token) = signed_in(&portal, 1271, "Maria Garcia").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let people = People {
            public: PublicUrl::parse(&format!("http://{address}")).unwrap(),
            by_token: HashMap::from([(ANNA, anna), (MARIA, maria)]),
        };
        let options = HttpOptions {
            guard: Guard {
                token: None,
                origins: DEFAULT_ORIGINS
                    .iter()
                    .map(|o| OriginPattern::parse(o).unwrap())
                    .collect(),
                hosts: DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            },
            callers: Some(Arc::new(people)),
            stateless,
            ..HttpOptions::default()
        };
        let tools = Bitrix24Tools::per_user(None).serving(Selection::all().with_writes(Writes {
            allowed: writes,
            skip_confirmation: false,
            ..Writes::default()
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(http::serve(tools, listener, options, async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{address}"),
            portal,
            bitrix_tokens: HashMap::from([(99, anna_token), (1271, maria_token)]),
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The exact challenge for a request to `path` on this server: the legacy SSE endpoints name
    /// their own protected-resource document.
    pub fn challenge(&self, path: &str) -> String {
        let endpoint = if path.starts_with("/sse") || path.starts_with("/message") {
            "sse"
        } else {
            "mcp"
        };
        format!(
            r#"Bearer error="invalid_token", resource_metadata="{}/.well-known/oauth-protected-resource/{endpoint}""#,
            self.base
        )
    }

    /// The users whose tokens the portal saw on `method`, in order.
    pub fn callers_of(&self, method: &str) -> Vec<u64> {
        self.portal
            .requests_to(&format!("/rest/{method}"))
            .iter()
            .map(|request| {
                let seen = format!(
                    "{} {}",
                    request.query.as_deref().unwrap_or(""),
                    request.body
                );
                let users: Vec<u64> = self
                    .bitrix_tokens
                    .iter()
                    .filter(|(_, token)| seen.contains(token.as_str()))
                    .map(|(user, _)| *user)
                    .collect();
                assert_eq!(users.len(), 1, "one user's token per request: {seen}");
                users[0]
            })
            .collect()
    }
}

pub async fn rmcp_client<C: rmcp::ClientHandler>(
    handler: C,
    url: String,
    token: &str,
) -> RunningService<RoleClient, C> {
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    handler
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

pub fn post_json(url: &str, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    let mut request = browser()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
}

/// Opens a streamable HTTP session as `token`: its ID.
pub async fn open_session(server: &Server, token: &str) -> String {
    let response = post_json(
        &server.url("/mcp"),
        Some(token),
        &super::common::initialize(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post_json(&server.url("/mcp"), Some(token), &initialized)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    id
}

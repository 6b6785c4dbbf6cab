//! The pieces `signin_front.rs` drives: the sign-in routes served on loopback (`Front`), a
//! browser's steps through the consent page, and a real https server publishing client metadata
//! documents (`MetadataHost`) under a test certificate the fetcher is told to trust.
// Each test binary uses part of this.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bitrix24_mcp::bitrix::{ClientOptions, HttpPolicy, Secret, ServiceUrl};
use bitrix24_mcp::signin::users::Users;
use bitrix24_mcp::signin::{PublicUrl, Signin, SigninSettings, SigninStore};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An S256 challenge (RFC 7636's example).
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The test server's certificate (localhost, 127.0.0.1, claude.ai, vscode.dev; self-signed,
/// valid for a century) and key.
const CERT: &[u8] = include_bytes!("../fixtures/metadata-host.pem");
const KEY: &[u8] = include_bytes!("../fixtures/metadata-host.key");

/// The sign-in's routes on a loopback port, with the source address passed to handlers.
pub struct Front {
    pub signin: Signin,
    /// `http://127.0.0.1:<port>`: the public URL and issuer.
    pub base: String,
    /// A browser that follows no redirect.
    pub http: reqwest::Client,
}

/// A consent page as the browser got it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub page: String,
    pub headers: HeaderMap,
    pub request: String,
    pub csrf: String,
    /// The CSRF cookie as the browser sends it back (`name=value`).
    pub cookie: String,
    /// The `Set-Cookie` header as received.
    pub set_cookie: String,
}

impl Front {
    pub async fn start(allow_private_metadata: bool) -> Self {
        Self::start_with(allow_private_metadata, SigninStore::memory()).await
    }

    /// [`Front::start`] keeping the sign-in's records in `store`.
    pub async fn start_with(allow_private_metadata: bool, store: SigninStore) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let settings = SigninSettings {
            public: PublicUrl::parse(&base).unwrap(),
            portal: ServiceUrl::portal("https://portal.example.com", HttpPolicy::HttpsOnly)
                .unwrap(),
            token_server: ServiceUrl::token_server(
                "https://oauth.bitrix.info/oauth/token/",
                HttpPolicy::HttpsOnly,
            )
            .unwrap(),
            client_id: "app.test".to_owned(),
            client_secret: Secret::new("app-secret"),
            allow_private_metadata,
        };
        let users = Users::new(&settings, ClientOptions::default(), None, store.clone()).unwrap();
        let signin = Signin::new(settings, store, users);
        // Every request as if from one remote address (a loopback peer is taken for a reverse
        // proxy on this machine, which the per-address limits leave alone).
        let remote = SocketAddr::from(([192, 0, 2, 7], 40_000));
        let app = signin
            .routes()
            .layer(axum::Extension(axum::extract::ConnectInfo(remote)));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self { signin, base, http }
    }

    pub fn trust(&self, _host: &MetadataHost) {
        self.signin.clients().fetcher().trust_roots(CERT).unwrap();
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Registers a client with these redirect URIs; its `client_id`.
    pub async fn register(&self, redirect_uris: &[&str]) -> String {
        self.register_named(redirect_uris, "Test Client").await
    }

    pub async fn register_named(&self, redirect_uris: &[&str], name: &str) -> String {
        let response = self
            .post_json(
                "/register",
                &json!({"client_name": name, "redirect_uris": redirect_uris}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// Opens the consent page for a well-formed request; fails the test unless it is shown.
    pub async fn consent(&self, client_id: &str, redirect_uri: &str, state: &str) -> Shown {
        let url = authorize_url(&self.base, &params(client_id, redirect_uri, state));
        let response = self.http.get(&url).send().await.unwrap();
        let headers = response.headers().clone();
        let status = response.status();
        let page = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        let set_cookie = headers["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        Shown {
            request: hidden(&page, "request"),
            csrf: hidden(&page, "csrf"),
            page,
            headers,
            cookie,
            set_cookie,
        }
    }

    /// Posts the consent form as the browser would, with `extra` headers.
    pub async fn answer(
        &self,
        shown: &Shown,
        decision: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let form = serde_urlencoded::to_string([
            ("request", shown.request.as_str()),
            ("csrf", shown.csrf.as_str()),
            ("decision", decision),
        ])
        .unwrap();
        let mut request = self
            .http
            .post(format!("{}/authorize", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        if !shown.cookie.is_empty() {
            request = request.header("cookie", &shown.cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The live sign-in records whose key starts with `kind` (`"pending:"`, `"upstream:"`...).
    pub async fn keys(&self, kind: &str) -> Vec<String> {
        let store = self.signin.store();
        let prefix = store.key(&[kind.trim_end_matches(':'), ""]);
        store.scan(&prefix).await.unwrap()
    }
}

/// A well-formed authorization request's parameters.
pub fn params(
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("client_id", Some(client_id.to_owned())),
        ("redirect_uri", Some(redirect_uri.to_owned())),
        ("response_type", Some("code".to_owned())),
        ("code_challenge", Some(CHALLENGE.to_owned())),
        ("code_challenge_method", Some("S256".to_owned())),
        ("state", Some(state.to_owned())),
    ]
}

/// `/authorize` with the parameters that have a value.
pub fn authorize_url<K: AsRef<str>, V: AsRef<str>>(
    base: &str,
    params: &[(K, Option<V>)],
) -> String {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_ref(), v.as_ref())))
        .collect();
    format!(
        "{base}/authorize?{}",
        serde_urlencoded::to_string(pairs).unwrap()
    )
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect(&marker) + marker.len();
    let end = page[start..].find('"').unwrap();
    page[start..start + end].to_owned()
}

/// An https server on loopback publishing metadata documents, counting every request by path.
pub struct MetadataHost {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl MetadataHost {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let app = axum::Router::new()
            .fallback(publish)
            .with_state((hits.clone(), port));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { port, hits }
    }

    /// `https://localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

type HostState = (Arc<Mutex<HashMap<String, usize>>>, u16);

async fn publish(State((hits, port)): State<HostState>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    let me = format!("https://localhost:{port}{path}");
    let document = |body: Value| {
        (
            [(header::CACHE_CONTROL, "public, max-age=3600")],
            axum::Json(body),
        )
            .into_response()
    };
    match path.as_str() {
        "/client.json" => document(json!({
            "client_id": me,
            "client_name": "Metadata Tool",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback", "javascript:alert(1)"],
        })),
        // Its own URL with a line break, which URL parsing drops when fetching: the document
        // names itself exactly as the client_id was given.
        "/newline.json" => document(json!({
            "client_id": format!("https://localhost:{port}/new\nline.json"),
            "client_name": "Newline",
            "redirect_uris": ["http://localhost/callback"],
        })),
        "/mismatch.json" => document(json!({
            "client_id": "https://elsewhere.example/client.json",
            "redirect_uris": ["http://localhost/callback"],
        })),
        "/no-redirects.json" => document(json!({"client_id": me, "client_name": "x"})),
        "/moved.json" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("https://localhost:{port}/client.json"),
            )],
        )
            .into_response(),
        "/big.json" => {
            // Streamed without a length, so only counting while reading can stop it.
            let head = format!("{{\"client_id\":\"{me}\",\"pad\":\"");
            let chunks = std::iter::once(head.into_bytes())
                .chain(std::iter::repeat_n(vec![b'a'; 8 * 1024], 20))
                .map(Ok::<_, std::io::Error>);
            Response::new(Body::from_stream(futures::stream::iter(chunks)))
        }
        "/oauth/claude-code-client-metadata" | "/oauth/client-metadata.json" => {
            (StatusCode::FORBIDDEN, "Just a moment...").into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

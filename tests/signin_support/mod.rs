//! For the sign-in wiring tests: the sign-in served on loopback for a portal (the sample portal
//! or a wiremock), in memory or on a real Redis; the upstream state seeded as the consent step's
//! approval leaves it; a browser that does not follow redirects.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bitrix24_mcp::bitrix::state::{RedisStore, Shared, StateKey, StateSettings, StateUrl};
use bitrix24_mcp::bitrix::token_store::Tokens;
use bitrix24_mcp::bitrix::{ClientOptions, HttpPolicy, Secret, ServiceUrl};
use bitrix24_mcp::signin::consent::{STEP_TTL as STATE_TTL, upstream_key as state_key};
use bitrix24_mcp::signin::grants::NewGrant;
use bitrix24_mcp::signin::records::{PendingAuthorization, UpstreamState};
use bitrix24_mcp::signin::users::Users;
use bitrix24_mcp::signin::{Grant, PublicUrl, Signin, SigninSettings, SigninStore, digest};
use tokio::net::TcpListener;

use crate::common::redis_server::STATE_KEY;
use crate::common::{CLIENT_ID, CLIENT_SECRET, fast_options};

/// The browser-binding cookie's value the consent step set.
pub const BINDING: &str = "bInDiNg-c00kie-value-0123456789abcdefghijklmnopq";
/// The client's own state, returned to it.
pub const CLIENT_STATE: &str = "client-state-42";
/// Where the client wants its code.
pub const REDIRECT_URI: &str = "http://127.0.0.1:3030/callback";

/// The sign-in, served.
pub struct Served {
    pub signin: Signin,
    /// `http://127.0.0.1:PORT`: the public URL.
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A store on `redis` with the tests' key: one per instance (each has its own connection).
pub fn redis_store(url: &str) -> Arc<RedisStore> {
    let settings = StateSettings {
        url: StateUrl::parse(url, None).unwrap(),
        prefix: "bitrix24-mcp".into(),
        key: Some(StateKey::parse(STATE_KEY).unwrap()),
        lock_ttl: Duration::from_secs(10),
    };
    Arc::new(RedisStore::new(&settings).unwrap())
}

/// One instance's users, for a portal at `rest_root` with its token server at `token_url`.
pub fn users(
    public: &str,
    rest_root: &str,
    token_url: &str,
    store: &SigninStore,
    options: ClientOptions,
) -> (SigninSettings, Users) {
    let settings = SigninSettings {
        public: PublicUrl::parse(public).unwrap(),
        portal: ServiceUrl::portal(rest_root, HttpPolicy::HttpsOnly).unwrap(),
        token_server: ServiceUrl::token_server(token_url, HttpPolicy::HttpsOnly).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        allow_private_metadata: false,
    };
    let shared = store
        .redis_store()
        .map(|redis| Shared::new(redis.clone(), &settings.portal.host(), CLIENT_ID));
    let users = Users::new(&settings, options, shared, store.clone()).unwrap();
    (settings, users)
}

/// One instance (not served): the sign-in for the portal, on `store`.
pub fn instance(rest_root: &str, token_url: &str, store: SigninStore) -> Signin {
    instance_with(rest_root, token_url, store, fast_options())
}

pub fn instance_with(
    rest_root: &str,
    token_url: &str,
    store: SigninStore,
    options: ClientOptions,
) -> Signin {
    let (settings, users) = users("http://127.0.0.1:9", rest_root, token_url, &store, options);
    Signin::new(settings, store, users)
}

/// The sign-in served on a free loopback port.
pub async fn serve(rest_root: &str, token_url: &str, store: SigninStore) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (settings, users) = users(&base, rest_root, token_url, &store, fast_options());
    let signin = Signin::new(settings, store, users);
    let routes = signin.routes();
    let server = tokio::spawn(async move {
        axum::serve(listener, routes).await.unwrap();
    });
    Served {
        signin,
        base,
        server,
    }
}

/// What the client asked at `/authorize`, as the consent step validated it.
pub fn pending(base: &str) -> PendingAuthorization {
    PendingAuthorization {
        client_id: "client-1".into(),
        client_name: "Test client".into(),
        redirect_uri: REDIRECT_URI.into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resource: format!("{base}/mcp"),
        scope: None,
        state: Some(CLIENT_STATE.into()),
    }
}

/// Seeds `upstream:<state>` as the consent step's approval does, for `portal_host`.
pub async fn seed_state(served: &Served, state: &str, portal_host: &str) {
    let store = served.signin.store();
    let record = UpstreamState {
        request: pending(&served.base),
        binding_hash: digest(BINDING),
        portal_host: portal_host.into(),
    };
    store
        .put(
            &state_key(store, state),
            &serde_json::to_vec(&record).unwrap(),
            STATE_TTL,
        )
        .await
        .unwrap();
}

/// A browser that shows redirects instead of following them.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// `GET /oauth/callback?query`, with the binding cookie when given.
pub async fn callback(served: &Served, query: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browser().get(format!("{}/oauth/callback?{query}", served.base));
    if let Some(cookie) = cookie {
        // The cookie name over plain-http loopback (no `__Host-` prefix).
        let name = "b24mcp-binding";
        request = request.header("cookie", format!("{name}={cookie}"));
    }
    request.send().await.unwrap()
}

/// Every grant in the store.
pub async fn grants(signin: &Signin) -> Vec<Grant> {
    let store = signin.store();
    let mut out = Vec::new();
    for key in store.scan(&store.key(&["grant", ""])).await.unwrap() {
        let bytes = store.get(&key).await.unwrap().unwrap();
        out.push(serde_json::from_slice(&bytes).unwrap());
    }
    out
}

/// A grant for user `user_id`, created as the callback creates it, with `pair` stored.
pub async fn signed_in(signin: &Signin, user_id: u64, pair: Tokens) -> Grant {
    let grant_id = signin
        .grants()
        .create(NewGrant {
            user_id,
            user_name: format!("User {user_id}"),
            member_id: "member".into(),
            client_id: "client-1".into(),
            client_name: "Test client".into(),
            resource: "http://127.0.0.1:9/mcp".into(),
            scope: None,
        })
        .await
        .unwrap();
    signin.users().store_pair(&grant_id, pair).await.unwrap();
    grants(signin)
        .await
        .into_iter()
        .find(|g| g.grant_id == grant_id)
        .unwrap()
}

/// A pair whose expiry is not known (used until the portal says it expired).
pub fn pair(access: &str, refresh: &str) -> Tokens {
    Tokens {
        access_token: Secret::new(access),
        refresh_token: Secret::new(refresh),
        expires_at: None,
    }
}

/// The query a portal's callback carries.
pub fn query(code: &str, state: &str, domain: &str, extra: &str) -> String {
    format!(
        "code={code}&state={state}&domain={domain}&member_id=m-0123&scope=im%2Cuser_basic{extra}"
    )
}

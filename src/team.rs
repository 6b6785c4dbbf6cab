//! `serve --auth oauth` (hosting for a team): the sign-in, in memory or in the state store, in
//! front of tools that act as each request's user, served over HTTP; with `--demo`, the sample
//! portal's application to sign in through.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use crate::bitrix::{self, OAuthSettings, ServiceUrl};
use crate::config::{Config, Portal, SigninConfig, Transport};
use crate::demo::{DemoPortal, OAuthApp, PortalData};
use crate::signin::{self, Signin, SigninSettings, SigninStore};
use crate::tools::Bitrix24Tools;
use crate::{RunError, announce_writes, random_code, shared_state, transport};

/// `serve --auth oauth`: each person signs in with their own Bitrix24 account through the
/// application, and every call acts as them. Grants live in the state store when one is set
/// (any instance serves any user), else in this process.
pub(crate) async fn serve_signed_in(
    config: Config,
    signin: SigninConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<i32, RunError> {
    let Transport::Http { bind, mut options } = config.transport.clone() else {
        // The configuration accepts --auth oauth only with --transport http.
        return Err(RunError::State(
            "--auth oauth needs --transport http".to_owned(),
        ));
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| RunError::Bind {
            address: bind,
            source,
        })?;
    let mut signin = signin;
    if signin.public_from_bind {
        let address = listener.local_addr().map_err(RunError::Http)?;
        signin.public =
            signin::PublicUrl::parse(&format!("http://{address}")).map_err(RunError::State)?;
    }
    let handler = signin.public.join("/oauth/callback");
    // Kept alive for the whole run: dropping it stops the sample portal.
    let (app, demo) = match &config.portal {
        Portal::OAuth(app) => (app.clone(), None),
        Portal::Demo => {
            let (app, demo) = demo_application(&config, &handler).await?;
            (app, Some(demo))
        }
        Portal::Webhook(_) | Portal::Unconfigured => {
            return Err(RunError::State(
                "--auth oauth needs the Bitrix24 application: BITRIX24_CLIENT_ID, \
                 BITRIX24_CLIENT_SECRET and BITRIX24_PORTAL_URL"
                    .to_owned(),
            ));
        }
    };
    if app.portal.is_plain_http() && !app.portal.is_loopback() {
        warn!(portal = %app.portal.host(), "plain http to a remote portal: tokens travel unencrypted");
    }
    let shared = shared_state(&config, &app.portal.host(), &app.client_id)?;
    let store = match &shared {
        Some(shared) => SigninStore::redis(shared.store.clone()),
        None => SigninStore::memory(),
    };
    let grants_live = match &shared {
        Some(shared) => format!("in the state store ({})", shared.store.describe()),
        None => "in this process's memory (lost on restart; one instance only)".to_owned(),
    };
    let settings = SigninSettings {
        public: signin.public.clone(),
        portal: app.portal.clone(),
        token_server: app.token_server.clone(),
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
        allow_private_metadata: signin.allow_private_metadata,
    };
    let users = signin::users::Users::new(&settings, config.client, shared.clone(), store.clone())?;
    let callers = Signin::new(settings, store, users);
    options.callers = Some(Arc::new(callers));
    if demo.is_some() {
        info!(
            auth = "oauth",
            public_url = %signin.public.issuer(),
            mcp_url = %signin.public.resource(),
            grants = %grants_live,
            "each person signs in with their own account of the sample portal: add mcp_url to your \
             assistant (claude mcp add --transport http bitrix24-demo-sample-data {}), sign in as \
             Anna or as Maria, and ask who is in chat 2937",
            signin.public.resource()
        );
    } else {
        info!(
            auth = "oauth",
            public_url = %signin.public.issuer(),
            handler_url = %handler,
            portal = %app.portal.host(),
            grants = %grants_live,
            "each person signs in with their own Bitrix24 account; set the application's handler URL to handler_url"
        );
    }
    if signin.allow_private_metadata {
        warn!(
            "--signin-allow-private-metadata: client metadata documents are fetched from private \
             and loopback addresses too; a client ID can make this server reach your internal network"
        );
    }
    announce_writes(config.tools.writes());
    let tools = Bitrix24Tools::per_user(shared.as_ref()).serving(config.tools.clone());
    transport::http::serve(tools, listener, options, shutdown)
        .await
        .map_err(RunError::Http)?;
    Ok(0)
}

/// The sample portal with an installed application people sign in to: its ID and secret are
/// new each run, its handler URL is this server's callback.
async fn demo_application(
    config: &Config,
    handler: &str,
) -> Result<(OAuthSettings, DemoPortal), RunError> {
    let client_id = format!("local.{}", random_code());
    let client_secret = random_code();
    let mut app = OAuthApp::signin(&client_id, &client_secret);
    app.redirect_uri = Some(handler.to_owned());
    let portal = DemoPortal::start(PortalData::sample_with_signin(random_code(), app))
        .await
        .map_err(RunError::Demo)?;
    let portal_url = ServiceUrl::portal(&portal.rest_root(), config.http_policy)
        .map_err(RunError::DemoAddress)?;
    let token_server = ServiceUrl::token_server(&portal.token_url(), config.http_policy)
        .map_err(RunError::DemoAddress)?;
    info!(
        portal = %portal.addr(),
        "demo portal started with sign-in: pick who you are on its page (Anna Petrova, or a colleague in fewer chats)"
    );
    let settings = OAuthSettings {
        portal: portal_url,
        token_server,
        client_id,
        client_secret: bitrix::Secret::new(client_secret),
        access_token: None,
        refresh_token: None,
        token_file: None,
    };
    Ok((settings, portal))
}

//! `/authorize`: the client's request checked, the consent page, the user's decision. Nothing
//! reaches Bitrix24 before the user approves on this server's own page, because Bitrix24
//! approves a signed-in user silently: without this page any registered client could sign a
//! user in by sending them a link (the confused deputy).
//!
//! - this file: `GET /authorize` (checks in a fixed order, every failure a local 400 page, never
//!   a redirect), the page, and what the other parts need ([`client_redirect`], keys);
//! - [`decision`]: `POST /authorize` (origin, CSRF, single use; deny or approve);
//! - [`cookies`]: the CSRF and browser-binding cookies.

pub mod cookies;
pub mod decision;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use url::Url;

pub use cookies::binding_cookie;

use super::clients::{KnownBy, Lookup};
use super::page::{self, escape};
use super::records::{PendingAuthorization, PendingConsent};
use super::settings::is_loopback_host;
use super::store::SigninStore;
use super::{Signin, digest, random_token};

/// How long a consent page, and then an approved sign-in on its way through Bitrix24, may take.
pub const STEP_TTL: Duration = Duration::from_secs(600);
const MAX_STATE: usize = 2_000;
const MAX_SCOPE: usize = 1_000;

pub fn routes() -> Router<Signin> {
    Router::new().route("/authorize", get(show).post(decision::decide))
}

/// The key of a shown consent page's record, from the page's request id.
pub fn pending_key(store: &SigninStore, request_id: &str) -> String {
    store.key(&["pending", &digest(request_id)])
}

/// The key of an approved sign-in's [`UpstreamState`](super::records::UpstreamState), from the
/// `state` sent to Bitrix24 (which comes back to `/oauth/callback`): the callback takes it with
/// this key.
pub fn upstream_key(store: &SigninStore, state: &str) -> String {
    store.key(&["upstream", &digest(state)])
}

/// `redirect_uri` with `params` added to its query (any existing query kept), and always `iss`
/// (RFC 9207), so the client can tell which server answered.
pub fn client_redirect(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
                query.append_pair("iss", issuer);
            }
            url.to_string()
        }
        // Redirect URIs are checked to parse when registered or fetched; should one not, the
        // parameters are still added rather than dropped.
        Err(_) => {
            let mut all: Vec<(&str, &str)> = params.to_vec();
            all.push(("iss", issuer));
            let query = serde_urlencoded::to_string(&all).unwrap_or_default();
            let joiner = if redirect_uri.contains('?') { '&' } else { '?' };
            format!("{redirect_uri}{joiner}{query}")
        }
    }
}

/// A request that cannot go on, shown here.
fn bad(problem: &str) -> Response {
    page::error(
        StatusCode::BAD_REQUEST,
        problem,
        "Nothing was sent to Bitrix24. Start the sign-in again from your MCP client; if this \
         keeps happening, the client is misconfigured.",
    )
}

/// `GET /authorize`: checks the request, in this order, then shows the consent page.
async fn show(
    State(signin): State<Signin>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if signin.clients().admit_page(source).is_err() {
        return page::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins were started from here in the last minute.",
            "Wait a minute, then start the sign-in again from your MCP client.",
        );
    }
    let params = match parameters(query.as_deref().unwrap_or("")) {
        Ok(params) => params,
        Err(problem) => return bad(&problem),
    };
    let (request, known_by) = match check(&signin, &params).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let (Some(request_id), Some(csrf)) = (random_token(), random_token()) else {
        return page::unavailable();
    };
    let pending = PendingConsent {
        request: request.clone(),
        csrf_hash: digest(&csrf),
    };
    let store = signin.store();
    let stored = match serde_json::to_vec(&pending) {
        Ok(bytes) => store
            .put_new(&pending_key(store, &request_id), &bytes, STEP_TTL)
            .await
            .is_ok_and(|new| new),
        Err(_) => false,
    };
    if !stored {
        return page::unavailable();
    }
    let mut response = consent_page(&signin, &request, &known_by, &request_id, &csrf);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set_csrf(&signin.settings().public, &csrf),
    );
    response
}

/// The query's parameters; OAuth forbids any of them twice.
fn parameters(query: &str) -> Result<Vec<(String, String)>, String> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(seen, _)| seen == name) {
            return Err(format!("The request names {name:?} more than once."));
        }
    }
    Ok(params)
}

async fn check(
    signin: &Signin,
    params: &[(String, String)],
) -> Result<(PendingAuthorization, KnownBy), Response> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let client_id = get("client_id").ok_or_else(|| bad("The request has no client_id."))?;
    let client = match signin.clients().lookup(client_id).await {
        Ok(Lookup::Known(client)) => client,
        Ok(Lookup::Unknown) => {
            return Err(bad(
                "This client is not registered with this server (or its registration expired).",
            ));
        }
        Ok(Lookup::Unusable(why)) => {
            return Err(bad(&format!(
                "The client's metadata document could not be used: {why}."
            )));
        }
        Err(_) => return Err(page::unavailable()),
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if signin.clients().redirect_allowed(&client, uri) => uri.to_owned(),
        Some(_) => {
            return Err(bad(
                "The redirect_uri is not one the client registered, so the answer cannot be \
                 sent there.",
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(bad(
                "The request has no redirect_uri and the client registered several.",
            ));
        }
    };
    if get("response_type") != Some("code") {
        return Err(bad("The response_type must be \"code\"."));
    }
    let challenge = get("code_challenge").ok_or_else(|| {
        bad("The request has no PKCE code_challenge; this server requires S256 PKCE.")
    })?;
    if get("code_challenge_method") != Some("S256") {
        return Err(bad(
            "The code_challenge_method must be \"S256\" (plain or none is not accepted).",
        ));
    }
    if !is_s256_challenge(challenge) {
        return Err(bad(
            "The code_challenge is not an S256 challenge (43 base64url characters).",
        ));
    }
    let public = &signin.settings().public;
    if !public.accepts_resource(get("resource")) {
        return Err(bad(&format!(
            "The resource is not this server (invalid_target); it must be {}.",
            public.resource()
        )));
    }
    let state = get("state").map(str::to_owned);
    let scope = get("scope").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE)
        || scope.as_ref().is_some_and(|s| s.len() > MAX_SCOPE)
    {
        return Err(bad("The state or scope is too long."));
    }
    let request = PendingAuthorization {
        client_id: client.client_id,
        client_name: client.client_name,
        redirect_uri,
        code_challenge: challenge.to_owned(),
        resource: public.resource(),
        scope,
        state,
    };
    Ok((request, client.known_by))
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host a redirect URI returns to, as the user should read it.
fn redirect_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(url) => match (url.scheme(), url.host_str()) {
            ("http" | "https", Some(host)) if is_loopback_host(host) => {
                format!("an application on this computer ({host})")
            }
            ("http" | "https", Some(host)) => host.to_owned(),
            (scheme, Some(host)) if !host.is_empty() => {
                format!("the application that opens {scheme}: links ({host})")
            }
            (scheme, _) => format!("the application that opens {scheme}: links"),
        },
        Err(_) => uri.to_owned(),
    }
}

fn consent_page(
    signin: &Signin,
    request: &PendingAuthorization,
    known_by: &KnownBy,
    request_id: &str,
    csrf: &str,
) -> Response {
    let portal = signin.settings().portal.url();
    let portal_host = portal.host_str().unwrap_or_default();
    let vouch = match known_by {
        KnownBy::MetadataDocument { host } => format!(
            "<span>published by <strong>{}</strong></span>",
            escape(host)
        ),
        KnownBy::Registered => "<span class=\"warn\">unverified: the client registered this \
                                name itself</span>"
            .to_owned(),
    };
    let body = format!(
        "<p><strong>{client}</strong> wants to use your Bitrix24 account through this server, \
         with your rights.</p>\n<dl>\n<dt>Application</dt><dd>{client} — {vouch}</dd>\n\
         <dt>Sends you back to</dt><dd>{host}</dd>\n<dt>Bitrix24 portal</dt><dd>{portal}</dd>\n\
         </dl>\n<p>Approve only if you started this sign-in yourself.</p>\n\
         <form method=\"post\" action=\"/authorize\">\
         <input type=\"hidden\" name=\"request\" value=\"{request_id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        client = escape(&request.client_name),
        host = escape(&redirect_host(&request.redirect_uri)),
        portal = escape(portal_host),
        request_id = escape(request_id),
        csrf = escape(csrf),
    );
    // No form-action: browsers check it against every hop of the redirect chain the form starts
    // (us, the portal, Bitrix24's login hosts, our callback, the client), and the login hosts are
    // not known in advance.
    let csp = "frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'";
    page::html(StatusCode::OK, "Sign in with Bitrix24", &body, Some(csp)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_redirects_keep_the_query_and_always_carry_iss() {
        assert_eq!(
            client_redirect(
                "http://localhost:5000/cb?x=1",
                &[("error", "access_denied"), ("state", "a b&c")],
                "https://mcp.example.com"
            ),
            "http://localhost:5000/cb?x=1&error=access_denied&state=a+b%26c&iss=https%3A%2F%2Fmcp.example.com"
        );
        assert_eq!(
            client_redirect(
                "cursor://anysphere.cursor-mcp/oauth/callback",
                &[("code", "c")],
                "https://m"
            ),
            "cursor://anysphere.cursor-mcp/oauth/callback?code=c&iss=https%3A%2F%2Fm"
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parameters("a=1&b=2").is_ok());
        assert!(parameters("resource=x&resource=y").is_err());
    }
}

//! `POST /authorize`: the user's answer on the consent page. Accepted only from this server's
//! own page (Origin and Sec-Fetch-Site when the browser sends them), with the page's CSRF value
//! in both form and cookie, once. Deny sends the user back to the client with `access_denied`;
//! Bitrix24 never sees them. Approve binds the browser with a cookie and sends it to the portal
//! with a fresh single-use `state`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{STEP_TTL, bad, client_redirect, cookies, pending_key, upstream_key};
use crate::signin::page;
use crate::signin::records::{PendingConsent, UpstreamState};
use crate::signin::{Signin, digest, random_token};

/// The largest consent form read (it holds two tokens and a word).
const MAX_FORM: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
struct Answer {
    request: String,
    csrf: String,
    decision: String,
}

pub(super) async fn decide(State(signin): State<Signin>, request: Request) -> Response {
    let public = &signin.settings().public;
    if let Some(refusal) = cross_site(request.headers(), public.issuer()) {
        return refusal;
    }
    let cookie = cookies::csrf(request.headers(), public);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM).await else {
        return bad("The consent form is larger than expected.");
    };
    let Ok(answer) = serde_urlencoded::from_bytes::<Answer>(&body) else {
        return bad("The consent form is incomplete.");
    };
    let store = signin.store();
    let pending = match store.take(&pending_key(store, &answer.request)).await {
        Ok(Some(bytes)) => match serde_json::from_slice::<PendingConsent>(&bytes) {
            Ok(pending) => pending,
            Err(_) => return bad("This consent page's record is damaged; start again."),
        },
        Ok(None) => {
            return bad(
                "This consent page was already answered or has expired (pages last 10 minutes).",
            );
        }
        Err(_) => return page::unavailable(),
    };
    let cookie_matches = cookie
        .as_deref()
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(answer.csrf.as_bytes())));
    let record_matches = bool::from(
        digest(&answer.csrf)
            .as_bytes()
            .ct_eq(pending.csrf_hash.as_bytes()),
    );
    if !cookie_matches || !record_matches {
        return page::error(
            StatusCode::FORBIDDEN,
            "This answer did not come from the consent page this browser was shown.",
            "Nothing was sent to Bitrix24. Start the sign-in again from your MCP client.",
        );
    }
    let mut response = match answer.decision.as_str() {
        "deny" => deny(&signin, &pending),
        "approve" => approve(&signin, pending).await,
        _ => return bad("The consent form's decision must be approve or deny."),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookies::clear_csrf(public));
    response
}

/// Refuses a form posted from another site: `Origin` (when sent) must be this server's,
/// `Sec-Fetch-Site` (when sent) not `cross-site`.
fn cross_site(headers: &HeaderMap, issuer: &str) -> Option<Response> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""));
    let fetch_site = headers
        .get("sec-fetch-site")
        .map(|s| s.to_str().unwrap_or(""));
    let foreign = origin.is_some_and(|o| !o.eq_ignore_ascii_case(issuer))
        || fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site"));
    foreign.then(|| {
        page::error(
            StatusCode::FORBIDDEN,
            "This answer was sent from another site, not from this server's consent page.",
            "Nothing was sent to Bitrix24. If you meant to sign in, start again from your MCP \
             client.",
        )
    })
}

fn deny(signin: &Signin, pending: &PendingConsent) -> Response {
    let request = &pending.request;
    let mut params = vec![
        ("error", "access_denied"),
        ("error_description", "the user denied the sign-in"),
    ];
    if let Some(state) = request.state.as_deref() {
        params.push(("state", state));
    }
    tracing::info!(client_id = %request.client_id, "sign-in denied by the user");
    found(&client_redirect(
        &request.redirect_uri,
        &params,
        signin.settings().public.issuer(),
    ))
}

async fn approve(signin: &Signin, pending: PendingConsent) -> Response {
    let (Some(state), Some(binding)) = (random_token(), random_token()) else {
        return page::unavailable();
    };
    let settings = signin.settings();
    let portal = settings.portal.url();
    let portal_host = match (portal.host_str(), portal.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return page::unavailable(),
    };
    let upstream = UpstreamState {
        request: pending.request,
        binding_hash: digest(&binding),
        portal_host,
    };
    let store = signin.store();
    let stored = match serde_json::to_vec(&upstream) {
        Ok(bytes) => store
            .put_new(&upstream_key(store, &state), &bytes, STEP_TTL)
            .await
            .is_ok_and(|new| new),
        Err(_) => false,
    };
    if !stored {
        return page::unavailable();
    }
    let query = serde_urlencoded::to_string([
        ("client_id", settings.client_id.as_str()),
        ("state", state.as_str()),
    ])
    .unwrap_or_default();
    tracing::info!(client_id = %upstream.request.client_id, "sign-in approved; to the portal");
    let mut response = found(&format!("{}?{query}", settings.portal_authorize_url()));
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set_binding(&settings.public, &binding),
    );
    response
}

/// 302 to `location`, uncached.
fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => return bad("The redirect address cannot be sent."),
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

//! The Bitrix24 side of a sign-in: `GET /oauth/callback`, where the portal sends the user's
//! browser back after they approved the app. Only a state this server issued (once, within 10
//! minutes), presented with its browser-binding cookie, for the configured portal, goes further;
//! anything else is a local 400 page and nothing else happens. Then, at once (Bitrix24's code
//! lives 30 seconds): the code is exchanged at the configured token server only (whatever the
//! callback says about servers), the user is learnt from `profile` on the configured portal, the
//! grant is created, the pair stored, and the client gets its own code.

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::consent::{binding_cookie, client_redirect, upstream_key};
use super::grants::{NewGrant, REFRESH_TTL};
use super::records::{PendingAuthorization, UpstreamState};
use super::{Signin, digest};
use crate::bitrix::auth::exchange_code;
use crate::bitrix::{Auth, CallError, Client, Secret, response, untrusted};

/// The code exchange may take this long: the code itself lives 30 seconds.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most grants one user keeps (one per client and machine they sign in from); a new sign-in
/// beyond ends their oldest.
pub const MAX_GRANTS_PER_USER: usize = 10;

/// A callback's query is a few hundred bytes; a longer one is not Bitrix24's.
const MAX_QUERY_BYTES: usize = 8 * 1024;

pub fn routes() -> Router<Signin> {
    Router::new().route("/oauth/callback", get(callback))
}

/// The callback's parameters (the first of each; `server_domain` and `scope` are not read).
#[derive(Debug, Default)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    domain: Option<String>,
    member_id: Option<String>,
}

impl Callback {
    fn parse(query: &str) -> Self {
        let mut out = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "domain" => &mut out.domain,
                "member_id" => &mut out.member_id,
                _ => continue,
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.into_owned());
            }
        }
        out
    }
}

/// Why a sign-in could not finish once the client is known: sent to the client's redirect URI
/// as `error` and `error_description` (our words only, never the portal's text or a secret).
#[derive(Debug)]
struct Failure {
    error: &'static str,
    description: &'static str,
}

const SERVER_ERROR: Failure = Failure {
    error: "server_error",
    description: "The sign-in could not be finished with Bitrix24; try again.",
};

async fn callback(
    State(signin): State<Signin>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return error_page("This sign-in link is too long to be one this server issued.");
    }
    let params = Callback::parse(&query);
    let Some(state) = params.state.as_deref() else {
        return error_page("This sign-in link is incomplete (it has no state).");
    };
    let upstream = match take_state(&signin, state).await {
        Ok(Some(upstream)) => upstream,
        Ok(None) => {
            return error_page(
                "This sign-in link is unknown, was already used, or expired (they last 10 \
                 minutes). Start the sign-in again from your assistant.",
            );
        }
        Err(err) => {
            warn!(error = %err, "cannot read the sign-in state");
            return unavailable_page();
        }
    };
    if !bound_to_browser(&signin, &headers, &upstream.binding_hash) {
        return error_page(
            "This sign-in was started in another browser (or its cookie was lost). Start the \
             sign-in again from your assistant, in this browser.",
        );
    }
    let configured = signin.settings().portal.host();
    let domain = params.domain.as_deref().unwrap_or_default();
    if !domain.eq_ignore_ascii_case(&configured)
        || !upstream.portal_host.eq_ignore_ascii_case(&configured)
    {
        warn!(
            domain = %untrusted::sanitize(domain, &[], 260),
            "a sign-in came back from another portal than the configured one; refused"
        );
        return error_page("This sign-in came back from another portal than this server's.");
    }
    let request = &upstream.request;
    let outcome = match params.code {
        Some(code) => finish(&signin, request, &Secret::new(code), params.member_id).await,
        None => Err(Failure {
            error: "access_denied",
            description: "Bitrix24 did not grant access.",
        }),
    };
    let issuer = signin.settings().public.issuer();
    let mut back: Vec<(&str, &str)> = match &outcome {
        Ok(code) => vec![("code", code.as_str())],
        Err(failure) => vec![
            ("error", failure.error),
            ("error_description", failure.description),
        ],
    };
    if let Some(state) = &request.state {
        back.push(("state", state));
    }
    redirect(&client_redirect(&request.redirect_uri, &back, issuer))
}

/// Takes the upstream state: of any number of concurrent callbacks with it, one gets it.
async fn take_state(signin: &Signin, state: &str) -> Result<Option<UpstreamState>, CallError> {
    let store = signin.store();
    let Some(bytes) = store.take(&upstream_key(store, state)).await? else {
        return Ok(None);
    };
    // A record this server did not write is as good as none.
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Whether the request carries the browser-binding cookie the approval set (compared by digest,
/// in constant time).
fn bound_to_browser(signin: &Signin, headers: &HeaderMap, binding_hash: &str) -> bool {
    binding_cookie(headers, &signin.settings().public).is_some_and(|cookie| {
        digest(&cookie)
            .as_bytes()
            .ct_eq(binding_hash.as_bytes())
            .into()
    })
}

/// Exchanges the code, learns the user, creates the grant, stores the pair, and issues the
/// client's code.
async fn finish(
    signin: &Signin,
    request: &PendingAuthorization,
    code: &Secret,
    member_id: Option<String>,
) -> Result<String, Failure> {
    let users = signin.users();
    let answer = exchange_code(users.link(), users.app(), code, EXCHANGE_TIMEOUT)
        .await
        .map_err(|err| {
            warn!(error = %err, "the bitrix24 code exchange failed");
            exchange_failure(&err)
        })?;
    let member_id = consistent_member(answer.member_id, member_id)?;
    if let Some(endpoint) = &answer.client_endpoint {
        check_endpoint(signin, endpoint);
    }
    let client = users.client_with(answer.tokens);
    let (user_id, user_name) = who(&client).await?;
    // `profile` may have refreshed the pair (it should not, it is seconds old): keep the newest.
    let pair = match client.auth() {
        Auth::OAuth(session) => session.current().tokens.clone(),
        Auth::Webhook(_) => return Err(SERVER_ERROR),
    };
    let grant_id = signin
        .grants()
        .create(NewGrant {
            user_id,
            user_name,
            member_id,
            client_id: request.client_id.clone(),
            client_name: request.client_name.clone(),
            resource: request.resource.clone(),
            scope: request.scope.clone(),
        })
        .await
        .map_err(|err| {
            warn!(error = %err, "cannot create the grant");
            SERVER_ERROR
        })?;
    let issued = match users.store_pair(&grant_id, pair).await {
        Ok(()) => signin.grants().issue_code(&grant_id, request).await,
        Err(err) => Err(err),
    };
    match issued {
        Ok(code) => {
            info!(user_id, "a user signed in");
            if let Err(err) = keep_newest_grants(signin, user_id, &grant_id).await {
                warn!(error = %err, "cannot end a user's oldest sign-ins");
            }
            Ok(code)
        }
        Err(err) => {
            warn!(error = %err, "cannot finish the sign-in; its grant is revoked");
            if let Err(err) = signin.grants().revoke(&grant_id).await {
                warn!(error = %err, "cannot revoke the unfinished grant");
            }
            users.forget(&grant_id);
            Err(SERVER_ERROR)
        }
    }
}

/// Adds `grant_id` to `user_id`'s grants and ends their oldest beyond [`MAX_GRANTS_PER_USER`]:
/// Bitrix24 approves a signed-in user silently, so without this one user signing in again and
/// again would pile up grants (and Bitrix24 pairs) until the server could take no one else's.
/// Concurrent sign-ins of one user may lose an entry of the list; that grant then just lives out
/// its time.
async fn keep_newest_grants(
    signin: &Signin,
    user_id: u64,
    grant_id: &str,
) -> Result<(), CallError> {
    let store = signin.store();
    let key = store.key(&["user-grants", &user_id.to_string()]);
    let listed: Vec<String> = match store.get(&key).await? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut live = Vec::with_capacity(listed.len() + 1);
    for id in listed.into_iter().filter(|id| id != grant_id) {
        if signin.grants().get(&id).await?.is_some() {
            live.push(id);
        }
    }
    live.push(grant_id.to_owned());
    let excess = live.len().saturating_sub(MAX_GRANTS_PER_USER);
    for old in live.drain(..excess) {
        signin.grants().revoke(&old).await?;
        signin.users().forget(&old);
        info!(
            user_id,
            "a user's oldest sign-in ended: they keep at most {MAX_GRANTS_PER_USER}"
        );
    }
    let bytes = serde_json::to_vec(&live).unwrap_or_default();
    store.put(&key, &bytes, REFRESH_TTL).await
}

/// What the client is told when the token server refused or could not be reached.
fn exchange_failure(err: &CallError) -> Failure {
    match err {
        CallError::Api(api) if api.code == "invalid_client" => Failure {
            error: "server_error",
            description: "Bitrix24 refused this server's application; its administrator must check it.",
        },
        CallError::Api(_) => Failure {
            error: "access_denied",
            description: "Bitrix24 did not accept the sign-in (its code may have expired); try again.",
        },
        _ => SERVER_ERROR,
    }
}

/// The portal's ID, when the callback and the token server agree on it.
fn consistent_member(
    from_server: Option<String>,
    from_callback: Option<String>,
) -> Result<String, Failure> {
    let from_callback = from_callback.map(|m| untrusted::sanitize(&m, &[], 260));
    match (from_server, from_callback) {
        (Some(server), Some(callback)) if server != callback => {
            warn!("the token server and the callback name different portals (member_id); refused");
            Err(Failure {
                error: "access_denied",
                description: "Bitrix24's answers about the portal did not agree.",
            })
        }
        (Some(member), _) | (None, Some(member)) => Ok(member),
        (None, None) => Err(SERVER_ERROR),
    }
}

/// Calls go to the configured portal whatever the token server names; a different name is
/// noted.
fn check_endpoint(signin: &Signin, endpoint: &str) {
    let configured = signin.settings().portal.host();
    let named = url::Url::parse(endpoint)
        .ok()
        .map(|url| crate::bitrix::endpoint::authority(&url));
    if named.as_deref() != Some(configured.as_str()) {
        warn!(
            configured = %configured,
            "the token server named another REST root as client_endpoint; using the configured portal"
        );
    }
}

/// The signed-in user's ID and name: `profile`, else `user.current`.
async fn who(client: &Client) -> Result<(u64, String), Failure> {
    for method in ["profile", "user.current"] {
        match client.call(method, &json!({})).await {
            Ok(envelope) => {
                if let Some(user) = person(&envelope.result) {
                    return Ok(user);
                }
                warn!(method, "the portal's answer names no user");
            }
            Err(err) => warn!(method, error = %err, "cannot learn who signed in"),
        }
    }
    Err(SERVER_ERROR)
}

/// `ID`, `NAME` and `LAST_NAME` of a `profile` or `user.current` result.
fn person(result: &Value) -> Option<(u64, String)> {
    let id = result
        .get("ID")
        .and_then(response::lenient_integer)
        .and_then(|id| u64::try_from(id).ok())
        .filter(|id| *id > 0)?;
    let part = |name: &str| {
        result
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let full = format!("{} {}", part("NAME"), part("LAST_NAME"));
    let name = untrusted::sanitize(full.trim(), &[], 100);
    let name = if name.is_empty() {
        format!("user {id}")
    } else {
        name
    };
    Some((id, name))
}

fn redirect(location: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return error_page("The assistant's return address cannot be used.");
    };
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

/// A local 400 page for a callback that cannot go on (never a redirect).
fn error_page(problem: &str) -> Response {
    super::page::error(
        StatusCode::BAD_REQUEST,
        problem,
        "Start the sign-in again from your assistant.",
    )
}

fn unavailable_page() -> Response {
    super::page::unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_an_id_and_a_bounded_name() {
        assert_eq!(
            person(&json!({"ID": "99", "NAME": "Anna", "LAST_NAME": "Petrova"})),
            Some((99, "Anna Petrova".into()))
        );
        assert_eq!(person(&json!({"ID": 7})), Some((7, "user 7".into())));
        assert_eq!(person(&json!({"ID": "0"})), None);
        assert_eq!(person(&json!({"NAME": "x"})), None);
        let long = person(&json!({"ID": 1, "NAME": "n".repeat(500)}))
            .unwrap()
            .1;
        assert!(long.chars().count() < 200, "{long}");
    }

    #[test]
    fn only_the_first_of_each_parameter_counts_and_servers_are_not_read() {
        let params = Callback::parse(
            "code=c1&state=s1&state=s2&domain=p.example&server_domain=evil.test&member_id=m",
        );
        assert_eq!(params.code.as_deref(), Some("c1"));
        assert_eq!(params.state.as_deref(), Some("s1"));
        assert_eq!(params.domain.as_deref(), Some("p.example"));
        assert_eq!(params.member_id.as_deref(), Some("m"));
    }

    #[test]
    fn member_ids_must_agree() {
        let m = |s: &str| Some(s.to_owned());
        assert_eq!(consistent_member(m("a"), m("a")).unwrap(), "a");
        assert_eq!(consistent_member(m("a"), None).unwrap(), "a");
        assert_eq!(consistent_member(None, m("b")).unwrap(), "b");
        assert_eq!(
            consistent_member(m("a"), m("b")).unwrap_err().error,
            "access_denied"
        );
        assert!(consistent_member(None, None).is_err());
    }
}

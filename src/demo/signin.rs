//! The sample portal's sign-in for people, as Bitrix24's `/oauth/authorize/` behaves: on the
//! portal host, `client_id` and `state` only (the redirect URL and scope come from the app's
//! settings), a page to choose who you are (the sample's stand-in for logging in), or no page at
//! all when the browser is already logged in; then a 302 to the app's handler URL with a code that
//! lives 30 seconds. An unknown app gets the portal's own error page, never a redirect.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::oauth::{OAUTH_SERVER, OAuthApp};
use super::{DemoPortal, PortalState, lock, params, php};

/// What a browser session at the portal holds, and the app's handler URL as set after start.
#[derive(Debug, Default)]
pub struct Browser {
    /// The app's handler URL, from its settings.
    pub redirect_uri: Option<String>,
    /// Who the browser is logged in to the portal as, if anyone.
    pub user: Option<i64>,
}

/// `GET /oauth/authorize/`: the chooser page, or at once the redirect for a logged-in browser.
pub(super) async fn authorize_page(
    State(state): State<Arc<PortalState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.receive(&method, &uri, &headers, &[]);
    let params = params(uri.query(), &HeaderMap::new(), &[]);
    let Some(app) = state.installed_app(&params) else {
        return unknown_app();
    };
    let request_state = text(&params, "STATE");
    let logged_in = lock(&state.browser).user;
    match logged_in {
        Some(user) => state.send_back(app, user, request_state),
        None => chooser(&state, app, request_state),
    }
}

/// `POST /oauth/authorize/`: the chooser's answer (`client_id`, `state`, `user_id`).
pub(super) async fn authorize_choice(
    State(state): State<Arc<PortalState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.receive(&method, &uri, &headers, &body);
    let params = params(uri.query(), &headers, &body);
    let Some(app) = state.installed_app(&params) else {
        return unknown_app();
    };
    let user = params.get("USER_ID").map_or(0, php::intval);
    if !state.data.signin_users.contains(&user) || !state.data.users.contains_key(&user) {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "<p>Choose one of the people the sign-in page offers.</p>",
        );
    }
    state.send_back(app, user, text(&params, "STATE"))
}

impl PortalState {
    /// The installed app the request names by `client_id`, if any.
    fn installed_app(&self, params: &Map<String, Value>) -> Option<&OAuthApp> {
        let app = self.data.oauth.as_ref()?;
        let installed = lock(&self.tokens).installed();
        (installed && text(params, "CLIENT_ID") == app.client_id).then_some(app)
    }

    /// A code for `user`, sent to the app's handler URL with what Bitrix24 adds to it.
    fn send_back(&self, app: &OAuthApp, user: i64, request_state: &str) -> Response {
        let Some(code) = lock(&self.tokens).issue_code(app, user) else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "<p>Too many sign-ins are in progress.</p>",
            );
        };
        let target = lock(&self.browser).redirect_uri.clone();
        let Some(target) = target else {
            // No handler URL in the app's settings: the user copies the code by hand.
            let body = format!(
                "<p>Copy this code into the application:</p><p><code>{}</code></p>",
                escape(&code)
            );
            return page(StatusCode::OK, "Authorization code", &body);
        };
        let Ok(mut url) = url::Url::parse(&target) else {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Application error",
                "<p>The application's handler path is not a valid address.</p>",
            );
        };
        let scope = self.data.scopes.join(",");
        url.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", request_state)
            .append_pair("domain", &self.host)
            .append_pair("member_id", &app.member_id)
            .append_pair("scope", &scope)
            .append_pair("server_domain", OAUTH_SERVER);
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            // Url serialises to ASCII without controls, which a header value always accepts.
            Err(_) => page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Application error",
                "<p>The application's handler path is not a valid address.</p>",
            ),
        }
    }
}

/// The "choose who you are" page: a form posting back `client_id`, `state` and `user_id`.
fn chooser(state: &PortalState, app: &OAuthApp, request_state: &str) -> Response {
    let people: String = state
        .data
        .signin_users
        .iter()
        .filter_map(|id| state.data.users.get(id).map(|user| (id, user)))
        .enumerate()
        .map(|(index, (id, user))| {
            format!(
                "<p><label><input type=\"radio\" name=\"user_id\" value=\"{id}\"{}> {} ({})</label></p>\n",
                if index == 0 { " checked" } else { "" },
                escape(&user.name()),
                escape(&user.work_position),
            )
        })
        .collect();
    let body = format!(
        "<p>The application <b>{client}</b> asks to act on your behalf on {host}.</p>\n\
         <form method=\"post\" action=\"/oauth/authorize/\">\n\
         <input type=\"hidden\" name=\"client_id\" value=\"{client}\">\n\
         <input type=\"hidden\" name=\"state\" value=\"{state}\">\n\
         <p>Choose who you are:</p>\n{people}\
         <p><button type=\"submit\">Sign in</button></p>\n</form>",
        client = escape(&app.client_id),
        host = escape(&state.host),
        state = escape(request_state),
    );
    page(StatusCode::OK, "Sign in to Bitrix24", &body)
}

/// The portal's own error page for an app it does not know (or no longer has installed).
fn unknown_app() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Application not found",
        "<p>The application was not found or is not installed on this Bitrix24.</p>",
    )
}

/// A small HTML page; `body` is markup whose text the caller escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title),
    );
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (status, headers, html).into_response()
}

/// Text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> &'a str {
    params.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The knobs tests (and `--demo --auth oauth`) use to drive the sign-in and the app's tokens.
impl DemoPortal {
    /// The sign-in address (`/oauth/authorize/` on the portal host).
    pub fn authorize_url(&self) -> String {
        format!("http://{}/oauth/authorize/", self.addr)
    }

    /// Sets the app's handler (redirect) URL, as an administrator would in the app's settings;
    /// the server binds its port after the portal starts, so this may come late.
    pub fn set_redirect_uri(&self, uri: impl Into<String>) {
        lock(&self.state.browser).redirect_uri = Some(uri.into());
    }

    /// Makes the browser logged in to the portal as `user_id`: the sign-in then sends the code at
    /// once, showing no page, as Bitrix24 does for a logged-in user.
    pub fn sign_in_browser_as(&self, user_id: i64) {
        lock(&self.state.browser).user = Some(user_id);
    }

    /// Logs the browser out: the sign-in shows the chooser again.
    pub fn sign_out_browser(&self) {
        lock(&self.state.browser).user = None;
    }

    /// Uninstalls the app: every token and code stops working (REST answers 401
    /// `invalid_token`), the token server answers `invalid_client`, the sign-in page no longer
    /// knows the app.
    pub fn uninstall_app(&self) {
        lock(&self.state.tokens).uninstall();
    }

    /// The user a token (access or refresh) was issued to, while the portal still knows it.
    pub fn token_user(&self, token: &str) -> Option<i64> {
        lock(&self.state.tokens).token_user(token)
    }

    /// How many sign-in codes of `user_id` were exchanged for tokens.
    pub fn code_exchanges(&self, user_id: i64) -> u64 {
        lock(&self.state.tokens).counts(user_id).0
    }

    /// How many refreshes of `user_id`'s tokens the token server granted.
    pub fn refreshes(&self, user_id: i64) -> u64 {
        lock(&self.state.tokens).counts(user_id).1
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}

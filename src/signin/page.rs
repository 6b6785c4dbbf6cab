//! Small HTML pages the sign-in shows in the browser: every value escaped, every page unframeable
//! and uncached, names from the network cleaned of control and direction-changing characters.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The longest client name shown (characters); longer ones are cut.
pub const MAX_NAME: usize = 100;

/// `text` made safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
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

/// A name from the network, fit to show: no control or bidirectional-override characters (which
/// could make "evil" read as "live"), whitespace collapsed, at most [`MAX_NAME`] characters.
pub fn clean_name(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let words: Vec<&str> = kept.split(' ').filter(|w| !w.is_empty()).collect();
    let joined = words.join(" ");
    if joined.chars().count() > MAX_NAME {
        let mut cut: String = joined.chars().take(MAX_NAME - 1).collect();
        cut.push('…');
        cut
    } else {
        joined
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// The Content-Security-Policy of a page that submits no form: nothing loads, nothing frames it.
const CSP_NO_FORM: &str = "frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'; \
                           form-action 'none'";

/// A whole page: `title` and `body` (already HTML, values escaped by the caller) under the
/// headers every sign-in page carries; `csp` replaces the default policy (for the consent form).
pub fn html(status: StatusCode, title: &str, body: &str, csp: Option<&str>) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{title}</h1>\n\
         {body}\n</main></body></html>\n",
        title = escape(title),
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let csp = HeaderValue::from_str(csp.unwrap_or(CSP_NO_FORM))
        .unwrap_or(HeaderValue::from_static(CSP_NO_FORM));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The page for a sign-in request that cannot go on: shown here, never redirected anywhere, so a
/// bad request cannot bounce the browser to a place the client did not register.
pub fn error(status: StatusCode, problem: &str, next: &str) -> Response {
    let body = format!(
        "<p class=\"problem\">{}</p>\n<p>{}</p>",
        escape(problem),
        escape(next)
    );
    html(status, "Sign-in stopped", &body, None)
}

/// The store could not be reached: the request may succeed if tried again.
pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server could not reach its sign-in records.",
        "Try again in a minute; if it keeps happening, tell the server's administrator.",
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2129}\
main{max-width:34rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.3rem;margin-top:0}dt{font-weight:600;\
margin-top:.8rem}dd{margin:0;word-break:break-all}.warn{color:#a4370a}.problem{font-weight:600}\
form{margin-top:1.5rem;display:flex;gap:1rem}button{font-size:1rem;padding:.5rem 1.2rem;\
border-radius:4px;border:1px solid #888;cursor:pointer}button[value=approve]{background:#2067b0;\
color:#fff;border-color:#2067b0}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_controls_and_direction_overrides_and_are_capped() {
        assert_eq!(clean_name("Claude\u{202E}edoC\n\tx"), "ClaudeedoC x");
        assert_eq!(clean_name("  a \u{0007} b  "), "a b");
        let long = clean_name(&"x".repeat(500));
        assert_eq!(long.chars().count(), MAX_NAME);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn every_page_is_escaped_unframeable_and_uncached() {
        let page = error(StatusCode::BAD_REQUEST, "<script>", "a & b");
        let headers = page.headers();
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(
            escape("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}

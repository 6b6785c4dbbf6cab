//! The two cookies of a sign-in: the consent page's CSRF value (SameSite=Strict, lives while the
//! page does) and the browser binding set on approval (SameSite=Lax, so it comes back with the
//! Bitrix24 callback's top-level redirect). `__Host-` and `Secure` on https; on plain-http
//! loopback the same cookie without both, since cookie jars drop Secure cookies there.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::signin::settings::PublicUrl;

const CSRF: &str = "b24mcp-csrf";
const BINDING: &str = "b24mcp-binding";
/// Both cookies live as long as the records they match (10 minutes).
const MAX_AGE: u64 = 600;

fn name(public: &PublicUrl, base: &str) -> String {
    if public.is_https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn set(public: &PublicUrl, base: &str, value: &str, same_site: &str, max_age: u64) -> HeaderValue {
    let secure = if public.is_https() { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}",
        name(public, base)
    );
    // Names are fixed ASCII and values come from `random_token` (base64url), so the header is
    // always valid; an empty value is the fallback that can never match.
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("b24mcp-invalid=; Max-Age=0"))
}

/// `Set-Cookie` for the consent page's CSRF value.
pub fn set_csrf(public: &PublicUrl, value: &str) -> HeaderValue {
    set(public, CSRF, value, "Strict", MAX_AGE)
}

/// `Set-Cookie` that removes the CSRF cookie once the page is answered.
pub fn clear_csrf(public: &PublicUrl) -> HeaderValue {
    set(public, CSRF, "", "Strict", 0)
}

/// `Set-Cookie` for the browser binding of an approved sign-in.
pub fn set_binding(public: &PublicUrl, value: &str) -> HeaderValue {
    set(public, BINDING, value, "Lax", MAX_AGE)
}

/// The CSRF cookie's value in a request.
pub fn csrf(headers: &HeaderMap, public: &PublicUrl) -> Option<String> {
    read(headers, &name(public, CSRF))
}

/// The browser-binding cookie's value in a request (the Bitrix24 callback compares its SHA-256
/// with the `binding_hash` of the upstream state).
pub fn binding_cookie(headers: &HeaderMap, public: &PublicUrl) -> Option<String> {
    read(headers, &name(public, BINDING))
}

fn read(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == wanted && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_secure_only_on_https() {
        let https = PublicUrl::parse("https://mcp.example.com").unwrap();
        let http = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            set_csrf(&https, "v"),
            "__Host-b24mcp-csrf=v; Path=/; Max-Age=600; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_binding(&http, "v"),
            "b24mcp-binding=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; __Host-b24mcp-binding=xyz; b24mcp-binding=plain"
                .parse()
                .unwrap(),
        );
        assert_eq!(binding_cookie(&headers, &https).as_deref(), Some("xyz"));
        assert_eq!(binding_cookie(&headers, &http).as_deref(), Some("plain"));
        assert_eq!(csrf(&headers, &http), None);
    }
}

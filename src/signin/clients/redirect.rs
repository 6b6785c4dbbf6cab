//! Which redirect URIs a client may register, and whether a requested one is a client's own:
//! exact string match, except that a plain-http loopback URI matches on any port (RFC 8252
//! §7.3), because native clients listen on a port chosen at run time while their metadata names
//! none (Claude Code's document lists `http://localhost/callback`).

use url::Url;

use crate::signin::settings::is_loopback_host;

/// The longest redirect URI accepted.
pub const MAX_REDIRECT_URI: usize = 2_000;

/// Schemes that run code or read files in the browser instead of returning to an application.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "file", "vbscript", "blob", "about"];

/// Why a redirect URI cannot be registered; the text names the URI's problem, for the client's
/// developer.
pub fn check(uri: &str) -> Result<Url, String> {
    if uri.len() > MAX_REDIRECT_URI {
        return Err(format!(
            "a redirect URI is longer than {MAX_REDIRECT_URI} characters"
        ));
    }
    let url = Url::parse(uri).map_err(|e| format!("redirect URI {uri:?} is not a URL ({e})"))?;
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(format!(
            "redirect URI {uri:?} uses the {scheme}: scheme, which never returns to an application"
        ));
    }
    if url.fragment().is_some() || uri.contains('#') {
        return Err(format!(
            "redirect URI {uri:?} has a fragment (#...), which OAuth forbids"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "redirect URI {uri:?} carries a user name or password"
        ));
    }
    if scheme == "http" && !url.host_str().is_some_and(is_loopback_host) {
        return Err(format!(
            "redirect URI {uri:?} is plain http to a host that is not loopback; use https"
        ));
    }
    if matches!(scheme, "http" | "https") && url.host_str().is_none_or(str::is_empty) {
        return Err(format!("redirect URI {uri:?} has no host"));
    }
    Ok(url)
}

/// Whether `requested` is one of `registered`: the same string, or, for plain-http loopback
/// URIs, the same host, path and query on any port.
pub fn matches(registered: &[String], requested: &str) -> bool {
    let Ok(wanted) = check(requested) else {
        return false;
    };
    registered.iter().any(|own| {
        if own == requested {
            return check(own).is_ok();
        }
        let Ok(own) = check(own) else {
            return false;
        };
        is_loopback_http(&own)
            && is_loopback_http(&wanted)
            && own.host() == wanted.host()
            && own.path() == wanted.path()
            && own.query() == wanted.query()
    })
}

fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http" && url.host_str().is_some_and(is_loopback_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_does() {
        let claude = own(&["http://localhost/callback", "http://127.0.0.1/callback"]);
        assert!(matches(&claude, "http://localhost:51234/callback"));
        assert!(matches(&claude, "http://127.0.0.1:8080/callback"));
        assert!(matches(&claude, "http://localhost/callback"));
        assert!(!matches(&claude, "http://localhost:51234/other"));
        assert!(!matches(&claude, "http://localhost:51234/callback?x=1"));
        assert!(!matches(&claude, "http://127.0.0.2:5/callback"));
        let v6 = own(&["http://[::1]/cb"]);
        assert!(matches(&v6, "http://[::1]:9999/cb"));
        let web = own(&["https://vscode.dev/redirect"]);
        assert!(matches(&web, "https://vscode.dev/redirect"));
        assert!(!matches(&web, "https://vscode.dev:444/redirect"));
        assert!(!matches(&web, "https://vscode.dev/redirect/"));
        assert!(!matches(&web, "https://VSCODE.dev/redirect"));
    }

    #[test]
    fn custom_schemes_match_exactly_and_script_schemes_never() {
        let cursor = own(&["cursor://anysphere.cursor-mcp/oauth/callback"]);
        assert!(matches(
            &cursor,
            "cursor://anysphere.cursor-mcp/oauth/callback"
        ));
        assert!(!matches(&cursor, "cursor://anysphere.cursor-mcp/other"));
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:x",
            "http://localhost/cb#frag",
            "http://example.com/cb",
            "https://user:pw@example.com/cb",
        ] {
            assert!(check(bad).is_err(), "{bad}");
            assert!(!matches(&own(&[bad]), bad), "{bad}");
        }
        assert!(check(&format!("https://e.com/{}", "a".repeat(2_000))).is_err());
    }
}

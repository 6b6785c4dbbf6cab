//! Client ID metadata documents: a `client_id` that is an https URL names a JSON document the
//! client's publisher hosts. Fetching one is a request the Internet makes us send, so it is
//! fenced: https only, no redirects, no proxy, a 5-second limit, at most 64 KB read as it
//! arrives, and only to public addresses, checked on the addresses we actually connect to (our
//! own resolver), so a name cannot resolve to a public address when checked and a private one
//! when used. Documents are cached per `Cache-Control` (5 minutes to a day); Claude Code's and
//! VS Code's have pinned copies, used when their fetch fails (bot protection answers cloud
//! addresses with 403).

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{ClientInfo, KnownBy, Lookup, redirect};
use crate::bitrix::CallError;
use crate::signin::digest;
use crate::signin::page::clean_name;
use crate::signin::store::SigninStore;

/// The most of a document read.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Connecting and reading a document, together.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_CACHE: u64 = 300;
const MAX_CACHE: u64 = 86_400;

/// A document, checked, as cached (`cimd:<sha256 of the URL>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Document {
    client_id: String,
    client_name: String,
    redirect_uris: Vec<String>,
}

/// The client a metadata-document `client_id` names: from the cache, a fresh fetch, or a pinned
/// copy when the fetch fails.
pub(super) async fn lookup(
    store: &SigninStore,
    fetcher: &Fetcher,
    client_id: &str,
) -> Result<Lookup, CallError> {
    let url = match document_url(client_id) {
        Ok(url) => url,
        Err(why) => return Ok(Lookup::Unusable(why)),
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let key = store.key(&["cimd", &digest(client_id)]);
    if let Some(bytes) = store.get(&key).await?
        && let Ok(document) = serde_json::from_slice::<Document>(&bytes)
    {
        return Ok(Lookup::Known(document.info(host)));
    }
    let (document, max_age) = match fetcher.fetch(&url, client_id).await {
        Ok(fetched) => fetched,
        Err(why) => match pinned(client_id) {
            Some(document) => {
                tracing::warn!(client_id, reason = %why, "client metadata fetch failed; using the pinned copy");
                (document, MIN_CACHE)
            }
            None => {
                tracing::info!(client_id, reason = %why, "client metadata document unusable");
                return Ok(Lookup::Unusable(why));
            }
        },
    };
    if let Ok(bytes) = serde_json::to_vec(&document) {
        store
            .put(&key, &bytes, Duration::from_secs(max_age))
            .await?;
    }
    Ok(Lookup::Known(document.info(host)))
}

impl Document {
    fn info(self, host: String) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id,
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            known_by: KnownBy::MetadataDocument { host },
        }
    }
}

/// A `client_id` that can name a document: https, a host, a path, no fragment, user or dot
/// segments.
fn document_url(client_id: &str) -> Result<Url, String> {
    let refuse =
        |why: &str| format!("client_id {client_id:?} cannot name a metadata document: {why}");
    if client_id.len() > 2_000 {
        return Err(refuse("longer than 2000 characters"));
    }
    let url = Url::parse(client_id).map_err(|e| refuse(&e.to_string()))?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(refuse("it must be an https URL"));
    }
    if url.path() == "/" || url.fragment().is_some() || !url.username().is_empty() {
        return Err(refuse("it needs a path, and no fragment or user name"));
    }
    if client_id.contains("/./") || client_id.contains("/../") {
        return Err(refuse("it has dot segments"));
    }
    Ok(url)
}

/// Copies of well-known clients' documents, for when their host refuses us.
fn pinned(client_id: &str) -> Option<Document> {
    let (name, uris): (&str, &[&str]) = match client_id {
        // anthropics/claude-code #42301, #37767: the document lists port-less loopback URIs.
        "https://claude.ai/oauth/claude-code-client-metadata" => (
            "Claude Code",
            &["http://localhost/callback", "http://127.0.0.1/callback"],
        ),
        // microsoft/vscode #270811, #278512, #282472: VS Code's loopback listener (port 33418,
        // another when busy) and its web redirect.
        "https://vscode.dev/oauth/client-metadata.json" => (
            "Visual Studio Code",
            &[
                "http://127.0.0.1:33418/",
                "http://127.0.0.1/",
                "https://vscode.dev/redirect",
            ],
        ),
        _ => return None,
    };
    Some(Document {
        client_id: client_id.to_owned(),
        client_name: name.to_owned(),
        redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
    })
}

/// Fetches metadata documents over its own HTTP client (no redirects, no proxy, public
/// addresses only unless `allow_private`).
#[derive(Debug)]
pub struct Fetcher {
    resolver: Arc<PublicResolver>,
    http: RwLock<reqwest::Client>,
}

impl Fetcher {
    pub fn new(allow_private: bool) -> Self {
        let resolver = Arc::new(PublicResolver {
            allow_private,
            pinned_hosts: Mutex::default(),
        });
        let http = build_http(&resolver, Vec::new());
        Self {
            resolver,
            http: RwLock::new(http),
        }
    }

    /// Also trusts `pem`'s certificates (a private CA, or a test server's), besides the
    /// system's roots.
    pub fn trust_roots(&self, pem: &[u8]) -> Result<(), String> {
        let roots = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the certificates could not be read: {e}"))?;
        let http = build_http(&self.resolver, roots);
        *self.http.write().unwrap_or_else(PoisonError::into_inner) = http;
        Ok(())
    }

    /// Sends requests for `host` to `address` instead of resolving it (port 0: the URL's port);
    /// the address still has to be public unless private addresses are allowed.
    pub fn pin_host(&self, host: &str, address: SocketAddr) {
        self.resolver
            .pinned_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_ascii_lowercase(), address);
    }

    /// The checked document at `url`, and how long it may be cached (seconds).
    async fn fetch(&self, url: &Url, client_id: &str) -> Result<(Document, u64), String> {
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host()
            && let Some(Ok(ip)) = url.host_str().map(|h| h.trim_matches(['[', ']']).parse())
            && !self.resolver.allow_private
            && !is_public(ip)
        {
            return Err(format!(
                "its host {ip} is not a public address (metadata documents are fetched only \
                 from public addresses)"
            ));
        }
        let http = self
            .http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut response = http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "it answered {status} (a redirect); metadata documents are not followed through \
                 redirects"
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!("it answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(format!("it is larger than {} KB", MAX_DOCUMENT / 1024));
        }
        let max_age = cache_seconds(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("it is larger than {} KB", MAX_DOCUMENT / 1024));
            }
            body.extend_from_slice(&chunk);
        }
        let document = checked(&body, client_id, url)?;
        Ok((document, max_age))
    }
}

fn build_http(resolver: &Arc<PublicResolver>, roots: Vec<reqwest::Certificate>) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(true)
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!(
            "bitrix24-mcp/",
            env!("CARGO_PKG_VERSION"),
            " (client metadata)"
        ))
        .dns_resolver(resolver.clone())
        .tls_certs_merge(roots);
    // Falls back to a default client only if TLS cannot be set up at all, which then fails
    // every fetch with a clear error rather than panicking at start.
    builder.build().unwrap_or_default()
}

/// A document's fields, checked: it names itself, and has at least one usable redirect URI
/// (unusable ones, such as `javascript:`, are dropped and never matched).
fn checked(body: &[u8], client_id: &str, url: &Url) -> Result<Document, String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err("it is not a JSON object".to_owned());
    };
    if fields.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("its client_id is not the URL it was fetched from".to_owned());
    }
    let Some(Value::Array(uris)) = fields.get("redirect_uris") else {
        return Err("it has no redirect_uris".to_owned());
    };
    let redirect_uris: Vec<String> = uris
        .iter()
        .filter_map(Value::as_str)
        .filter(|uri| redirect::check(uri).is_ok())
        .take(super::register::MAX_REDIRECT_URIS * 2)
        .map(str::to_owned)
        .collect();
    if redirect_uris.is_empty() {
        return Err("it has no usable redirect URI".to_owned());
    }
    let name = fields
        .get("client_name")
        .and_then(Value::as_str)
        .map(clean_name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned());
    Ok(Document {
        client_id: client_id.to_owned(),
        client_name: name,
        redirect_uris,
    })
}

/// Seconds from `Cache-Control: max-age`, held between 5 minutes and a day.
fn cache_seconds(headers: &reqwest::header::HeaderMap) -> u64 {
    let given = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok());
    given.unwrap_or(MIN_CACHE).clamp(MIN_CACHE, MAX_CACHE)
}

/// What went wrong, without the URL reqwest would print (it is the client's, not ours, but the
/// cause is what the reader needs).
fn describe(err: &reqwest::Error) -> String {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<NotPublic>() {
            return refused.0.clone();
        }
        source = cause.source();
    }
    if err.is_timeout() {
        format!("it did not answer within {} s", FETCH_TIMEOUT.as_secs())
    } else if err.is_connect() {
        "it could not be reached (connection or TLS failed)".to_owned()
    } else {
        "it could not be read".to_owned()
    }
}

/// Resolves names for the fetcher, keeping only addresses it may connect to.
#[derive(Debug)]
struct PublicResolver {
    allow_private: bool,
    pinned_hosts: Mutex<HashMap<String, SocketAddr>>,
}

#[derive(Debug)]
struct NotPublic(String);

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotPublic {}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let pinned = self
            .pinned_hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&host)
            .copied();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = match pinned {
                Some(address) => vec![address],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if usable.is_empty() {
                return Err(Box::new(NotPublic(format!(
                    "its host {host} resolves only to addresses that are not public \
                     (metadata documents are fetched only from public addresses)"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is on the public Internet: not loopback, private, link-local, unique-local,
/// shared (CGNAT), multicast, unspecified, documentation or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
                || first == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_fetched_from() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn cache_lifetimes_are_held_between_five_minutes_and_a_day() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(cache_seconds(&headers), 300);
        headers.insert("cache-control", "public, max-age=3600".parse().unwrap());
        assert_eq!(cache_seconds(&headers), 3600);
        headers.insert("cache-control", "max-age=5".parse().unwrap());
        assert_eq!(cache_seconds(&headers), 300);
        headers.insert("cache-control", "max-age=99999999".parse().unwrap());
        assert_eq!(cache_seconds(&headers), 86_400);
    }

    #[test]
    fn document_urls_are_https_with_a_path() {
        assert!(document_url("https://claude.ai/oauth/claude-code-client-metadata").is_ok());
        for bad in [
            "https://example.com",
            "https://example.com/",
            "http://example.com/client.json",
            "https://user@example.com/c.json",
            "https://example.com/c.json#x",
            "https://example.com/a/../c.json",
        ] {
            assert!(document_url(bad).is_err(), "{bad}");
        }
    }
}

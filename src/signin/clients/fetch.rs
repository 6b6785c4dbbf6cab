//! Fetching a client metadata document: a request the Internet makes us send, so it is fenced:
//! https only, no redirects, no proxy, a 5-second limit, at most 64 KB read as it arrives, and
//! only to public addresses, checked on the addresses we actually connect to (our own resolver
//! answers the HTTP client), so a name cannot resolve to a public address when checked and a
//! private one when used.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// The most of a document read.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Connecting and reading a document, together.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a document is cached at least, and at most (seconds).
pub const MIN_CACHE: u64 = 300;
pub const MAX_CACHE: u64 = 86_400;

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

    /// The body at `url` (at most [`MAX_DOCUMENT`] bytes), and how long it may be cached
    /// (seconds); `Err` says why not, for the consent page.
    pub async fn fetch(&self, url: &Url) -> Result<(Vec<u8>, u64), String> {
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
        Ok((body, max_age))
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
}

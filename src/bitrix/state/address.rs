//! The state store's address: `redis://HOST:PORT/DB` or `rediss://` for TLS, with the password in
//! the URL or given apart. What is shown of it is the host, port and database, never the
//! password.

use std::fmt;

use super::super::secret::Secret;

/// A validated Redis (or Valkey) address. `Display` shows no credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct StateUrl {
    tls: bool,
    host: String,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<Secret>,
}

impl fmt::Debug for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateUrl({self})")
    }
}

impl fmt::Display for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}/{}", self.port, self.db)
    }
}

impl StateUrl {
    /// Parses the URL; `password`, when given, replaces one in the URL. Errors never quote the
    /// URL (it may hold the password).
    pub fn parse(text: &str, password: Option<Secret>) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!("it is not a URL ({e}); write it as redis://HOST:PORT/DB or rediss://…")
        })?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(format!(
                    "the scheme {:?} is not redis:// or rediss://",
                    super::super::untrusted::bounded(other, 20)
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("it names no host".into()),
        };
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            path => path
                .parse::<i64>()
                .ok()
                .filter(|db| (0..=10_000).contains(db))
                .ok_or_else(|| {
                    "its path is not a database number (redis://HOST:PORT/0)".to_owned()
                })?,
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err("it has a query or fragment; write it as redis://HOST:PORT/DB".into());
        }
        let decode = |s: &str| -> Result<String, String> {
            percent_decode(s).ok_or_else(|| "its credentials are not valid percent-encoding".into())
        };
        let username = match url.username() {
            "" => None,
            name => Some(decode(name)?),
        };
        let password = match (password, url.password()) {
            (Some(given), _) if !given.expose().is_empty() => Some(given),
            (_, Some(inline)) => Some(Secret::new(decode(inline)?)),
            _ => None,
        };
        Ok(Self {
            tls,
            host,
            port: url.port().unwrap_or(6379),
            db,
            username,
            password,
        })
    }

    /// `rediss://`: the connection is encrypted and the store's certificate checked.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The connection settings for the `redis` crate.
    pub(super) fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(name) = &self.username {
            settings = settings.set_username(name);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        use redis::IntoConnectionInfo;
        addr.into_connection_info()
            .map(|info| info.set_redis_settings(settings))
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_shows_without_its_password() {
        let url = StateUrl::parse("redis://:s3cr%40t@cache.internal:6380/2", None).unwrap();
        assert_eq!(url.to_string(), "redis://cache.internal:6380/2");
        assert_eq!(
            format!("{url:?}"),
            "StateUrl(redis://cache.internal:6380/2)"
        );
        assert_eq!(url.password().unwrap().expose(), "s3cr@t");
        let tls = StateUrl::parse("rediss://[::1]", Some(Secret::new("pw"))).unwrap();
        assert_eq!(tls.to_string(), "rediss://[::1]:6379/0");
        assert_eq!(tls.password().unwrap().expose(), "pw");
        assert!(tls.is_loopback() && tls.is_tls() && !url.is_tls());
    }

    #[test]
    fn a_separate_password_wins_over_the_urls() {
        let url = StateUrl::parse("redis://:inline@h/0", Some(Secret::new("apart"))).unwrap();
        assert_eq!(url.password().unwrap().expose(), "apart");
    }

    #[test]
    fn bad_addresses_are_refused_without_quoting_them() {
        for bad in [
            "http://:hunter2@h/0",
            "redis://:hunter2@h/x",
            "redis://:hunter2@h/0?a=b",
            "redis://:hunter2@/0",
            "hunter2",
        ] {
            let err = StateUrl::parse(bad, None).unwrap_err();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }
}

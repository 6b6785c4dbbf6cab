//! A per-process limit on how often something may be done: per source address, when the server
//! passes the peer address (`ConnectInfo<SocketAddr>` in the request's extensions), and for the
//! whole process always. Fixed one-minute windows: simple, and enough to bound what a flood can
//! store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Requests admitted per window: per source address (when the server passes `ConnectInfo`), and
/// for the whole process. The map holds only sources admitted this window, so
/// it never outgrows the global limit.
#[derive(Debug)]
pub struct RateLimiter {
    per_source: u32,
    global: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    total: u32,
    sources: HashMap<IpAddr, u32>,
}

impl RateLimiter {
    pub fn new(per_source: u32, global: u32, window: Duration) -> Self {
        Self {
            per_source,
            global,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                total: 0,
                sources: HashMap::new(),
            }),
        }
    }

    /// Counts one registration from `source`, or says how long until the window reopens. A
    /// loopback source is a reverse proxy on this machine speaking for many people: only the
    /// process's limit applies to it.
    pub fn admit(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let source = source.filter(|ip| !ip.is_loopback());
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(state.started) >= self.window {
            state.started = now;
            state.total = 0;
            state.sources.clear();
        }
        let wait = self
            .window
            .saturating_sub(now.duration_since(state.started));
        if state.total >= self.global {
            return Err(wait);
        }
        if let Some(source) = source {
            let count = state.sources.entry(source).or_insert(0);
            if *count >= self.per_source {
                return Err(wait);
            }
            *count += 1;
        }
        state.total += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loopback_source_counts_only_against_the_process() {
        let limiter = RateLimiter::new(1, 3, Duration::from_secs(60));
        let proxy = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(limiter.admit(proxy).is_ok());
        }
        assert!(limiter.admit(proxy).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_caps_each_source_and_the_process_per_window() {
        let limiter = RateLimiter::new(2, 3, Duration::from_secs(60));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limiter.admit(a).is_ok());
        assert!(limiter.admit(a).is_ok());
        assert!(limiter.admit(a).is_err(), "per source");
        assert!(limiter.admit(b).is_ok());
        assert!(limiter.admit(None).is_err(), "global");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.admit(a).is_ok());
    }
}

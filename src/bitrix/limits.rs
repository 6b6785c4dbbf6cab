//! Bitrix24's two limits, enforced on our side so the portal never has to: the request-rate leaky
//! bucket (per portal) and the per-method operating-time block (`OPERATION_TIME_LIMIT`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::clock::{MAX_BLOCK, clamped_secs};
use super::response::Timing;

/// The portal's leaky bucket mirrored on the client: each request adds 1, the level drains at
/// `per_second`, and a request that would overflow `burst` waits instead of being refused.
///
/// Implemented as GCRA (the "virtual scheduling" form of the same bucket): one timestamp, no
/// background task. Waits are reserved in order, so concurrent callers are served first come,
/// first served.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    tat: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second` > 0 and `burst` ≥ 1 (validated by the configuration).
    ///
    /// One slot of the burst is kept in hand: requests leave here spaced exactly, but reach the
    /// portal with some network jitter, and the portal's bucket counts arrivals.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let interval = clamped_secs(1.0 / per_second, MAX_BLOCK);
        let usable = burst.saturating_sub(1).max(1);
        Self {
            interval,
            tolerance: interval * (usable - 1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// Reserves a slot and returns how long to wait before sending. When the wait would exceed
    /// `max_wait`, nothing is reserved and the error holds the wait that would be needed.
    pub fn reserve(&self, max_wait: Duration) -> Result<Duration, Duration> {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let start = (*tat).max(now);
        let wait = (start - self.tolerance).saturating_duration_since(now);
        if wait > max_wait {
            return Err(wait);
        }
        *tat = start + self.interval;
        Ok(wait)
    }

    /// The drain interval and the tolerance (how far ahead the bucket lets requests go), for a
    /// bucket kept elsewhere with the same shape.
    pub fn shape(&self) -> (Duration, Duration) {
        (self.interval, self.tolerance)
    }

    /// The portal said `QUERY_LIMIT_EXCEEDED`: someone else (another app on this IP) is using the
    /// same bucket. Treat ours as full so the next requests wait a whole drain interval each.
    pub fn saturate(&self) {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        *tat = (*tat).max(now + self.tolerance + self.interval);
    }
}

/// Per-method operating-time bookkeeping: when each method's window resets, and which methods
/// are blocked until when. Times are Unix seconds, as the portal gives them. Methods are keyed by
/// the name the portal resolves (it ignores case), so no spelling of a blocked method gets past.
#[derive(Debug)]
pub struct OperatingGate {
    methods: Mutex<HashMap<String, MethodState>>,
    /// Never resume sooner than this after a block.
    min_block_secs: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct MethodState {
    /// When the oldest minute of the window drops out, as last reported.
    reset_at: Option<f64>,
    /// Calls fail fast until then.
    blocked_until: Option<f64>,
}

/// When the portal gives no reset time, wait out the whole 10-minute window.
const WINDOW_SECS: f64 = 600.0;
/// Never resume sooner than this after a block (as the official JS SDK does).
pub const MIN_BLOCK: Duration = Duration::from_secs(10);

impl Default for OperatingGate {
    fn default() -> Self {
        Self::new(MIN_BLOCK)
    }
}

impl OperatingGate {
    pub fn new(min_block: Duration) -> Self {
        Self {
            methods: Mutex::new(HashMap::new()),
            min_block_secs: min_block.min(MAX_BLOCK).as_secs_f64(),
        }
    }

    /// `Err(seconds)` while `method` is blocked.
    pub fn check(&self, method: &str, now: f64) -> Result<(), f64> {
        let mut methods = self.methods.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = methods.get_mut(&method_key(method)) else {
            return Ok(());
        };
        match state.blocked_until {
            Some(until) if until > now => Err(until - now),
            Some(_) => {
                state.blocked_until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Notes when the method's window resets, if a successful response said.
    pub fn record(&self, method: &str, timing: &Timing) {
        let Some(reset_at) = timing.operating_reset_at else {
            return;
        };
        let mut methods = self.methods.lock().unwrap_or_else(PoisonError::into_inner);
        methods.entry(method_key(method)).or_default().reset_at = Some(reset_at);
    }

    /// The portal answered `OPERATION_TIME_LIMIT`: block the method until its window resets
    /// (one second past the reported reset, at least the minimum block, at most [`MAX_BLOCK`]
    /// whatever the portal claimed). Returns the seconds until then.
    pub fn block(&self, method: &str, now: f64) -> f64 {
        let mut methods = self.methods.lock().unwrap_or_else(PoisonError::into_inner);
        let state = methods.entry(method_key(method)).or_default();
        let longest = now + MAX_BLOCK.as_secs_f64();
        let until = match state.reset_at {
            Some(reset) if reset.is_finite() && reset > now => reset + 1.0,
            _ => now + WINDOW_SECS,
        }
        .max(now + self.min_block_secs)
        .min(longest);
        state.blocked_until = Some(until);
        until - now
    }

    #[cfg(test)]
    fn state(&self, method: &str) -> Option<MethodState> {
        let methods = self.methods.lock().unwrap_or_else(PoisonError::into_inner);
        methods.get(&method_key(method)).copied()
    }
}

/// The method as the portal resolves it: `IM.Chat.User.List` is `im.chat.user.list`.
pub fn method_key(method: &str) -> String {
    method.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_the_rest_at_the_drain_rate() {
        let limiter = RateLimiter::new(2.0, 50);
        let started = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..200 {
            waits.push(limiter.reserve(Duration::from_secs(3600)).unwrap());
        }
        // 49 usable burst slots (one kept for jitter) go immediately, then one every 500 ms.
        assert!(waits[..49].iter().all(Duration::is_zero));
        assert_eq!(waits[49], Duration::from_millis(500));
        assert_eq!(waits[199], Duration::from_millis(500) * 151);
        assert_eq!(Instant::now(), started, "reserving does not sleep");
    }

    #[tokio::test(start_paused = true)]
    async fn two_hundred_waiting_callers_finish_at_the_buckets_minimum_time() {
        let limiter = std::sync::Arc::new(RateLimiter::new(2.0, 50));
        let started = Instant::now();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let wait = limiter.reserve(Duration::from_secs(3600)).unwrap();
                    tokio::time::sleep(wait).await;
                    Instant::now()
                })
            })
            .collect();
        let mut last = started;
        for task in tasks {
            last = last.max(task.await.unwrap());
        }
        // The portal's own minimum is (200 - 50) / 2 = 75 s; ours is one interval more.
        assert_eq!(last - started, Duration::from_millis(75_500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_drains_while_idle() {
        let limiter = RateLimiter::new(10.0, 3);
        for _ in 0..2 {
            assert_eq!(limiter.reserve(Duration::ZERO), Ok(Duration::ZERO));
        }
        assert_eq!(
            limiter.reserve(Duration::ZERO),
            Err(Duration::from_millis(100))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limiter.reserve(Duration::ZERO), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_maximum_is_refused_without_reserving() {
        let limiter = RateLimiter::new(1.0, 2);
        assert_eq!(limiter.reserve(Duration::ZERO), Ok(Duration::ZERO));
        assert_eq!(
            limiter.reserve(Duration::from_millis(500)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(
            limiter.reserve(Duration::from_secs(1)),
            Ok(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn saturation_after_a_portal_refusal_slows_the_next_calls() {
        let limiter = RateLimiter::new(4.0, 50);
        limiter.saturate();
        let wait = limiter.reserve(Duration::from_secs(60)).unwrap();
        assert_eq!(wait, Duration::from_millis(250));
    }

    #[test]
    fn a_blocked_method_fails_fast_until_its_reset() {
        let gate = OperatingGate::default();
        let now = 1_000_000.0;
        gate.record(
            "im.chat.user.list",
            &Timing {
                operating: Some(479.0),
                operating_reset_at: Some(now + 120.0),
            },
        );
        assert_eq!(gate.check("im.chat.user.list", now), Ok(()));
        assert_eq!(gate.block("im.chat.user.list", now), 121.0);
        assert_eq!(gate.check("im.chat.user.list", now + 60.0), Err(61.0));
        assert_eq!(
            gate.check("scope", now + 60.0),
            Ok(()),
            "other methods keep working"
        );
        assert_eq!(gate.check("im.chat.user.list", now + 121.0), Ok(()));
        assert_eq!(gate.state("im.chat.user.list").unwrap().blocked_until, None);
    }

    #[test]
    fn a_block_holds_for_every_spelling_of_the_method() {
        let gate = OperatingGate::default();
        gate.record(
            "Im.Chat.User.List",
            &Timing {
                operating: Some(479.0),
                operating_reset_at: Some(220.0),
            },
        );
        assert_eq!(gate.block("im.chat.user.list", 100.0), 121.0);
        for spelling in [
            "IM.CHAT.USER.LIST",
            "im.Chat.user.LIST",
            "im.chat.user.list",
        ] {
            assert_eq!(gate.check(spelling, 160.0), Err(61.0), "{spelling}");
        }
        assert_eq!(gate.check("im.chat.get", 160.0), Ok(()));
    }

    #[test]
    fn an_absurd_reset_time_blocks_for_at_most_an_hour() {
        let gate = OperatingGate::default();
        for (i, reset) in [1e300, f64::INFINITY, f64::NAN, -1.0]
            .into_iter()
            .enumerate()
        {
            let method = format!("m{i}");
            gate.record(
                &method,
                &Timing {
                    operating_reset_at: Some(reset),
                    ..Timing::default()
                },
            );
            let wait = gate.block(&method, 100.0);
            assert!((10.0..=3600.0).contains(&wait), "{reset}: {wait}");
            assert!(gate.check(&method, 100.0).is_err());
        }
    }

    #[test]
    fn without_a_known_reset_a_block_lasts_the_whole_window() {
        let gate = OperatingGate::default();
        assert_eq!(gate.block("m", 100.0), 600.0);
        // A reset time already in the past does not shorten the block below the minimum.
        gate.record(
            "n",
            &Timing {
                operating_reset_at: Some(99.0),
                ..Timing::default()
            },
        );
        assert_eq!(gate.block("n", 100.0), 600.0);
        gate.record(
            "o",
            &Timing {
                operating_reset_at: Some(102.0),
                ..Timing::default()
            },
        );
        assert_eq!(gate.block("o", 100.0), 10.0);
    }
}

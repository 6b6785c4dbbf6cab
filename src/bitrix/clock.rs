//! Time as this machine and the network report it. Every number a portal or token server sends
//! (`operating_reset_at`, `expires`, …) is checked here before it becomes a [`Duration`] or an
//! instant: NaN, infinities, negatives and absurd futures are clamped, never allowed to panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest any portal-reported wait may block a method: the operating window is 10 minutes,
/// so anything past an hour is a broken or hostile answer.
pub const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch, with fractions, as the portal's `time` block counts.
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Days since 1970-01-01 to a proleptic Gregorian date `(year, month, day)` (Howard Hinnant's
/// civil-from-days algorithm), for showing Unix times without a date crate.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Rounds a wait up to whole seconds, for `retry_after_secs`.
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A number of seconds as a [`Duration`] between zero and `cap`: NaN and negatives are zero,
/// infinities and anything past `cap` are `cap`. Never panics, unlike `Duration::from_secs_f64`.
pub fn clamped_secs(secs: f64, cap: Duration) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    if secs >= cap.as_secs_f64() {
        return cap;
    }
    Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
}

/// A finite, non-negative number of seconds as the portal may send it, or `None`.
pub fn plausible_secs(value: f64) -> Option<f64> {
    (value.is_finite() && value >= 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_never_panics_and_stays_in_range() {
        let cap = Duration::from_secs(10);
        let cases = [
            (f64::NAN, Duration::ZERO),
            (f64::NEG_INFINITY, Duration::ZERO),
            (-1.0, Duration::ZERO),
            (0.0, Duration::ZERO),
            (1.5, Duration::from_millis(1500)),
            (10.0, cap),
            (1e300, cap),
            (f64::INFINITY, cap),
        ];
        for (secs, expected) in cases {
            assert_eq!(clamped_secs(secs, cap), expected, "{secs}");
        }
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(41_500)), 42);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }

    #[test]
    fn only_finite_non_negative_seconds_are_plausible() {
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(plausible_secs(bad), None);
        }
        assert_eq!(plausible_secs(1e9), Some(1e9));
    }
}

//! When to try a call again. [`RetryPolicy::decide`] (reads) and [`RetryPolicy::decide_write`]
//! (writes) rest on exhaustive `match`es over [`CallError`]: a new kind of failure cannot be added
//! without deciding here whether it retries. A write is repeated only when the portal certainly
//! did not execute it; [`write_fate`] says which failures those are.

use std::time::Duration;

use super::error::{ApiErrorKind, CallError};

/// Retry limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, for throttling and network failures.
    pub max_retries: u32,
    /// First backoff; it doubles with each retry, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much time since the call began.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
        }
    }
}

/// Internal server errors are rarely cured by repeating; one more try is enough.
const SERVER_FAULT_RETRIES: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Retry(Duration),
    GiveUp,
}

/// How a failure relates to retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The portal asked us to slow down: retry with growing delays.
    Throttled,
    /// The request may not have arrived or its answer was lost: retry.
    Transient,
    /// The portal failed internally: retry a little.
    ServerFault,
    /// Repeating cannot help (or another mechanism handles it).
    Final,
}

fn classify(err: &CallError) -> Class {
    match err {
        CallError::Api(api) => match api.kind() {
            ApiErrorKind::QueryLimit => Class::Throttled,
            ApiErrorKind::ServerFault => Class::ServerFault,
            // Blocked until the window resets: the operating gate takes over.
            ApiErrorKind::OperationLimit => Class::Final,
            // The auth layer refreshes once; repeating with the same token cannot help.
            ApiErrorKind::TokenExpired => Class::Final,
            ApiErrorKind::Other => Class::Final,
        },
        CallError::Network { .. } | CallError::Unreachable { .. } | CallError::Timeout { .. } => {
            Class::Transient
        }
        CallError::UnexpectedResponse { status, .. } => {
            if *status >= 500 {
                Class::ServerFault
            } else {
                Class::Final
            }
        }
        CallError::Redirect { .. }
        | CallError::TokenRefresh(_)
        | CallError::OperationBlocked { .. }
        | CallError::RateLimited { .. }
        | CallError::StateUnavailable { .. }
        | CallError::StateUnreadable { .. }
        | CallError::StateMisconfigured { .. }
        | CallError::RetriesExhausted { .. } => Class::Final,
    }
}

/// What a failed write did at the portal, as far as the failure tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFate {
    /// Certainly not executed: refused before running, or never sent.
    NotExecuted,
    /// Perhaps executed: the request went out and no clear refusal came back.
    Unknown,
}

/// Whether the portal may have executed a write that failed this way.
pub fn write_fate(err: &CallError) -> WriteFate {
    match err {
        CallError::Api(api) => match api.kind() {
            // Refusals before the method ran.
            ApiErrorKind::QueryLimit
            | ApiErrorKind::OperationLimit
            | ApiErrorKind::TokenExpired => WriteFate::NotExecuted,
            ApiErrorKind::ServerFault => WriteFate::Unknown,
            // A method's own error code (4xx) is a refusal; a 5xx may follow partial work.
            ApiErrorKind::Other if api.status >= 500 => WriteFate::Unknown,
            ApiErrorKind::Other => WriteFate::NotExecuted,
        },
        CallError::Unreachable { .. }
        | CallError::Redirect { .. }
        | CallError::TokenRefresh(_)
        | CallError::OperationBlocked { .. }
        | CallError::RateLimited { .. }
        | CallError::StateUnavailable { .. }
        | CallError::StateUnreadable { .. }
        | CallError::StateMisconfigured { .. } => WriteFate::NotExecuted,
        CallError::Network { .. } | CallError::Timeout { .. } => WriteFate::Unknown,
        // A 2xx we could not read may have been a success; a 5xx page may follow partial work.
        CallError::UnexpectedResponse { status, .. } if *status >= 500 || *status < 300 => {
            WriteFate::Unknown
        }
        CallError::UnexpectedResponse { .. } => WriteFate::NotExecuted,
        CallError::RetriesExhausted { last, .. } => write_fate(last),
    }
}

impl RetryPolicy {
    /// [`RetryPolicy::decide`] for a write: only a rate-limit refusal or a connection that was
    /// never made is tried again, never a failure after which the write may have happened.
    pub fn decide_write(&self, err: &CallError, attempts: u32, elapsed: Duration) -> Decision {
        let certainly_not_run = match err {
            CallError::Api(api) => api.kind() == ApiErrorKind::QueryLimit,
            CallError::Unreachable { .. } => true,
            CallError::Network { .. }
            | CallError::Timeout { .. }
            | CallError::Redirect { .. }
            | CallError::UnexpectedResponse { .. }
            | CallError::TokenRefresh(_)
            | CallError::OperationBlocked { .. }
            | CallError::RateLimited { .. }
            | CallError::StateUnavailable { .. }
            | CallError::StateUnreadable { .. }
            | CallError::StateMisconfigured { .. }
            | CallError::RetriesExhausted { .. } => false,
        };
        if certainly_not_run {
            self.decide(err, attempts, elapsed)
        } else {
            Decision::GiveUp
        }
    }

    /// Decides after `attempts` attempts (≥ 1), `elapsed` since the call began.
    pub fn decide(&self, err: &CallError, attempts: u32, elapsed: Duration) -> Decision {
        let allowed = match classify(err) {
            Class::Throttled | Class::Transient => self.max_retries,
            Class::ServerFault => self.max_retries.min(SERVER_FAULT_RETRIES),
            Class::Final => 0,
        };
        if attempts > allowed {
            return Decision::GiveUp;
        }
        let delay = self.backoff(attempts);
        if elapsed + delay > self.deadline {
            return Decision::GiveUp;
        }
        Decision::Retry(delay)
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, so concurrent callers
    /// spread out instead of retrying in lockstep.
    fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(16);
        let full = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitrix::error::ApiError;

    fn api(code: &str, status: u16) -> CallError {
        CallError::Api(ApiError::new(code, "", status))
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            deadline: Duration::from_secs(60),
        }
    }

    fn retries(err: &CallError) -> u32 {
        let mut attempts = 1;
        while let Decision::Retry(_) = policy().decide(err, attempts, Duration::ZERO) {
            attempts += 1;
        }
        attempts - 1
    }

    #[test]
    fn throttling_and_network_failures_retry_up_to_the_maximum() {
        assert_eq!(retries(&api("QUERY_LIMIT_EXCEEDED", 503)), 3);
        assert_eq!(
            retries(&CallError::Network {
                detail: "reset".into()
            }),
            3
        );
        assert_eq!(
            retries(&CallError::Timeout {
                after: Duration::from_secs(1)
            }),
            3
        );
    }

    #[test]
    fn server_faults_retry_once() {
        assert_eq!(retries(&api("INTERNAL_SERVER_ERROR", 500)), 1);
        assert_eq!(retries(&api("ERROR_UNEXPECTED_ANSWER", 500)), 1);
        let html = CallError::UnexpectedResponse {
            status: 502,
            detail: "html".into(),
        };
        assert_eq!(retries(&html), 1);
    }

    #[test]
    fn everything_else_is_final() {
        for err in [
            api("OVERLOAD_LIMIT", 503),
            api("OPERATION_TIME_LIMIT", 429),
            api("ACCESS_ERROR", 403),
            api("NO_AUTH_FOUND", 401),
            api("expired_token", 401),
            api("SOMETHING_NEW", 500),
            CallError::UnexpectedResponse {
                status: 200,
                detail: "x".into(),
            },
            CallError::Redirect {
                status: 302,
                location_host: None,
            },
            CallError::TokenRefresh(Box::new(api("invalid_grant", 400))),
            CallError::OperationBlocked {
                method: "m".into(),
                retry_after: Duration::from_secs(5),
            },
            CallError::RateLimited {
                retry_after: Duration::from_secs(5),
            },
        ] {
            assert_eq!(retries(&err), 0, "{err:?}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = policy();
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn writes_are_repeated_only_when_certainly_not_executed() {
        let policy = policy();
        let again = |err: &CallError| {
            matches!(
                policy.decide_write(err, 1, Duration::ZERO),
                Decision::Retry(_)
            )
        };
        assert!(again(&api("QUERY_LIMIT_EXCEEDED", 503)));
        assert!(again(&CallError::Unreachable {
            detail: "refused".into()
        }));
        for maybe_done in [
            CallError::Network {
                detail: "reset".into(),
            },
            CallError::Timeout {
                after: Duration::from_secs(1),
            },
            api("INTERNAL_SERVER_ERROR", 500),
            CallError::UnexpectedResponse {
                status: 502,
                detail: "x".into(),
            },
        ] {
            assert!(!again(&maybe_done), "{maybe_done:?}");
            assert_eq!(
                write_fate(&maybe_done),
                WriteFate::Unknown,
                "{maybe_done:?}"
            );
        }
        assert_eq!(
            write_fate(&api("ACCESS_DENIED_KICK", 403)),
            WriteFate::NotExecuted
        );
        assert_eq!(
            write_fate(&CallError::Unreachable { detail: "x".into() }),
            WriteFate::NotExecuted
        );
    }

    #[test]
    fn no_retry_starts_past_the_deadline() {
        let err = CallError::Network { detail: "x".into() };
        assert_eq!(
            policy().decide(&err, 1, Duration::from_secs(60)),
            Decision::GiveUp
        );
    }
}

//! Single flight for reads: concurrent identical read calls (same method, same parameters) share
//! one portal request and its answer. The first caller leads and makes the request; the others
//! wait for its outcome. A leader that goes away before finishing (its call was cancelled) hands
//! the request over: a waiting caller becomes the next leader.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use super::error::CallError;
use super::response::Envelope;

type Outcome = Result<Envelope, CallError>;

/// The flights in the air, by request key.
#[derive(Debug, Default)]
pub struct Flights {
    in_air: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
}

/// Removes a flight from the table when its leader finishes or goes away.
struct Landing<'a> {
    flights: &'a Flights,
    key: &'a str,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flights
            .in_air
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.key);
    }
}

impl Flights {
    /// Runs `request` for `key`, or waits for the same request already in the air. `request` is
    /// called only by a leader.
    pub async fn share<F, Fut>(&self, key: String, request: F) -> Outcome
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        loop {
            let joined = {
                let mut in_air = self.in_air.lock().unwrap_or_else(PoisonError::into_inner);
                match in_air.get(&key) {
                    Some(flight) => Err(flight.clone()),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        in_air.insert(key.clone(), receiver);
                        Ok(sender)
                    }
                }
            };
            match joined {
                Ok(sender) => {
                    let _landing = Landing {
                        flights: self,
                        key: &key,
                    };
                    let outcome = request().await;
                    // Nobody waiting is fine: the send only fails when no one listens.
                    let _ = sender.send(Some(outcome.clone()));
                    return outcome;
                }
                Err(mut flight) => {
                    match flight.wait_for(Option::is_some).await {
                        Ok(outcome) => {
                            if let Some(outcome) = outcome.as_ref() {
                                return outcome.clone();
                            }
                        }
                        // The leader went away without an answer: try again, perhaps as leader.
                        Err(_) => continue,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn envelope(n: i64) -> Outcome {
        Ok(Envelope {
            result: serde_json::json!(n),
            ..Envelope::default()
        })
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_and_different_ones_do_not() {
        let flights = Arc::new(Flights::default());
        let requests = Arc::new(AtomicU32::new(0));
        let (release, released) = watch::channel(false);
        let mut tasks = Vec::new();
        for i in 0..10 {
            let flights = flights.clone();
            let requests = requests.clone();
            let released = released.clone();
            let key = if i < 8 { "same" } else { "other" };
            tasks.push(tokio::spawn(async move {
                flights
                    .share(format!("{key}{}", i / 8), || {
                        let requests = requests.clone();
                        let mut released = released.clone();
                        async move {
                            requests.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            envelope(7)
                        }
                    })
                    .await
            }));
        }
        // Everyone has joined a flight before any lands.
        while flights.in_air.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap(), envelope(7));
        }
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        assert!(flights.in_air.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_the_request_over() {
        let flights = Arc::new(Flights::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .share("k".into(), std::future::pending::<Outcome>)
                    .await
            })
        };
        while flights.in_air.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let follower = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.share("k".into(), || async { envelope(3) }).await })
        };
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        assert_eq!(follower.await.unwrap(), envelope(3));
    }
}

//! One-time marks: "spend this ID once, for this long". A confirmation of a write is good for one
//! write, so the tools spend its ID before writing; a second spend of the same ID, on any
//! instance, fails. With a state store the marks live there (one `SET NX PX`, so instances cannot
//! both win), else in this process. Callers see IDs and durations, never the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::super::error::CallError;
use super::{RedisStore, Shared};

/// At most this many unexpired marks are kept in memory. Each one needs a confirmation the
/// server sealed and the user answered, so a full book means something is wrong: further spends
/// are refused (nothing is written) rather than the book growing or old marks being forgotten.
const MAX_LOCAL_MARKS: usize = 100_000;

/// Where spent IDs are recorded.
#[derive(Debug, Clone)]
pub struct SpentMarks {
    book: Book,
}

#[derive(Debug, Clone)]
enum Book {
    /// This process only: ID → when its mark may be forgotten.
    Local(Arc<Mutex<HashMap<String, Instant>>>),
    /// Every instance sharing the store and prefix.
    Shared(Arc<RedisStore>),
}

/// Whether a spend was the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Nobody had spent this ID: the caller may go ahead, once.
    First,
    /// It was spent before (here or on another instance).
    Again,
    /// This process already holds as many unexpired marks as it keeps: refused rather than
    /// forgetting one (which would let that state be spent twice).
    Full,
}

impl SpentMarks {
    /// In the state store when there is one, else in this process.
    pub fn new(shared: Option<&Shared>) -> Self {
        Self {
            book: match shared {
                Some(shared) => Book::Shared(shared.store.clone()),
                None => Book::Local(Arc::default()),
            },
        }
    }

    /// Spends `id` (at most 64 printable characters), remembered for `ttl`: it must outlive
    /// whatever the ID stands for. A store that cannot be reached is an error and nothing is
    /// spent; a store whose answer was lost after it recorded the mark still counts this spend
    /// as the first (each spend carries its own random token and looks for it).
    pub async fn spend(&self, id: &str, ttl: Duration) -> Result<Spend, CallError> {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(CallError::StateUnavailable {
                detail: "a one-time ID must be 1 to 64 printable characters".into(),
            });
        }
        match &self.book {
            Book::Local(book) => Ok(spend_here(book, id, ttl, Instant::now())),
            Book::Shared(store) => spend_in_store(store, id, ttl).await,
        }
    }
}

fn spend_here(
    book: &Mutex<HashMap<String, Instant>>,
    id: &str,
    ttl: Duration,
    now: Instant,
) -> Spend {
    // Nothing panics while the lock is held: a poisoned book is still a valid book.
    let mut book = book.lock().unwrap_or_else(PoisonError::into_inner);
    if book.get(id).is_some_and(|until| *until > now) {
        return Spend::Again;
    }
    if book.len() >= MAX_LOCAL_MARKS {
        book.retain(|_, until| *until > now);
        if book.len() >= MAX_LOCAL_MARKS {
            return Spend::Full;
        }
    }
    book.insert(id.to_owned(), now + ttl);
    Spend::First
}

async fn spend_in_store(store: &RedisStore, id: &str, ttl: Duration) -> Result<Spend, CallError> {
    let key = store.name(&["spent", id]);
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CallError::StateUnavailable {
        detail: format!("no random bytes to mark a one-time ID: {e}"),
    })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let ms = ttl.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
    // SET NX, then read back: a first attempt whose answer was lost (and repeated by `run`)
    // finds its own token and is still the first spend.
    let holder: Option<String> = store
        .run("spend", |mut conn| {
            let (key, token) = (key.clone(), token.clone());
            async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async::<Option<String>>(&mut conn)
                    .await?;
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            }
        })
        .await?;
    Ok(match holder {
        Some(holder) if holder == token => Spend::First,
        _ => Spend::Again,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_spent_once_until_its_mark_expires() {
        let book = Mutex::default();
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        assert_eq!(spend_here(&book, "a", ttl, now), Spend::First);
        assert_eq!(spend_here(&book, "a", ttl, now), Spend::Again);
        assert_eq!(spend_here(&book, "b", ttl, now), Spend::First);
        assert_eq!(
            spend_here(&book, "a", ttl, now + Duration::from_secs(59)),
            Spend::Again
        );
        // Past its lifetime the thing the ID stood for has expired too.
        assert_eq!(
            spend_here(&book, "a", ttl, now + Duration::from_secs(61)),
            Spend::First
        );
    }

    #[test]
    fn a_full_book_refuses_rather_than_forgets() {
        let book = Mutex::new(
            (0..MAX_LOCAL_MARKS)
                .map(|i| (i.to_string(), Instant::now() + Duration::from_secs(60)))
                .collect::<HashMap<_, _>>(),
        );
        let now = Instant::now();
        assert_eq!(
            spend_here(&book, "new", Duration::from_secs(60), now),
            Spend::Full
        );
        // A mark already held is still reported as spent, full or not.
        assert_eq!(
            spend_here(&book, "0", Duration::from_secs(60), now),
            Spend::Again
        );
        // Once the old marks expire there is room again.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            spend_here(&book, "new", Duration::from_secs(60), later),
            Spend::First
        );
    }
}

//! Which of two token pairs is the newer. Every pair descends from a seed (the refresh token the
//! user configured) by refreshes, each of which kills its parent at the portal; a stored pair
//! carries its seed's fingerprint and how many refreshes it is from it. A stored pair further
//! along than the one held replaces it; one behind it is a save the store lost (Redis restarted
//! between a refresh and its save, a token file restored from a backup) — adopting it would throw
//! the only live pair away, so the held pair is written back instead.

use super::super::clock::unix_now;
use super::super::token_store::{StoredTokens, Tokens};
use super::Generation;

/// Where a stored pair stands against the pair held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// The same pair (the same refresh token).
    Same,
    /// Newer: further along the same lineage, or from another authorization (another seed), or
    /// of unknown place (written by a version that did not number pairs) — as before numbering,
    /// such a pair is taken to be another process's rotation.
    Newer,
    /// Behind the held pair on the same lineage: its refresh token is already spent.
    Older,
}

impl Generation {
    /// Where `stored` stands against this pair.
    pub(super) fn standing(&self, stored: &StoredTokens) -> Standing {
        if stored.tokens.refresh_token == self.tokens.refresh_token {
            return Standing::Same;
        }
        match (stored.serial, self.serial) {
            (Some(theirs), Some(ours)) if stored.seed == self.seed && theirs < ours => {
                Standing::Older
            }
            _ => Standing::Newer,
        }
    }

    /// This pair as a record to save.
    pub(super) fn record(&self) -> StoredTokens {
        StoredTokens {
            tokens: self.tokens.clone(),
            seed: self.seed.clone(),
            serial: self.serial,
            saved_at: unix_now(),
        }
    }

    /// The record of `tokens`, the pair a refresh of this one yielded.
    pub(super) fn successor(&self, tokens: &Tokens) -> StoredTokens {
        StoredTokens {
            tokens: tokens.clone(),
            seed: self.seed.clone(),
            serial: Some(self.serial.map_or(1, |n| n.saturating_add(1))),
            saved_at: unix_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::secret::Secret;
    use super::*;

    fn generation(refresh: &str, seed: &str, serial: Option<u64>) -> Generation {
        Generation {
            tokens: Tokens {
                access_token: Secret::new("a"),
                refresh_token: Secret::new(refresh),
                expires_at: None,
            },
            number: 0,
            previous: None,
            fresh: false,
            seed: seed.into(),
            serial,
        }
    }

    #[test]
    fn only_a_pair_behind_on_the_same_lineage_is_older() {
        let held = generation("r5", "s", Some(5));
        let stored = |refresh: &str, seed: &str, serial| generation(refresh, seed, serial).record();
        assert_eq!(held.standing(&stored("r5", "s", Some(5))), Standing::Same);
        assert_eq!(held.standing(&stored("r6", "s", Some(6))), Standing::Newer);
        assert_eq!(held.standing(&stored("r4", "s", Some(4))), Standing::Older);
        // Another authorization, or a record that does not say: another process's pair.
        assert_eq!(held.standing(&stored("x0", "t", Some(0))), Standing::Newer);
        assert_eq!(held.standing(&stored("r4", "s", None)), Standing::Newer);
        assert_eq!(
            generation("r5", "s", None).standing(&stored("r4", "s", Some(4))),
            Standing::Newer
        );
    }

    #[test]
    fn a_refresh_moves_one_step_along_the_lineage() {
        let tokens = generation("r6", "s", None).tokens;
        assert_eq!(
            generation("r5", "s", Some(5)).successor(&tokens).serial,
            Some(6)
        );
        assert_eq!(
            generation("r5", "s", None).successor(&tokens).serial,
            Some(1)
        );
        assert_eq!(generation("r5", "s", Some(5)).successor(&tokens).seed, "s");
    }
}

//! Basic-auth credentials that passed bcrypt lately. Kept as a keyed hash
//! of user and password (never the password), a bounded number of them,
//! each for a limited time.

use crate::lock::lock;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a verified pair is remembered: several scrape intervals, and
/// short enough that a password removed by hand from a cached pair's
/// config is not honoured long (a rotation clears the cache anyway).
const REMEMBER_FOR: Duration = Duration::from_secs(300);
/// The most pairs remembered: a few scrapers need a few.
const MAX_PAIRS: usize = 256;

/// A 128-bit keyed hash (two SipHash keys drawn at start): who can make
/// requests can neither compute it nor find a collision with a cached pair.
pub struct VerifiedCredentials {
    keys: [RandomState; 2],
    pairs: Mutex<HashMap<[u64; 2], Instant>>,
}

impl Default for VerifiedCredentials {
    fn default() -> Self {
        VerifiedCredentials {
            keys: [RandomState::new(), RandomState::new()],
            pairs: Mutex::default(),
        }
    }
}

impl VerifiedCredentials {
    fn key(&self, user: &str, password: &str) -> [u64; 2] {
        self.keys.each_ref().map(|state| {
            let mut hasher = state.build_hasher();
            // Lengths first: ("ab", "c") and ("a", "bc") hash apart.
            hasher.write_usize(user.len());
            hasher.write(user.as_bytes());
            hasher.write_usize(password.len());
            hasher.write(password.as_bytes());
            hasher.finish()
        })
    }

    /// Whether the pair passed bcrypt less than [`REMEMBER_FOR`] ago.
    pub fn contains(&self, user: &str, password: &str) -> bool {
        let key = self.key(user, password);
        let pairs = lock(&self.pairs);
        pairs.get(&key).is_some_and(|until| Instant::now() < *until)
    }

    /// Remembers a pair that just passed bcrypt.
    pub fn remember(&self, user: &str, password: &str) {
        let key = self.key(user, password);
        let now = Instant::now();
        let mut pairs = lock(&self.pairs);
        if pairs.len() >= MAX_PAIRS {
            pairs.retain(|_, until| now < *until);
        }
        if pairs.len() >= MAX_PAIRS {
            // Only right passwords get here, so this takes many real users:
            // forgetting them costs one bcrypt each.
            pairs.clear();
        }
        pairs.insert(key, now + REMEMBER_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_pairs_only_and_stays_bounded() {
        let cache = VerifiedCredentials::default();
        assert!(!cache.contains("alice", "right"));
        cache.remember("alice", "right");
        assert!(cache.contains("alice", "right"));
        assert!(!cache.contains("alice", "wrong"));
        assert!(!cache.contains("alic", "eright"));
        assert!(!cache.contains("bob", "right"));
        for i in 0..3 * MAX_PAIRS {
            cache.remember("u", &i.to_string());
        }
        assert!(cache.pairs.lock().unwrap().len() <= MAX_PAIRS);
    }

    #[test]
    fn forgets_after_a_while() {
        let cache = VerifiedCredentials::default();
        cache.remember("alice", "right");
        let key = cache.key("alice", "right");
        *cache.pairs.lock().unwrap().get_mut(&key).unwrap() = Instant::now();
        assert!(!cache.contains("alice", "right"));
    }
}

//! A small bounded memo table shared by the webhook's workers.
//!
//! A cluster admits the same pod template again and again (every replica of a Deployment,
//! every Job run), so what the webhook derives from a template's policy text is worth
//! keeping. Entries are found by a hash of the borrowed inputs, so a hit allocates
//! nothing, and confirmed by comparing the stored inputs in full, so two inputs with the
//! same hash can never share an answer: a collision costs a recomputation, not a wrong
//! policy. The hash is keyed at random per process (std's SipHash), so a pod author cannot
//! aim collisions at another template's entry either.
//!
//! Only successes go in (callers compute errors afresh, so a refusal always describes the
//! pod in front of it). The table is bounded in entries and in bytes (as the caller counts
//! them: an annotation may hold 256 KiB, and pods are written by users), and when either
//! bound is reached it is emptied rather than managed: the working set of a cluster is a
//! few templates, and a pod that misses is only slower.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

/// A map from inputs (stored as `K`) to shared results `V`.
pub struct Memo<K, V> {
    hasher: RandomState,
    capacity: usize,
    budget: usize,
    table: Mutex<Table<K, V>>,
}

struct Table<K, V> {
    entries: HashMap<u64, (K, Arc<V>)>,
    /// The sum of the entries' sizes as given to [`Memo::insert`].
    bytes: usize,
}

impl<K, V> Memo<K, V> {
    /// An empty table that keeps at most `capacity` entries and `budget` bytes.
    pub fn new(capacity: usize, budget: usize) -> Memo<K, V> {
        Memo {
            hasher: RandomState::new(),
            capacity,
            budget,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    /// The hash under which `inputs` are filed; hash the same borrowed view on lookup and
    /// on insertion.
    pub fn hash_of(&self, inputs: &impl Hash) -> u64 {
        self.hasher.hash_one(inputs)
    }

    /// The result filed under `hash` whose stored inputs satisfy `same`.
    pub fn get(&self, hash: u64, same: impl FnOnce(&K) -> bool) -> Option<Arc<V>> {
        match self.lock().entries.get(&hash) {
            Some((stored, value)) if same(stored) => Some(value.clone()),
            _ => None,
        }
    }

    /// Files `value` for `inputs` under `hash`, replacing whatever had that hash. `bytes`
    /// is what the entry holds (inputs and value), roughly; an entry over the whole budget
    /// is not kept.
    pub fn insert(&self, hash: u64, inputs: K, value: Arc<V>, bytes: usize) {
        if bytes > self.budget {
            return;
        }
        let mut table = self.lock();
        if table.entries.len() >= self.capacity || table.bytes + bytes > self.budget {
            table.entries.clear();
            table.bytes = 0;
        }
        // A replaced entry's bytes stay counted until the next clearing: collisions are
        // rare, and over-counting only clears sooner.
        table.bytes += bytes;
        table.entries.insert(hash, (inputs, value));
    }

    /// The number of entries, for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table<K, V>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (every entry is complete), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colliding_hash_is_a_miss_not_a_wrong_answer() {
        let memo: Memo<String, u32> = Memo::new(2, 100);
        let h = memo.hash_of(&"a");
        memo.insert(h, "a".to_string(), Arc::new(1), 1);
        assert_eq!(memo.get(h, |k| k == "a").as_deref(), Some(&1));
        // Same hash, other inputs: not found.
        assert_eq!(memo.get(h, |k| k == "b"), None);
    }

    #[test]
    fn a_full_table_starts_over() {
        let memo: Memo<u32, u32> = Memo::new(2, 100);
        for i in 0..2 {
            memo.insert(memo.hash_of(&i), i, Arc::new(i), 10);
        }
        assert_eq!(memo.len(), 2);
        memo.insert(memo.hash_of(&9), 9, Arc::new(9), 10);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(memo.hash_of(&0), |k| *k == 0), None);
        assert_eq!(memo.get(memo.hash_of(&9), |k| *k == 9).as_deref(), Some(&9));
    }

    #[test]
    fn the_byte_budget_bounds_the_table() {
        let memo: Memo<u32, u32> = Memo::new(100, 100);
        memo.insert(memo.hash_of(&1), 1, Arc::new(1), 60);
        memo.insert(memo.hash_of(&2), 2, Arc::new(2), 60);
        assert_eq!(memo.len(), 1);
        // Larger than the whole budget: not kept, and nothing else is dropped for it.
        memo.insert(memo.hash_of(&3), 3, Arc::new(3), 101);
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(memo.hash_of(&2), |k| *k == 2).as_deref(), Some(&2));
    }
}

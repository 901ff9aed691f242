//! The capacity books of one runtime: OpenWhisk's `NestedSemaphore` (a `ForcibleSemaphore` of
//! memory slots, plus per-action sets of concurrent-activation slots), behind one short mutex.

use std::collections::HashMap;
use std::sync::Mutex;

/// Which activations may share a memory slot-set: the same action with the same limits. An
/// action updated to new limits gets new slot-sets (its old ones drain as its leases end).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActionKey {
    pub fqn: Box<str>,
    pub memory_mb: u64,
    pub concurrency: u32,
}

#[derive(Debug)]
struct Books {
    /// Slots this scheduler may use on the runtime: `user_memory / cluster_size` MB.
    capacity: i64,
    /// Free memory slots. Negative after forced (overload) acquisitions.
    free: i64,
    /// Activations holding a lease on these books.
    in_flight: u64,
    /// Free concurrent-activation slots of already paid-for slot-sets, per action with
    /// `concurrency > 1`. A slot-set costs `memory_mb` memory slots and holds `concurrency`
    /// activations; the entry is removed when it reaches 0 with no set partly used.
    concurrent: HashMap<ActionKey, u32>,
}

/// Memory slots (MB) of one runtime, as seen by this scheduler replica.
///
/// Every operation takes the mutex for a few instructions (one hash-map lookup when the
/// action's concurrency is above 1); nothing ever waits for capacity.
#[derive(Debug)]
pub(crate) struct Slots {
    books: Mutex<Books>,
}

impl Slots {
    pub fn new(capacity: u64) -> Slots {
        let capacity = i64::try_from(capacity).unwrap_or(i64::MAX);
        Slots {
            books: Mutex::new(Books {
                capacity,
                free: capacity,
                in_flight: 0,
                concurrent: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        // The books hold plain counters that every operation leaves consistent, so a panic
        // elsewhere while holding the lock cannot leave them half-updated: recover.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for one activation of `key`. With `force` it always succeeds, letting the
    /// free count go negative (OpenWhisk's `forceAcquire`); without, it fails when the memory
    /// slots are short. Never waits.
    pub fn acquire(&self, key: &ActionKey, force: bool) -> bool {
        let memory = i64::try_from(key.memory_mb).unwrap_or(i64::MAX);
        let mut b = self.lock();
        if key.concurrency <= 1 {
            if !force && b.free < memory {
                return false;
            }
            b.free -= memory;
        } else {
            // A free slot in a slot-set already paid for costs no memory.
            if let Some(free_concurrent) = b.concurrent.get_mut(key)
                && *free_concurrent > 0
            {
                *free_concurrent -= 1;
                b.in_flight += 1;
                return true;
            }
            if !force && b.free < memory {
                return false;
            }
            b.free -= memory;
            *b.concurrent.entry(key.clone()).or_insert(0) += key.concurrency - 1;
        }
        b.in_flight += 1;
        true
    }

    /// Gives back what [`acquire`](Self::acquire) took for `key`.
    pub fn release(&self, key: &ActionKey) {
        let memory = i64::try_from(key.memory_mb).unwrap_or(i64::MAX);
        let mut b = self.lock();
        b.in_flight = b.in_flight.saturating_sub(1);
        if key.concurrency <= 1 {
            b.free += memory;
            return;
        }
        let free_concurrent = b.concurrent.entry(key.clone()).or_insert(0);
        *free_concurrent += 1;
        // A whole slot-set is unused: give its memory back (OpenWhisk's opportunistic reduction).
        let set_freed = *free_concurrent >= key.concurrency;
        if set_freed {
            *free_concurrent -= key.concurrency;
        }
        let drop_entry = *free_concurrent == 0;
        if drop_entry {
            b.concurrent.remove(key);
        }
        if set_freed {
            b.free += memory;
        }
    }

    /// New capacity (the runtime announced another `userMemory`): the difference is added to
    /// the free slots, so leases in flight stay counted.
    pub fn resize(&self, capacity: u64) {
        let capacity = i64::try_from(capacity).unwrap_or(i64::MAX);
        let mut b = self.lock();
        b.free += capacity - b.capacity;
        b.capacity = capacity;
    }

    /// `(capacity, free, in_flight)`.
    pub fn counts(&self) -> (i64, i64, u64) {
        let b = self.lock();
        (b.capacity, b.free, b.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(memory_mb: u64, concurrency: u32) -> ActionKey {
        ActionKey {
            fqn: "guest/a".into(),
            memory_mb,
            concurrency,
        }
    }

    #[test]
    fn balancer_slots_try_and_force() {
        let s = Slots::new(512);
        let k = key(256, 1);
        assert!(s.acquire(&k, false));
        assert!(s.acquire(&k, false));
        assert!(!s.acquire(&k, false));
        assert_eq!(s.counts(), (512, 0, 2));
        assert!(s.acquire(&k, true));
        assert_eq!(s.counts(), (512, -256, 3));
        for _ in 0..3 {
            s.release(&k);
        }
        assert_eq!(s.counts(), (512, 512, 0));
    }

    #[test]
    fn balancer_slots_nested_concurrency() {
        let s = Slots::new(512);
        let k = key(256, 3);
        // Six activations fit in two slot-sets of 256 MB.
        for _ in 0..6 {
            assert!(s.acquire(&k, false));
        }
        assert_eq!(s.counts(), (512, 0, 6));
        assert!(!s.acquire(&k, false));
        // Another action cannot use the free concurrent slots of the first one.
        s.release(&k);
        assert!(!s.acquire(&key(1, 1), false));
        assert!(s.acquire(&k, false));
        // Memory comes back only when a whole slot-set is unused.
        s.release(&k);
        s.release(&k);
        assert_eq!(s.counts().1, 0);
        s.release(&k);
        assert_eq!(s.counts().1, 256);
        for _ in 0..3 {
            s.release(&k);
        }
        assert_eq!(s.counts(), (512, 512, 0));
        assert!(s.lock().concurrent.is_empty());
    }

    #[test]
    fn balancer_slots_resize_keeps_in_flight() {
        let s = Slots::new(1024);
        let k = key(256, 1);
        assert!(s.acquire(&k, false));
        s.resize(512);
        assert_eq!(s.counts(), (512, 256, 1));
        s.release(&k);
        assert_eq!(s.counts(), (512, 512, 0));
    }
}

//! The pure part of the algorithm: the stable hash, the coprime step sizes and the progression.
//!
//! Nothing here holds state, so every scheduler replica (and every process run) computes the
//! same home runtime and the same order of probes for an action, which is what lets replicas
//! shard capacity without talking to each other.

/// FNV-1a (64 bit) of the bytes of `namespace/action`.
///
/// OpenWhisk hashes with the JVM's `String.hashCode`, which is stable across JVMs. Rust's
/// `std` hasher is randomly seeded per process, so it would give every replica a different
/// home runtime; FNV-1a is fixed, fast for short keys and spreads them well enough for `% n`.
pub fn hash_fqn(fqn: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fqn.as_bytes()
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Greatest common divisor (Euclid).
pub fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// OpenWhisk's `pairwiseCoprimeNumbersUntil(n)`: the numbers `1..=n` that are coprime to `n`
/// and pairwise coprime with the ones chosen before them.
///
/// For `n = 10`: `1, 3, 7` (2, 4, 5, 6, 8, 10 share a factor with 10; 9 shares 3 with 3).
/// Never empty for `n >= 1` (1 is always chosen); empty for `n = 0`.
pub fn pairwise_coprime_numbers_until(n: usize) -> Vec<usize> {
    (1..=n).fold(Vec::new(), |mut chosen, cur| {
        if gcd(cur, n) == 1 && chosen.iter().all(|&c| gcd(c, cur) == 1) {
            chosen.push(cur);
        }
        chosen
    })
}

/// Where the walk over `n` runtimes starts and how far it jumps: `home = hash % n`,
/// `step = step_sizes[hash % step_sizes.len()]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progression {
    /// Index of the home runtime.
    pub home: usize,
    /// Step size; coprime to `n`, so `n` steps visit every index exactly once.
    pub step: usize,
    /// Number of runtimes.
    pub n: usize,
}

impl Progression {
    /// The progression for `hash` over `n` runtimes with the given step sizes (those of
    /// [`pairwise_coprime_numbers_until`]`(n)`). `None` when `n == 0`.
    pub fn new(hash: u64, n: usize, step_sizes: &[usize]) -> Option<Progression> {
        if n == 0 || step_sizes.is_empty() {
            return None;
        }
        let home = (hash % n as u64) as usize;
        let step = step_sizes[(hash % step_sizes.len() as u64) as usize];
        Some(Progression { home, step, n })
    }

    /// Convenience for tests and docs: computes the step sizes itself.
    pub fn for_hash(hash: u64, n: usize) -> Option<Progression> {
        Progression::new(hash, n, &pairwise_coprime_numbers_until(n))
    }

    /// The `n` indices to probe, home first: `home, home+step, home+2·step, ... (mod n)`.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        let Progression { home, step, n } = self;
        (0..n).scan(home, move |idx, _| {
            let current = *idx;
            *idx = (*idx + step) % n;
            Some(current)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_seed_worked_example() {
        assert_eq!(pairwise_coprime_numbers_until(10), vec![1, 3, 7]);
        let p = Progression::for_hash(13, 10).unwrap();
        assert_eq!((p.home, p.step), (3, 3));
        assert_eq!(
            p.indices().collect::<Vec<_>>(),
            vec![3, 6, 9, 2, 5, 8, 1, 4, 7, 0]
        );
    }

    #[test]
    fn balancer_step_sizes_small_n() {
        assert_eq!(pairwise_coprime_numbers_until(0), Vec::<usize>::new());
        assert_eq!(pairwise_coprime_numbers_until(1), vec![1]);
        assert_eq!(pairwise_coprime_numbers_until(2), vec![1]);
        assert_eq!(pairwise_coprime_numbers_until(3), vec![1, 2]);
        assert_eq!(pairwise_coprime_numbers_until(12), vec![1, 5, 7, 11]);
        assert!(Progression::for_hash(7, 0).is_none());
    }

    #[test]
    fn balancer_fnv1a_reference_values() {
        // Published FNV-1a 64 test vectors: stable across processes and platforms.
        assert_eq!(hash_fqn(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_fqn("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash_fqn("foobar"), 0x8594_4171_f739_67e8);
    }
}

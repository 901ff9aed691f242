//! `primes`: CPU-bound. Counts the primes <= `n` with a sieve of Eratosthenes over odd numbers
//! (n/2 bytes of memory), and reports the largest.
use serde::{Deserialize, Serialize};
use wisp_sdk::bail;

/// Above this the sieve would need more than 500 MB of linear memory.
const MAX_N: u64 = 1_000_000_000;

#[derive(Deserialize)]
struct Params {
    n: Option<u64>,
}

#[derive(Serialize)]
struct Primes {
    n: u64,
    count: u64,
    largest: Option<u64>,
}

#[wisp_sdk::action]
fn main(p: Params) -> wisp_sdk::Result<Primes> {
    let Some(n) = p.n else {
        bail!("missing parameter n (a non-negative integer)");
    };
    if n > MAX_N {
        bail!("n must be at most {MAX_N}, got {n}");
    }
    let (count, largest) = sieve(n);
    Ok(Primes { n, count, largest })
}

/// (number of primes <= n, largest prime <= n).
fn sieve(n: u64) -> (u64, Option<u64>) {
    if n < 2 {
        return (0, None);
    }
    // composite[i] is about the odd number 2i + 1.
    let half = (n as usize).div_ceil(2);
    let mut composite = vec![false; half];
    let mut i = 1;
    while (2 * i + 1) * (2 * i + 1) <= n as usize {
        if !composite[i] {
            let p = 2 * i + 1;
            let mut j = p * p / 2;
            while j < half {
                composite[j] = true;
                j += p;
            }
        }
        i += 1;
    }
    let mut count = 1; // 2
    let mut largest = 2;
    for (i, &c) in composite.iter().enumerate().skip(1) {
        if !c {
            count += 1;
            largest = 2 * i as u64 + 1;
        }
    }
    (count, Some(largest))
}

#[cfg(test)]
mod tests {
    use super::sieve;

    /// Trial division, the obviously-right reference.
    fn naive(n: u64) -> (u64, Option<u64>) {
        let primes: Vec<u64> = (2..=n)
            .filter(|&k| (2..k).take_while(|d| d * d <= k).all(|d| k % d != 0))
            .collect();
        (primes.len() as u64, primes.last().copied())
    }

    #[test]
    fn sieve_matches_trial_division() {
        for n in 0..=2_000 {
            assert_eq!(sieve(n), naive(n), "n = {n}");
        }
        assert_eq!(sieve(1_000_000), (78_498, Some(999_983)));
    }
}

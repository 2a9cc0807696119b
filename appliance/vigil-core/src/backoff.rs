//! Jittered exponential backoff for workers that must never give up.

use std::time::Duration;

/// Delays of `base * 2^n`, capped, each scaled by a random factor in 0.5..1.0
/// so a school's cameras that failed together do not retry in lockstep.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `base` up to `cap`, seeded so tests are repeatable.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        // splitmix64 spreads nearby seeds (camera 1, camera 2) apart.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Backoff { base, cap, attempt: 0, rng: (z ^ (z >> 31)) | 1 }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: plenty for jitter, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let factor = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        exp.mul_f64(factor)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let full = Duration::from_millis(100).saturating_mul(1 << n.min(20)).min(Duration::from_secs(5));
            assert!(*d >= full / 2 && *d <= full, "attempt {n}: {d:?} outside {:?}..={full:?}", full / 2);
        }
        assert!(delays[11] >= Duration::from_millis(2500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn different_seeds_give_different_jitter() {
        let a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1).next_delay();
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 2).next_delay();
        assert_ne!(a, b);
    }
}

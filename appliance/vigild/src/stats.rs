//! Latency histogram: fixed buckets, so a box running for years never grows it.

use std::time::Duration;

/// Bucket width.
const STEP_US: u64 = 100;
/// Buckets up to 5 s; slower samples land in the last one.
const BUCKETS: usize = 50_000;

/// A histogram of durations with 0.1 ms resolution.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: Duration,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: Duration::ZERO }
    }
}

impl Histogram {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        let bucket = (d.as_micros() as u64 / STEP_US).min(BUCKETS as u64 - 1) as usize;
        self.counts[bucket] += 1;
        self.total += 1;
        self.max = self.max.max(d);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_micros((i as u64 + 1) * STEP_US).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The samples recorded since `earlier`, a copy of this histogram taken before.
    /// The maximum is the later one's, an upper bound for the interval.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts: Vec<u64> = self.counts.iter().zip(&earlier.counts).map(|(a, b)| a.saturating_sub(*b)).collect();
        let total = counts.iter().sum();
        Histogram { counts, total, max: self.max }
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(50_100)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_micros(99_100)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(h.max(), Duration::from_millis(100));
    }

    #[test]
    fn since_keeps_only_the_later_samples() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(500));
        let before = h.clone();
        h.record(Duration::from_millis(10));
        h.record(Duration::from_millis(20));
        let d = h.since(&before);
        assert_eq!(d.count(), 2);
        assert_eq!(d.quantile(1.0), Some(Duration::from_micros(20_100)));
    }

    #[test]
    fn huge_samples_land_in_the_last_bucket() {
        let mut h = Histogram::default();
        h.record(Duration::from_secs(3600));
        assert_eq!(h.quantile(0.5), Some(Duration::from_secs(5)));
        assert_eq!(h.max(), Duration::from_secs(3600));
    }
}

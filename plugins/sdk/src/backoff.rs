//! Retrying a failed device with exponential backoff, in plugin time.
//!
//! A plugin that polls devices from [`Plugin::on_tick`](crate::Plugin::on_tick)
//! keeps one [`Backoff`] per device (or per output it must drive): it asks
//! [`Backoff::due`] before trying, and reports the outcome with
//! [`Backoff::failed`] or [`Backoff::succeeded`]. The delays come from the
//! operator's [`Retry`] settings, which plugins read from their config as a
//! [`RawRetry`] (`retry = { initial_ms = 1000, max_ms = 30000 }`).
//!
//! Everything here is pure: time comes in as milliseconds (pass
//! [`host::monotonic_ms`](crate::host::monotonic_ms) or the `now_ms` of
//! `on_tick`), so plugins' native unit tests can use it with simulated time.
//! There is no jitter: one plugin retrying its own devices has no herd to
//! spread.
//!
//! ```
//! use vigil_plugin_sdk::backoff::{Backoff, Retry};
//!
//! let retry = Retry { initial_ms: 1000, max_ms: 4000 };
//! let mut backoff = Backoff::default();
//! assert!(backoff.due(0));
//! backoff.failed(0, retry); // the device did not answer
//! assert!(!backoff.due(999) && backoff.due(1000));
//! backoff.failed(1000, retry); // nor the second time: twice the wait
//! assert!(!backoff.due(2999) && backoff.due(3000));
//! backoff.succeeded();
//! assert!(backoff.due(0) && backoff.failures() == 0);
//! ```

use serde::Deserialize;

/// How long to wait before trying a failed device again: `initial_ms` after
/// the first failure, doubling per failure in a row up to `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The delay after the first failure.
    pub initial_ms: u64,
    /// The longest delay.
    pub max_ms: u64,
}

/// [`Retry`] as an operator writes it in a plugin's config, before
/// validation: both fields optional (1000 and 30000 ms), no others allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    /// The delay after the first failure, in milliseconds.
    pub initial_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for RawRetry {
    fn default() -> RawRetry {
        RawRetry { initial_ms: 1_000, max_ms: 30_000 }
    }
}

impl RawRetry {
    /// Checks the settings: `initial_ms` at least 1 and `max_ms` at least
    /// `initial_ms`. `field` names the config field in the error (`retry`).
    pub fn validate(self, field: &str) -> Result<Retry, String> {
        if self.initial_ms == 0 || self.max_ms < self.initial_ms {
            return Err(format!(
                "{field}: initial_ms ({}) must be at least 1 and max_ms ({}) at least initial_ms",
                self.initial_ms, self.max_ms
            ));
        }
        Ok(Retry { initial_ms: self.initial_ms, max_ms: self.max_ms })
    }
}

/// One device's retry state: failures in a row, and when the next attempt is
/// due. The default is a device that has not failed, due at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    next_at_ms: u64,
}

impl Backoff {
    /// Whether an attempt is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_at_ms
    }

    /// A failure at `now_ms`: the next attempt waits `initial_ms`, doubling per
    /// failure in a row up to `max_ms`.
    pub fn failed(&mut self, now_ms: u64, retry: Retry) {
        // The shift is capped so it cannot overflow; the product saturates and `max_ms` bounds it.
        let delay = retry.initial_ms.saturating_mul(1u64 << self.failures.min(32)).min(retry.max_ms);
        self.failures = self.failures.saturating_add(1);
        self.next_at_ms = now_ms.saturating_add(delay);
    }

    /// A success: the next attempt may come at once, and the next failure waits `initial_ms` again.
    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Retry = Retry { initial_ms: 1000, max_ms: 5000 };

    #[test]
    fn a_device_that_never_failed_is_due_at_once() {
        let b = Backoff::default();
        assert!(b.due(0));
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::default();
        b.failed(100, RETRY);
        assert!(!b.due(1099) && b.due(1100));
        b.failed(1100, RETRY);
        assert!(!b.due(3099) && b.due(3100));
        b.failed(3100, RETRY);
        assert!(!b.due(7099) && b.due(7100));
        b.failed(7100, RETRY);
        assert!(!b.due(12_099) && b.due(12_100), "8 s is capped at max_ms");
        assert_eq!(b.failures(), 4);
        b.succeeded();
        assert!(b.due(0) && b.failures() == 0);
        b.failed(20_000, RETRY);
        assert!(!b.due(20_999) && b.due(21_000), "after a success the first wait is initial_ms again");
    }

    #[test]
    fn endless_failures_neither_overflow_nor_exceed_the_maximum() {
        let mut b = Backoff::default();
        for _ in 0..100 {
            b.failed(10_000, RETRY);
        }
        assert!(b.due(15_000) && !b.due(14_999));
        assert_eq!(b.failures(), 100);
        let huge = Retry { initial_ms: u64::MAX / 2, max_ms: u64::MAX };
        b.failed(u64::MAX - 1, huge);
        assert!(b.due(u64::MAX) && !b.due(u64::MAX - 1), "the next time saturates");
    }

    #[test]
    fn raw_retry_defaults_to_one_second_doubling_to_thirty() {
        let raw: RawRetry = serde_json::from_str("{}").unwrap();
        assert_eq!(raw.validate("retry"), Ok(Retry { initial_ms: 1000, max_ms: 30_000 }));
        let raw: RawRetry = serde_json::from_str(r#"{"max_ms": 4000}"#).unwrap();
        assert_eq!(raw.validate("retry"), Ok(Retry { initial_ms: 1000, max_ms: 4000 }));
    }

    #[test]
    fn raw_retry_refuses_unknown_fields_and_bad_delays_naming_the_field() {
        let unknown = serde_json::from_str::<RawRetry>(r#"{"initial": 5}"#).unwrap_err().to_string();
        assert!(unknown.contains("unknown field `initial`"), "{unknown}");
        assert_eq!(
            RawRetry { initial_ms: 0, max_ms: 10 }.validate("retry"),
            Err("retry: initial_ms (0) must be at least 1 and max_ms (10) at least initial_ms".into())
        );
        assert_eq!(
            RawRetry { initial_ms: 10, max_ms: 5 }.validate("poll.retry"),
            Err("poll.retry: initial_ms (10) must be at least 1 and max_ms (5) at least initial_ms".into())
        );
    }
}

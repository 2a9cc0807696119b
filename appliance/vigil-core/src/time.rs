//! Time as the core sees it: a monotonic reading for durations and a wall
//! clock reading for evidence, taken together so they never disagree about
//! which instant they describe.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One instant, read from both clocks at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment {
    /// Monotonic time since the clock's origin; only differences mean anything.
    pub mono: Duration,
    /// Wall-clock time since the Unix epoch; used for evidence and the audit trail.
    pub wall: Duration,
}

impl Moment {
    /// The monotonic time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(&self, earlier: Moment) -> Duration {
        self.mono.saturating_sub(earlier.mono)
    }

    /// The wall-clock time in milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> u64 {
        u64::try_from(self.wall.as_millis()).unwrap_or(u64::MAX)
    }

    /// The wall-clock time as RFC 3339 UTC with milliseconds, e.g. `2026-11-21T04:50:09.123Z`.
    pub fn rfc3339(&self) -> String {
        let secs = self.wall.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days as i64);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.wall.subsec_millis()
        )
    }

    /// This moment shifted forward by `d` on both clocks.
    pub fn plus(&self, d: Duration) -> Moment {
        Moment { mono: self.mono + d, wall: self.wall + d }
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian),
/// after Howard Hinnant's public-domain `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A source of [`Moment`]s, injected so tests can run on simulated time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Moment;
}

/// The real clocks of the machine.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is the moment of this call.
    pub fn new() -> SystemClock {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Moment {
        Moment { mono: self.origin.elapsed(), wall: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() }
    }
}

/// A clock that moves only when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Moment>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Moment) -> ManualClock {
        ManualClock { now: Mutex::new(start) }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.plus(d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Moment {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(secs: u64, ms: u64) -> Moment {
        Moment { mono: Duration::ZERO, wall: Duration::from_secs(secs) + Duration::from_millis(ms) }
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(wall(0, 0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(wall(951_782_400, 5).rfc3339(), "2000-02-29T00:00:00.005Z");
        assert_eq!(wall(1_795_236_609, 123).rfc3339(), "2026-11-21T04:50:09.123Z");
        assert_eq!(wall(4_102_444_799, 999).rfc3339(), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(wall(10, 0));
        assert_eq!(c.now(), wall(10, 0));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now().since(wall(10, 0)), Duration::from_millis(1500));
        assert_eq!(c.now().wall, Duration::from_millis(11_500));
    }
}

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

    /// This moment shifted forward by `d` on both clocks.
    pub fn plus(&self, d: Duration) -> Moment {
        Moment { mono: self.mono + d, wall: self.wall + d }
    }
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
        Moment {
            mono: self.origin.elapsed(),
            wall: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
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

//! The watchdog gate: systemd's keep-alive is sent only while every
//! registered component has shown life recently, so a hung detector or a dead
//! uplink loop makes systemd restart vigild instead of being papered over by
//! a timer thread that is still happily running.
//!
//! [`Gate`] is the pure decision (heartbeats and a time in, a verdict out);
//! [`Watchdog`] is the thread that asks it every half interval and talks to
//! the [`Notifier`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::notify::Notifier;

/// Which registered component a [`Gate`] entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentId(usize);

#[derive(Debug)]
struct Component {
    name: String,
    max_age: Duration,
    last_beat: Instant,
}

/// The liveness of registered components, decided purely from the times they
/// last beat.
#[derive(Debug, Default)]
pub struct Gate {
    components: Vec<Component>,
}

/// What the gate says at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every component beat within its max age: keep systemd's watchdog fed.
    Healthy,
    /// These components have not beaten within their max age: withhold the keep-alive.
    Stale(Vec<Stale>),
}

/// A component that missed its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Its registered name (`detector`, `uplink`, ...).
    pub name: String,
    /// How long since it last beat (or since it registered, if it never did).
    pub silent_for: Duration,
    /// Its allowed maximum.
    pub max_age: Duration,
}

impl Verdict {
    /// The `STATUS=` text for this verdict.
    pub fn status_text(&self) -> String {
        match self {
            Verdict::Healthy => "running; all components alive".to_owned(),
            Verdict::Stale(stale) => {
                let parts: Vec<String> = stale
                    .iter()
                    .map(|s| {
                        format!("{} silent for {}s (max {}s)", s.name, s.silent_for.as_secs(), s.max_age.as_secs())
                    })
                    .collect();
                format!("watchdog withheld: {}", parts.join(", "))
            }
        }
    }
}

impl Gate {
    /// An empty gate (healthy until something registers).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component that must beat at least every `max_age`; its
    /// clock starts at `now`, so one that never beats goes stale too.
    pub fn register(&mut self, name: &str, max_age: Duration, now: Instant) -> ComponentId {
        self.components.push(Component { name: name.to_owned(), max_age, last_beat: now });
        ComponentId(self.components.len() - 1)
    }

    /// Records that `id` showed life at `now`.
    pub fn beat(&mut self, id: ComponentId, now: Instant) {
        if let Some(c) = self.components.get_mut(id.0) {
            c.last_beat = c.last_beat.max(now);
        }
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Instant) -> Verdict {
        let stale: Vec<Stale> = self
            .components
            .iter()
            .filter_map(|c| {
                let silent_for = now.saturating_duration_since(c.last_beat);
                (silent_for > c.max_age).then(|| Stale { name: c.name.clone(), silent_for, max_age: c.max_age })
            })
            .collect();
        if stale.is_empty() { Verdict::Healthy } else { Verdict::Stale(stale) }
    }
}

/// A component's way to say it is alive. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    gate: Arc<Mutex<Gate>>,
    id: ComponentId,
}

impl Heartbeat {
    /// Records life now. Call it where the component does its real work (after
    /// a detector result, after an uplink loop turn), not from a timer.
    pub fn beat(&self) {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner).beat(self.id, Instant::now());
    }
}

/// The thread that feeds systemd's watchdog while the [`Gate`] says healthy.
/// Stops on drop.
#[derive(Debug)]
pub struct Watchdog {
    gate: Arc<Mutex<Gate>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts pinging `notifier` every `interval / 2` while healthy; with
    /// `interval` `None` (watchdog not configured) no thread runs, but
    /// heartbeats and [`Watchdog::verdict`] still work for status reports.
    pub fn start(notifier: Notifier, interval: Option<Duration>) -> Self {
        let gate = Arc::new(Mutex::new(Gate::new()));
        let Some(interval) = interval else { return Self { gate, stop: None, thread: None } };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread_gate = Arc::clone(&gate);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || run(&thread_gate, &notifier, interval / 2, &stopped))
            .ok();
        if thread.is_none() {
            tracing::error!(
                "could not spawn the watchdog thread; systemd will restart vigild when its watchdog expires"
            );
        }
        Self { gate, stop: Some(stop), thread }
    }

    /// Registers a component that must [`Heartbeat::beat`] at least every `max_age`.
    pub fn register(&self, name: &str, max_age: Duration) -> Heartbeat {
        let id = self.gate.lock().unwrap_or_else(PoisonError::into_inner).register(name, max_age, Instant::now());
        Heartbeat { gate: Arc::clone(&self.gate), id }
    }

    /// The gate's verdict now.
    pub fn verdict(&self) -> Verdict {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner).verdict(Instant::now())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(gate: &Mutex<Gate>, notifier: &Notifier, period: Duration, stopped: &mpsc::Receiver<()>) {
    let mut last: Option<Verdict> = None;
    loop {
        let verdict = gate.lock().unwrap_or_else(PoisonError::into_inner).verdict(Instant::now());
        let changed = last.as_ref().map(std::mem::discriminant) != Some(std::mem::discriminant(&verdict));
        let result = match &verdict {
            Verdict::Healthy if changed && last.is_some() => {
                notifier.send(&format!("WATCHDOG=1\nSTATUS={}", verdict.status_text()))
            }
            Verdict::Healthy => notifier.watchdog(),
            Verdict::Stale(stale) => {
                if changed {
                    let names: Vec<&str> = stale.iter().map(|s| s.name.as_str()).collect();
                    tracing::error!(components = ?names, "withholding the systemd watchdog keep-alive");
                }
                notifier.status(&verdict.status_text())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "systemd notify failed");
        }
        last = Some(verdict);
        match stopped.recv_timeout(period) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_is_healthy_only_while_every_component_is_fresh() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut gate = Gate::new();
        assert_eq!(gate.verdict(t0), Verdict::Healthy);
        let detector = gate.register("detector", s(10), t0);
        let uplink = gate.register("uplink", s(30), t0);
        assert_eq!(gate.verdict(t0 + s(10)), Verdict::Healthy, "max age is inclusive");
        let Verdict::Stale(stale) = gate.verdict(t0 + s(11)) else { panic!("detector never beat") };
        assert_eq!(stale, vec![Stale { name: "detector".into(), silent_for: s(11), max_age: s(10) }]);

        gate.beat(detector, t0 + s(11));
        assert_eq!(gate.verdict(t0 + s(12)), Verdict::Healthy);
        gate.beat(detector, t0 + s(25));
        let Verdict::Stale(stale) = gate.verdict(t0 + s(31)) else { panic!("uplink went silent") };
        assert_eq!(stale.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["uplink"]);
        gate.beat(uplink, t0 + s(31));
        assert_eq!(gate.verdict(t0 + s(31)), Verdict::Healthy);
    }

    #[test]
    fn a_late_beat_from_an_older_instant_does_not_move_time_back() {
        let t0 = Instant::now();
        let mut gate = Gate::new();
        let id = gate.register("detector", Duration::from_secs(5), t0);
        gate.beat(id, t0 + Duration::from_secs(8));
        gate.beat(id, t0 + Duration::from_secs(2));
        assert_eq!(gate.verdict(t0 + Duration::from_secs(12)), Verdict::Healthy);
    }

    #[test]
    fn status_text_names_the_stale_component() {
        let v = Verdict::Stale(vec![Stale {
            name: "detector".into(),
            silent_for: Duration::from_secs(12),
            max_age: Duration::from_secs(10),
        }]);
        assert_eq!(v.status_text(), "watchdog withheld: detector silent for 12s (max 10s)");
    }
}

//! Waiting for messages until a deadline, with a one-line progress report
//! on a terminal once the wait is longer than a second.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

use crate::conn::{Conn, Event, Message};
use crate::failure::Failure;
use crate::render;

/// How often the progress line is refreshed.
const TICK: Duration = Duration::from_millis(250);
/// Waits shorter than this show no progress.
const QUIET: Duration = Duration::from_secs(1);

/// A wait for the device, with its deadline and what it waits for.
pub struct Wait {
    what: String,
    started: Instant,
    deadline: Instant,
    /// A publish nobody subscribes to, which the device then cannot answer, and what to say then.
    unheard: Option<(String, String)>,
    progress: Progress,
}

impl Wait {
    /// Waits up to `timeout` for `what` ("lincoln-hs to answer incident.verify").
    pub fn new(what: impl Into<String>, timeout: Duration) -> Wait {
        let started = Instant::now();
        Wait { what: what.into(), started, deadline: started + timeout, unheard: None, progress: Progress::new() }
    }

    /// Ends the wait early, as a timeout saying `why`, if the broker says nobody subscribes to `topic`.
    pub fn unless_unheard(mut self, topic: &str, why: String) -> Wait {
        self.unheard = Some((topic.to_string(), why));
        self
    }

    /// The next message, `None` at the deadline; a lost connection or a
    /// publish the broker refused is a failure.
    pub async fn message(&mut self, conn: &mut Conn) -> Result<Option<Message>, Failure> {
        loop {
            let until = self.deadline.min(Instant::now() + TICK);
            match conn.next(until).await {
                Some(Event::Message(m)) => return Ok(Some(m)),
                Some(Event::Lost(why)) => return Err(Failure::Broker(format!("lost the broker: {why}"))),
                Some(Event::Reconnected) => {}
                Some(Event::NotDelivered { topic, no_subscribers: true, .. }) => {
                    if let Some((_, why)) = self.unheard.as_ref().filter(|(t, _)| *t == topic) {
                        return Err(Failure::TimedOut(why.clone()));
                    }
                }
                Some(Event::NotDelivered { topic, reason, .. }) => {
                    return Err(Failure::Broker(format!(
                        "{} refused the message on {topic}: {reason} (the broker's ACL must let this user publish there; see docs/mqtt.md)",
                        conn.url()
                    )));
                }
                None if Instant::now() >= self.deadline => return Ok(None),
                None => self.progress.show(&self.what, self.started.elapsed()),
            }
        }
    }

    /// Waits up to `timeout` from now, for `what` now: a job that keeps
    /// reporting keeps the wait alive, and the progress line says where it stands.
    pub fn renew(&mut self, what: impl Into<String>, timeout: Duration) {
        self.what = what.into();
        self.deadline = Instant::now() + timeout;
        self.progress.shown = None;
        self.progress.show(&self.what, self.started.elapsed());
    }

    /// Prints a message on stderr without mixing it into the progress line.
    pub fn note(&mut self, text: &str) {
        self.progress.erase();
        eprintln!("{text}");
    }

    /// Prints a result line on stdout without mixing it into the progress line.
    pub fn note_out(&mut self, text: &str) {
        self.progress.erase();
        println!("{text}");
    }
}

/// The progress line on stderr, when stderr is a terminal; erased when dropped.
struct Progress {
    enabled: bool,
    shown: Option<u64>,
}

impl Progress {
    fn new() -> Progress {
        Progress { enabled: std::io::stderr().is_terminal(), shown: None }
    }

    fn show(&mut self, what: &str, elapsed: Duration) {
        let seconds = elapsed.as_secs();
        if !self.enabled || elapsed < QUIET || self.shown == Some(seconds) {
            return;
        }
        self.shown = Some(seconds);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", render::progress(what, seconds));
        let _ = err.flush();
    }

    fn erase(&mut self) {
        if self.shown.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.erase();
    }
}

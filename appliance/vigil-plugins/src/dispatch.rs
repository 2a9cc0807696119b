//! Plugins' answers to action requests. A dispatch is shared by the plugins
//! it went to: each hands its answer straight to the caller's callback (on
//! the plugin's own thread), and the last one ends the dispatch. One
//! long-lived timer thread per host answers `timed out` for every plugin
//! still silent at its dispatch's deadline.
//!
//! Why this shape: a dispatch must return at once (the caller is the
//! incident pipeline); spawning a thread per dispatch cost more than the
//! plugin call itself, and relaying every answer through a collector thread
//! added a wake-up per call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::format_duration;
use crate::types::ActionResult;

/// Called with each plugin's answer, on that plugin's thread (or the timer's):
/// it must not block.
pub(crate) type ReplyFn = Box<dyn Fn(&str, ActionResult) + Send>;

/// One dispatch, shared by the plugins it went to and the timer.
pub(crate) struct Dispatch {
    state: Mutex<Pending>,
    /// When each silent plugin is answered `timed out`.
    give_up: Instant,
}

struct Pending {
    /// The plugins that have not answered, each with its own call deadline.
    waiting: BTreeMap<Arc<str>, Duration>,
    /// Dropped (with whatever it holds) when the dispatch ends.
    reply: Option<ReplyFn>,
    /// Gets the number of answers delivered when the dispatch ends.
    done: Option<Sender<usize>>,
    delivered: usize,
}

impl Dispatch {
    /// A dispatch to `waiting`, answered through `reply`; returns it and the
    /// channel that gets the count of answers when it ends.
    pub(crate) fn new(waiting: BTreeMap<Arc<str>, Duration>, reply: ReplyFn) -> (Arc<Dispatch>, Receiver<usize>) {
        let (done, finished) = crossbeam_channel::bounded(1);
        let longest = waiting.values().max().copied().unwrap_or_default();
        let empty = waiting.is_empty();
        let dispatch = Arc::new(Dispatch {
            state: Mutex::new(Pending { waiting, reply: Some(reply), done: Some(done), delivered: 0 }),
            give_up: Instant::now() + longest + Duration::from_secs(1),
        });
        if empty {
            dispatch.lock().close();
        }
        (dispatch, finished)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `plugin`'s answer; the first answer per plugin counts, later ones are ignored.
    pub(crate) fn answer(&self, plugin: &Arc<str>, result: ActionResult) {
        let mut p = self.lock();
        if p.waiting.remove(plugin).is_none() {
            return;
        }
        if let Some(reply) = &p.reply {
            reply(plugin, result);
            p.delivered += 1;
        }
        if p.waiting.is_empty() {
            p.close();
        }
    }

    /// Answers `timed out` for every plugin still silent and ends the dispatch.
    fn expire(&self) {
        let mut p = self.lock();
        for (plugin, deadline) in std::mem::take(&mut p.waiting) {
            if let Some(reply) = &p.reply {
                reply(&plugin, ActionResult::Failed(format!("timed out after {}", format_duration(deadline))));
                p.delivered += 1;
            }
        }
        p.close();
    }

    fn ended(&self) -> bool {
        self.lock().done.is_none()
    }
}

impl Pending {
    /// Ends the dispatch: the callback (and whatever it holds) is dropped
    /// before the waiter hears the count.
    fn close(&mut self) {
        self.reply = None;
        if let Some(done) = self.done.take() {
            let _ = done.send(self.delivered);
        }
    }
}

/// Where one plugin sends its answer to one dispatch.
#[derive(Clone)]
pub(crate) struct Reply(pub(crate) Arc<Dispatch>);

impl Reply {
    pub(crate) fn send(&self, plugin: Arc<str>, result: ActionResult) {
        self.0.answer(&plugin, result);
    }
}

/// The timer thread; stops when the host drops it, after timing out every
/// dispatch still open (the plugins' workers have stopped by then).
pub(crate) struct Timer {
    tx: Option<Sender<Arc<Dispatch>>>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    pub(crate) fn spawn() -> std::io::Result<Timer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("vigil-plugin-timer".into()).spawn(move || watch(&rx))?;
        Ok(Timer { tx: Some(tx), thread: Some(thread) })
    }

    /// Times `dispatch` out at its deadline unless it ends first.
    pub(crate) fn watch(&self, dispatch: Arc<Dispatch>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(dispatch);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(rx: &Receiver<Arc<Dispatch>>) {
    let mut open: Vec<Arc<Dispatch>> = Vec::new();
    loop {
        open.retain(|d| !d.ended());
        let next = open.iter().map(|d| d.give_up).min();
        let msg = match next {
            Some(at) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(d) => open.push(d),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for d in open {
                    d.expire();
                }
                return;
            }
        }
        let now = Instant::now();
        for d in open.iter().filter(|d| d.give_up <= now) {
            d.expire();
        }
    }
}

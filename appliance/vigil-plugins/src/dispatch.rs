//! Collects plugins' answers to action requests: one long-lived thread per
//! host that matches answers to their dispatch, hands each to the caller's
//! callback as it arrives, and answers `timed out` for every plugin still
//! silent at its dispatch's deadline.
//!
//! Why a thread of its own: a dispatch must return at once (the caller is the
//! incident pipeline), and spawning a thread per dispatch cost more than the
//! plugin call itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::format_duration;
use crate::types::ActionResult;

/// Called with each plugin's answer, on the collector's thread: it must not block.
pub(crate) type ReplyFn = Box<dyn Fn(&str, ActionResult) + Send>;

/// What reaches the collector.
pub(crate) enum Collected {
    /// A new dispatch: who must answer, by when, and where answers go.
    Start { id: u64, pending: Pending },
    /// One plugin's answer to dispatch `id`.
    Answer { id: u64, plugin: Arc<str>, result: ActionResult },
}

/// A dispatch still waiting for answers.
pub(crate) struct Pending {
    /// The plugins that have not answered, each with its own call deadline.
    pub(crate) waiting: BTreeMap<Arc<str>, Duration>,
    /// When each silent plugin is answered `timed out`.
    pub(crate) give_up: Instant,
    pub(crate) reply: ReplyFn,
    /// Gets the number of answers delivered when the dispatch is over.
    pub(crate) done: Sender<usize>,
    pub(crate) delivered: usize,
}

/// Where one plugin sends its answer to one dispatch.
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) id: u64,
    pub(crate) tx: Sender<Collected>,
}

impl Reply {
    pub(crate) fn send(&self, plugin: Arc<str>, result: ActionResult) {
        // The collector outlives every actor; a send error means the host is
        // shutting down and nobody waits for the answer.
        let _ = self.tx.send(Collected::Answer { id: self.id, plugin, result });
    }
}

/// The collector thread; stops when the host (the last sender) is dropped.
pub(crate) struct Collector {
    tx: Option<Sender<Collected>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    pub(crate) fn spawn() -> std::io::Result<Collector> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("vigil-plugin-answers".into()).spawn(move || collect(&rx))?;
        Ok(Collector { tx: Some(tx), thread: Some(thread) })
    }

    pub(crate) fn sender(&self) -> Sender<Collected> {
        self.tx.clone().expect("the collector's sender lives until drop")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn collect(rx: &Receiver<Collected>) {
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    loop {
        let next = pending.values().map(|p| p.give_up).min();
        let msg = match next {
            Some(at) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Collected::Start { id, pending: p }) => {
                if p.waiting.is_empty() {
                    p.close();
                } else {
                    pending.insert(id, p);
                }
            }
            Ok(Collected::Answer { id, plugin, result }) => {
                if let Some(p) = pending.get_mut(&id)
                    && p.waiting.remove(&plugin).is_some()
                {
                    (p.reply)(&plugin, result);
                    p.delivered += 1;
                    if p.waiting.is_empty()
                        && let Some(p) = pending.remove(&id)
                    {
                        p.close();
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The host is gone: actors were stopped first, so every answer
            // that will ever come has come. Time out the rest now.
            Err(RecvTimeoutError::Disconnected) => {
                for (_, p) in std::mem::take(&mut pending) {
                    finish(p);
                }
                return;
            }
        }
        let now = Instant::now();
        let expired: Vec<u64> = pending.iter().filter(|(_, p)| p.give_up <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(p) = pending.remove(&id) {
                finish(p);
            }
        }
    }
}

/// Answers `timed out` for every plugin still silent and ends the dispatch.
fn finish(mut p: Pending) {
    for (plugin, deadline) in std::mem::take(&mut p.waiting) {
        (p.reply)(&plugin, ActionResult::Failed(format!("timed out after {}", format_duration(deadline))));
        p.delivered += 1;
    }
    p.close();
}

impl Pending {
    /// Ends the dispatch: the callback (and whatever it holds) is dropped
    /// before the waiter hears the count.
    fn close(self) {
        let Pending { reply, done, delivered, .. } = self;
        drop(reply);
        let _ = done.send(delivered);
    }
}

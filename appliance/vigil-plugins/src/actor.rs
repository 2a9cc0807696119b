//! One plugin's worker: an OS thread that owns the plugin's `Store`, takes
//! calls from a bounded channel, runs each under an epoch deadline, and
//! rebuilds the instance after a crash (with backoff and a circuit breaker).
//!
//! Architecture Invariant: nothing outside this thread touches the store; a
//! plugin that spins, traps or runs out of memory costs its own thread only.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use wasmtime::{Store, Trap};

use crate::dispatch::Reply;
use crate::host::{self, HostState, v0_1_0};
use crate::runtime::{EPOCH_TICK, Runtime, Sandbox};
use crate::types::{ActionRequest, ActionResult, Event};
use crate::{Limits, format_duration};

/// How many calls may wait for one plugin before more are refused.
const QUEUE: usize = 64;
/// The window of the circuit breaker.
const CRASH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A call for a plugin.
pub(crate) enum Msg {
    Event(Event),
    Action(ActionRequest, Reply),
    Tick(u64),
}

/// Where a plugin is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluginState {
    /// Instantiating and running `init`.
    Starting,
    /// Answering calls.
    Running,
    /// Crashed; a new instance comes after a backoff.
    Restarting {
        /// What the crash was.
        reason: String,
    },
    /// Not running: init failed, too many crashes, or an operator said so.
    Disabled {
        /// Why, in words.
        reason: String,
    },
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginState::Starting => f.write_str("starting"),
            PluginState::Running => f.write_str("running"),
            PluginState::Restarting { reason } => write!(f, "restarting: {reason}"),
            PluginState::Disabled { reason } => write!(f, "disabled: {reason}"),
        }
    }
}

/// Counters for one plugin since the host started it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Calls into the plugin (init, events, actions, ticks).
    pub calls: u64,
    /// Calls that failed: a trap or a `failed` result.
    pub errors: u64,
    /// Calls that trapped (including deadlines and the memory limit).
    pub traps: u64,
    /// Instances rebuilt after a crash.
    pub restarts: u64,
    /// Calls refused because its queue was full.
    pub dropped: u64,
    /// Network accesses the sandbox refused.
    pub denied_connects: u64,
    /// Latency of the last call, µs.
    pub last_latency_us: u64,
    /// Mean call latency, µs.
    pub avg_latency_us: u64,
    /// Linear memory the current instance holds, bytes.
    pub memory_bytes: u64,
}

/// What the host and the worker share about a plugin.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: PluginState,
    pub(crate) metrics: Metrics,
    total_latency_us: u64,
}

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

pub(crate) fn lock(shared: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn new_shared(state: PluginState) -> SharedRef {
    Arc::new(Mutex::new(Shared { state, metrics: Metrics::default(), total_latency_us: 0 }))
}

/// The handle on a running worker thread.
pub(crate) struct Actor {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Actor {
    pub(crate) fn spawn(
        runtime: Arc<Runtime>,
        pre: v0_1_0::VigilPluginPre<HostState>,
        sandbox: Sandbox,
        limits: Limits,
        shared: SharedRef,
    ) -> std::io::Result<Actor> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let name = format!("plugin-{}", sandbox.name);
        let rt = io_runtime()?;
        let worker = Worker {
            runtime,
            rt,
            pre,
            sandbox,
            limits,
            shared,
            live: None,
            crashes: VecDeque::new(),
            backoff: Duration::ZERO,
            retry_at: None,
        };
        let thread = std::thread::Builder::new().name(name).spawn(move || worker.run(rx))?;
        Ok(Actor { tx: Some(tx), thread: Some(thread) })
    }

    /// Queues a call without waiting; false if its queue is full.
    pub(crate) fn send(&self, msg: Msg) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.try_send(msg).is_ok())
    }
}

impl Drop for Actor {
    /// Stops the worker after the call in progress (bounded by its deadline).
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct Live {
    store: Store<HostState>,
    bindings: v0_1_0::VigilPlugin,
}

struct Worker {
    runtime: Arc<Runtime>,
    /// Drives this plugin's calls and its WASI I/O, on the worker's thread.
    rt: tokio::runtime::Runtime,
    pre: v0_1_0::VigilPluginPre<HostState>,
    sandbox: Sandbox,
    limits: Limits,
    shared: SharedRef,
    live: Option<Live>,
    crashes: VecDeque<Instant>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        self.start();
        loop {
            let msg = match self.retry_at {
                Some(at) => match rx.recv_deadline(at) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                self.retry_at = None;
                lock(&self.shared).metrics.restarts += 1;
                self.start();
            }
            if let Some(msg) = msg {
                self.handle(msg);
            }
        }
    }

    /// Instantiates and calls `init`; any failure disables the plugin.
    fn start(&mut self) {
        lock(&self.shared).state = PluginState::Starting;
        let started = Instant::now();
        match instantiate(&self.rt, &self.runtime, &self.pre, &self.sandbox) {
            Ok(live) => {
                self.record(started, live.store.data(), false, false);
                self.live = Some(live);
                lock(&self.shared).state = PluginState::Running;
            }
            Err(reason) => self.disable(reason),
        }
    }

    fn handle(&mut self, msg: Msg) {
        if self.live.is_none() {
            let state = lock(&self.shared).state.clone();
            if let Msg::Action(_, reply) = msg {
                reply.send(self.sandbox.name.clone(), ActionResult::Failed(format!("plugin is {state}")));
            }
            return;
        }
        let Some(mut live) = self.live.take() else { return };
        let deadline = self.sandbox.call_deadline;
        arm(&mut live.store, deadline);
        let started = Instant::now();
        let (call, reply) = match msg {
            Msg::Event(e) => (Call::Event(e), None),
            Msg::Tick(now) => (Call::Tick(now), None),
            Msg::Action(request, reply) => (Call::Action(request), Some(reply)),
        };
        let outcome = self.rt.block_on(overdue(deadline, async {
            let plugin = live.bindings.vigil_plugin_plugin();
            match call {
                Call::Event(e) => plugin.call_on_event(&mut live.store, &host::event(&e)).await.map(|()| None),
                Call::Tick(now) => plugin.call_on_tick(&mut live.store, now).await.map(|()| None),
                Call::Action(request) => plugin
                    .call_on_action(&mut live.store, &host::action_request(&request))
                    .await
                    .map(|r| Some(host::action_result(r))),
            }
        }));
        let failed = matches!(outcome, Ok(Some(ActionResult::Failed(_))));
        self.record(started, live.store.data(), outcome.is_err() || failed, outcome.is_err());
        let result = match outcome {
            Ok(result) => {
                self.live = Some(live);
                self.backoff = Duration::ZERO;
                result
            }
            Err(e) => {
                let reason = describe(&e, deadline);
                tracing::warn!(plugin = &*self.sandbox.name, %reason, "plugin crashed; its instance is torn down");
                drop(live);
                self.crashed(reason.clone());
                Some(ActionResult::Failed(reason))
            }
        };
        if let (Some(reply), Some(result)) = (reply, result) {
            reply.send(self.sandbox.name.clone(), result);
        }
    }

    fn record(&self, started: Instant, state: &HostState, error: bool, trap: bool) {
        let us = started.elapsed().as_micros() as u64;
        let mut shared = lock(&self.shared);
        shared.total_latency_us += us;
        let m = &mut shared.metrics;
        m.calls += 1;
        m.errors += u64::from(error);
        m.traps += u64::from(trap);
        m.last_latency_us = us;
        m.memory_bytes = state.memory.used as u64;
        m.denied_connects = self.sandbox.denied_connects.load(Ordering::Relaxed);
        let total = shared.total_latency_us;
        shared.metrics.avg_latency_us = total / shared.metrics.calls;
    }

    fn crashed(&mut self, reason: String) {
        let now = Instant::now();
        self.crashes.push_back(now);
        while self.crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            self.crashes.pop_front();
        }
        if self.crashes.len() >= self.limits.crash_limit {
            self.disable(format!("crashed {} times within 5 minutes; last: {reason}", self.crashes.len()));
            return;
        }
        // The first crash restarts at once (a plugin that trapped on one bad
        // event is back for the next); crashes in a row back off, doubling.
        self.retry_at = Some(now + self.backoff);
        self.backoff = if self.backoff.is_zero() {
            self.limits.restart_backoff
        } else {
            (self.backoff * 2).min(self.limits.max_backoff)
        }
        .min(self.limits.max_backoff);
        lock(&self.shared).state = PluginState::Restarting { reason };
    }

    fn disable(&mut self, reason: String) {
        tracing::error!(plugin = &*self.sandbox.name, %reason, "plugin disabled");
        self.live = None;
        self.retry_at = None;
        lock(&self.shared).state = PluginState::Disabled { reason };
    }
}

/// What a call asks of the plugin.
enum Call {
    Event(Event),
    Tick(u64),
    Action(ActionRequest),
}

/// A call still blocked in the host (in WASI I/O: a socket read, an HTTP
/// response, a sleep) when its deadline passed; the epoch deadline only
/// interrupts guest code.
#[derive(Debug)]
struct Overdue(Duration);

impl fmt::Display for Overdue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {} waiting on I/O", format_duration(self.0))
    }
}

impl std::error::Error for Overdue {}

/// Runs `call`, cancelling it if it is still pending a little after
/// `deadline` (guest code past the deadline traps on the epoch first).
async fn overdue<T>(deadline: Duration, call: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    match tokio::time::timeout(deadline + 2 * EPOCH_TICK, call).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::new(Overdue(deadline))),
    }
}

/// The runtime a worker drives its calls on: one thread, with the I/O and
/// timer drivers WASI sockets and `tokio::time` need.
pub(crate) fn io_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()
}

/// Builds a fresh instance and runs `init` under the call deadline: the
/// health check at install and every (re)start.
pub(crate) fn instantiate(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    pre: &v0_1_0::VigilPluginPre<HostState>,
    sandbox: &Sandbox,
) -> Result<Live, String> {
    let deadline = sandbox.call_deadline;
    let mut store = runtime.store(sandbox).map_err(|e| format!("cannot build its sandbox: {e:#}"))?;
    arm(&mut store, deadline);
    rt.block_on(async {
        let bindings = overdue(deadline, pre.instantiate_async(&mut store))
            .await
            .map_err(|e| format!("cannot instantiate: {}", describe(&e, deadline)))?;
        match overdue(deadline, bindings.vigil_plugin_plugin().call_init(&mut store)).await {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(reason)) => Err(format!("init failed: {reason}")),
            Err(e) => Err(format!("init crashed: {}", describe(&e, deadline))),
        }
    })
}

fn arm(store: &mut Store<HostState>, deadline: Duration) {
    let ticks = deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()).max(1);
    store.set_epoch_deadline(ticks as u64);
}

/// Says in words why a call failed.
pub(crate) fn describe(e: &wasmtime::Error, deadline: Duration) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("timed out after {}", format_duration(deadline)),
        Some(Trap::StackOverflow) => "trapped: stack overflow".into(),
        Some(trap) => format!("trapped: {trap}"),
        None => match e.downcast_ref::<Overdue>() {
            Some(overdue) => overdue.to_string(),
            None => e.root_cause().to_string(),
        },
    }
}

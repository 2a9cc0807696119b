//! The plugin host benchmark: vigil-plugins with the real test components
//! (`plugins/testing/good` and `panicky`), against a native `dyn Trait`
//! action handler measured the same way in the same run.
//!
//! - Call: one action request carrying a full incident, `dispatch_action`
//!   then `wait`, to the good plugin (which counts the call in its KV store,
//!   a fsynced file, and publishes a status); the reference is a no-op native
//!   handler called directly, and again behind the same hand-off as
//!   `dispatch_action` (a bounded channel to a worker thread, which answers
//!   on a per-dispatch channel `wait` reads).
//! - Instantiation: the panicky plugin's worker rebuilding its instance from
//!   the `InstancePre` after a trap (store, instantiation, its empty `init`),
//!   as the worker itself times it (`Metrics::last_latency_us` of the start).
//! - Restart: from the trap's reply to the plugin listed `Running` again:
//!   a first crash (restarted at once; crashes in a row back off from
//!   100 ms), and 200 crashes in a row with the backoff set to zero.
//! - Idle memory: VmRSS before and after installing 20 good plugins.
//! - Fan-out: one action to 20 subscribed good plugins until all answered.
//!
//! - The same call to the template plugin, which answers without writing
//!   its KV store (it logs the request through `host.log`).
//!
//! State folders live on tmpfs (`/dev/shm`) unless told otherwise, so the KV
//! store's fsync costs what tmpfs makes it cost; `plugin_call_disk_us` is the
//! same call with the state on the disk `TMPDIR` names.
//!
//! `cargo run --release -p vigil-bench --bin plugins -- [--calls 5000] [--wasm-dir DIR] [--json]`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use crossbeam_channel::{Receiver, Sender};
use vigil_plugins::package::{self, Capabilities, Manifest, SigningKey};
use vigil_plugins::{
    ActionRequest, ActionResult, Directive, HostConfig, Incident, Limits, Location, PluginHost, PluginInfo,
    PluginState, SrpAction,
};

/// Plugins installed for the idle memory and fan-out measurements.
const FLEET: usize = 20;
/// Restarts measured with the default backoff; each needs a fresh plugin,
/// since the backoff doubles per crash.
const DEFAULT_BACKOFF_RESTARTS: usize = 5;
/// Restarts measured with no backoff.
const ZERO_BACKOFF_RESTARTS: usize = 200;
/// Calls with the state folder on disk, where each costs a real fsync.
const DISK_CALLS: usize = 500;
/// Fan-out rounds to 20 plugins.
const FANOUT_ROUNDS: usize = 1000;
/// How long a plugin may take to reach a state.
const STATE_WAIT: Duration = Duration::from_secs(30);

struct Args {
    calls: usize,
    wasm_dir: PathBuf,
    json: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        calls: 5000,
        wasm_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release"),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--calls" => a.calls = value()?.parse().context("--calls")?,
            "--wasm-dir" => a.wasm_dir = value()?.into(),
            "--json" => a.json = true,
            other => bail!("unknown argument {other:?}; usage: plugins [--calls 5000] [--wasm-dir DIR] [--json]"),
        }
    }
    if a.calls < 2000 {
        bail!("--calls must be at least 2000 for a stable median");
    }
    Ok(a)
}

/// Signs packages and starts hosts, each on a state folder of its own.
struct Bench {
    key: SigningKey,
    trusted: package::VerifyingKey,
    good: Vec<u8>,
    panicky: Vec<u8>,
    template: Vec<u8>,
    /// Where state folders go: tmpfs if there is one.
    state_root: PathBuf,
}

impl Bench {
    fn new(wasm_dir: &Path) -> anyhow::Result<Bench> {
        let read = |name: &str| {
            let path = wasm_dir.join(format!("{name}.wasm"));
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {}; build the test components with \
                     `cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml`",
                    path.display()
                )
            })
        };
        let (key, trusted) = package::keygen();
        let shm = Path::new("/dev/shm");
        let state_root = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        Ok(Bench {
            key,
            trusted,
            good: read("vigil_test_good")?,
            panicky: read("vigil_test_panicky")?,
            template: read("vigil_plugin_template")?,
            state_root,
        })
    }

    fn host(&self, limits: Limits, root: &Path) -> anyhow::Result<(PluginHost, tempfile::TempDir)> {
        let state = tempfile::Builder::new().prefix("vigil-plugins-bench").tempdir_in(root)?;
        let config = HostConfig {
            state_dir: state.path().to_path_buf(),
            trusted_keys: vec![self.trusted],
            limits,
            grants: BTreeMap::new(),
        };
        Ok((PluginHost::new(config)?, state))
    }

    /// Installs a component under `name`, subscribed to `actions`, and waits until it runs.
    fn install(&self, host: &PluginHost, name: &str, component: &[u8], actions: &[&str]) -> anyhow::Result<()> {
        let manifest = Manifest {
            name: name.into(),
            version: "1".into(),
            wit: "0.1.0".into(),
            description: String::new(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            capabilities: Capabilities::default(),
            config_schema: serde_json::Value::Null,
        };
        host.install(&package::build(&manifest, component, &self.key)).with_context(|| format!("installing {name}"))?;
        wait_for(host, name, |p| p.state == PluginState::Running)?;
        Ok(())
    }
}

fn info(host: &PluginHost, name: &str) -> anyhow::Result<PluginInfo> {
    host.list().into_iter().find(|p| p.name == name).with_context(|| format!("{name} is not listed"))
}

/// Polls (without sleeping, for the restart timings' sake) until `ok`.
fn wait_for(host: &PluginHost, name: &str, ok: impl Fn(&PluginInfo) -> bool) -> anyhow::Result<PluginInfo> {
    let give_up = Instant::now() + STATE_WAIT;
    loop {
        let p = info(host, name)?;
        if ok(&p) {
            return Ok(p);
        }
        if let PluginState::Disabled { reason } = &p.state {
            bail!("{name} was disabled: {reason}");
        }
        ensure!(Instant::now() < give_up, "{name} stuck in {}", p.state);
        std::thread::yield_now();
    }
}

/// An action request with every incident field filled in, as the supervisor sends them.
fn request(id: u64) -> ActionRequest {
    ActionRequest {
        incident: Incident {
            id,
            camera: "cam-01".into(),
            camera_name: "Main hall, north entrance".into(),
            location: Location { building: "Main building".into(), floor: "Ground".into(), zone: "Hall".into() },
            label: "handgun".into(),
            score: 0.91,
            drill: false,
            stage: "verified".into(),
            active: vec![SrpAction::Secure, SrpAction::Lockdown],
        },
        directive: Directive::Activate(SrpAction::Lockdown),
        actor: "operator:frontdesk".into(),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// One action to every subscribed plugin, until all answered; how many said `Done`.
fn dispatch(host: &PluginHost, request: &ActionRequest) -> usize {
    let done = Arc::new(AtomicUsize::new(0));
    let count = done.clone();
    host.dispatch_action(request, move |_, result| {
        if matches!(result, ActionResult::Done(_)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
    .wait();
    done.load(Ordering::Relaxed)
}

struct Calls {
    /// Round trips, µs.
    round_trip: Vec<f64>,
    /// The guest call alone, as the worker timed it, µs.
    guest: Vec<f64>,
}

/// `n` round trips to the one plugin `name` on `host`, after a warm-up.
fn plugin_calls(host: &PluginHost, name: &str, n: usize) -> anyhow::Result<Calls> {
    let payload = request(1);
    for _ in 0..n / 10 {
        ensure!(dispatch(host, &payload) == 1, "{name} did not answer done");
    }
    let mut calls = Calls { round_trip: Vec::with_capacity(n), guest: Vec::with_capacity(n) };
    for _ in 0..n {
        let started = Instant::now();
        let done = dispatch(host, &payload);
        calls.round_trip.push(micros(started.elapsed()));
        ensure!(done == 1, "{name} did not answer done");
        // The worker records the call before it replies.
        calls.guest.push(info(host, name)?.metrics.last_latency_us as f64);
    }
    Ok(calls)
}

/// The native reference: what a plugin would be as a Rust trait object.
trait ActionHandler: Send {
    fn on_action(&mut self, request: ActionRequest) -> ActionResult;
}

/// Answers like the good plugin, without its KV store or status.
struct NoOp;

impl ActionHandler for NoOp {
    fn on_action(&mut self, request: ActionRequest) -> ActionResult {
        ActionResult::Done(format!("ok {}", request.incident.id))
    }
}


/// A native handler behind the same hand-off as `PluginHost::dispatch_action`:
/// its own worker thread fed by a bounded channel, which hands the answer
/// to a per-dispatch channel the caller waits on (the host's callback and
/// `wait`, without the timer's bookkeeping).
struct NativeWorker {
    tx: Option<Sender<(ActionRequest, Sender<usize>)>>,
    thread: Option<JoinHandle<()>>,
}

impl NativeWorker {
    fn spawn(mut handler: Box<dyn ActionHandler>) -> NativeWorker {
        let (tx, rx): (_, Receiver<(ActionRequest, Sender<usize>)>) = crossbeam_channel::bounded(64);
        let name: Arc<str> = "native".into();
        let thread = std::thread::spawn(move || {
            for (request, done) in rx {
                let result = handler.on_action(request);
                black_box((&*name, &result));
                let _ = done.send(usize::from(matches!(result, ActionResult::Done(_))));
            }
        });
        NativeWorker { tx: Some(tx), thread: Some(thread) }
    }

    fn dispatch(&self, request: &ActionRequest) -> anyhow::Result<Receiver<usize>> {
        let (done, finished) = crossbeam_channel::bounded(1);
        let worker = self.tx.as_ref().context("the native worker stopped")?;
        ensure!(worker.try_send((request.clone(), done)).is_ok(), "the native worker's queue is full");
        Ok(finished)
    }
}

impl Drop for NativeWorker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Native {
    direct: Vec<f64>,
    handoff: Vec<f64>,
    spawn_join: Vec<f64>,
}

fn native_calls(n: usize) -> anyhow::Result<Native> {
    let payload = request(1);
    let mut handler: Box<dyn ActionHandler> = Box::new(NoOp);
    let mut direct = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let started = Instant::now();
        let result = black_box(&mut handler).on_action(black_box(&payload).clone());
        let elapsed = started.elapsed();
        black_box(result);
        if i >= n / 10 {
            direct.push(micros(elapsed));
        }
    }
    let worker = NativeWorker::spawn(Box::new(NoOp));
    let mut handoff = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let started = Instant::now();
        let done = worker.dispatch(&payload)?.recv().map_err(|_| anyhow::anyhow!("the collector stopped"))?;
        let elapsed = started.elapsed();
        ensure!(done == 1, "the native handler did not answer done");
        if i >= n / 10 {
            handoff.push(micros(elapsed));
        }
    }
    let mut spawn_join = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        std::thread::spawn(|| black_box(0)).join().map_err(|_| anyhow::anyhow!("an empty thread panicked"))?;
        spawn_join.push(micros(started.elapsed()));
    }
    Ok(Native { direct, handoff, spawn_join })
}

struct Restarts {
    /// From the trap's reply to `Running` again, ms.
    restart_ms: Vec<f64>,
    /// The worker's own timing of the new instance (store, instantiation, `init`), µs.
    instantiate_us: Vec<f64>,
}

/// Crashes `name` `n` times; each time, waits for it to run again.
fn restarts(host: &PluginHost, name: &str, n: usize, before: u64) -> anyhow::Result<Restarts> {
    let mut r = Restarts { restart_ms: Vec::with_capacity(n), instantiate_us: Vec::with_capacity(n) };
    for i in 0..n as u64 {
        let trapped = Arc::new(std::sync::Mutex::new(None));
        let at = trapped.clone();
        host.dispatch_action(&request(i), move |_, result| {
            if matches!(&result, ActionResult::Failed(reason) if reason.starts_with("trapped")) {
                *at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            }
        })
        .wait();
        let trap =
            trapped.lock().unwrap_or_else(|p| p.into_inner()).take().context("the panicky plugin did not trap")?;
        let again = wait_for(host, name, |p| p.state == PluginState::Running && p.metrics.restarts == before + i + 1)?;
        r.restart_ms.push(trap.elapsed().as_secs_f64() * 1000.0);
        r.instantiate_us.push(again.metrics.last_latency_us as f64);
    }
    Ok(r)
}

/// The process's resident set (VmRSS), MiB.
fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib / 1024.0)
}

/// Gives freed heap (the compiler's scratch memory, mostly) back to the OS.
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory at the allocator's top
    // and in its free lists; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let bench = Bench::new(&args.wasm_dir)?;
    let mut doc = serde_json::Map::new();
    let mut put = |key: &str, value: f64| {
        doc.insert(key.into(), serde_json::json!(round(value)));
    };

    // First, in a process that has not compiled anything else yet: one
    // unsubscribed plugin pays the engine's and compiler's one-time costs.
    eprintln!("plugins: idle memory and fan-out, {FLEET} good plugins");
    let (fleet, _fleet_state) = bench.host(Limits::default(), &bench.state_root)?;
    bench.install(&fleet, "warm-up", &bench.good, &[])?;
    trim_heap();
    let before = rss_mib()?;
    for i in 0..FLEET {
        bench.install(&fleet, &format!("good-{i:02}"), &bench.good, &["*"])?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let untrimmed = rss_mib()?;
    trim_heap();
    let after = rss_mib()?;
    let fleet_info: Vec<PluginInfo> = fleet.list().into_iter().filter(|p| p.name.starts_with("good-")).collect();
    let memory_bytes = fleet_info.iter().map(|p| p.metrics.memory_bytes).sum::<u64>() as f64 / FLEET as f64;
    put("plugin_idle_mib", (untrimmed - before) / FLEET as f64);
    put("plugin_idle_trimmed_mib", (after - before) / FLEET as f64);
    put("plugin_memory_bytes_mib", memory_bytes / f64::from(1 << 20));
    let payload = request(7);
    for _ in 0..FANOUT_ROUNDS / 10 {
        ensure!(dispatch(&fleet, &payload) == FLEET, "not every plugin answered done");
    }
    let mut fanout = Vec::with_capacity(FANOUT_ROUNDS);
    for _ in 0..FANOUT_ROUNDS {
        let started = Instant::now();
        let done = dispatch(&fleet, &payload);
        fanout.push(micros(started.elapsed()));
        ensure!(done == FLEET, "{} of {FLEET} plugins answered done", done);
    }
    put("dispatch20_us", quantile(&mut fanout, 0.5));
    put("dispatch20_p99_us", quantile(&mut fanout, 0.99));
    drop(fleet);

    eprintln!("plugins: {} calls to the good plugin, and to a native handler", args.calls);
    let (host, _state) = bench.host(Limits::default(), &bench.state_root)?;
    bench.install(&host, "good", &bench.good, &["*"])?;
    // The worker's first start, timed by itself: store, instantiation and
    // an `init` that writes the KV store once.
    put("plugin_start_good_us", info(&host, "good")?.metrics.last_latency_us as f64);
    let mut calls = plugin_calls(&host, "good", args.calls)?;
    put("plugin_call_kv_us", quantile(&mut calls.round_trip, 0.5));
    put("plugin_call_kv_p99_us", quantile(&mut calls.round_trip, 0.99));
    put("plugin_guest_call_kv_us", quantile(&mut calls.guest, 0.5));
    drop(host);
    // The template answers without touching its KV store: the call's own cost.
    let (host, _state) = bench.host(Limits::default(), &bench.state_root)?;
    bench.install(&host, "template", &bench.template, &["*"])?;
    let mut calls = plugin_calls(&host, "template", args.calls)?;
    // The headline: host → guest → host with an incident payload, nothing else.
    put("plugin_call_us", quantile(&mut calls.round_trip, 0.5));
    put("plugin_call_p99_us", quantile(&mut calls.round_trip, 0.99));
    put("plugin_guest_call_us", quantile(&mut calls.guest, 0.5));
    drop(host);
    let mut native = native_calls(args.calls)?;
    put("native_call_us", quantile(&mut native.direct, 0.5));
    put("native_handoff_call_us", quantile(&mut native.handoff, 0.5));
    put("native_handoff_call_p99_us", quantile(&mut native.handoff, 0.99));
    put("thread_spawn_join_us", quantile(&mut native.spawn_join, 0.5));

    eprintln!("plugins: {DISK_CALLS} calls with the state folder on disk");
    let (disk, _disk_state) = bench.host(Limits::default(), &std::env::temp_dir())?;
    bench.install(&disk, "good", &bench.good, &["*"])?;
    let mut on_disk = plugin_calls(&disk, "good", DISK_CALLS)?;
    put("plugin_call_disk_us", quantile(&mut on_disk.round_trip, 0.5));
    drop(disk);

    eprintln!(
        "plugins: restarts, {DEFAULT_BACKOFF_RESTARTS} with the default backoff, {ZERO_BACKOFF_RESTARTS} with none"
    );
    let default_limits = Limits::default();
    let (host, _state) = bench.host(default_limits, &bench.state_root)?;
    let mut slow = Vec::new();
    for i in 0..DEFAULT_BACKOFF_RESTARTS {
        let name = format!("panicky-{i}");
        bench.install(&host, &name, &bench.panicky, &["lockdown"])?;
        let r = restarts(&host, &name, 1, 0)?;
        // Only this one may hear the next lockdown.
        host.remove(&name)?;
        slow.extend(r.restart_ms);
    }
    drop(host);
    let zero = Limits {
        restart_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        crash_limit: usize::MAX,
        ..Limits::default()
    };
    let (host, _state) = bench.host(zero, &bench.state_root)?;
    bench.install(&host, "panicky", &bench.panicky, &["*"])?;
    let mut fast = restarts(&host, "panicky", ZERO_BACKOFF_RESTARTS, 0)?;
    drop(host);
    put("plugin_restart_ms", quantile(&mut slow, 0.5));
    put("plugin_restart_backoff_ms", default_limits.restart_backoff.as_secs_f64() * 1000.0);
    put("plugin_restart_zero_backoff_ms", quantile(&mut fast.restart_ms, 0.5));
    put("plugin_restart_zero_backoff_p99_ms", quantile(&mut fast.restart_ms, 0.99));
    put("plugin_instantiate_us", quantile(&mut fast.instantiate_us, 0.5));
    put("plugin_instantiate_p99_us", quantile(&mut fast.instantiate_us, 0.99));

    doc.insert("calls".into(), serde_json::json!(args.calls));
    doc.insert("state_dir".into(), serde_json::json!(bench.state_root.display().to_string()));
    let doc = serde_json::Value::Object(doc);
    if args.json {
        println!("{doc}");
    } else {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

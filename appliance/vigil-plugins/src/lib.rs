//! The plugin host: installs signed WebAssembly component packages, runs each
//! plugin in its own sandbox and thread, and dispatches incident events and
//! SRP action requests to them.
//!
//! Architecture Invariant: this is the only crate that knows wasmtime. Its
//! API speaks its own types (`Event`, `ActionRequest`, `ActionResult`), never
//! bindgen's. A plugin gets nothing it did not ask for and the operator did
//! not grant, and every call into it has a deadline.
//!
//! On disk, under `<state_dir>/plugins/<name>/`: `current/` and `previous/`
//! (each `package.vigilpkg` + the compiled `component.cwasm`) and `kv.json`.

mod actor;
mod dispatch;
mod host;
mod http;
mod output;
pub mod package;
mod runtime;
mod types;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use wasmtime::component::Component;

pub use actor::{Metrics, PluginState};
pub use package::{Capabilities, Manifest, Package, PackageError};
pub use runtime::SUPPORTED_WIT;
pub use types::{ActionRequest, ActionResult, Directive, Event, Incident, Location, SrpAction};

use actor::{Actor, Msg, SharedRef, lock};
use host::{HostState, v0_1_0};
use runtime::{Runtime, Sandbox};

const PACKAGE_FILE: &str = "package.vigilpkg";
const CACHE_FILE: &str = "component.cwasm";
/// Present while an operator has disabled the plugin; holds the reason.
const DISABLED_FILE: &str = "disabled";

/// What the host needs to start.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where installed plugins, their compiled code and their KV stores live.
    pub state_dir: PathBuf,
    /// Keys whose signatures the host accepts.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Per-plugin resource limits.
    pub limits: Limits,
    /// The operator's grants, by plugin name. A plugin without one gets no
    /// capabilities and an empty config.
    pub grants: BTreeMap<String, Grant>,
}

/// Resource limits, the same for every plugin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Linear memory across all of an instance's memories.
    pub memory_bytes: usize,
    /// How long any one call (including `init`) may run.
    pub call_deadline: Duration,
    /// Total key and value bytes in a plugin's KV store.
    pub kv_quota: usize,
    /// The delay before the second restart in a row (the first after a
    /// crash is immediate); it doubles per crash until a call succeeds.
    pub restart_backoff: Duration,
    /// The longest restart delay.
    pub max_backoff: Duration,
    /// Crashes within 5 minutes that disable a plugin.
    pub crash_limit: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 64 << 20,
            call_deadline: Duration::from_secs(2),
            kv_quota: 64 << 10,
            restart_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            crash_limit: 5,
        }
    }
}

/// What the operator allows one plugin.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `host:port` endpoints it may connect to (resolved at install time).
    pub network: Vec<String>,
    /// Serial ports by the name the plugin opens them with → device path.
    pub serial: BTreeMap<String, PathBuf>,
    /// The folder mounted read-only at `/data`, if the plugin asks for it.
    pub data_dir: Option<PathBuf>,
    /// The plugin's configuration, returned by `host.config`.
    pub config: serde_json::Value,
    /// Whether it runs at all.
    pub enabled: bool,
    /// Its own call deadline in place of [`Limits::call_deadline`].
    pub call_deadline: Option<Duration>,
}

impl Default for Grant {
    /// Nothing granted, an empty config, enabled.
    fn default() -> Grant {
        Grant {
            network: Vec::new(),
            serial: BTreeMap::new(),
            data_dir: None,
            config: serde_json::Value::Object(Default::default()),
            enabled: true,
            call_deadline: None,
        }
    }
}

/// The result of an install or rollback.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    /// The plugin's name.
    pub name: String,
    /// The version now running.
    pub version: String,
    /// What it asked for and got.
    pub granted: Capabilities,
    /// What it asked for and did not get, in words (`network 10.0.0.5:4070`).
    pub denied: Vec<String>,
    /// The version it replaced, kept for `rollback`.
    pub replaced: Option<String>,
}

/// A plugin as operators see it.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Running, restarting or disabled, with the reason.
    pub state: PluginState,
    /// Its counters.
    pub metrics: Metrics,
    /// The last status document it published.
    pub status: Option<String>,
}

/// Why an operation on a plugin was refused. A refused install leaves the
/// running version untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The package did not verify.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Built for a WIT version this host has no adapter for.
    #[error("plugin {plugin} is built for vigil:plugin@{found}; this host supports {}", SUPPORTED_WIT.join(", "))]
    UnsupportedWit {
        /// The plugin's name.
        plugin: String,
        /// The version it was built for.
        found: String,
    },
    /// Not a valid component.
    #[error("plugin {plugin} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// The compiler's words.
        reason: String,
    },
    /// Imports something the host does not offer or lacks an export.
    #[error("plugin {plugin} does not fit this host: {reason}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// What is missing.
        reason: String,
    },
    /// The fresh instance failed to start or its `init` failed.
    #[error("plugin {plugin} failed its health check: {reason}")]
    HealthCheck {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// No such plugin is installed.
    #[error("no plugin named {0} is installed")]
    NotInstalled(String),
    /// `rollback` without a previous version.
    #[error("plugin {0} has no previous version to roll back to")]
    NoPrevious(String),
    /// The state folder could not be read or written.
    #[error("plugin {plugin}: cannot use {path}: {source}")]
    Io {
        /// The plugin's name.
        plugin: String,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Formats a deadline as operators read it: `2 s`, `250 ms`.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

struct Plugin {
    manifest: Manifest,
    shared: SharedRef,
    status: Arc<Mutex<Option<String>>>,
    /// Its call deadline (the grant's or the host's).
    call_deadline: Duration,
    actor: Option<Actor>,
}

/// A plugin ready to run: compiled, linked, sandbox decided.
struct Prepared {
    manifest: Manifest,
    component: Component,
    pre: v0_1_0::VigilPluginPre<HostState>,
    sandbox: Sandbox,
    granted: Capabilities,
    denied: Vec<String>,
}

/// The plugin host. All methods take `&self` and may be called from any thread.
pub struct PluginHost {
    // Field order is drop order: the plugins' workers stop before the
    // timer, which then times out whatever dispatch is still open.
    plugins: Mutex<BTreeMap<String, Plugin>>,
    timer: dispatch::Timer,
    runtime: Arc<Runtime>,
    config: HostConfig,
}

/// Results still to come from `dispatch_action`.
pub struct ActionDispatch {
    done: crossbeam_channel::Receiver<usize>,
}

impl ActionDispatch {
    /// Waits until every plugin answered or timed out; returns how many results were delivered.
    pub fn wait(self) -> usize {
        self.done.recv().unwrap_or(0)
    }
}

impl PluginHost {
    /// Starts the engine and its epoch ticker. Installed plugins start with `load_installed`.
    pub fn new(config: HostConfig) -> Result<PluginHost, InstallError> {
        let runtime = Runtime::new().map_err(|e| InstallError::Io {
            plugin: String::new(),
            path: config.state_dir.clone(),
            source: std::io::Error::other(format!("cannot start the WebAssembly engine: {e:#}")),
        })?;
        let dir = config.state_dir.join("plugins");
        std::fs::create_dir_all(&dir).map_err(|source| InstallError::Io {
            plugin: String::new(),
            path: dir,
            source,
        })?;
        let timer = dispatch::Timer::spawn().map_err(|source| InstallError::Io {
            plugin: String::new(),
            path: config.state_dir.clone(),
            source,
        })?;
        Ok(PluginHost { plugins: Mutex::new(BTreeMap::new()), timer, runtime: Arc::new(runtime), config })
    }

    fn plugins(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Plugin>> {
        self.plugins.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.config.state_dir.join("plugins").join(name)
    }

    /// Verifies, compiles and health-checks a package, then replaces the
    /// running version (kept for `rollback`). On any error the running
    /// version and its files are untouched: the health check's `init` runs
    /// against a scratch copy of the plugin's KV store. An install also ends
    /// an operator's `disable`.
    pub fn install(&self, package_bytes: &[u8]) -> Result<InstalledPlugin, InstallError> {
        let package = package::open(package_bytes, &self.config.trusted_keys)?;
        let name = package.manifest.name.clone();
        let dir = self.dir(&name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            let plugin = name.clone();
            move |source| InstallError::Io { plugin, path, source }
        };
        let prepared = self.prepare(package.manifest, |rt| Component::new(&rt.engine, &package.component))?;
        let staging = dir.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let mut check = prepared.sandbox.clone();
        check.kv_path = staging.join("kv-check.json");
        if prepared.sandbox.kv_path.exists() {
            std::fs::copy(&prepared.sandbox.kv_path, &check.kv_path).map_err(io(&prepared.sandbox.kv_path))?;
        }
        check.status = Arc::new(Mutex::new(None));
        let rt = actor::io_runtime().map_err(io(&staging))?;
        let healthy = actor::instantiate(&rt, &self.runtime, &prepared.pre, &check);
        let _ = std::fs::remove_file(&check.kv_path);
        if let Err(reason) = healthy {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(InstallError::HealthCheck { plugin: name.clone(), reason });
        }
        let _ = std::fs::remove_file(dir.join(DISABLED_FILE));

        let bytes = prepared.component.serialize().map_err(|e| io(&staging)(std::io::Error::other(e.to_string())))?;
        std::fs::write(staging.join(CACHE_FILE), bytes).map_err(io(&staging))?;
        std::fs::write(staging.join(PACKAGE_FILE), package_bytes).map_err(io(&staging))?;
        let (current, previous) = (dir.join("current"), dir.join("previous"));
        if current.exists() {
            let _ = std::fs::remove_dir_all(&previous);
            std::fs::rename(&current, &previous).map_err(io(&current))?;
        }
        std::fs::rename(&staging, &current).map_err(io(&current))?;
        let replaced = self.activate(prepared.manifest.clone(), prepared.pre, prepared.sandbox);
        tracing::info!(plugin = %name, version = %prepared.manifest.version, replaced = ?replaced, "plugin installed");
        Ok(InstalledPlugin {
            name,
            version: prepared.manifest.version,
            granted: prepared.granted,
            denied: prepared.denied,
            replaced,
        })
    }

    /// Goes back to the version the last install replaced (and keeps the
    /// current one as the new "previous", so a second rollback undoes it).
    pub fn rollback(&self, name: &str) -> Result<InstalledPlugin, InstallError> {
        let dir = self.dir(name);
        let (current, previous, swap) = (dir.join("current"), dir.join("previous"), dir.join("swap"));
        if !previous.join(PACKAGE_FILE).exists() {
            return Err(InstallError::NoPrevious(name.into()));
        }
        let prepared = self.load_dir(name, &previous)?;
        let io = |path: &Path, source| InstallError::Io { plugin: name.into(), path: path.to_path_buf(), source };
        let _ = std::fs::remove_dir_all(&swap);
        std::fs::rename(&current, &swap).map_err(|e| io(&current, e))?;
        std::fs::rename(&previous, &current).map_err(|e| io(&previous, e))?;
        std::fs::rename(&swap, &previous).map_err(|e| io(&swap, e))?;
        let version = prepared.manifest.version.clone();
        let replaced = self.activate(prepared.manifest, prepared.pre, prepared.sandbox);
        tracing::info!(plugin = %name, %version, replaced = ?replaced, "plugin rolled back");
        Ok(InstalledPlugin { name: name.into(), version, granted: prepared.granted, denied: prepared.denied, replaced })
    }

    /// Starts every plugin installed in the state folder (at startup). Each
    /// package is verified again against today's trusted keys. An install
    /// cut short between its two renames (power lost) is finished first.
    pub fn load_installed(&self) -> Vec<(String, Result<(), InstallError>)> {
        let root = self.config.state_dir.join("plugins");
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            finish_swap(&entry.path());
        }
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("current").join(PACKAGE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let result = self.load_dir(&name, &self.dir(&name).join("current")).map(|p| {
                    self.activate(p.manifest, p.pre, p.sandbox);
                });
                if let Err(e) = &result {
                    tracing::error!(plugin = %name, error = %e, "installed plugin not started");
                }
                (name, result)
            })
            .collect()
    }

    /// Stops a plugin and deletes it, its previous version and its KV store.
    pub fn remove(&self, name: &str) -> Result<(), InstallError> {
        let plugin = self.plugins().remove(name).ok_or_else(|| InstallError::NotInstalled(name.into()))?;
        drop(plugin);
        let dir = self.dir(name);
        std::fs::remove_dir_all(&dir).map_err(|source| InstallError::Io { plugin: name.into(), path: dir, source })?;
        tracing::info!(plugin = %name, "plugin removed");
        Ok(())
    }

    /// Stops a plugin until `enable` or its next `install`; it stays
    /// stopped across restarts of the host.
    pub fn disable(&self, name: &str) -> Result<(), InstallError> {
        let marker = self.dir(name).join(DISABLED_FILE);
        if self.plugins().contains_key(name) {
            std::fs::write(&marker, "disabled by an operator").map_err(|source| InstallError::Io {
                plugin: name.into(),
                path: marker,
                source,
            })?;
        }
        let actor = {
            let mut plugins = self.plugins();
            let plugin = plugins.get_mut(name).ok_or_else(|| InstallError::NotInstalled(name.into()))?;
            plugin.actor.take()
        };
        drop(actor);
        if let Some(plugin) = self.plugins().get(name) {
            lock(&plugin.shared).state = PluginState::Disabled { reason: "disabled by an operator".into() };
        }
        tracing::info!(plugin = %name, "plugin disabled by an operator");
        Ok(())
    }

    /// Starts a plugin an operator disabled.
    pub fn enable(&self, name: &str) -> Result<(), InstallError> {
        if !self.plugins().contains_key(name) {
            return Err(InstallError::NotInstalled(name.into()));
        }
        let _ = std::fs::remove_file(self.dir(name).join(DISABLED_FILE));
        let p = self.load_dir(name, &self.dir(name).join("current"))?;
        self.activate(p.manifest, p.pre, p.sandbox);
        tracing::info!(plugin = %name, "plugin enabled by an operator");
        Ok(())
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.plugins()
            .iter()
            .map(|(name, p)| {
                let shared = lock(&p.shared);
                PluginInfo {
                    name: name.clone(),
                    version: p.manifest.version.clone(),
                    state: shared.state.clone(),
                    metrics: shared.metrics.clone(),
                    status: p.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                }
            })
            .collect()
    }

    /// Queues an event for every running plugin; never waits. A plugin whose
    /// queue is full misses it (counted in `dropped`).
    pub fn dispatch_event(&self, event: &Event) {
        self.broadcast(|| Msg::Event(event.clone()));
    }

    /// Queues a tick (the wall clock, ms) for every running plugin; never waits.
    pub fn tick(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.broadcast(|| Msg::Tick(now));
    }

    fn broadcast(&self, msg: impl Fn() -> Msg) {
        for plugin in self.plugins().values() {
            if let Some(actor) = &plugin.actor
                && !actor.send(msg())
            {
                lock(&plugin.shared).metrics.dropped += 1;
            }
        }
    }

    /// Sends an action request to every plugin subscribed to its action, all
    /// at once, and returns at once. `reply` is called (on the answering
    /// plugin's thread or the host's timer: it must not block) with each
    /// plugin's result as it arrives; a
    /// plugin that does not answer within its call deadline (plus a second of
    /// queueing) gets `Failed("timed out after …")`, and a subscribed plugin
    /// that is not running gets `Failed` with its state.
    pub fn dispatch_action(
        &self,
        request: &ActionRequest,
        reply: impl Fn(&str, ActionResult) + Send + 'static,
    ) -> ActionDispatch {
        let action = request.directive.action_name();
        let plugins = self.plugins();
        let subscribed: Vec<(&String, &Plugin)> =
            plugins.iter().filter(|(_, p)| p.manifest.actions.iter().any(|a| a == "*" || a == action)).collect();
        let waiting: BTreeMap<Arc<str>, Duration> =
            subscribed.iter().map(|(name, p)| (Arc::from(name.as_str()), p.call_deadline)).collect();
        let (shared, finished) = dispatch::Dispatch::new(waiting, Box::new(reply));
        if !subscribed.is_empty() {
            self.timer.watch(shared.clone());
        }
        let answer = dispatch::Reply(shared);
        let mut refused = Vec::new();
        for (name, plugin) in subscribed {
            let why = match &plugin.actor {
                Some(actor) if actor.send(Msg::Action(request.clone(), answer.clone())) => continue,
                Some(_) => {
                    lock(&plugin.shared).metrics.dropped += 1;
                    "plugin is busy: its call queue is full".to_string()
                }
                None => format!("plugin is {}", lock(&plugin.shared).state),
            };
            refused.push((Arc::<str>::from(name.as_str()), why));
        }
        // Answered outside the plugins' lock, so a callback may look at the host.
        drop(plugins);
        for (name, why) in refused {
            answer.send(name, ActionResult::Failed(why));
        }
        ActionDispatch { done: finished }
    }

    /// Reads, verifies and prepares the package in an installed folder.
    fn load_dir(&self, name: &str, dir: &Path) -> Result<Prepared, InstallError> {
        let path = dir.join(PACKAGE_FILE);
        let bytes = std::fs::read(&path).map_err(|source| InstallError::Io { plugin: name.into(), path, source })?;
        let package = package::open(&bytes, &self.config.trusted_keys)?;
        let cache = dir.join(CACHE_FILE);
        self.prepare(package.manifest, |rt| rt.load_cached(&package.component, &cache))
    }

    /// Checks the WIT version, compiles (or loads) and links, and decides the sandbox.
    fn prepare(
        &self,
        manifest: Manifest,
        compile: impl FnOnce(&Runtime) -> wasmtime::Result<Component>,
    ) -> Result<Prepared, InstallError> {
        let name = manifest.name.clone();
        if !SUPPORTED_WIT.contains(&manifest.wit.as_str()) {
            return Err(InstallError::UnsupportedWit { plugin: name, found: manifest.wit });
        }
        let component = compile(&self.runtime)
            .map_err(|e| InstallError::Compile { plugin: name.clone(), reason: format!("{e:#}") })?;
        if let Some(found) = runtime::unsupported_wit(&self.runtime.engine, &component) {
            return Err(InstallError::UnsupportedWit { plugin: name, found });
        }
        let link = |e: wasmtime::Error| InstallError::Link { plugin: name.clone(), reason: format!("{e:#}") };
        let pre = self.runtime.linker.instantiate_pre(&component).map_err(link)?;
        let pre = v0_1_0::VigilPluginPre::new(pre).map_err(link)?;
        let (sandbox, granted, denied) = self.sandbox(&manifest);
        Ok(Prepared { manifest, component, pre, sandbox, granted, denied })
    }

    /// Intersects what the manifest asks for with the operator's grant,
    /// logging each capability refused.
    fn sandbox(&self, manifest: &Manifest) -> (Sandbox, Capabilities, Vec<String>) {
        let name = manifest.name.as_str();
        let fallback = Grant::default();
        let grant = self.config.grants.get(name).unwrap_or(&fallback);
        let asked = &manifest.capabilities;
        let mut granted = Capabilities::default();
        let mut denied = Vec::new();
        let mut network: Vec<SocketAddr> = Vec::new();
        let asked_network = if asked.network.iter().any(|e| e == package::ANY_GRANTED) {
            grant.network.clone()
        } else {
            asked.network.clone()
        };
        for endpoint in &asked_network {
            if !grant.network.contains(endpoint) {
                denied.push(format!("network {endpoint}"));
                continue;
            }
            match endpoint.to_socket_addrs() {
                Ok(addrs) => {
                    network.extend(addrs);
                    granted.network.push(endpoint.clone());
                }
                Err(e) => denied.push(format!("network {endpoint} (does not resolve: {e})")),
            }
        }
        let mut serial = BTreeMap::new();
        for port in &asked.serial {
            match grant.serial.get(port) {
                Some(path) => {
                    serial.insert(port.clone(), path.clone());
                    granted.serial.push(port.clone());
                }
                None => denied.push(format!("serial {port}")),
            }
        }
        let data_dir = if asked.data {
            if grant.data_dir.is_none() {
                denied.push("data folder".into());
            }
            grant.data_dir.clone()
        } else {
            None
        };
        granted.data = data_dir.is_some();
        for capability in &denied {
            tracing::warn!(plugin = name, %capability, "capability requested but not granted");
        }
        let sandbox = Sandbox {
            name: name.into(),
            network,
            http: granted.network.clone(),
            serial,
            data_dir,
            config_json: grant.config.to_string().into(),
            memory_limit: self.config.limits.memory_bytes,
            kv_path: self.dir(name).join("kv.json"),
            kv_quota: self.config.limits.kv_quota,
            call_deadline: grant.call_deadline.unwrap_or(self.config.limits.call_deadline),
            status: Arc::new(Mutex::new(None)),
            denied_connects: Arc::new(AtomicU64::new(0)),
        };
        (sandbox, granted, denied)
    }

    /// Starts the worker for a prepared plugin in place of the running one;
    /// returns the version it replaced.
    fn activate(&self, manifest: Manifest, pre: v0_1_0::VigilPluginPre<HostState>, sandbox: Sandbox) -> Option<String> {
        let name = manifest.name.clone();
        let disabled_by_operator = self.dir(&name).join(DISABLED_FILE).exists();
        let enabled = !disabled_by_operator && self.config.grants.get(&name).is_none_or(|g| g.enabled);
        let status = sandbox.status.clone();
        let call_deadline = sandbox.call_deadline;
        let (shared, actor) = if enabled {
            let shared = actor::new_shared(PluginState::Starting);
            match Actor::spawn(self.runtime.clone(), pre, sandbox, self.config.limits, shared.clone()) {
                Ok(actor) => (shared, Some(actor)),
                Err(e) => {
                    lock(&shared).state = PluginState::Disabled { reason: format!("cannot start its thread: {e}") };
                    (shared, None)
                }
            }
        } else {
            let reason = if disabled_by_operator { "disabled by an operator" } else { "not enabled in its grant" };
            (actor::new_shared(PluginState::Disabled { reason: reason.into() }), None)
        };
        let old = self.plugins().insert(name, Plugin { manifest, shared, status, call_deadline, actor });
        // Dropped outside the lock: stopping the old worker waits for its call in progress.
        old.map(|p| p.manifest.version)
    }
}

/// Finishes an install or rollback that stopped between its renames: with
/// `current` gone, the `staging` (if whole) or `previous` version becomes
/// current again.
fn finish_swap(dir: &Path) {
    let current = dir.join("current");
    if current.join(PACKAGE_FILE).exists() {
        return;
    }
    for candidate in ["staging", "swap", "previous"] {
        let from = dir.join(candidate);
        if from.join(PACKAGE_FILE).exists() && from.join(CACHE_FILE).exists() {
            let _ = std::fs::remove_dir_all(&current);
            match std::fs::rename(&from, &current) {
                Ok(()) => {
                    tracing::warn!(plugin_dir = %dir.display(), from = candidate, "finished an interrupted plugin install")
                }
                Err(e) => {
                    tracing::error!(plugin_dir = %dir.display(), error = %e, "cannot finish an interrupted plugin install")
                }
            }
            return;
        }
    }
}

//! The one wasmtime `Engine`, its epoch ticker, the `Linker`, compilation
//! with an on-disk cache, the WIT version check, and building a sandboxed
//! store for one instance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::host::{HostState, Kv, MemoryCap, v0_1_0};
use crate::http::HttpGate;
use crate::output::{GuestOutput, Stream};

/// How often the epoch advances: the resolution of every call deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The `vigil:plugin` versions this host has adapters for.
pub const SUPPORTED_WIT: &[&str] = &["0.1.0"];

/// The engine, the linker and the thread that advances the epoch.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    pub(crate) fn new() -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        v0_1_0::VigilPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new().name("vigil-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?
        };
        Ok(Runtime { engine, linker, ticker_stop, ticker: Some(ticker) })
    }

    /// Compiles a component and writes the compiled form to `cache`.
    pub(crate) fn compile(&self, wasm: &[u8], cache: &Path) -> wasmtime::Result<Component> {
        let component = Component::new(&self.engine, wasm)?;
        std::fs::write(cache, component.serialize()?)?;
        Ok(component)
    }

    /// Loads a compiled component from the host's own cache, recompiling
    /// from `wasm` (and rewriting the cache) if it is missing or stale.
    pub(crate) fn load_cached(&self, wasm: &[u8], cache: &Path) -> wasmtime::Result<Component> {
        if cache.exists() {
            // SAFETY: `deserialize_file` runs native code from the file
            // without checking it. The file is only ever written by
            // `compile` above, into the host's own state folder, which
            // is owned by vigild and not writable by plugins (they never see
            // it) or operators' tools; anyone who can write there can already
            // replace vigild itself. Wasmtime checks the engine version and
            // settings in the header, so a cache from another build is refused
            // and recompiled below instead of run.
            match unsafe { Component::deserialize_file(&self.engine, cache) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::info!(cache = %cache.display(), error = %e, "recompiling a stale plugin cache"),
            }
        }
        self.compile(wasm, cache)
    }

    /// Builds the store for one instance: its WASI sandbox, memory cap and
    /// host state. Grants nothing the `Sandbox` does not name.
    pub(crate) fn store(&self, sandbox: &Sandbox) -> wasmtime::Result<Store<HostState>> {
        let mut wasi = WasiCtxBuilder::new();
        // No env, no args, empty stdin. Plugins log through `host.log`;
        // what they print (a Rust panic's message, for one) becomes log lines
        // tagged with their name.
        wasi.stdout(GuestOutput::new(sandbox.name.clone(), Stream::Stdout));
        wasi.stderr(GuestOutput::new(sandbox.name.clone(), Stream::Stderr));
        wasi.allow_ip_name_lookup(false);
        // Sockets are on so that every attempt reaches the address check
        // below, which refuses (and logs, with the plugin's name) anything
        // not granted.
        wasi.allow_tcp(true).allow_udp(true);
        if let Some(dir) = &sandbox.data_dir {
            wasi.preopened_dir(dir, "/data", FsPerms::ReadOnly)?;
        }
        let allowed = sandbox.network.clone();
        let name = sandbox.name.clone();
        let denied = sandbox.denied_connects.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let ok = permitted(&allowed, addr, use_);
            if !ok {
                denied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(plugin = &*name, %addr, use_ = ?use_, "network access denied: not granted");
            }
            Box::pin(async move { ok })
        });
        let state = HostState {
            name: sandbox.name.clone(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap { limit: sandbox.memory_limit, used: 0 },
            kv: Kv::load(sandbox.kv_path.clone(), sandbox.kv_quota),
            status: sandbox.status.clone(),
            config_json: sandbox.config_json.clone(),
            serial_grants: sandbox.serial.clone(),
            clock_origin: Instant::now(),
            http: WasiHttpCtx::new(),
            http_gate: HttpGate {
                plugin: sandbox.name.clone(),
                allowed: sandbox.http.clone(),
                deadline: sandbox.call_deadline,
                denied: sandbox.denied_connects.clone(),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        Ok(store)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Connects only to granted endpoints. A connect binds the socket first
/// (to the wildcard address, port 0), so that is allowed when the plugin has
/// any network grant; listening, and binding anything else, never is.
fn permitted(allowed: &[SocketAddr], addr: SocketAddr, use_: SocketAddrUse) -> bool {
    match use_ {
        SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => allowed.contains(&addr),
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
            !allowed.is_empty() && addr.ip().is_unspecified() && addr.port() == 0
        }
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
    }
}

/// What one plugin's instances may touch: the intersection of what it asked
/// for and what the operator granted, resolved at install time.
#[derive(Clone)]
pub(crate) struct Sandbox {
    pub(crate) name: Arc<str>,
    pub(crate) network: Vec<SocketAddr>,
    /// The same grants as `host:port`, for `wasi:http` requests.
    pub(crate) http: Vec<String>,
    pub(crate) serial: BTreeMap<String, PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) config_json: Arc<str>,
    pub(crate) memory_limit: usize,
    pub(crate) kv_path: PathBuf,
    pub(crate) kv_quota: usize,
    /// How long any one call (including `init`) may run.
    pub(crate) call_deadline: Duration,
    pub(crate) status: Arc<Mutex<Option<String>>>,
    pub(crate) denied_connects: Arc<AtomicU64>,
}

/// Finds a `vigil:plugin` interface version the host does not support among
/// a component's imports and exports.
pub(crate) fn unsupported_wit(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let names = ty.imports(engine).map(|(n, _)| n).chain(ty.exports(engine).map(|(n, _)| n));
    for name in names {
        if let Some(rest) = name.strip_prefix("vigil:plugin/") {
            let version = rest.split_once('@').map_or("", |(_, v)| v);
            if !SUPPORTED_WIT.contains(&version) {
                return Some(if version.is_empty() { "an unversioned interface".into() } else { version.into() });
            }
        }
    }
    None
}

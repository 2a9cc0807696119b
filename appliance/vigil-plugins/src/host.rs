//! What the host offers plugins: the one `bindgen!` site per WIT version, the
//! store's data (`HostState`) and the `host` and `serial` interfaces.
//!
//! Every released WIT version gets its own module (`v0_1_0`, later `v0_2_0`
//! beside it), each frozen with its own adapter, as Zed does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::http::HttpGate;

use crate::types;

/// Bindings for `vigil:plugin@0.1.0`. Frozen: never edit for a new version.
pub(crate) mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "vigil-plugin",
        // Vigil's own imports are quick and synchronous; the exports are
        // async so a worker can cancel a call stuck in WASI I/O (sockets,
        // HTTP, sleeps), which epoch interruption cannot reach.
        imports: { default: trappable },
        exports: { default: async },
        with: { "vigil:plugin/serial.port": super::SerialPort },
    });
}

use v0_1_0::vigil::plugin::{host, serial, types as wit};

/// Largest log message kept (longer ones are cut).
const MAX_LOG_BYTES: usize = 4 * 1024;
/// Largest status document.
const MAX_STATUS_BYTES: usize = 16 * 1024;
/// Largest KV key.
const MAX_KEY_BYTES: usize = 256;
/// Longest a serial read may wait: well under any call deadline.
const MAX_SERIAL_WAIT: Duration = Duration::from_secs(1);
/// Largest serial read or write in one call.
const MAX_SERIAL_BYTES: usize = 64 * 1024;

/// The data of one plugin instance's store.
pub(crate) struct HostState {
    pub(crate) name: Arc<str>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) kv: Kv,
    pub(crate) status: Arc<Mutex<Option<String>>>,
    pub(crate) config_json: Arc<str>,
    pub(crate) serial_grants: BTreeMap<String, PathBuf>,
    pub(crate) clock_origin: Instant,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_gate: HttpGate,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_gate }
    }
}

/// Caps the total linear memory of a store (across all its memories) and
/// remembers how much it holds, for metrics.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) used: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        let after = self.used + desired.saturating_sub(current);
        if after > self.limit {
            // An error (not `Ok(false)`) traps at once with a message that
            // names the cause, instead of a guest abort that hides it.
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the plugin asked for {} MiB; its limit is {} MiB",
                after >> 20,
                self.limit >> 20
            )));
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A plugin's key-value store: in memory, persisted as JSON (values in
/// base64) by atomic replace after every change, with a quota on the total
/// of key and value bytes.
pub(crate) struct Kv {
    path: PathBuf,
    map: BTreeMap<String, Vec<u8>>,
    quota: usize,
}

impl Kv {
    pub(crate) fn load(path: PathBuf, quota: usize) -> Kv {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BTreeMap<String, String>>(&bytes).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| Some((k, base64::engine::general_purpose::STANDARD.decode(v).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Kv { path, map, quota }
    }

    fn used(&self) -> usize {
        self.map.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.len() > MAX_KEY_BYTES {
            return Err(format!("key longer than {MAX_KEY_BYTES} bytes"));
        }
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len());
        if self.used() - old + key.len() + value.len() > self.quota {
            return Err("quota".into());
        }
        self.map.insert(key, value);
        self.persist()
    }

    fn delete(&mut self, key: &str) -> Result<(), String> {
        if self.map.remove(key).is_some() {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), String> {
        let text: BTreeMap<&str, String> =
            self.map.iter().map(|(k, v)| (k.as_str(), base64::engine::general_purpose::STANDARD.encode(v))).collect();
        let json = serde_json::to_vec(&text).map_err(|e| e.to_string())?;
        write_atomic(&self.path, &json).map_err(|e| format!("cannot save the store: {e}"))
    }
}

/// Writes a file by writing a sibling and renaming it over the target.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, mut message: String) -> Result<()> {
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.name;
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn monotonic_ms(&mut self) -> Result<u64> {
        Ok(self.clock_origin.elapsed().as_millis() as u64)
    }

    fn wall_clock_ms(&mut self) -> Result<u64> {
        Ok(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
    }

    fn kv_get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        Ok(self.kv.map.get(&key).cloned())
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<Result<(), String>> {
        Ok(self.kv.set(key, value))
    }

    fn kv_delete(&mut self, key: String) -> Result<()> {
        if let Err(e) = self.kv.delete(&key) {
            tracing::warn!(plugin = &*self.name, error = %e, "kv-delete not persisted");
        }
        Ok(())
    }

    fn publish_status(&mut self, json: String) -> Result<Result<(), String>> {
        if json.len() > MAX_STATUS_BYTES {
            return Ok(Err(format!("status larger than {} KiB", MAX_STATUS_BYTES / 1024)));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
            return Ok(Err(format!("status is not JSON: {e}")));
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(json);
        Ok(Ok(()))
    }

    fn config(&mut self) -> Result<String> {
        Ok(self.config_json.to_string())
    }
}

impl wit::Host for HostState {}

/// A granted serial device, opened as a plain file (the operator configures
/// line settings outside, e.g. with udev or `stty`).
///
/// Reads are done by a reader thread that blocks on the device and passes
/// chunks over a channel, so `read` can honour its timeout. The thread lives
/// until the device yields EOF or an error, or until the next chunk finds the
/// port closed; a port that never sends again keeps one parked thread.
pub struct SerialPort {
    writer: File,
    chunks: crossbeam_channel::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl SerialPort {
    fn open(path: &Path) -> std::io::Result<SerialPort> {
        let writer = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let mut reader = writer.try_clone()?;
        let (tx, rx) = crossbeam_channel::bounded(16);
        std::thread::Builder::new().name("vigil-serial".into()).spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
        Ok(SerialPort { writer, chunks: rx, pending: Vec::new() })
    }
}

impl serial::Host for HostState {
    fn open(&mut self, name: String) -> Result<Result<Resource<SerialPort>, String>> {
        let Some(path) = self.serial_grants.get(&name) else {
            tracing::warn!(plugin = &*self.name, port = %name, "serial port denied: not granted");
            return Ok(Err(format!("no serial port granted: {name}")));
        };
        match SerialPort::open(path) {
            Ok(port) => Ok(Ok(self.table.push(port)?)),
            Err(e) => Ok(Err(format!("cannot open serial port {name} ({}): {e}", path.display()))),
        }
    }
}

impl serial::HostPort for HostState {
    fn read(&mut self, port: Resource<SerialPort>, max: u32, timeout_ms: u32) -> Result<Result<Vec<u8>, String>> {
        let port = self.table.get_mut(&port)?;
        let max = (max as usize).min(MAX_SERIAL_BYTES);
        if port.pending.is_empty() {
            let wait = Duration::from_millis(timeout_ms.into()).min(MAX_SERIAL_WAIT);
            match port.chunks.recv_timeout(wait) {
                Ok(chunk) => port.pending = chunk,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Ok(Ok(Vec::new())),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Ok(Err("serial port closed".into()));
                }
            }
        }
        let n = max.min(port.pending.len());
        Ok(Ok(port.pending.drain(..n).collect()))
    }

    fn write(&mut self, port: Resource<SerialPort>, data: Vec<u8>) -> Result<Result<(), String>> {
        if data.len() > MAX_SERIAL_BYTES {
            return Ok(Err(format!("write larger than {} KiB", MAX_SERIAL_BYTES / 1024)));
        }
        let port = self.table.get_mut(&port)?;
        Ok(port.writer.write_all(&data).map_err(|e| e.to_string()))
    }

    fn drop(&mut self, port: Resource<SerialPort>) -> Result<()> {
        self.table.delete(port)?;
        Ok(())
    }
}

fn srp(action: types::SrpAction) -> wit::SrpAction {
    match action {
        types::SrpAction::Hold => wit::SrpAction::Hold,
        types::SrpAction::Secure => wit::SrpAction::Secure,
        types::SrpAction::Lockdown => wit::SrpAction::Lockdown,
        types::SrpAction::Evacuate => wit::SrpAction::Evacuate,
        types::SrpAction::Shelter => wit::SrpAction::Shelter,
    }
}

fn incident(i: &types::Incident) -> wit::Incident {
    wit::Incident {
        id: i.id,
        camera: i.camera.clone(),
        camera_name: i.camera_name.clone(),
        location: wit::Location {
            building: i.location.building.clone(),
            floor: i.location.floor.clone(),
            zone: i.location.zone.clone(),
        },
        label: i.label.clone(),
        score: i.score,
        drill: i.drill,
        stage: i.stage.clone(),
        active: i.active.iter().copied().map(srp).collect(),
    }
}

pub(crate) fn event(e: &types::Event) -> wit::Event {
    match e {
        types::Event::Raised(i) => wit::Event::Raised(incident(i)),
        types::Event::Verified(i) => wit::Event::Verified(incident(i)),
        types::Event::Dismissed(i) => wit::Event::Dismissed(incident(i)),
        types::Event::ActionRequested(i) => wit::Event::ActionRequested(incident(i)),
        types::Event::AllClear(i) => wit::Event::AllClear(incident(i)),
    }
}

pub(crate) fn action_request(r: &types::ActionRequest) -> wit::ActionRequest {
    wit::ActionRequest {
        incident: incident(&r.incident),
        directive: match r.directive {
            types::Directive::Activate(a) => wit::Directive::Activate(srp(a)),
            types::Directive::Revert(a) => wit::Directive::Revert(srp(a)),
            types::Directive::AllClear => wit::Directive::AllClear,
        },
        actor: r.actor.clone(),
    }
}

pub(crate) fn action_result(r: wit::ActionResult) -> types::ActionResult {
    match r {
        wit::ActionResult::Done(s) => types::ActionResult::Done(s),
        wit::ActionResult::Failed(s) => types::ActionResult::Failed(s),
        wit::ActionResult::NotApplicable => types::ActionResult::NotApplicable,
    }
}

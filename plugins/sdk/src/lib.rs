//! Write Vigil plugins in Rust.
//!
//! A Vigil plugin is a WebAssembly component for the world
//! `vigil:plugin/vigil-plugin@0.1.0` (`wit/v0.1.0/plugin.wit`). `vigild` calls
//! it when an incident changes ([`Plugin::on_event`]), when the playbook asks
//! for an action it subscribes to ([`Plugin::on_action`]), and periodically
//! ([`Plugin::on_tick`]). Every call has a deadline and a memory cap; a panic
//! ends the call as a trap that the host reports and counts against the plugin.
//!
//! This crate hides the generated bindings: implement [`Plugin`] on a type,
//! name it in [`export_plugin!`], and use [`host`], [`kv`], [`config`],
//! [`status`], [`serial`] and [`http`] to talk to the host. Plain sockets
//! are `std::net` (TCP and UDP), to granted endpoints only. [`backoff`] is
//! pure retry logic for plugins that poll devices.
//!
//! ```no_run
//! use serde::Deserialize;
//! use vigil_plugin_sdk::{ActionRequest, ActionResult, Event, Plugin, export_plugin, host, kv};
//!
//! /// The operator's `[plugins.door-lock.config]`.
//! #[derive(Deserialize)]
//! struct Config {
//!     controller: String,
//! }
//!
//! struct DoorLock;
//!
//! impl Plugin for DoorLock {
//!     fn init() -> Result<(), String> {
//!         let config: Config = vigil_plugin_sdk::config()?;
//!         host::info!("door controller at {}", config.controller);
//!         Ok(())
//!     }
//!
//!     fn on_event(event: Event) {
//!         host::debug!("{} incident {}", event.kind(), event.incident().id);
//!     }
//!
//!     fn on_action(request: ActionRequest) -> ActionResult {
//!         if request.incident.drill {
//!             return ActionResult::Done("drill: doors left alone".into());
//!         }
//!         match kv::increment("locks") {
//!             Ok(n) => ActionResult::Done(format!("locked ({n} so far)")),
//!             Err(e) => ActionResult::Failed(e),
//!         }
//!     }
//! }
//!
//! export_plugin!(DoorLock);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`; rustc's linker then emits a
//! component directly: `cargo build --release --target wasm32-wasip2`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The generated bindings. Plugins use the re-exports instead; this is public
/// only because [`export_plugin!`] expands to code that names it.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "vigil-plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "vigil_plugin_sdk::bindings",
    });
}

use bindings::exports::vigil::plugin::plugin::Guest;
use bindings::vigil::plugin::host as raw;

pub use bindings::vigil::plugin::types::{
    ActionRequest, ActionResult, Directive, Event, Incident, Location, SrpAction,
};

/// What a plugin implements. Every method has a default that does nothing, so
/// a plugin writes only the calls it cares about.
///
/// The methods take no `self`: the host may recreate the instance after a
/// trap, so state that must survive belongs in [`kv`], and state for one
/// instance's lifetime in a `static`.
pub trait Plugin: 'static {
    /// Called once after instantiation; an `Err` disables the plugin with that reason.
    fn init() -> Result<(), String> {
        Ok(())
    }

    /// An incident lifecycle event.
    fn on_event(event: Event) {
        let _ = event;
    }

    /// An action the plugin subscribes to; the answer goes into the audit trail.
    fn on_action(request: ActionRequest) -> ActionResult {
        let _ = request;
        ActionResult::NotApplicable
    }

    /// Periodic, for polling devices; `now_ms` is [`host::monotonic_ms`].
    fn on_tick(now_ms: u64) {
        let _ = now_ms;
    }
}

/// Bridges a [`Plugin`] to the generated export trait. Public only for [`export_plugin!`].
#[doc(hidden)]
pub struct Adapter<P>(core::marker::PhantomData<P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn init() -> Result<(), String> {
        P::init()
    }

    fn on_event(event: Event) {
        P::on_event(event)
    }

    fn on_action(request: ActionRequest) -> ActionResult {
        P::on_action(request)
    }

    fn on_tick(now_ms: u64) {
        P::on_tick(now_ms)
    }
}

/// Exports a [`Plugin`] implementation as the component's `vigil:plugin/plugin`.
/// Use it exactly once per plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // The generated macro takes an identifier, not a type.
        #[doc(hidden)]
        type __VigilPluginExport = $crate::Adapter<$plugin>;
        $crate::bindings::export!(__VigilPluginExport with_types_in $crate::bindings);
    };
}

impl Event {
    /// The incident the event is about.
    pub fn incident(&self) -> &Incident {
        match self {
            Event::Raised(i)
            | Event::Verified(i)
            | Event::Dismissed(i)
            | Event::ActionRequested(i)
            | Event::AllClear(i) => i,
        }
    }

    /// The event's WIT name: `raised`, `verified`, `dismissed`, `action-requested` or `all-clear`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Raised(_) => "raised",
            Event::Verified(_) => "verified",
            Event::Dismissed(_) => "dismissed",
            Event::ActionRequested(_) => "action-requested",
            Event::AllClear(_) => "all-clear",
        }
    }
}

impl SrpAction {
    /// The action's WIT name, e.g. `lockdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            SrpAction::Hold => "hold",
            SrpAction::Secure => "secure",
            SrpAction::Lockdown => "lockdown",
            SrpAction::Evacuate => "evacuate",
            SrpAction::Shelter => "shelter",
        }
    }
}

impl core::fmt::Display for Directive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Directive::Activate(a) => write!(f, "activate {}", a.as_str()),
            Directive::Revert(a) => write!(f, "revert {}", a.as_str()),
            Directive::AllClear => f.write_str("all-clear"),
        }
    }
}

/// Logging and clocks.
pub mod host {
    pub use crate::bindings::vigil::plugin::host::Level;
    #[doc(inline)]
    pub use crate::{debug, error, info, trace, warn};

    /// Writes `message` to vigild's log, tagged with the plugin's name.
    pub fn log(level: Level, message: &str) {
        super::raw::log(level, message);
    }

    /// Milliseconds on a monotonic clock; only differences mean anything.
    pub fn monotonic_ms() -> u64 {
        super::raw::monotonic_ms()
    }

    /// Milliseconds since the Unix epoch.
    pub fn wall_clock_ms() -> u64 {
        super::raw::wall_clock_ms()
    }
}

/// Logs at trace level, with `format!` arguments.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Trace, &::std::format!($($arg)*)) };
}

/// Logs at debug level, with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs at info level, with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at warn level, with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at error level, with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::host::log($crate::host::Level::Error, &::std::format!($($arg)*)) };
}

/// The plugin's own persistent key-value store. The host namespaces it per
/// plugin and enforces a quota, which `set` reports as an `Err`.
pub mod kv {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The value stored under `key`, if any.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        super::raw::kv_get(key)
    }

    /// Stores `value` under `key`.
    pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
        super::raw::kv_set(key, value)
    }

    /// Removes `key`; removing a missing key is not an error.
    pub fn delete(key: &str) {
        super::raw::kv_delete(key)
    }

    /// The JSON value stored under `key`, if any; an `Err` if it does not parse as `T`.
    pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
        get(key)
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| format!("kv key {key:?} is not the expected JSON: {e}"))
            })
            .transpose()
    }

    /// Stores `value` as JSON under `key`.
    pub fn set_json(key: &str, value: &impl Serialize) -> Result<(), String> {
        let bytes = serde_json::to_vec(value).map_err(|e| format!("cannot encode kv key {key:?}: {e}"))?;
        set(key, &bytes)
    }

    /// Adds one to the JSON counter under `key` (missing counts as 0) and returns the new count.
    pub fn increment(key: &str) -> Result<u64, String> {
        let n = get_json::<u64>(key)?.unwrap_or(0) + 1;
        set_json(key, &n)?;
        Ok(n)
    }
}

pub mod backoff;
pub mod http;

/// Serial ports the operator granted, by the name the grant gives them.
pub mod serial {
    pub use crate::bindings::vigil::plugin::serial::{Port, open};
}

/// The plugin's configuration (the operator's `[plugins.<name>.config]`) parsed
/// from JSON into `T`. No configuration reads as `{}`, so a `T` whose fields all
/// have defaults needs none.
pub fn config<T: DeserializeOwned>() -> Result<T, String> {
    let json = raw::config();
    let json = if json.trim().is_empty() { "{}" } else { json.as_str() };
    serde_json::from_str(json).map_err(|e| format!("invalid plugin config: {e}"))
}

/// Publishes `value` as the plugin's status document; the uplink forwards it to the district.
pub fn status(value: &impl Serialize) -> Result<(), String> {
    let json = serde_json::to_string(value).map_err(|e| format!("cannot encode status: {e}"))?;
    raw::publish_status(&json)
}

//! A typed client for RAUC's D-Bus API (`de.pengutronix.rauc.Installer` at
//! `/` on the system bus), as shipped by RAUC 1.8.
//!
//! Only this module knows the D-Bus names and signatures; callers get
//! [`SlotStatus`], [`InstallOutcome`] and [`RaucError`]s that quote RAUC's own
//! `LastError` text.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::blocking::fdo::DBusProxy;
use zbus::zvariant::{OwnedValue, Value};

pub use crate::bus::Bus;

/// RAUC's well-known bus name.
pub const SERVICE: &str = "de.pengutronix.rauc";

#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/",
    gen_async = false,
    blocking_name = "InstallerProxy"
)]
trait Installer {
    fn install_bundle(&self, source: &str, args: HashMap<&str, Value<'_>>) -> zbus::Result<()>;
    fn info(&self, bundle: &str) -> zbus::Result<(String, String)>;
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, OwnedValue>)>>;
    fn get_primary(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    #[zbus(property)]
    fn compatible(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
}

/// What went wrong talking to RAUC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaucError {
    /// The bus itself is unreachable.
    #[error("cannot connect to {bus} to reach RAUC: {source}")]
    NoBus {
        /// Which bus.
        bus: String,
        /// zbus' error.
        #[source]
        source: Box<zbus::Error>,
    },
    /// Nobody owns `de.pengutronix.rauc`.
    #[error("no RAUC service on {bus} (is rauc.service running?)")]
    NoService {
        /// Which bus.
        bus: String,
    },
    /// RAUC rejected or failed an installation; `last_error` is RAUC's own text.
    #[error("RAUC refused the bundle: {last_error}")]
    Refused {
        /// RAUC's `LastError` property after the failed install.
        last_error: String,
    },
    /// RAUC's `Info` could not read or verify a bundle. RAUC 1.8 puts the
    /// reason (bad signature, format, unreadable file) only in its log.
    #[error(
        "RAUC cannot read or verify the bundle {bundle} ({reply}): bad signature, wrong format or unreadable file; \
         RAUC 1.8 logs the reason only in its journal (journalctl -u rauc)"
    )]
    Unverifiable {
        /// The bundle.
        bundle: String,
        /// RAUC's reply text.
        reply: String,
    },
    /// RAUC went away while installing.
    #[error("RAUC service disappeared from the bus during the installation (did rauc.service crash?)")]
    ServiceLost,
    /// A method call failed; RAUC's error message is in `source`.
    #[error("RAUC {call} failed: {source}")]
    Call {
        /// What was being asked.
        call: String,
        /// The D-Bus error, with RAUC's message.
        #[source]
        source: Box<zbus::Error>,
    },
    /// The thread that follows RAUC's signals could not start.
    #[error("cannot start a thread to follow RAUC's progress: {source}")]
    Spawn {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One slot as RAUC's `GetSlotStatus` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    /// RAUC's slot name, e.g. `rootfs.1`.
    pub name: String,
    /// The bootloader's name for it, e.g. `B` (root slots only).
    pub bootname: Option<String>,
    /// `booted`, `active` or `inactive`.
    pub state: Option<String>,
    /// The bootloader's `good` / `bad`.
    pub boot_status: Option<String>,
    /// The `version` of the bundle last installed into it, from RAUC's status file.
    pub bundle_version: Option<String>,
    /// The `compatible` of that bundle.
    pub bundle_compatible: Option<String>,
}

impl SlotStatus {
    fn from_dbus(name: String, props: &HashMap<String, OwnedValue>) -> Self {
        let s = |key: &str| match props.get(key).map(|v| &**v) {
            Some(Value::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        Self {
            bootname: s("bootname"),
            state: s("state"),
            boot_status: s("boot-status"),
            bundle_version: s("bundle.version"),
            bundle_compatible: s("bundle.compatible"),
            name,
        }
    }
}

/// A bundle's `compatible` and `version`, read (and its signature checked) by RAUC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    /// The manifest's `compatible`.
    pub compatible: String,
    /// The manifest's `version`.
    pub version: String,
}

/// RAUC's progress report during an installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Overall percentage, 0-100.
    pub percent: u8,
    /// What RAUC is doing ("Copying image to rootfs.1").
    pub message: String,
    /// RAUC's nesting depth of the step.
    pub depth: i32,
}

/// What a successful installation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOutcome {
    /// The slot RAUC made primary (the one the next boot tries), e.g. `rootfs.1`.
    pub primary: String,
}

/// A connection to RAUC.
#[derive(Debug, Clone)]
pub struct RaucClient {
    bus: Bus,
    conn: Connection,
}

/// How often a waiting install checks that RAUC is still on the bus.
const LIVENESS_CHECK: Duration = Duration::from_secs(2);

impl RaucClient {
    /// Connects to `bus` and checks that RAUC's service is there.
    pub fn connect(bus: Bus) -> Result<Self, RaucError> {
        let conn =
            bus.connect().map_err(|source| RaucError::NoBus { bus: bus.to_string(), source: Box::new(source) })?;
        let client = Self { bus, conn };
        client.ensure_service(&client.conn)?;
        Ok(client)
    }

    fn ensure_service(&self, conn: &Connection) -> Result<(), RaucError> {
        let owned = DBusProxy::new(conn)
            .and_then(|p| p.name_has_owner(SERVICE.try_into().expect("a valid bus name")).map_err(Into::into))
            .map_err(|source| RaucError::Call {
                call: "NameHasOwner(de.pengutronix.rauc)".into(),
                source: Box::new(source),
            })?;
        if owned { Ok(()) } else { Err(RaucError::NoService { bus: self.bus.to_string() }) }
    }

    fn proxy(&self) -> Result<InstallerProxy<'static>, RaucError> {
        InstallerProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .map_err(|source| self.call_error("proxy setup", source))
    }

    fn call_error(&self, call: &str, source: zbus::Error) -> RaucError {
        let unknown = matches!(&source, zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner");
        if unknown || matches!(&source, zbus::Error::FDO(e) if matches!(**e, zbus::fdo::Error::ServiceUnknown(_))) {
            return RaucError::NoService { bus: self.bus.to_string() };
        }
        RaucError::Call { call: call.to_owned(), source: Box::new(source) }
    }

    /// The system's `compatible` from RAUC's configuration.
    pub fn compatible(&self) -> Result<String, RaucError> {
        self.proxy()?.compatible().map_err(|e| self.call_error("Compatible", e))
    }

    /// The bootname of the slot this system booted from (`A`, `B`).
    pub fn boot_slot(&self) -> Result<String, RaucError> {
        self.proxy()?.boot_slot().map_err(|e| self.call_error("BootSlot", e))
    }

    /// RAUC's current operation (`idle`, `installing`).
    pub fn operation(&self) -> Result<String, RaucError> {
        self.proxy()?.operation().map_err(|e| self.call_error("Operation", e))
    }

    /// RAUC's last error message (empty when the last operation succeeded).
    pub fn last_error(&self) -> Result<String, RaucError> {
        self.proxy()?.last_error().map_err(|e| self.call_error("LastError", e))
    }

    /// Every slot RAUC knows, with its state and installed bundle version.
    pub fn slot_status(&self) -> Result<Vec<SlotStatus>, RaucError> {
        let slots = self.proxy()?.get_slot_status().map_err(|e| self.call_error("GetSlotStatus", e))?;
        Ok(slots.into_iter().map(|(name, props)| SlotStatus::from_dbus(name, &props)).collect())
    }

    /// The slot the bootloader will try first on the next boot.
    pub fn primary(&self) -> Result<String, RaucError> {
        self.proxy()?.get_primary().map_err(|e| self.call_error("GetPrimary", e))
    }

    /// Marks a slot (`booted`, `other`, or a slot name) `good`, `bad` or
    /// `active`; returns the slot RAUC marked.
    pub fn mark(&self, state: MarkState, slot: &str) -> Result<String, RaucError> {
        let (name, message) = self
            .proxy()?
            .mark(state.as_str(), slot)
            .map_err(|e| self.call_error(&format!("Mark({}, {slot})", state.as_str()), e))?;
        tracing::info!(slot = %name, state = state.as_str(), %message, "RAUC marked slot");
        Ok(name)
    }

    /// Checks a bundle's signature and reads its manifest (RAUC's `Info`).
    pub fn bundle_info(&self, bundle: &str) -> Result<BundleInfo, RaucError> {
        let (compatible, version) =
            self.proxy()?.info(bundle).map_err(|source| match self.call_error("Info", source) {
                RaucError::Call { source, .. } => match *source {
                    // RAUC 1.8 answers every bad bundle with the bare "rauc info error".
                    zbus::Error::MethodError(_, reply, _) => {
                        RaucError::Unverifiable { bundle: bundle.to_owned(), reply: reply.unwrap_or_default() }
                    }
                    other => RaucError::Call { call: "Info".into(), source: Box::new(other) },
                },
                other => other,
            })?;
        Ok(BundleInfo { compatible, version })
    }

    /// Installs `bundle` (a local path) into the inactive slot, calling
    /// `on_progress` with RAUC's progress, and returns once RAUC reports
    /// `Completed`. A failed install returns [`RaucError::Refused`] with RAUC's `LastError`.
    pub fn install(&self, bundle: &str, mut on_progress: impl FnMut(&Progress)) -> Result<InstallOutcome, RaucError> {
        // A connection of its own, closed at the end, so the thread forwarding
        // its signals ends with it.
        let conn = self
            .bus
            .connect()
            .map_err(|source| RaucError::NoBus { bus: self.bus.to_string(), source: Box::new(source) })?;
        let owner = DBusProxy::new(&conn)
            .and_then(|p| p.get_name_owner(SERVICE.try_into().expect("a valid bus name")).map_err(Into::into))
            .map_err(|_| RaucError::NoService { bus: self.bus.to_string() })?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(owner.as_str())
            .and_then(|b| b.path("/"))
            .map(|b| b.build())
            .map_err(|source| self.call_error("AddMatch", source))?;
        let signals = zbus::blocking::MessageIterator::for_match_rule(rule, &conn, Some(64))
            .map_err(|source| self.call_error("AddMatch", source))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("rauc-signals".into())
            .spawn(move || {
                for msg in signals.flatten() {
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            })
            .map_err(|source| RaucError::Spawn { source })?;

        let result = self.install_on(&conn, bundle, &rx, &mut on_progress);
        let _ = conn.close();
        result
    }

    fn install_on(
        &self,
        conn: &Connection,
        bundle: &str,
        signals: &mpsc::Receiver<zbus::Message>,
        on_progress: &mut impl FnMut(&Progress),
    ) -> Result<InstallOutcome, RaucError> {
        let proxy = InstallerProxy::builder(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .map_err(|e| self.call_error("proxy setup", e))?;
        proxy.install_bundle(bundle, HashMap::new()).map_err(|e| self.call_error("InstallBundle", e))?;
        loop {
            let msg = match signals.recv_timeout(LIVENESS_CHECK) {
                Ok(msg) => msg,
                Err(mpsc::RecvTimeoutError::Timeout) => match self.ensure_service(conn) {
                    Ok(()) => continue,
                    Err(RaucError::NoService { .. }) => return Err(RaucError::ServiceLost),
                    Err(e) => return Err(e),
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(RaucError::ServiceLost),
            };
            match signal_of(&msg) {
                Some(Signal::Progress(p)) => on_progress(&p),
                Some(Signal::Completed(0)) => {
                    let primary = proxy.get_primary().map_err(|e| self.call_error("GetPrimary", e))?;
                    return Ok(InstallOutcome { primary });
                }
                Some(Signal::Completed(_)) => {
                    let last_error = proxy.last_error().map_err(|e| self.call_error("LastError", e))?;
                    return Err(RaucError::Refused { last_error });
                }
                None => {}
            }
        }
    }
}

enum Signal {
    Progress(Progress),
    Completed(i32),
}

fn signal_of(msg: &zbus::Message) -> Option<Signal> {
    let header = msg.header();
    let member = header.member()?.as_str();
    let interface = header.interface()?.as_str();
    match (interface, member) {
        ("de.pengutronix.rauc.Installer", "Completed") => msg.body().deserialize::<i32>().ok().map(Signal::Completed),
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (_, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) = msg.body().deserialize().ok()?;
            let value = changed.get("Progress")?.try_clone().ok()?;
            let (percent, message, depth) = <(i32, String, i32)>::try_from(value).ok()?;
            Some(Signal::Progress(Progress { percent: percent.clamp(0, 100) as u8, message, depth }))
        }
        _ => None,
    }
}

/// The states RAUC's `Mark` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkState {
    /// The slot booted and works: the bootloader keeps it.
    Good,
    /// The slot is broken: the bootloader must not boot it.
    Bad,
    /// Make the slot primary for the next boot.
    Active,
}

impl MarkState {
    fn as_str(self) -> &'static str {
        match self {
            MarkState::Good => "good",
            MarkState::Bad => "bad",
            MarkState::Active => "active",
        }
    }
}

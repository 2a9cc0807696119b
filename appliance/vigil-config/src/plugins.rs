//! `[plugins]`: which plugin packages to trust and what each plugin may touch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::resolve;

/// `[plugins]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginsConfig {
    /// Ed25519 public keys (32 bytes each) whose signatures the host accepts.
    pub trusted_keys: Vec<[u8; 32]>,
    /// A folder of `.vpk` packages installed (or upgraded) at startup; `None`: none.
    pub install_dir: Option<PathBuf>,
    /// How long one call into a plugin may run before it is stopped.
    pub call_timeout: Duration,
    /// The most memory one plugin may use.
    pub memory_bytes: u64,
    /// The operator's grants, by plugin name.
    pub grants: BTreeMap<String, Grant>,
}

/// What the operator allows one plugin; the host enforces the intersection
/// with what the plugin's manifest asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grant {
    /// `host:port` the plugin may connect to.
    pub network: Vec<String>,
    /// Serial ports by the name the plugin opens them with, and their device paths.
    pub serial: BTreeMap<String, PathBuf>,
    /// A read-only folder mounted at `/data` inside the plugin.
    pub data: Option<PathBuf>,
    /// The plugin's own configuration, handed to it as JSON.
    pub config: serde_json::Value,
    /// `false` keeps an installed plugin stopped.
    pub enabled: bool,
    /// This plugin's call deadline in place of `[plugins] call_timeout_ms`
    /// (a paging plugin streaming an announcement needs longer).
    pub call_timeout: Option<Duration>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            trusted_keys: Vec::new(),
            install_dir: None,
            call_timeout: Duration::from_secs(2),
            memory_bytes: 64 << 20,
            grants: BTreeMap::new(),
        }
    }
}

/// The call deadlines an operator may set, ms: long enough for a paging
/// plugin to stream a repeated announcement, short enough that a stuck
/// plugin is noticed.
const CALL_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=120_000;

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugins {
    #[serde(default)]
    trusted_keys: Vec<String>,
    install_dir: Option<String>,
    call_timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    #[serde(default)]
    grant: BTreeMap<String, RawGrant>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    serial: BTreeMap<String, String>,
    data: Option<String>,
    #[serde(default = "empty_table")]
    config: toml::Value,
    #[serde(default = "yes")]
    enabled: bool,
    call_timeout_ms: Option<u64>,
}

fn empty_table() -> toml::Value {
    toml::Value::Table(toml::map::Map::new())
}

fn yes() -> bool {
    true
}

impl RawPlugins {
    pub(crate) fn validate(&self, base: &Path) -> Result<PluginsConfig, String> {
        let trusted_keys = self
            .trusted_keys
            .iter()
            .enumerate()
            .map(|(i, k)| parse_key(k).map_err(|e| format!("plugins.trusted_keys[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let call_timeout_ms = self.call_timeout_ms.unwrap_or(2000);
        if !CALL_TIMEOUT_MS.contains(&call_timeout_ms) {
            return Err(format!("plugins.call_timeout_ms is {call_timeout_ms}: use 10 to 120000"));
        }
        let memory_mib = self.memory_mib.unwrap_or(64);
        if !(4..=4096).contains(&memory_mib) {
            return Err(format!("plugins.memory_mib is {memory_mib}: use 4 to 4096"));
        }
        let mut grants = BTreeMap::new();
        for (name, g) in &self.grant {
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(format!("plugins.grant.{name}: plugin names are 1 to 64 of a-z, 0-9 and '-'"));
            }
            for addr in &g.network {
                let ok =
                    addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    return Err(format!("plugins.grant.{name}.network: {addr:?} is not host:port"));
                }
            }
            if let Some(ms) = g.call_timeout_ms
                && !CALL_TIMEOUT_MS.contains(&ms)
            {
                return Err(format!("plugins.grant.{name}.call_timeout_ms is {ms}: use 10 to 120000"));
            }
            let config = serde_json::to_value(&g.config).map_err(|e| format!("plugins.grant.{name}.config: {e}"))?;
            grants.insert(
                name.clone(),
                Grant {
                    network: g.network.clone(),
                    serial: g.serial.iter().map(|(k, v)| (k.clone(), resolve(base, v))).collect(),
                    data: g.data.as_deref().map(|d| resolve(base, d)),
                    config,
                    enabled: g.enabled,
                    call_timeout: g.call_timeout_ms.map(Duration::from_millis),
                },
            );
        }
        Ok(PluginsConfig {
            trusted_keys,
            install_dir: self.install_dir.as_deref().map(|d| resolve(base, d)),
            call_timeout: Duration::from_millis(call_timeout_ms),
            memory_bytes: memory_mib << 20,
            grants,
        })
    }
}

/// A public key as written: 64 hex digits, optionally prefixed `ed25519:`.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let hex = text.strip_prefix("ed25519:").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not an ed25519 public key: expected 64 hex digits (vigilctl plugin keygen prints one)"
        ));
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(key)
}

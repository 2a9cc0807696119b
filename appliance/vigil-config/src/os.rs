//! `[os]`: how vigild updates the appliance's OS (RAUC bundles, `os.update`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::resolve;

/// `[os]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct OsConfig {
    /// Whether `os.update` commands are accepted (RAUC on the system bus).
    pub updates: bool,
    /// The command run to reboot into the new slot, as argv.
    pub reboot_command: Vec<String>,
    /// Where the kernel's boot id is read; it tells a reboot from a restart of vigild.
    pub boot_id_file: PathBuf,
    /// How long the health check after an update waits for the pipeline.
    pub health_timeout: Duration,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            updates: true,
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            boot_id_file: PathBuf::from("/proc/sys/kernel/random/boot_id"),
            health_timeout: Duration::from_secs(180),
        }
    }
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOs {
    updates: Option<bool>,
    reboot_command: Option<Vec<String>>,
    boot_id_file: Option<String>,
    health_timeout_s: Option<u64>,
}

impl RawOs {
    pub(crate) fn validate(&self, base: &Path) -> Result<OsConfig, String> {
        let default = OsConfig::default();
        let reboot_command = self.reboot_command.clone().unwrap_or(default.reboot_command);
        if reboot_command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(
                "os.reboot_command is empty: give the program and its arguments, e.g. [\"systemctl\", \"reboot\"]"
                    .into(),
            );
        }
        let health_timeout = match self.health_timeout_s {
            None => default.health_timeout,
            Some(s) if (10..=3600).contains(&s) => Duration::from_secs(s),
            Some(s) => return Err(format!("os.health_timeout_s is {s}: use 10 to 3600")),
        };
        Ok(OsConfig {
            health_timeout,
            updates: self.updates.unwrap_or(default.updates),
            reboot_command,
            boot_id_file: self.boot_id_file.as_deref().map_or(default.boot_id_file, |f| resolve(base, f)),
        })
    }
}

//! Checks on the files a config names, shared by startup, reloads and remote configs.

use anyhow::bail;
use vigil_config::{Config, SourceConfig};

/// Files the config names must exist: refusing now beats a camera that
/// retries a missing file forever.
pub fn check_files(config: &Config) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let model = &config.detector.model;
    if !model.is_file() {
        missing.push(format!("detector.model {}", model.display()));
    } else if model.extension().is_some_and(|e| e == "xml") && !model.with_extension("bin").is_file() {
        missing.push(format!("the weights {} beside detector.model", model.with_extension("bin").display()));
    }
    for (field, path) in config.uplink.files() {
        if !path.is_file() {
            missing.push(format!("{field} {}", path.display()));
        }
    }
    for c in &config.cameras {
        if let SourceConfig::File { path, .. } = &c.source
            && !path.is_file()
        {
            missing.push(format!("camera {} source {}", c.id, path.display()));
        }
    }
    if !missing.is_empty() {
        bail!("files named in the config do not exist: {}", missing.join("; "));
    }
    Ok(())
}

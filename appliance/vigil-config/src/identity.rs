//! The device id when `[device] id` is left out: derived from systemd's
//! machine id, so an image flashed onto many boxes gives each its own
//! stable identity without a per-box config.

use std::path::Path;

/// Where systemd keeps the machine id.
pub(crate) const MACHINE_ID: &str = "/etc/machine-id";

/// `vigil-` and the first 12 hex digits of the machine id in `path`.
pub(crate) fn from_machine_id(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("device.id is not set and {} cannot be read ({e}): set device.id", path.display()))?;
    id_from(text.trim()).ok_or_else(|| {
        format!(
            "device.id is not set and {} holds {:?}, not a 32-digit hex machine id \
             (systemd writes \"uninitialized\" until the first boot commits one): set device.id",
            path.display(),
            text.trim()
        )
    })
}

fn id_from(machine_id: &str) -> Option<String> {
    let valid = machine_id.len() == 32 && machine_id.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| format!("vigil-{}", machine_id[..12].to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_derived_from_a_machine_id_and_anything_else_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("machine-id");
        std::fs::write(&file, "3F2a9c41d7e84b6a9c0d1e2f3a4b5c6d\n").unwrap();
        assert_eq!(from_machine_id(&file).unwrap(), "vigil-3f2a9c41d7e8");
        std::fs::write(&file, "uninitialized\n").unwrap();
        let err = from_machine_id(&file).unwrap_err();
        assert!(err.contains("\"uninitialized\"") && err.ends_with("set device.id"), "{err}");
        let err = from_machine_id(&dir.path().join("missing")).unwrap_err();
        assert!(err.contains("cannot be read") && err.ends_with("set device.id"), "{err}");
    }
}

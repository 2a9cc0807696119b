//! Durable incident records.
//!
//! ```text
//! <data_dir>/incidents/00000042/incident.json   current state, replaced atomically
//!                              /audit.jsonl     every transition, appended and fsynced
//!                              /snapshot.jpg    evidence
//! <data_dir>/state/drill                        "1" or "0": drill mode as an operator last set it
//! <data_dir>/state/audit.jsonl                  the device's own audit trail (drill mode changes)
//! ```
//!
//! Every write is fsynced (file and folder) before the call returns, so an
//! incident the supervisor has announced survives a power cut. The JSON here
//! is this crate's own record format; core types stay free of serde.

mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use vigil_core::incident::{Incident, IncidentId};

pub use record::AuditEntry;

/// A storage failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct StoreError {
    /// The file or folder.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| StoreError { path, message: format!("{what}: {e}") }
}

/// What survived the last run.
#[derive(Debug)]
pub struct Loaded {
    /// The id the next incident must get (one above any id on disk).
    pub next_id: u64,
    /// Incidents still open.
    pub open: Vec<Incident>,
    /// Closed incidents, oldest first (for reconciling the alert journal after a crash).
    pub closed: Vec<Incident>,
    /// Drill mode as an operator last set it; `None` if never.
    pub drill: Option<bool>,
    /// Incident folders that could not be read; left in place for a human.
    pub unreadable: Vec<StoreError>,
}

/// The incident store under one data folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        for dir in ["incidents", "state"] {
            let path = data_dir.join(dir);
            fs::create_dir_all(&path).map_err(io_err(&path, "cannot create the folder"))?;
        }
        Ok(Store { root: data_dir.to_path_buf() })
    }

    /// The folder of incident `id`.
    pub fn incident_dir(&self, id: IncidentId) -> PathBuf {
        self.root.join("incidents").join(format!("{:08}", id.0))
    }

    /// Where incident `id`'s snapshot is (or will be).
    pub fn snapshot_path(&self, id: IncidentId) -> PathBuf {
        self.incident_dir(id).join("snapshot.jpg")
    }

    /// Reads every incident folder: the next id and the incidents still open.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let dir = self.root.join("incidents");
        let mut loaded =
            Loaded { next_id: 1, open: Vec::new(), closed: Vec::new(), drill: None, unreadable: Vec::new() };
        for entry in fs::read_dir(&dir).map_err(io_err(&dir, "cannot list incidents"))? {
            let entry = entry.map_err(io_err(&dir, "cannot list incidents"))?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            loaded.next_id = loaded.next_id.max(id + 1);
            let path = entry.path().join("incident.json");
            match read_incident(&path) {
                Ok(incident) if !incident.stage.is_closed() => loaded.open.push(incident),
                Ok(incident) => loaded.closed.push(incident),
                Err(e) => loaded.unreadable.push(e),
            }
        }
        loaded.open.sort_by_key(|i| i.id);
        loaded.closed.sort_by_key(|i| i.id);
        let drill = self.root.join("state/drill");
        loaded.drill = match fs::read_to_string(&drill) {
            Ok(s) => Some(s.trim() == "1"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&drill, "cannot read drill state")(e)),
        };
        Ok(loaded)
    }

    /// Writes `incident`'s current state atomically.
    pub fn save_incident(&self, incident: &Incident) -> Result<(), StoreError> {
        let dir = self.incident_dir(incident.id);
        create_dir_synced(&dir)?;
        let json = serde_json::to_vec_pretty(&record::IncidentRecord::from(incident))
            .map_err(|e| StoreError { path: dir.clone(), message: format!("cannot encode the incident: {e}") })?;
        write_atomic(&dir.join("incident.json"), &json)
    }

    /// Appends one entry to incident `id`'s audit trail.
    pub fn append_audit(&self, id: IncidentId, entry: &AuditEntry) -> Result<(), StoreError> {
        let dir = self.incident_dir(id);
        create_dir_synced(&dir)?;
        append_line(&dir.join("audit.jsonl"), entry)
    }

    /// Incident `id`'s audit trail, oldest first. A torn last line (power cut
    /// mid-append) is skipped; any other bad line is an error.
    pub fn audit(&self, id: IncidentId) -> Result<Vec<AuditEntry>, StoreError> {
        read_lines(&self.incident_dir(id).join("audit.jsonl"))
    }

    /// Appends one entry to the device's own audit trail (events of no single incident).
    pub fn append_device_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        append_line(&self.root.join("state/audit.jsonl"), entry)
    }

    /// The device's own audit trail, oldest first, read like [`Store::audit`].
    pub fn device_audit(&self) -> Result<Vec<AuditEntry>, StoreError> {
        read_lines(&self.root.join("state/audit.jsonl"))
    }

    /// Stores incident `id`'s evidence snapshot and returns its path.
    pub fn save_snapshot(&self, id: IncidentId, jpeg: &[u8]) -> Result<PathBuf, StoreError> {
        let dir = self.incident_dir(id);
        create_dir_synced(&dir)?;
        let path = self.snapshot_path(id);
        write_atomic(&path, jpeg)?;
        Ok(path)
    }

    /// Records drill mode so a restart mid-drill stays in drill mode.
    pub fn set_drill(&self, active: bool) -> Result<(), StoreError> {
        write_atomic(&self.root.join("state/drill"), if active { b"1\n" } else { b"0\n" })
    }
}

fn append_line(path: &Path, entry: &AuditEntry) -> Result<(), StoreError> {
    let mut line = serde_json::to_vec(entry)
        .map_err(|e| StoreError { path: path.to_path_buf(), message: format!("cannot encode the audit entry: {e}") })?;
    line.push(b'\n');
    let mut file =
        OpenOptions::new().create(true).append(true).open(path).map_err(io_err(path, "cannot open the audit trail"))?;
    file.write_all(&line).map_err(io_err(path, "cannot append to the audit trail"))?;
    file.sync_data().map_err(io_err(path, "cannot sync the audit trail"))
}

fn read_lines(path: &Path) -> Result<Vec<AuditEntry>, StoreError> {
    let file = File::open(path).map_err(io_err(path, "cannot open the audit trail"))?;
    let lines: Vec<String> =
        BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io_err(path, "cannot read the audit trail"))?;
    let last = lines.len().saturating_sub(1);
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(entry) => out.push(entry),
            Err(_) if n == last => tracing::warn!(path = %path.display(), "skipping a torn last audit line"),
            Err(e) => return Err(StoreError { path: path.to_path_buf(), message: format!("line {}: {e}", n + 1) }),
        }
    }
    Ok(out)
}

fn read_incident(path: &Path) -> Result<Incident, StoreError> {
    let bytes = fs::read(path).map_err(io_err(path, "cannot read the incident"))?;
    let record: record::IncidentRecord = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError { path: path.to_path_buf(), message: format!("not a valid incident record: {e}") })?;
    record.into_incident().map_err(|message| StoreError { path: path.to_path_buf(), message })
}

fn create_dir_synced(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the folder"))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes via a temporary file, fsync and rename, then fsyncs the folder, so
/// readers see the old or the new content, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err(&tmp, "cannot create"))?;
    file.write_all(bytes).map_err(io_err(&tmp, "cannot write"))?;
    file.sync_all().map_err(io_err(&tmp, "cannot sync"))?;
    fs::rename(&tmp, path).map_err(io_err(path, "cannot replace"))?;
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "cannot sync the folder"))
}

#[cfg(test)]
mod tests;

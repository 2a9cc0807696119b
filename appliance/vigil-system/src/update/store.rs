//! The job file: the current (or last) update job as JSON in the data
//! directory, replaced atomically so a power cut leaves the old or the new
//! version, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::job::Job;

/// Why the job file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O error on the named file.
    #[error("update job file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not a job this version understands.
    #[error("update job file {path} is not a valid job (delete it to forget the job): {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

/// The job file in a data directory.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
    path: PathBuf,
}

impl JobStore {
    /// The name of the job file inside the data directory.
    pub const FILE_NAME: &'static str = "os-update.json";

    /// The store in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_owned(), source })?;
        Ok(Self { dir: dir.to_owned(), path: dir.join(Self::FILE_NAME) })
    }

    /// The job file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored job, if any.
    pub fn load(&self) -> Result<Option<Job>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path: self.path.clone(), source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path: self.path.clone(), source })
    }

    /// Replaces the stored job: write a temporary file, fsync, rename over the
    /// job file, fsync the directory.
    pub fn save(&self, job: &Job) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!(".{}.tmp", Self::FILE_NAME));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        let json = serde_json::to_vec_pretty(job).expect("a job always serializes");
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::job::{BundleSource, Phase};

    #[test]
    fn saves_and_loads_a_job_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(&dir.path().join("update")).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let mut job = Job::new("j1".into(), BundleSource::Path("/b.raucb".into()), Some("2".into()));
        store.save(&job).unwrap();
        job.enter(Phase::Verifying, "checking").unwrap();
        store.save(&job).unwrap();
        let again = JobStore::open(&dir.path().join("update")).unwrap();
        assert_eq!(again.load().unwrap(), Some(job));
        let leftovers: Vec<_> =
            fs::read_dir(dir.path().join("update")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [JobStore::FILE_NAME], "no temporary file left behind");
    }

    #[test]
    fn a_corrupt_job_file_says_how_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        fs::write(store.path(), b"{\"id\": ").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("is not a valid job (delete it to forget the job)"), "{e}");
    }
}

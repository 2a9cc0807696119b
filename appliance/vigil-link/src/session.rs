//! The session counter (Sparkplug's `bdSeq`): one number per connection
//! attempt, kept on disk so it keeps growing across restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A counter persisted in a small file.
#[derive(Debug)]
pub struct SessionCounter {
    path: PathBuf,
    last: u64,
}

impl SessionCounter {
    /// Opens the counter at `path`; a missing file starts at 0. A file that
    /// cannot be parsed is an error: silently restarting at 0 would make
    /// fresh births look stale.
    pub fn open(path: &Path) -> Result<SessionCounter, String> {
        let last = match std::fs::read_to_string(path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                format!(
                    "{}: not a session number ({:?}); delete the file to start again at 1",
                    path.display(),
                    text.trim()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("{}: cannot read the session counter: {e}", path.display())),
        };
        Ok(SessionCounter { path: path.to_path_buf(), last })
    }

    /// The last number handed out (0 before the first).
    pub fn current(&self) -> u64 {
        self.last
    }

    /// The next number, written durably (temp file, fsync, rename) before it is returned.
    /// If the disk fails the number is still returned, and the error logged:
    /// a connection matters more than the counter.
    pub fn advance(&mut self) -> u64 {
        self.last += 1;
        if let Err(e) = self.store() {
            tracing::error!(path = %self.path.display(), error = %e, "cannot store the MQTT session counter");
        }
        self.last
    }

    fn store(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{}", self.last)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_across_reopen_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session");
        let mut c = SessionCounter::open(&path).unwrap();
        assert_eq!(c.current(), 0);
        assert_eq!((c.advance(), c.advance()), (1, 2));
        let mut c = SessionCounter::open(&path).unwrap();
        assert_eq!(c.advance(), 3);
        std::fs::write(&path, "x").unwrap();
        assert!(SessionCounter::open(&path).unwrap_err().contains("not a session number"));
    }
}

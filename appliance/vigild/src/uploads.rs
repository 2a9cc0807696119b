//! Plugin packages that arrive in parts (`plugin.install` with `upload`),
//! assembled on disk under `<data_dir>/plugin-uploads/<upload>/` so a
//! package larger than the broker's message limit still installs, and a
//! restart of vigild mid-upload loses nothing already received.
//!
//! A part is written to a temporary file and renamed, so a part on disk is
//! always whole. The first part fixes the upload's part count and checksum;
//! a part that disagrees is refused. Once every part is there the package is
//! joined, checked against its SHA-256 and handed back, and the folder is
//! deleted either way. Uploads untouched for an hour are deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use vigil_uplink::UploadPart;
use vigil_uplink::command::MAX_UPLOAD;

/// How long an unfinished upload is kept.
const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);

/// Where an upload stands after a part.
#[derive(Debug, PartialEq)]
pub(crate) enum Progress {
    /// Waiting for more parts.
    Partial { received: u32, parts: u32 },
    /// Every part arrived and the checksum matches: the package.
    Complete(Vec<u8>),
}

/// The uploads folder.
pub(crate) struct Uploads {
    dir: PathBuf,
}

impl Uploads {
    pub(crate) fn new(data_dir: &Path) -> Uploads {
        Uploads { dir: data_dir.join("plugin-uploads") }
    }

    /// Stores `part`; returns the package when it completes the upload. An
    /// error is the reason in words (the caller answers `bad-argument`).
    pub(crate) fn add(&self, part: &UploadPart) -> Result<Progress, String> {
        self.forget_abandoned(&part.upload);
        let dir = self.dir.join(&part.upload);
        let io = |what: &str, path: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        let meta = dir.join("upload");
        let fixed = format!("{} {}", part.parts, hex(&part.sha256));
        match std::fs::read_to_string(&meta) {
            Ok(existing) if existing != fixed => {
                return Err(format!(
                    "upload {} was started as {existing:?} (parts, sha256); this part says {fixed:?}: \
                     start a new upload",
                    part.upload
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_whole(&meta, fixed.as_bytes()).map_err(|e| io("write", &meta, e))?;
            }
            Err(e) => return Err(io("read", &meta, e)),
        }
        let path = dir.join(format!("{}.part", part.part));
        write_whole(&path, &part.data).map_err(|e| io("write", &path, e))?;

        let mut received = 0;
        let mut size = 0u64;
        for i in 0..part.parts {
            if let Ok(m) = std::fs::metadata(dir.join(format!("{i}.part"))) {
                received += 1;
                size += m.len();
            }
        }
        if size > MAX_UPLOAD as u64 {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("upload {} exceeds {MAX_UPLOAD} bytes; it was discarded", part.upload));
        }
        if received < part.parts {
            return Ok(Progress::Partial { received, parts: part.parts });
        }
        let joined = (0..part.parts).try_fold(Vec::with_capacity(size as usize), |mut all, i| {
            let path = dir.join(format!("{i}.part"));
            all.extend(std::fs::read(&path).map_err(|e| io("read", &path, e))?);
            Ok::<_, String>(all)
        });
        let _ = std::fs::remove_dir_all(&dir);
        let package = joined?;
        let sum: [u8; 32] = Sha256::digest(&package).into();
        if sum != part.sha256 {
            return Err(format!(
                "upload {}: the {} bytes assembled have SHA-256 {}, not {} as announced; the upload was \
                 discarded: send it again",
                part.upload,
                package.len(),
                hex(&sum),
                hex(&part.sha256)
            ));
        }
        Ok(Progress::Complete(package))
    }

    /// Deletes other uploads nobody has added to for an hour.
    fn forget_abandoned(&self, current: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
            if stale && entry.file_name() != current {
                tracing::info!(upload = ?entry.file_name(), "deleting an abandoned plugin upload");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(package: &[u8], size: usize, upload: &str) -> Vec<UploadPart> {
        let sha256: [u8; 32] = Sha256::digest(package).into();
        let chunks: Vec<&[u8]> = package.chunks(size).collect();
        let n = chunks.len() as u32;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| UploadPart { upload: upload.into(), part: i as u32, parts: n, sha256, data: c.to_vec() })
            .collect()
    }

    #[test]
    fn parts_in_any_order_assemble_the_package_once_all_have_come() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path());
        let package: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut p = parts(&package, 3_000, "u1");
        p.swap(0, 2);
        assert_eq!(uploads.add(&p[0]), Ok(Progress::Partial { received: 1, parts: 4 }));
        // A repeated part (a retried command) counts once.
        assert_eq!(uploads.add(&p[0]), Ok(Progress::Partial { received: 1, parts: 4 }));
        assert_eq!(uploads.add(&p[1]), Ok(Progress::Partial { received: 2, parts: 4 }));
        assert_eq!(uploads.add(&p[3]), Ok(Progress::Partial { received: 3, parts: 4 }));
        assert_eq!(uploads.add(&p[2]), Ok(Progress::Complete(package)));
        assert!(!dir.path().join("plugin-uploads/u1").exists(), "the parts are deleted once joined");
    }

    #[test]
    fn a_wrong_checksum_or_a_disagreeing_part_is_refused_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path());
        let mut p = parts(b"abcdefgh", 4, "u2");
        p[1].data = b"XXXX".to_vec();
        uploads.add(&p[0]).unwrap();
        let err = uploads.add(&p[1]).unwrap_err();
        assert!(err.contains("SHA-256") && err.contains("send it again"), "{err}");
        assert!(!dir.path().join("plugin-uploads/u2").exists());

        let mut q = parts(b"abcdefgh", 4, "u3");
        uploads.add(&q[0]).unwrap();
        q[1].parts = 5;
        let err = uploads.add(&q[1]).unwrap_err();
        assert!(err.contains("was started as") && err.contains("start a new upload"), "{err}");
    }
}

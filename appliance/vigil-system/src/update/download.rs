//! Bundle downloads to the data partition, resumable and size-limited.
//!
//! RAUC 1.8 can install from a URL only when built with streaming support,
//! which Debian's and our image's builds lack ("configured without
//! --enable-streaming"), so vigild downloads the bundle itself. A download
//! goes to `<dest>.part`; after an interruption (lost link, reboot) it asks
//! for the rest with an HTTP `Range` request and starts over only when the
//! server ignores the range. The bundle is renamed into place once complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits for one download.
#[derive(Debug, Clone)]
pub struct DownloadLimits {
    /// Largest bundle accepted, in bytes (the data partition is finite).
    pub max_bytes: u64,
    /// Time allowed to connect and receive the response headers.
    pub connect_timeout: Duration,
    /// Time allowed for the whole body of one attempt.
    pub body_timeout: Duration,
    /// Attempts before a transient failure (lost link, 5xx) fails the job;
    /// each resumes where the last stopped.
    pub attempts: u32,
    /// Wait before the first retry; doubles per retry, at most 5 minutes.
    pub retry_delay: Duration,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            connect_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(2 * 3600),
            attempts: 5,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// Connecting or talking HTTP failed (the partial file is kept for a resume).
    #[error("downloading {url} failed: {source}")]
    Http {
        /// The URL.
        url: String,
        /// ureq's error.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status.
    #[error("downloading {url} failed: the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The bundle is larger than allowed.
    #[error("bundle at {url} is larger than the {max_bytes}-byte limit ({what})")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max_bytes: u64,
        /// What showed it (announced length or bytes received).
        what: String,
    },
    /// The body broke off or the local file could not be written.
    #[error("downloading {url} to {path} failed: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The local file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl DownloadError {
    /// Whether trying again may help: a broken connection or a server-side
    /// hiccup, not a missing file or an oversized bundle.
    pub fn is_transient(&self) -> bool {
        match self {
            DownloadError::Http { .. } | DownloadError::Io { .. } => true,
            DownloadError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            DownloadError::TooLarge { .. } => false,
        }
    }
}

/// The partial file a download of `dest` writes to.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`, resuming a `<dest>.part` left by an earlier
/// attempt. `on_progress(received, total)` is called as bytes arrive (`total`
/// when the server announced it).
pub fn download(
    url: &str,
    dest: &Path,
    limits: &DownloadLimits,
    mut on_progress: impl FnMut(u64, Option<u64>),
) -> Result<(), DownloadError> {
    let part = partial_path(dest);
    let io_err = |source| DownloadError::Io { url: url.to_owned(), path: part.clone(), source };
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(limits.connect_timeout))
            .timeout_recv_response(Some(limits.connect_timeout))
            .timeout_recv_body(Some(limits.body_timeout))
            .build(),
    );
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request.call().map_err(|source| DownloadError::Http { url: url.to_owned(), source })?;
    let status = response.status().as_u16();
    let content_length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let resume = match status {
        206 if have > 0 => true,
        200 => false,
        // The part already holds the whole file (the link dropped after the last byte).
        416 if have > 0 => {
            fs::rename(&part, dest).map_err(io_err)?;
            on_progress(have, Some(have));
            return Ok(());
        }
        status => return Err(DownloadError::Status { url: url.to_owned(), status }),
    };
    let mut received = if resume { have } else { 0 };
    let total = content_length.map(|n| n + received);
    let too_large = |what: String| DownloadError::TooLarge { url: url.to_owned(), max_bytes: limits.max_bytes, what };
    if let Some(total) = total.filter(|&t| t > limits.max_bytes) {
        return Err(too_large(format!("the server announced {total} bytes")));
    }
    let mut file = if resume {
        tracing::info!(url, resumed_at = have, "resuming bundle download");
        OpenOptions::new().append(true).open(&part).map_err(io_err)?
    } else {
        File::create(&part).map_err(io_err)?
    };
    on_progress(received, total);
    let mut body = response.body_mut().as_reader();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                file.sync_all().ok();
                return Err(io_err(source));
            }
        };
        received += n as u64;
        if received > limits.max_bytes {
            drop(file);
            let _ = fs::remove_file(&part);
            return Err(too_large(format!("received {received} bytes")));
        }
        file.write_all(&buf[..n]).map_err(io_err)?;
        on_progress(received, total);
    }
    file.sync_all().map_err(io_err)?;
    if let Some(total) = total.filter(|&t| t != received) {
        return Err(io_err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("body ended after {received} of {total} bytes"),
        )));
    }
    fs::rename(&part, dest).map_err(io_err)
}

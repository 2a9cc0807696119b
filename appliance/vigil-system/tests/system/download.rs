//! Bundle downloads against Python's `http.server` (a real server; it ignores
//! `Range`, so it also shows the restart-from-zero path) and, for resuming, a
//! small server written here that breaks off the first response halfway:
//! no packaged server here can be told to drop a connection mid-body.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_system::update::download::{DownloadError, DownloadLimits, download, partial_path};

/// `python3 -m http.server` serving a directory on a free loopback port; killed on drop.
pub struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    /// Serves `dir` and waits until it accepts connections.
    pub fn serve_dir(dir: &Path) -> HttpServer {
        // Port 0: Python picks a free port and says which, so parallel tests never race for one.
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port: u16 = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in http.server's banner {line:?}"));
        super::wait_for("python's http.server to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        HttpServer { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `body`; the first response announces the full length but closes
/// after `cut` bytes; later requests get `206` for their `Range`. Records
/// each request's `Range` header.
pub fn breaking_server(body: Vec<u8>, cut: usize) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/bundle.raucb", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = Some(v.trim().to_owned());
                }
            }
            seen.lock().unwrap().push(range.clone());
            let start: usize =
                range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()).unwrap_or(0);
            let (status, extra) = if range.is_some() {
                ("206 Partial Content", format!("Content-Range: bytes {start}-{}/{}\r\n", body.len() - 1, body.len()))
            } else {
                ("200 OK", String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len() - start
            );
            let end = if n == 0 { cut } else { body.len() };
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body[start..end]));
            let _ = stream.flush();
        }
    });
    (url, ranges)
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn downloads_a_whole_file_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.raucb"), content(300_000)).unwrap();
    let server = HttpServer::serve_dir(dir.path());
    let dest = dir.path().join("out/u.raucb");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let mut seen = Vec::new();
    download(&format!("{}/u.raucb", server.url()), &dest, &DownloadLimits::default(), |got, total| {
        seen.push((got, total))
    })
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content(300_000));
    assert_eq!(seen.last(), Some(&(300_000, Some(300_000))));
    assert!(!partial_path(&dest).exists());
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let body = content(200_000);
    let (url, ranges) = breaking_server(body.clone(), 80_000);
    let dest = dir.path().join("u.raucb");
    let err = download(&url, &dest, &DownloadLimits::default(), |_, _| {}).unwrap_err();
    assert!(matches!(err, DownloadError::Io { .. }), "{err}");
    let kept = std::fs::metadata(partial_path(&dest)).unwrap().len();
    assert!(kept > 0 && kept <= 80_000, "kept {kept} bytes");

    download(&url, &dest, &DownloadLimits::default(), |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(*ranges.lock().unwrap(), [None, Some(format!("bytes={kept}-"))]);
}

#[test]
fn a_server_that_ignores_range_restarts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.raucb"), content(50_000)).unwrap();
    let server = HttpServer::serve_dir(dir.path());
    let dest = dir.path().join("copy.raucb");
    std::fs::write(partial_path(&dest), b"stale bytes from another file").unwrap();
    download(&format!("{}/u.raucb", server.url()), &dest, &DownloadLimits::default(), |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content(50_000));
}

#[test]
fn a_bundle_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.raucb"), content(50_000)).unwrap();
    let server = HttpServer::serve_dir(dir.path());
    let dest = dir.path().join("copy.raucb");
    let limits = DownloadLimits { max_bytes: 10_000, ..DownloadLimits::default() };
    let url = format!("{}/u.raucb", server.url());
    let err = download(&url, &dest, &limits, |_, _| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bundle at {url} is larger than the 10000-byte limit (the server announced 50000 bytes)")
    );
    assert!(!dest.exists() && !partial_path(&dest).exists());
}

#[test]
fn a_missing_bundle_reports_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::serve_dir(dir.path());
    let url = format!("{}/nope.raucb", server.url());
    let err = download(&url, &dir.path().join("x"), &DownloadLimits::default(), |_, _| {}).unwrap_err();
    assert_eq!(err.to_string(), format!("downloading {url} failed: the server answered HTTP 404"));
}

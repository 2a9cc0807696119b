//! A plugin's stdout and stderr, as vigild log lines tagged with its name:
//! a Rust plugin's panic message goes to stderr, and an author debugging with
//! `println!` sees it too. Lines are cut at 4 KiB; output with no newline is
//! held until one comes (or the buffer fills).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The longest line logged; longer ones are cut.
const MAX_LINE: usize = 4 * 1024;

/// Which stream, which decides the log level.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One plugin's stdout or stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    plugin: Arc<str>,
    stream: Stream,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    pub(crate) fn new(plugin: Arc<str>, stream: Stream) -> GuestOutput {
        GuestOutput { plugin, stream, partial: Arc::default() }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        match self.stream {
            Stream::Stdout => tracing::info!(plugin = &*self.plugin, stream = "stdout", "{text}"),
            Stream::Stderr => tracing::warn!(plugin = &*self.plugin, stream = "stderr", "{text}"),
        }
    }

    /// Logs every complete line in `bytes` (after what is held) and holds the rest.
    fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        for line in lines(&mut partial, bytes) {
            self.emit(&line);
        }
    }
}

/// Appends `bytes` to `partial` and takes out the complete lines (without
/// their newline, cut at [`MAX_LINE`]); a held part reaching `MAX_LINE` is
/// taken out as a line too.
fn lines(partial: &mut Vec<u8>, bytes: &[u8]) -> Vec<Vec<u8>> {
    partial.extend_from_slice(bytes);
    let mut out = Vec::new();
    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
        out.push(partial[..end.min(MAX_LINE)].to_vec());
        partial.drain(..=end);
    }
    if partial.len() >= MAX_LINE {
        out.push(partial[..MAX_LINE].to_vec());
        partial.clear();
    }
    out
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_becomes_whole_lines_held_until_their_newline_and_cut_when_long() {
        let mut held = Vec::new();
        assert_eq!(lines(&mut held, b"panicked at src/lib.rs:9:5:\nbo"), vec![b"panicked at src/lib.rs:9:5:".to_vec()]);
        assert_eq!(held, b"bo");
        assert_eq!(lines(&mut held, b"om\n\n"), vec![b"boom".to_vec(), Vec::new()]);
        assert!(held.is_empty());
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(lines(&mut held, &long), vec![vec![b'x'; MAX_LINE]]);
        assert!(held.is_empty(), "the rest of an over-long line is dropped");
    }
}

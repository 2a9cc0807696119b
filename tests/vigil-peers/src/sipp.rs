//! SIPp (Debian's sip-tester 3.6.1, `/usr/bin/sipp`) as the school's paging
//! extension: a SIP user agent server on a free loopback UDP port, running
//! one call of a scenario from `tests/peers/sipp/` and exiting.
//!
//! SIPp does the SIP only. The audio is the test's: an [`RtpSink`] is a plain
//! UDP socket the test binds, and the scenario's 200 OK points the media at it
//! (`-key rtp_host`/`rtp_port`), so the test sees every RTP packet the caller
//! sent. That is the real receiving end of a page, not a mock: a paging
//! device is exactly a socket that plays what arrives.
//!
//! SIPp logs every message sent and received (`-trace_msg`), which tests read
//! with [`Sipp::messages`], and exits 0 when the scenario ran to its end.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The SIPp binary (Debian's `sip-tester` package).
const SIPP: &str = "/usr/bin/sipp";
/// How long SIPp may take to bind its port.
const STARTUP: Duration = Duration::from_secs(10);
/// SIPp's own global timeout: it gives up on a call that long (so it never outlives a broken test).
const GLOBAL_TIMEOUT_S: u32 = 90;

/// The user name the `auth` scenario accepts.
pub const USER: &str = "vigil";
/// The password the `auth` scenario accepts.
pub const PASSWORD: &str = "page-secret";
/// The realm of the `auth` scenario's challenge.
pub const REALM: &str = "vigil-test";

/// The scenarios in `tests/peers/sipp/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Answers (100, 180, 200 with SDP), then waits for the BYE.
    Answer,
    /// Challenges with 401 (MD5, qop=auth), verifies [`USER`]/[`PASSWORD`]; 403 if wrong, else as `Answer`.
    Auth,
    /// 486 Busy Here.
    Busy,
    /// Rings (180) until CANCEL, then 200 to the CANCEL and 487 to the INVITE.
    NoAnswer,
    /// Answers as `Answer`, then sends its own BYE half a second after the ACK.
    HangUp,
}

impl Scenario {
    /// The scenario file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Scenario::Answer => "answer.xml",
            Scenario::Auth => "auth.xml",
            Scenario::Busy => "busy.xml",
            Scenario::NoAnswer => "no-answer.xml",
            Scenario::HangUp => "hangup.xml",
        }
    }
}

/// The folder of the scenarios.
pub fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/sipp")
}

/// A running SIPp serving one call on a loopback port; killed on drop.
pub struct Sipp {
    child: Option<Child>,
    addr: SocketAddr,
    scenario: Scenario,
    messages: PathBuf,
    errors: PathBuf,
    output: PathBuf,
    /// Owns the log files.
    _dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts `scenario` for one call on a free loopback port; its answers send
    /// the media to `media` (an [`RtpSink`]'s address; any address for
    /// scenarios that never answer).
    pub fn start(scenario: Scenario, media: SocketAddr) -> Result<Sipp, String> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-sipp-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for sipp: {e}"))?;
        let port = free_udp_port()?;
        let media_port = free_udp_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (messages, errors, output) =
            (dir.path().join("messages.log"), dir.path().join("errors.log"), dir.path().join("output.log"));
        let out = fs::File::create(&output).map_err(|e| format!("cannot create {}: {e}", output.display()))?;
        let err = out.try_clone().map_err(|e| format!("cannot open {}: {e}", output.display()))?;
        let file = scenarios().join(scenario.file_name());
        let child = Command::new(SIPP)
            .arg("-sf")
            .arg(&file)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", &format!("{GLOBAL_TIMEOUT_S}s"), "-timeout_error"])
            .args(["-key", "rtp_host", &media.ip().to_string(), "-key", "rtp_port", &media.port().to_string()])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {SIPP} (Debian package sip-tester): {e}"))?;
        let mut sipp = Sipp { child: Some(child), addr, scenario, messages, errors, output, _dir: dir };
        sipp.wait_bound()?;
        Ok(sipp)
    }

    /// The address it takes calls on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The paging extension's URI: `sip:page@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:page@{}", self.addr)
    }

    /// Waits for SIPp to finish its one call and exit.
    pub fn wait(&mut self, within: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + within;
        let Some(child) = self.child.as_mut() else { return Err("sipp was already waited for".into()) };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    return Err(format!("sipp ({:?}) still runs after {within:?}:\n{}", self.scenario, self.log()));
                }
                Err(e) => return Err(format!("cannot wait for sipp: {e}")),
            }
        }
    }

    /// Waits for SIPp to exit and fails unless the scenario ran to its end (exit status 0).
    pub fn wait_success(&mut self, within: Duration) -> Result<(), String> {
        let status = self.wait(within)?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("sipp's {:?} scenario failed ({status}):\n{}", self.scenario, self.log()))
        }
    }

    /// Every SIP message SIPp sent and received so far, as it logged them.
    pub fn messages(&self) -> String {
        fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// The requests SIPp received, by method, in order (`INVITE`, `ACK`, …).
    pub fn received_methods(&self) -> Vec<String> {
        received(&self.messages())
            .iter()
            .filter_map(|m| m.lines().next())
            .filter(|first| !first.starts_with("SIP/2.0"))
            .filter_map(|first| first.split(' ').next())
            .map(str::to_string)
            .collect()
    }

    /// The text of the `n`th request with `method` SIPp received.
    pub fn received_request(&self, method: &str, n: usize) -> Option<String> {
        received(&self.messages()).into_iter().filter(|m| m.starts_with(&format!("{method} "))).nth(n)
    }

    /// Waits until SIPp has received a request with `method`, and returns it.
    pub fn wait_for_request(&self, method: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(request) = self.received_request(method, 0) {
                return Ok(request);
            }
            if Instant::now() >= deadline {
                return Err(format!("sipp received no {method} within {within:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Messages, errors and output, for failure messages.
    pub fn log(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- sipp messages ---\n{}\n--- sipp errors ---\n{}\n--- sipp output (tail) ---\n{}",
            read(&self.messages),
            read(&self.errors),
            tail(&read(&self.output), 40)
        )
    }

    /// Waits until SIPp holds its UDP port (the kernel lists it in
    /// `/proc/net/udp`; probing by binding the port ourselves would race SIPp's own bind), or exits.
    fn wait_bound(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("sipp exited ({status}) before taking calls on {}:\n{}", self.addr, self.log()));
            }
            if udp_port_bound(self.addr.port())? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("sipp did not bind {} within {STARTUP:?}:\n{}", self.addr, self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The messages SIPp logged as received. Its `-trace_msg` log separates
/// messages with lines of dashes and heads each with `… message received …`.
fn received(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if line.contains("message received") {
            out.extend(current.take());
            current = Some(String::new());
        } else if line.contains("message sent") || line.starts_with("-----") {
            out.extend(current.take());
        } else if let Some(text) = current.as_mut()
            && (!text.is_empty() || !line.trim().is_empty())
        {
            text.push_str(line.trim_end_matches('\r'));
            text.push('\n');
        }
    }
    out.extend(current);
    out.into_iter().filter(|m| !m.trim().is_empty()).collect()
}

/// Whether some socket is bound to UDP `port` on IPv4 (Linux's `/proc/net/udp`).
fn udp_port_bound(port: u16) -> Result<bool, String> {
    let table = fs::read_to_string("/proc/net/udp").map_err(|e| format!("cannot read /proc/net/udp: {e}"))?;
    // Lines read `sl local_address rem_address …`, the local address as `0100007F:13C4` (hex port).
    let wanted = format!(":{port:04X}");
    Ok(table.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).any(|local| local.ends_with(&wanted)))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback UDP port nothing is bound to right now (bound, read, released).
pub fn free_udp_port() -> Result<u16, String> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback UDP port: {e}"))
}

/// One RTP packet as it arrived at an [`RtpSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// When it arrived.
    pub at: Instant,
    /// The marker bit.
    pub marker: bool,
    /// The payload type.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The timestamp.
    pub timestamp: u32,
    /// The SSRC.
    pub ssrc: u32,
    /// The payload (after the 12-byte header; CSRCs and extensions are not expected from a pager's caller).
    pub payload: Vec<u8>,
}

/// The test's receiving end of the page's audio: a UDP socket on a loopback
/// port and a thread recording every datagram until the sink is dropped.
pub struct RtpSink {
    addr: SocketAddr,
    packets: Arc<Mutex<Vec<RtpPacket>>>,
    /// Datagrams that were not RTP version 2 with a 12-byte header.
    malformed: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    /// Binds a free loopback port and starts recording.
    pub fn start() -> Result<RtpSink, String> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot bind an RTP sink: {e}"))?;
        let addr = socket.local_addr().map_err(|e| format!("cannot read the RTP sink's address: {e}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| format!("cannot set the RTP sink's read timeout: {e}"))?;
        let (packets, malformed, stop) = (Arc::default(), Arc::default(), Arc::new(AtomicBool::new(false)));
        let (p, m, s) = (Arc::clone(&packets), Arc::clone(&malformed), Arc::clone(&stop));
        let thread = std::thread::spawn(move || record(&socket, &p, &m, &s));
        Ok(RtpSink { addr, packets, malformed, stop, thread: Some(thread) })
    }

    /// Where to send the audio.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every packet received so far, in arrival order.
    pub fn packets(&self) -> Vec<RtpPacket> {
        self.packets.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Datagrams that were not RTP.
    pub fn malformed(&self) -> Vec<Vec<u8>> {
        self.malformed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn record(socket: &UdpSocket, packets: &Mutex<Vec<RtpPacket>>, malformed: &Mutex<Vec<Vec<u8>>>, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let b = &buf[..n];
        if n < 12 || b[0] != 0x80 {
            malformed.lock().unwrap_or_else(|p| p.into_inner()).push(b.to_vec());
            continue;
        }
        let packet = RtpPacket {
            at: Instant::now(),
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: b[12..].to_vec(),
        };
        packets.lock().unwrap_or_else(|p| p.into_inner()).push(packet);
    }
}

/// Checks `packets` are one G.711 µ-law stream as a pager expects it: payload
/// type 0, 160-byte payloads, one SSRC, consecutive sequence numbers and
/// timestamps 160 apart, the marker on the first packet only. Returns the
/// audio (the payloads in order).
pub fn check_pcmu_stream(packets: &[RtpPacket]) -> Result<Vec<u8>, String> {
    let first = packets.first().ok_or("no RTP packet arrived")?;
    let mut audio = Vec::with_capacity(packets.len() * 160);
    for (i, p) in packets.iter().enumerate() {
        let at = format!("packet {i} (sequence {})", p.sequence);
        if p.payload_type != 0 {
            return Err(format!("{at} has payload type {}, not 0 (PCMU)", p.payload_type));
        }
        if p.payload.len() != 160 {
            return Err(format!("{at} carries {} bytes, not 160 (20 ms of 8 kHz µ-law)", p.payload.len()));
        }
        if p.ssrc != first.ssrc {
            return Err(format!("{at} has SSRC {:#x}, the stream started with {:#x}", p.ssrc, first.ssrc));
        }
        if p.marker != (i == 0) {
            return Err(format!("{at} has marker {}; only the first packet should", p.marker));
        }
        let expected_seq = first.sequence.wrapping_add(i as u16);
        let expected_ts = first.timestamp.wrapping_add(160 * i as u32);
        if p.sequence != expected_seq || p.timestamp != expected_ts {
            return Err(format!(
                "{at}: sequence {} timestamp {}, expected {expected_seq} and {expected_ts} (lost, reordered or misnumbered)",
                p.sequence, p.timestamp
            ));
        }
        audio.extend_from_slice(&p.payload);
    }
    Ok(audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_out_of_the_message_log() {
        let log = "----------------------------------------------- 2026-11-21\n\
                   UDP message received [10] bytes :\n\nINVITE sip:page@h SIP/2.0\r\nCSeq: 1 INVITE\r\n\n\
                   ----------------------------------------------- 2026-11-21\n\
                   UDP message sent (5 bytes):\n\nSIP/2.0 100 Trying\n\n\
                   ----------------------------------------------- 2026-11-21\n\
                   UDP message received [3] bytes :\n\nACK sip:page@h SIP/2.0\n";
        let got = received(log);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("INVITE sip:page@h SIP/2.0\nCSeq: 1 INVITE"), "{got:?}");
        assert!(got[1].starts_with("ACK "), "{got:?}");
    }
}

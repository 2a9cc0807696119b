//! The blocking paging agent: one call over `std::net::UdpSocket`, driven by
//! [`crate::call`]'s pure state.
//!
//! The sockets are non-blocking and polled every few milliseconds with
//! `std::thread::sleep` in between: on `wasm32-wasip2`, `set_read_timeout`
//! on a UDP socket fails ("Protocol not available"), while non-blocking
//! receives and sleeps work, so one code path serves the plugin and the host.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::call::{CallError, CallSpec, Dialog, Ids, Invite, Step};
use crate::digest::{AuthError, Credentials};
use crate::message::Message;
use crate::rtp::{PACKET_DURATION, Packetizer, SAMPLES_PER_PACKET};
use crate::sdp::{self, SdpError};

/// RFC 3261's T1: the first retransmission interval over UDP, doubled each time.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261's T2: the cap on that interval.
const T2: Duration = Duration::from_secs(4);
/// How long to sleep between polls of a socket.
const POLL: Duration = Duration::from_millis(5);
/// How long a CANCEL (after no answer) waits for the INVITE's final response to acknowledge.
const CANCEL_WAIT: Duration = Duration::from_secs(1);
/// The largest datagram read; SIP over UDP stays well below it.
const MAX_DATAGRAM: usize = 65_535;

/// One page: who to call and what to play.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// The SIP server (PBX or the paging device itself) the requests go to.
    pub server: SocketAddr,
    /// The Request-URI: the paging extension, `sip:page@10.0.0.5`.
    pub target: &'a str,
    /// The user part of `From`.
    pub from_user: &'a str,
    /// Answers 401/407 challenges when set.
    pub credentials: Option<&'a Credentials>,
    /// G.711 µ-law at 8 kHz, played once from start to end.
    pub audio: &'a [u8],
    /// How long the call may take to be answered (challenges included).
    pub answer_timeout: Duration,
    /// How long to wait for the 200 to the BYE.
    pub hangup_timeout: Duration,
}

/// How a page ended that got through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageReport {
    /// Where the audio went (from the SDP answer).
    pub media: SocketAddr,
    /// RTP packets sent.
    pub packets: usize,
    /// Whether the server asked for credentials (and accepted them).
    pub authenticated: bool,
    /// The status of the response to the BYE; `None` if none came within the hangup timeout.
    pub bye_status: Option<u16>,
}

impl PageReport {
    /// The audio time sent.
    pub fn audio_duration(&self) -> Duration {
        PACKET_DURATION * self.packets as u32
    }
}

/// Why a page failed, in words that name the SIP status and the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// A final failure response: busy, not found, server error, decline…
    #[error("SIP {status} {reason} from {target}")]
    Rejected {
        /// The status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The Request-URI.
        target: String,
    },
    /// The server challenged the credentials sent.
    #[error("SIP {status} {reason} from {target}: the credentials of user {user:?} were refused")]
    CredentialsRefused {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The Request-URI.
        target: String,
        /// The user name sent.
        user: String,
    },
    /// The server wants credentials and none are configured.
    #[error("SIP {status} {reason} from {target}: it asks for a user and password and none are configured")]
    CredentialsMissing {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The Request-URI.
        target: String,
    },
    /// A challenge this agent cannot answer.
    #[error("SIP {status} {reason} from {target}: {source}")]
    Auth {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// The Request-URI.
        target: String,
        /// What is wrong with the challenge.
        source: AuthError,
    },
    /// No final response within the answer timeout.
    #[error("no answer from {target} within {} ms ({last})", timeout.as_millis())]
    NoAnswer {
        /// The Request-URI.
        target: String,
        /// The answer timeout.
        timeout: Duration,
        /// The last thing heard, in words.
        last: String,
    },
    /// The server refused the datagrams (ICMP port unreachable).
    #[error("nothing answers SIP at {server} (ICMP port unreachable)")]
    Unreachable {
        /// The server's address.
        server: SocketAddr,
    },
    /// The call was answered with an SDP this agent cannot use; it hung up.
    #[error("{target} answered with an unusable SDP: {source}")]
    Sdp {
        /// The Request-URI.
        target: String,
        /// What is wrong with it.
        source: SdpError,
    },
    /// Sending the audio failed; the call was hung up.
    #[error("cannot send RTP to {media} (from {target}'s SDP answer): {source}")]
    Media {
        /// The media address.
        media: SocketAddr,
        /// The Request-URI.
        target: String,
        /// The socket error.
        source: io::Error,
    },
    /// The far end hung up before the page had played.
    #[error("{target} hung up after {} of {} ms of audio", sent.as_millis(), total.as_millis())]
    HungUp {
        /// The Request-URI.
        target: String,
        /// Audio sent before the BYE.
        sent: Duration,
        /// The page's length.
        total: Duration,
    },
    /// A socket operation failed.
    #[error("cannot {action} (SIP server {server}): {source}")]
    Network {
        /// What was being done: `send the INVITE`, `open a UDP socket`…
        action: &'static str,
        /// The server's address.
        server: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
}

impl PageError {
    /// The SIP status the server answered with, if the failure is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            PageError::Rejected { status, .. }
            | PageError::CredentialsRefused { status, .. }
            | PageError::CredentialsMissing { status, .. }
            | PageError::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: busy, unavailable, server
    /// errors, no answer, network trouble and a page cut short. Wrong
    /// credentials, unknown extensions, unusable answers and a media address
    /// that cannot be sent to (most often one the sandbox does not grant)
    /// fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            PageError::Rejected { status, .. } => {
                matches!(status, 408 | 480 | 486 | 487 | 491 | 500..=599 | 600 | 603)
            }
            PageError::NoAnswer { .. }
            | PageError::Unreachable { .. }
            | PageError::Network { .. }
            | PageError::HungUp { .. } => true,
            _ => false,
        }
    }
}

/// Places the call, plays `page.audio` in real time once it is answered,
/// hangs up and waits for the BYE's answer. `seed` seeds the Call-ID, tags,
/// branches, client nonces and the RTP SSRC: pass [`crate::random_seed`]
/// (tests pass constants).
pub fn page(page: &Page, seed: u64) -> Result<PageReport, PageError> {
    let target = page.target.to_string();
    let network = |action| move |source| PageError::Network { action, server: page.server, source };
    let sip = open(page.server).map_err(network("open a UDP socket for SIP"))?;
    sip.connect(page.server).map_err(network("connect the SIP socket"))?;
    let rtp = open(page.server).map_err(network("open a UDP socket for RTP"))?;
    let local = sip.local_addr().map_err(network("read the local SIP address"))?;
    let rtp_port = rtp.local_addr().map_err(network("read the local RTP address"))?.port();

    let mut ids = Ids::new(seed);
    let spec = CallSpec {
        target: target.clone(),
        from_user: page.from_user.to_string(),
        local,
        offer: sdp::offer(local.ip(), rtp_port, ids.next_u64() >> 1),
        credentials: page.credentials.cloned(),
    };
    let mut invite = Invite::new(spec, Ids::new(ids.next_u64()));
    let mut link = Link { socket: sip, server: page.server, buf: vec![0; MAX_DATAGRAM] };

    let (mut dialog, answer) = set_up(&mut link, &mut invite, page)?;
    let media = match answer {
        Ok(answer) => answer.media,
        Err(source) => {
            let _ = hang_up(&mut link, &mut dialog, page.hangup_timeout);
            return Err(PageError::Sdp { target, source });
        }
    };
    let streamed = stream(&mut link, &dialog, &rtp, media, page.audio, &mut ids);
    let total = PACKET_DURATION * page.audio.len().div_ceil(SAMPLES_PER_PACKET) as u32;
    match streamed {
        Ok(Streamed::Played(packets)) => {
            let bye_status = hang_up(&mut link, &mut dialog, page.hangup_timeout)?;
            Ok(PageReport { media, packets, authenticated: invite.authenticated(), bye_status })
        }
        Ok(Streamed::HungUp(packets)) => {
            Err(PageError::HungUp { target, sent: PACKET_DURATION * packets as u32, total })
        }
        Err(error) => {
            // Best effort: the failure that stopped the audio is what the caller needs to hear about.
            let _ = hang_up(&mut link, &mut dialog, page.hangup_timeout);
            Err(match error {
                StreamError::Media(source) => PageError::Media { media, target, source },
                StreamError::Sip(e) => e,
            })
        }
    }
}

/// A UDP socket on the wildcard address of `server`'s family, any port, non-blocking.
fn open(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = if server.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The SIP socket, connected to the server.
struct Link {
    socket: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl Link {
    fn send(&self, text: &str, action: &'static str) -> Result<(), PageError> {
        self.socket.send(text.as_bytes()).map(drop).map_err(|e| self.error(action, e))
    }

    /// The next SIP message waiting, if any (anything unparsable is dropped).
    fn poll(&mut self) -> Result<Option<Message>, PageError> {
        loop {
            match self.socket.recv(&mut self.buf) {
                Ok(n) => match Message::parse(&self.buf[..n]) {
                    Some(m) => return Ok(Some(m)),
                    None => continue,
                },
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.error("receive from", e)),
            }
        }
    }

    fn error(&self, action: &'static str, source: io::Error) -> PageError {
        if source.kind() == io::ErrorKind::ConnectionRefused {
            PageError::Unreachable { server: self.server }
        } else {
            PageError::Network { action, server: self.server, source }
        }
    }
}

/// Sends the INVITE (retransmitting until something is heard), answers
/// challenges, and returns the dialog once a 2xx arrives and is acknowledged.
fn set_up(
    link: &mut Link,
    invite: &mut Invite,
    page: &Page,
) -> Result<(Dialog, Result<sdp::Answer, SdpError>), PageError> {
    let deadline = Instant::now() + page.answer_timeout;
    let mut request = invite.request();
    link.send(&request, "send the INVITE")?;
    let mut interval = T1;
    let mut retransmit_at = Instant::now() + interval;
    let mut provisional: Option<String> = None;
    loop {
        while let Some(message) = link.poll()? {
            match invite.on_response(&message) {
                Step::Ignore => {}
                Step::Provisional(code, reason) => provisional = Some(format!("{code} {reason}")),
                Step::Challenged { ack, invite: next } => {
                    link.send(&ack, "acknowledge the challenge")?;
                    request = next;
                    link.send(&request, "send the INVITE with credentials")?;
                    provisional = None;
                    interval = T1;
                    retransmit_at = Instant::now() + interval;
                }
                Step::Answered { dialog, answer } => {
                    link.send(dialog.ack(), "acknowledge the answer")?;
                    return Ok((*dialog, answer));
                }
                Step::Failed { ack, error } => {
                    link.send(&ack, "acknowledge the failure")?;
                    return Err(call_error(error, page));
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let last = match &provisional {
                Some(heard) => {
                    cancel(link, invite)?;
                    format!("last heard {heard}; cancelled")
                }
                None => "nothing heard".to_string(),
            };
            return Err(PageError::NoAnswer { target: page.target.to_string(), timeout: page.answer_timeout, last });
        }
        // Timer A: retransmit until a provisional response says the server has it.
        if provisional.is_none() && now >= retransmit_at {
            link.send(&request, "retransmit the INVITE")?;
            interval = (interval * 2).min(T2);
            retransmit_at = now + interval;
        }
        std::thread::sleep(POLL);
    }
}

/// CANCELs a ringing call and acknowledges its 487 if it comes soon; the
/// page has already failed, so this only tidies up the server's side.
fn cancel(link: &mut Link, invite: &mut Invite) -> Result<(), PageError> {
    link.send(&invite.cancel(), "send the CANCEL")?;
    let deadline = Instant::now() + CANCEL_WAIT;
    while Instant::now() < deadline {
        while let Some(message) = link.poll()? {
            match invite.on_response(&message) {
                Step::Failed { ack, .. } => return link.send(&ack, "acknowledge the 487"),
                // Answered just as the CANCEL left: hang up at once.
                Step::Answered { mut dialog, .. } => {
                    link.send(dialog.ack(), "acknowledge the answer")?;
                    link.send(&dialog.bye(), "send the BYE")?;
                    return Ok(());
                }
                _ => {}
            }
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

fn call_error(error: CallError, page: &Page) -> PageError {
    let target = page.target.to_string();
    match error {
        CallError::Rejected { status, reason } => PageError::Rejected { status, reason, target },
        CallError::CredentialsRefused { status, reason } => PageError::CredentialsRefused {
            status,
            reason,
            target,
            user: page.credentials.map(|c| c.username.clone()).unwrap_or_default(),
        },
        CallError::CredentialsMissing { status, reason } => PageError::CredentialsMissing { status, reason, target },
        CallError::Auth { status, reason, error } => PageError::Auth { status, reason, target, source: error },
    }
}

/// How the audio ended.
enum Streamed {
    /// All of it was sent (this many packets) and has had time to play.
    Played(usize),
    /// The far end sent BYE after this many packets (it was answered).
    HungUp(usize),
}

/// What stopped the audio.
enum StreamError {
    /// The RTP socket failed.
    Media(io::Error),
    /// The SIP socket failed.
    Sip(PageError),
}

/// Sends `audio` as RTP to `media`, one packet every 20 ms on an absolute
/// schedule (no drift), answering the SIP side in between: the 2xx again
/// (its ACK was lost) or the far end's BYE.
fn stream(
    link: &mut Link,
    dialog: &Dialog,
    rtp: &UdpSocket,
    media: SocketAddr,
    audio: &[u8],
    ids: &mut Ids,
) -> Result<Streamed, StreamError> {
    rtp.connect(media).map_err(StreamError::Media)?;
    let random = ids.next_u64();
    let mut packetizer = Packetizer::new(random as u32, (random >> 32) as u16, (random >> 48) as u32 * 0x1_0001);
    let start = Instant::now();
    let frames = audio.chunks(SAMPLES_PER_PACKET);
    let count = frames.len();
    for (i, frame) in frames.enumerate() {
        if serve_dialog(link, dialog).map_err(StreamError::Sip)? {
            return Ok(Streamed::HungUp(i));
        }
        sleep_until(start + PACKET_DURATION * i as u32);
        rtp.send(&packetizer.packet(frame)).map_err(StreamError::Media)?;
    }
    // Let the last packet play before hanging up.
    sleep_until(start + PACKET_DURATION * count as u32);
    Ok(Streamed::Played(count))
}

/// Answers what the far end sent during the call; `true` if it hung up.
fn serve_dialog(link: &mut Link, dialog: &Dialog) -> Result<bool, PageError> {
    while let Some(message) = link.poll()? {
        if dialog.is_answer_retransmission(&message) {
            link.send(dialog.ack(), "acknowledge the answer again")?;
        } else if let Some(ok) = dialog.answer_remote_bye(&message) {
            link.send(&ok, "answer the far end's BYE")?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sends BYE (retransmitting per Timer E) and waits for its final response.
fn hang_up(link: &mut Link, dialog: &mut Dialog, timeout: Duration) -> Result<Option<u16>, PageError> {
    let bye = dialog.bye();
    link.send(&bye, "send the BYE")?;
    let deadline = Instant::now() + timeout;
    let mut interval = T1;
    let mut retransmit_at = Instant::now() + interval;
    loop {
        while let Some(message) = link.poll()? {
            if let Some(status) = dialog.bye_status(&message) {
                return Ok(Some(status));
            }
            if dialog.is_answer_retransmission(&message) {
                link.send(dialog.ack(), "acknowledge the answer again")?;
            } else if let Some(ok) = dialog.answer_remote_bye(&message) {
                // Both sides hung up at once; answer theirs and keep waiting for ours.
                link.send(&ok, "answer the far end's BYE")?;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if now >= retransmit_at {
            link.send(&bye, "retransmit the BYE")?;
            interval = (interval * 2).min(T2);
            retransmit_at = now + interval;
        }
        std::thread::sleep(POLL);
    }
}

fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

//! The control panel's protocol state for one reader, as a pure state
//! machine: bytes and the time go in, bytes to send and events come out. It
//! never reads a clock, sleeps or touches a port; [`crate::ControlPanel`]
//! drives it over a [`crate::Link`].
//!
//! One command is in flight at a time (OSDP is half duplex and the CP
//! speaks first). A command unanswered within the reply timeout is sent
//! again, byte for byte with the same sequence number, up to the configured
//! number of tries. Sequence numbers start at 0 (which resets the PD's
//! session) and then go 1, 2, 3, 1… after each answered command. Frames go
//! out with CRC-16 and, unless configured otherwise, OSDP 2.2's mark
//! character 0xFF in front.
//!
//! Vigil only talks over the Secure Channel: [`Cp::send`] refuses until the
//! handshake (osdp_CHLNG → osdp_CCRYPT → osdp_SCRYPT → osdp_RMAC_I) has
//! succeeded, and a reply in the clear during a session ends it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::crypto::{Block, Scbk, SessionKeys};
use crate::error::{Error, ScFailure, SessionLoss};
use crate::frame::{Check, Frame, FrameReader, Header, MARK, SecurityBlock, encode};
use crate::message::{Command, MalformedReply, NakCode, Reply, command, reply};

/// Security block types.
const SCS_11: u8 = 0x11;
const SCS_12: u8 = 0x12;
const SCS_13: u8 = 0x13;
const SCS_14: u8 = 0x14;
const SCS_15: u8 = 0x15;
const SCS_16: u8 = 0x16;
const SCS_17: u8 = 0x17;
const SCS_18: u8 = 0x18;

/// How the control panel talks to one reader.
#[derive(Clone, Debug)]
pub struct Config {
    /// The reader's address, 0-126.
    pub address: u8,
    /// The Secure Channel Base Key shared with the reader.
    pub scbk: Scbk,
    /// Allow the well-known default key SCBK-D (install mode). Off unless a
    /// technician is commissioning a reader: anyone on the wire can read and
    /// forge an install-mode session.
    pub allow_install_mode: bool,
    /// How long to wait for each reply (the spec's 200 ms).
    pub reply_timeout: Duration,
    /// How many times a command is sent before giving up (at least 1).
    pub tries: u32,
    /// How long without any reply before the reader counts as offline.
    pub offline_after: Duration,
    /// Send the mark character 0xFF before each frame, as OSDP 2.2 asks.
    pub mark: bool,
}

impl Config {
    /// The spec's timings for a reader at `address` with key `scbk`.
    pub fn new(address: u8, scbk: Scbk) -> Config {
        Config {
            address,
            scbk,
            allow_install_mode: false,
            reply_timeout: Duration::from_millis(200),
            tries: 3,
            offline_after: Duration::from_secs(8),
            mark: true,
        }
    }
}

/// What happened, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The reader answered after being silent (or for the first time).
    Online,
    /// No reply for the configured time; the secure session is dropped.
    Offline,
    /// The Secure Channel is up.
    SecureChannelEstablished {
        /// Whether it runs on the default key SCBK-D (install mode).
        install_mode: bool,
    },
    /// The handshake failed; there is no secure channel.
    SecureChannelFailed(ScFailure),
    /// The secure session ended; the next command needs a new handshake.
    SessionLost {
        /// The command in flight when it happened.
        command: u8,
        /// Why.
        loss: SessionLoss,
    },
    /// A command was answered (an osdp_NAK included).
    Reply {
        /// The command code.
        command: u8,
        /// The reply.
        reply: Reply,
    },
    /// A command's reply came but does not decode.
    BadReply {
        /// The command code.
        command: u8,
        /// What is wrong.
        problem: MalformedReply,
    },
    /// A command got no reply after every try.
    NoReply {
        /// The command code.
        command: u8,
        /// How many times it was sent.
        tries: u32,
    },
}

enum Phase {
    /// No secure channel.
    Clear,
    /// osdp_CHLNG sent.
    Challenged { rnd_a: [u8; 8], keys: SessionKeys },
    /// osdp_SCRYPT sent.
    Crypted { keys: SessionKeys, server_cryptogram: Block },
    /// Secure: `c_mac` is the last command's MAC, `r_mac` the last reply's.
    Secure { keys: SessionKeys, c_mac: Block, r_mac: Block },
}

struct InFlight {
    code: u8,
    bytes: Vec<u8>,
    sequence: u8,
    sent_at: Instant,
    tries: u32,
}

/// The control panel's state for one reader.
pub struct Cp {
    config: Config,
    reader: FrameReader,
    phase: Phase,
    sequence: u8,
    in_flight: Option<InFlight>,
    online: bool,
    /// When the first transmission still unanswered went out.
    unanswered_since: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// The key an osdp_KEYSET in flight gives the reader.
    new_key: Option<Scbk>,
}

impl Cp {
    /// Checks the configuration. Refuses the default key SCBK-D unless
    /// install mode is explicitly allowed.
    pub fn new(config: Config) -> Result<Cp, Error> {
        let address = config.address;
        if address > 126 {
            return Err(Error::InvalidAddress(address));
        }
        if config.tries == 0 {
            return Err(Error::InvalidOption { address, problem: "tries must be at least 1" });
        }
        if config.reply_timeout.is_zero() {
            return Err(Error::InvalidOption { address, problem: "the reply timeout must be more than zero" });
        }
        if config.scbk.is_default() && !config.allow_install_mode {
            return Err(Error::InstallModeRefused { address });
        }
        Ok(Cp {
            config,
            reader: FrameReader::new(),
            phase: Phase::Clear,
            sequence: 0,
            in_flight: None,
            online: false,
            unanswered_since: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            new_key: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the Secure Channel is up.
    pub fn is_secure(&self) -> bool {
        matches!(self.phase, Phase::Secure { .. })
    }

    /// Whether the reader is answering.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The command waiting for its reply (the handshake counts), if any.
    pub fn in_flight(&self) -> Option<u8> {
        self.in_flight.as_ref().map(|f| f.code)
    }

    /// Bytes skipped on the line as noise or broken frames so far.
    pub fn skipped_bytes(&self) -> u64 {
        self.reader.skipped()
    }

    /// When [`Cp::tick`] must be called next, if anything is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|f| f.sent_at + self.config.reply_timeout)
    }

    /// The next bytes to write to the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn busy(&self) -> Result<(), Error> {
        match &self.in_flight {
            Some(f) => Err(Error::Busy { address: self.config.address, command: f.code }),
            None => Ok(()),
        }
    }

    fn key_selector(&self) -> u8 {
        if self.config.scbk.is_default() { 0 } else { 1 }
    }

    /// Starts the Secure Channel handshake with the CP's random RND.A. The
    /// sequence number goes back to 0, which also ends any session the PD had.
    pub fn connect(&mut self, now: Instant, rnd_a: [u8; 8]) -> Result<(), Error> {
        self.busy()?;
        self.sequence = 0;
        let keys = SessionKeys::derive(&self.config.scbk, &rnd_a);
        let sb = SecurityBlock { kind: SCS_11, data: vec![self.key_selector()] };
        let bytes = encode(self.header(), Some(&sb), command::CHLNG, &rnd_a, None);
        self.phase = Phase::Challenged { rnd_a, keys };
        self.start(now, command::CHLNG, bytes);
        Ok(())
    }

    /// Sends a command over the Secure Channel. Data is encrypted and every
    /// frame carries a MAC.
    ///
    /// After the reader ACKs a [`Command::SetKey`], the new key is the one
    /// in use and the session ends (the reader drops it too): the next
    /// command needs [`Cp::connect`].
    pub fn send(&mut self, now: Instant, cmd: &Command) -> Result<(), Error> {
        self.busy()?;
        if let Command::SetKey(key) = cmd
            && key.is_default()
        {
            let address = self.config.address;
            return Err(Error::InvalidOption { address, problem: "the new key must not be the default key SCBK-D" });
        }
        let header = self.header();
        let Phase::Secure { keys, c_mac, r_mac } = &mut self.phase else {
            return Err(Error::NotSecure { address: self.config.address });
        };
        let data = cmd.data();
        let (kind, body) = if data.is_empty() { (SCS_15, Vec::new()) } else { (SCS_17, keys.encrypt(r_mac, &data)) };
        let sb = SecurityBlock { kind, data: Vec::new() };
        let mut mac = |authenticated: &[u8]| {
            *c_mac = keys.mac(r_mac, authenticated);
            [c_mac[0], c_mac[1], c_mac[2], c_mac[3]]
        };
        let bytes = encode(header, Some(&sb), cmd.code(), &body, Some(&mut mac));
        self.start(now, cmd.code(), bytes);
        self.new_key = match cmd {
            Command::SetKey(key) => Some(*key),
            _ => None,
        };
        Ok(())
    }

    /// Takes bytes read from the line.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.reader.push(bytes);
        while let Some(frame) = self.reader.next_frame() {
            self.on_frame(now, frame);
        }
    }

    /// Retries or gives up on an unanswered command, and notices a reader
    /// gone offline. Call at [`Cp::deadline`] (calling more often is fine).
    pub fn tick(&mut self, now: Instant) {
        if let Some(f) = &mut self.in_flight
            && now >= f.sent_at + self.config.reply_timeout
        {
            if f.tries < self.config.tries {
                f.tries += 1;
                f.sent_at = now;
                self.transmit.push_back(f.bytes.clone());
            } else {
                let (command, tries) = (f.code, f.tries);
                self.in_flight = None;
                self.events.push_back(Event::NoReply { command, tries });
                if matches!(self.phase, Phase::Secure { .. }) {
                    self.events.push_back(Event::SessionLost { command, loss: SessionLoss::NoReply });
                }
                self.phase = Phase::Clear;
            }
        }
        if self.online
            && let Some(since) = self.unanswered_since
            && now.saturating_duration_since(since) >= self.config.offline_after
        {
            self.online = false;
            self.events.push_back(Event::Offline);
            if self.in_flight.is_none() {
                self.phase = Phase::Clear;
            }
        }
    }

    /// Forgets the command in flight and the session, after the link
    /// failed under it: the next command needs a new handshake.
    pub fn abort(&mut self) {
        self.in_flight = None;
        self.phase = Phase::Clear;
        self.reader.clear();
    }

    fn header(&self) -> Header {
        Header { address: self.config.address, reply: false, sequence: self.sequence, check: Check::Crc16 }
    }

    fn start(&mut self, now: Instant, code: u8, frame: Vec<u8>) {
        // Whatever half-frame is buffered cannot be the reply to this command.
        self.reader.clear();
        self.unanswered_since.get_or_insert(now);
        let bytes = if self.config.mark { [&[MARK][..], &frame].concat() } else { frame };
        self.transmit.push_back(bytes.clone());
        self.in_flight = Some(InFlight { code, bytes, sequence: self.sequence, sent_at: now, tries: 1 });
    }

    fn advance_sequence(&mut self) {
        self.sequence = if self.sequence >= 3 { 1 } else { self.sequence + 1 };
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) {
        // Our own commands echoed on a two-wire bus, and other readers' replies.
        if !frame.header.reply || frame.header.address != self.config.address {
            return;
        }
        let Some(f) = &self.in_flight else { return };
        let command = f.code;
        if frame.code == reply::BUSY && frame.security.is_none() {
            // The PD heard us but cannot answer yet: the timeout sends it again.
            self.heard();
            return;
        }
        if frame.header.sequence != f.sequence {
            // A late reply to an earlier try or command.
            return;
        }
        self.heard();
        self.in_flight = None;
        self.advance_sequence();
        match std::mem::replace(&mut self.phase, Phase::Clear) {
            Phase::Clear => {}
            Phase::Challenged { rnd_a, keys } => self.on_ccrypt(now, frame, rnd_a, keys),
            Phase::Crypted { keys, server_cryptogram } => self.on_rmac_i(frame, keys, server_cryptogram),
            Phase::Secure { keys, c_mac, .. } => self.on_secure_reply(frame, command, keys, c_mac),
        }
    }

    fn heard(&mut self) {
        self.unanswered_since = None;
        if !self.online {
            self.online = true;
            self.events.push_back(Event::Online);
        }
    }

    fn fail_handshake(&mut self, failure: ScFailure) {
        self.phase = Phase::Clear;
        self.events.push_back(Event::SecureChannelFailed(failure));
    }

    fn handshake_reply<'f>(&mut self, frame: &'f Frame, code: u8, kind: u8, len: usize) -> Option<(u8, &'f [u8])> {
        if frame.code == reply::NAK {
            if frame.security.as_ref().is_some_and(SecurityBlock::has_mac) {
                self.fail_handshake(ScFailure::StaleSession);
            } else {
                self.fail_handshake(ScFailure::Nak(NakCode(frame.data.first().copied().unwrap_or(0))));
            }
            return None;
        }
        if frame.code != code {
            self.fail_handshake(ScFailure::UnexpectedReply(frame.code));
            return None;
        }
        let Some(sb) = frame.security.as_ref().filter(|sb| sb.kind == kind) else {
            self.fail_handshake(ScFailure::Malformed("missing or wrong security block"));
            return None;
        };
        if frame.data.len() != len {
            self.fail_handshake(ScFailure::Malformed("wrong length"));
            return None;
        }
        Some((sb.data.first().copied().unwrap_or(1), &frame.data))
    }

    fn on_ccrypt(&mut self, now: Instant, frame: Frame, rnd_a: [u8; 8], keys: SessionKeys) {
        let Some((key_used, data)) = self.handshake_reply(&frame, reply::CCRYPT, SCS_12, 32) else { return };
        if key_used == 0 && !self.config.scbk.is_default() {
            return self.fail_handshake(ScFailure::ReaderInInstallMode);
        }
        let rnd_b: [u8; 8] = data[8..16].try_into().expect("16 bytes checked");
        if !constant_time_eq(&data[16..32], &keys.client_cryptogram(&rnd_a, &rnd_b)) {
            return self.fail_handshake(ScFailure::CryptogramMismatch);
        }
        let server_cryptogram = keys.server_cryptogram(&rnd_a, &rnd_b);
        let sb = SecurityBlock { kind: SCS_13, data: vec![self.key_selector()] };
        let bytes = encode(self.header(), Some(&sb), command::SCRYPT, &server_cryptogram, None);
        self.phase = Phase::Crypted { keys, server_cryptogram };
        self.start(now, command::SCRYPT, bytes);
    }

    fn on_rmac_i(&mut self, frame: Frame, keys: SessionKeys, server_cryptogram: Block) {
        let Some((accepted, data)) = self.handshake_reply(&frame, reply::RMAC_I, SCS_14, 16) else { return };
        if accepted != 1 {
            return self.fail_handshake(ScFailure::ReaderRejectedUs);
        }
        let r_mac = keys.initial_rmac(&server_cryptogram);
        if !constant_time_eq(data, &r_mac) {
            return self.fail_handshake(ScFailure::RmacMismatch);
        }
        self.phase = Phase::Secure { keys, c_mac: [0; 16], r_mac };
        self.events.push_back(Event::SecureChannelEstablished { install_mode: self.config.scbk.is_default() });
    }

    fn on_secure_reply(&mut self, frame: Frame, command: u8, keys: SessionKeys, c_mac: Block) {
        let lost = |cp: &mut Cp, loss| cp.events.push_back(Event::SessionLost { command, loss });
        let Some(sb) = frame.security.as_ref() else {
            return match Reply::decode(frame.code, &frame.data) {
                // A PD that lost the session NAKs in the clear.
                Ok(Reply::Nak(nak)) => lost(self, SessionLoss::Nak(nak)),
                _ => lost(self, SessionLoss::Cleartext(frame.code)),
            };
        };
        let (Some(tag), true) = (frame.mac, sb.kind == SCS_16 || sb.kind == SCS_18) else {
            return lost(self, SessionLoss::BadMac);
        };
        let r_mac = keys.mac(&c_mac, &frame.authenticated);
        if !constant_time_eq(&tag, &r_mac[..4]) {
            return lost(self, SessionLoss::BadMac);
        }
        let data = if sb.kind == SCS_18 {
            match keys.decrypt(&c_mac, &frame.data) {
                Some(data) => data,
                None => return lost(self, SessionLoss::BadEncryption),
            }
        } else {
            frame.data
        };
        match Reply::decode(frame.code, &data) {
            Ok(Reply::Nak(nak)) if nak.breaks_session() => lost(self, SessionLoss::Nak(nak)),
            Ok(Reply::Ack) if command == command::KEYSET && self.new_key.is_some() => {
                // The reader switched keys and ended the session.
                self.config.scbk = self.new_key.take().expect("checked");
                self.events.push_back(Event::Reply { command, reply: Reply::Ack });
            }
            Ok(reply) => {
                self.phase = Phase::Secure { keys, c_mac, r_mac };
                self.events.push_back(Event::Reply { command, reply });
            }
            Err(problem) => {
                self.phase = Phase::Secure { keys, c_mac, r_mac };
                self.events.push_back(Event::BadReply { command, problem });
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    //! The state machine against a scripted PD built from this crate's own
    //! frame and crypto code, with simulated time. It checks the CP's
    //! decisions (sequence numbers, retries, MAC chaining, refusals); the
    //! interop tests against libosdp's PD are what check the wire format and
    //! the cryptography against someone else's reading of the spec.

    use super::*;

    const KEY: Scbk = Scbk(*b"0123456789abcdef");
    const RND_A: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const RND_B: [u8; 8] = [9, 10, 11, 12, 13, 14, 15, 16];
    const MS: Duration = Duration::from_millis(1);

    /// A scripted PD: answers one command frame at a time.
    struct ScriptedPd {
        scbk: Scbk,
        install_mode_flag: u8,
        rnd_a: [u8; 8],
        keys: Option<SessionKeys>,
        c_mac: Block,
        r_mac: Block,
    }

    impl ScriptedPd {
        fn new(scbk: Scbk) -> ScriptedPd {
            ScriptedPd { scbk, install_mode_flag: 1, rnd_a: [0; 8], keys: None, c_mac: [0; 16], r_mac: [0; 16] }
        }

        fn parse(bytes: &[u8]) -> Frame {
            let mut reader = FrameReader::new();
            reader.push(bytes);
            reader.next_frame().expect("a whole command frame")
        }

        fn header(cmd: &Frame) -> Header {
            Header { address: cmd.header.address, reply: true, sequence: cmd.header.sequence, check: Check::Crc16 }
        }

        /// Answers the handshake; for other commands, verifies the MAC and
        /// answers `code` with `data` (encrypted when there is any).
        fn answer(&mut self, bytes: &[u8], code: u8, data: &[u8]) -> Vec<u8> {
            let cmd = Self::parse(bytes);
            match cmd.code {
                command::CHLNG => {
                    self.rnd_a = cmd.data[..8].try_into().unwrap();
                    let keys = SessionKeys::derive(&self.scbk, &self.rnd_a);
                    let mut d = b"CLIENTID".to_vec();
                    d.extend(RND_B);
                    d.extend(keys.client_cryptogram(&self.rnd_a, &RND_B));
                    self.keys = Some(keys);
                    let sb = SecurityBlock { kind: SCS_12, data: vec![self.install_mode_flag] };
                    encode(Self::header(&cmd), Some(&sb), reply::CCRYPT, &d, None)
                }
                command::SCRYPT => {
                    let keys = self.keys.as_ref().unwrap();
                    let ok = cmd.data == keys.server_cryptogram(&self.rnd_a, &RND_B);
                    let server: Block = cmd.data[..16].try_into().unwrap();
                    self.r_mac = keys.initial_rmac(&server);
                    let sb = SecurityBlock { kind: SCS_14, data: vec![if ok { 1 } else { 0xFF }] };
                    encode(Self::header(&cmd), Some(&sb), reply::RMAC_I, &self.r_mac, None)
                }
                _ => {
                    let keys = self.keys.clone().expect("a session");
                    self.c_mac = keys.mac(&self.r_mac, &cmd.authenticated);
                    assert_eq!(cmd.mac, Some(self.c_mac[..4].try_into().unwrap()), "the CP's MAC");
                    let (kind, body) =
                        if data.is_empty() { (SCS_16, Vec::new()) } else { (SCS_18, keys.encrypt(&self.c_mac, data)) };
                    let c_mac = self.c_mac;
                    let mut r_mac = [0; 16];
                    let mut mac = |b: &[u8]| {
                        r_mac = keys.mac(&c_mac, b);
                        [r_mac[0], r_mac[1], r_mac[2], r_mac[3]]
                    };
                    let sb = SecurityBlock { kind, data: Vec::new() };
                    let out = encode(Self::header(&cmd), Some(&sb), code, &body, Some(&mut mac));
                    self.r_mac = r_mac;
                    out
                }
            }
        }

        /// The data of a command the CP sent, decrypted.
        fn command_data(&self, bytes: &[u8]) -> Vec<u8> {
            let cmd = Self::parse(bytes);
            let keys = self.keys.as_ref().unwrap();
            if cmd.security.unwrap().kind == SCS_17 { keys.decrypt(&self.r_mac, &cmd.data).unwrap() } else { cmd.data }
        }
    }

    fn cp(scbk: Scbk) -> Cp {
        Cp::new(Config::new(1, scbk)).expect("valid config")
    }

    /// The next frame the CP sends, without its mark character.
    fn sent(cp: &mut Cp) -> Vec<u8> {
        let bytes = cp.poll_transmit().expect("something to send");
        assert_eq!(bytes[0], MARK, "OSDP 2.2 mark before each frame");
        bytes[1..].to_vec()
    }

    fn events(cp: &mut Cp) -> Vec<Event> {
        std::iter::from_fn(|| cp.poll_event()).collect()
    }

    fn sequence(bytes: &[u8]) -> u8 {
        bytes[4] & 0x03
    }

    /// Runs the handshake; returns the CP, the PD and the time after it.
    fn connected() -> (Cp, ScriptedPd, Instant) {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(KEY);
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t + MS, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        cp.receive(t + 2 * MS, &pd.answer(&scrypt, 0, &[]));
        assert!(cp.is_secure());
        let ev = events(&mut cp);
        assert_eq!(ev, vec![Event::Online, Event::SecureChannelEstablished { install_mode: false }]);
        (cp, pd, t + 3 * MS)
    }

    #[test]
    fn the_handshake_uses_sequence_0_then_1_and_commands_go_1_2_3_1() {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(KEY);
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        assert_eq!(sequence(&chlng), 0);
        assert_eq!(&chlng[5..8], &[3, SCS_11, 1], "security block with key selector 1 (the site key)");
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        assert_eq!(sequence(&scrypt), 1);
        cp.receive(t, &pd.answer(&scrypt, 0, &[]));
        let mut seqs = Vec::new();
        for _ in 0..4 {
            cp.send(t, &Command::Poll).unwrap();
            let poll = sent(&mut cp);
            seqs.push(sequence(&poll));
            cp.receive(t, &pd.answer(&poll, reply::ACK, &[]));
        }
        assert_eq!(seqs, vec![2, 3, 1, 2]);
    }

    #[test]
    fn commands_are_refused_without_a_secure_channel() {
        let mut cp = cp(KEY);
        let err = cp.send(Instant::now(), &Command::Poll).unwrap_err();
        assert!(matches!(err, Error::NotSecure { address: 1 }), "{err:?}");
        assert!(cp.poll_transmit().is_none(), "nothing may go out in the clear");
    }

    #[test]
    fn the_default_key_is_refused_unless_install_mode_is_allowed() {
        let err = Cp::new(Config::new(1, Scbk::DEFAULT)).err().unwrap();
        assert!(matches!(err, Error::InstallModeRefused { address: 1 }), "{err:?}");
        let mut config = Config::new(1, Scbk::DEFAULT);
        config.allow_install_mode = true;
        let mut cp = Cp::new(config).unwrap();
        cp.connect(Instant::now(), RND_A).unwrap();
        assert_eq!(&sent(&mut cp)[5..8], &[3, SCS_11, 0], "key selector 0: SCBK-D");
    }

    #[test]
    fn a_reader_in_install_mode_is_refused_when_we_use_a_site_key() {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(KEY);
        pd.install_mode_flag = 0;
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        assert_eq!(events(&mut cp), vec![Event::Online, Event::SecureChannelFailed(ScFailure::ReaderInInstallMode)]);
        assert!(!cp.is_secure() && cp.in_flight().is_none());
    }

    #[test]
    fn a_wrong_key_fails_the_handshake_at_the_cryptogram() {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(Scbk([7; 16]));
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        assert!(events(&mut cp).contains(&Event::SecureChannelFailed(ScFailure::CryptogramMismatch)));
        assert!(cp.poll_transmit().is_none(), "no osdp_SCRYPT after a bad cryptogram");
    }

    #[test]
    fn a_bad_initial_rmac_fails_the_handshake() {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(KEY);
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        let mut rmac_i = pd.answer(&scrypt, 0, &[]);
        // Flip a bit of RMAC-I and fix the CRC, as a tampered line would.
        let n = rmac_i.len();
        rmac_i[n - 3] ^= 1;
        let crc = crate::crc::crc16(&rmac_i[..n - 2]).to_le_bytes();
        rmac_i[n - 2..].copy_from_slice(&crc);
        cp.receive(t, &rmac_i);
        assert!(events(&mut cp).contains(&Event::SecureChannelFailed(ScFailure::RmacMismatch)));
        assert!(!cp.is_secure());
    }

    #[test]
    fn an_encrypted_nak_during_the_handshake_is_a_stale_session() {
        let mut cp = cp(KEY);
        let mut pd = ScriptedPd::new(KEY);
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        // The PD's answer to a repeated osdp_SCRYPT, inside the session it
        // set up for the first one.
        let sb = SecurityBlock { kind: SCS_18, data: Vec::new() };
        let header = Header { address: 1, reply: true, sequence: sequence(&scrypt), check: Check::Crc16 };
        cp.receive(t, &encode(header, Some(&sb), reply::NAK, &[0xE0; 16], Some(&mut |_: &[u8]| [0; 4])));
        let ev = events(&mut cp);
        assert!(ev.contains(&Event::SecureChannelFailed(ScFailure::StaleSession)), "{ev:?}");
        assert!(ScFailure::StaleSession.is_transient() && !ScFailure::CryptogramMismatch.is_transient());
    }

    #[test]
    fn command_data_is_encrypted_and_reply_data_decrypted() {
        let (mut cp, mut pd, t) = connected();
        cp.send(t, &Command::Output { output: 3, action: crate::OutputAction::On }).unwrap();
        let out = sent(&mut cp);
        assert_eq!(out[6], SCS_17);
        assert!(!out.windows(4).any(|w| w == [3, 2, 0, 0]), "osdp_OUT data must not be in the clear");
        assert_eq!(pd.command_data(&out), vec![3, 2, 0, 0]);
        cp.receive(t, &pd.answer(&out, reply::ACK, &[]));
        assert_eq!(events(&mut cp), vec![Event::Reply { command: command::OUT, reply: Reply::Ack }]);

        cp.send(t, &Command::InputStatus).unwrap();
        let istat = sent(&mut cp);
        assert_eq!(istat[6], SCS_15, "no data, MAC only");
        cp.receive(t, &pd.answer(&istat, reply::ISTATR, &[0, 1, 1, 0]));
        assert_eq!(
            events(&mut cp),
            vec![Event::Reply { command: command::ISTAT, reply: Reply::InputStatus(vec![false, true, true, false]) }]
        );
        assert!(cp.is_secure());
    }

    #[test]
    fn an_unanswered_command_is_resent_unchanged_then_reported() {
        let (mut cp, _pd, t) = connected();
        cp.send(t, &Command::Poll).unwrap();
        let first = sent(&mut cp);
        cp.tick(t + Duration::from_millis(199));
        assert!(cp.poll_transmit().is_none(), "not before the reply timeout");
        cp.tick(t + Duration::from_millis(200));
        assert_eq!(sent(&mut cp), first, "the same bytes, the same sequence number");
        cp.tick(t + Duration::from_millis(400));
        assert_eq!(sent(&mut cp), first);
        cp.tick(t + Duration::from_millis(600));
        assert!(cp.poll_transmit().is_none(), "three tries only");
        assert_eq!(
            events(&mut cp),
            vec![
                Event::NoReply { command: command::POLL, tries: 3 },
                Event::SessionLost { command: command::POLL, loss: SessionLoss::NoReply }
            ]
        );
        assert!(!cp.is_secure(), "the MAC chain may be out of step: a new handshake is needed");
    }

    #[test]
    fn a_reply_after_a_retry_still_counts() {
        let (mut cp, mut pd, t) = connected();
        cp.send(t, &Command::Poll).unwrap();
        let first = sent(&mut cp);
        cp.tick(t + Duration::from_millis(200));
        let again = sent(&mut cp);
        cp.receive(t + Duration::from_millis(250), &pd.answer(&again, reply::ACK, &[]));
        assert_eq!(events(&mut cp), vec![Event::Reply { command: command::POLL, reply: Reply::Ack }]);
        assert_eq!(first, again);
    }

    #[test]
    fn the_reader_goes_offline_after_the_configured_silence_and_comes_back() {
        let (mut cp, mut pd, t) = connected();
        let mut now = t;
        let mut seen = Vec::new();
        // Commands keep going unanswered for 8 s.
        while now < t + Duration::from_secs(9) && !seen.contains(&Event::Offline) {
            if cp.in_flight().is_none() {
                let _ = cp.connect(now, RND_A);
            }
            now += Duration::from_millis(100);
            cp.tick(now);
            while cp.poll_transmit().is_some() {}
            seen.extend(events(&mut cp));
        }
        assert!(seen.contains(&Event::Offline), "{seen:?}");
        assert!(
            now >= t + Duration::from_secs(8) && now <= t + Duration::from_millis(8200),
            "offline at {:?}",
            now - t
        );
        assert!(!cp.is_online());

        while cp.in_flight().is_some() {
            now += Duration::from_millis(100);
            cp.tick(now);
            while cp.poll_transmit().is_some() {}
        }
        events(&mut cp);
        cp.connect(now, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(now, &pd.answer(&chlng, 0, &[]));
        assert_eq!(events(&mut cp), vec![Event::Online]);
    }

    #[test]
    fn echoes_other_addresses_and_stale_replies_are_ignored() {
        let (mut cp, mut pd, t) = connected();
        cp.send(t, &Command::Poll).unwrap();
        let poll = sent(&mut cp);
        // Our own command echoed by a two-wire bus.
        cp.receive(t, &poll);
        // Another reader's reply.
        let other = encode(
            Header { address: 2, reply: true, sequence: sequence(&poll), check: Check::Crc16 },
            None,
            reply::ACK,
            &[],
            None,
        );
        cp.receive(t, &other);
        // A late reply to an earlier command.
        let stale =
            encode(Header { address: 1, reply: true, sequence: 1, check: Check::Crc16 }, None, reply::NAK, &[6], None);
        cp.receive(t, &stale);
        assert_eq!(events(&mut cp), vec![]);
        assert_eq!(cp.in_flight(), Some(command::POLL));
        cp.receive(t, &pd.answer(&poll, reply::ACK, &[]));
        assert_eq!(events(&mut cp), vec![Event::Reply { command: command::POLL, reply: Reply::Ack }]);
    }

    #[test]
    fn a_reply_with_a_bad_mac_ends_the_session() {
        let (mut cp, mut pd, t) = connected();
        cp.send(t, &Command::Poll).unwrap();
        let poll = sent(&mut cp);
        let mut ack = pd.answer(&poll, reply::ACK, &[]);
        let n = ack.len();
        ack[n - 4] ^= 0x55; // a MAC byte
        let crc = crate::crc::crc16(&ack[..n - 2]).to_le_bytes();
        ack[n - 2..].copy_from_slice(&crc);
        cp.receive(t, &ack);
        assert_eq!(events(&mut cp), vec![Event::SessionLost { command: command::POLL, loss: SessionLoss::BadMac }]);
        assert!(!cp.is_secure());
    }

    #[test]
    fn a_cleartext_reply_during_the_session_ends_it() {
        let (mut cp, _pd, t) = connected();
        cp.send(t, &Command::InputStatus).unwrap();
        let istat = sent(&mut cp);
        let clear = encode(
            Header { address: 1, reply: true, sequence: sequence(&istat), check: Check::Crc16 },
            None,
            reply::ISTATR,
            &[1, 1],
            None,
        );
        cp.receive(t, &clear);
        assert_eq!(
            events(&mut cp),
            vec![Event::SessionLost { command: command::ISTAT, loss: SessionLoss::Cleartext(reply::ISTATR) }]
        );
        assert!(!cp.is_secure());
    }

    #[test]
    fn a_nak_for_a_lost_session_ends_it_but_other_naks_do_not() {
        let (mut cp, mut pd, t) = connected();
        cp.send(t, &Command::Buzzer(crate::Buzzer::Off { reader: 0 })).unwrap();
        let buz = sent(&mut cp);
        cp.receive(t, &pd.answer(&buz, reply::NAK, &[3]));
        assert_eq!(events(&mut cp), vec![Event::Reply { command: command::BUZ, reply: Reply::Nak(NakCode(3)) }]);
        assert!(cp.is_secure());

        cp.send(t, &Command::Poll).unwrap();
        let poll = sent(&mut cp);
        let clear_nak = encode(
            Header { address: 1, reply: true, sequence: sequence(&poll), check: Check::Crc16 },
            None,
            reply::NAK,
            &[6],
            None,
        );
        cp.receive(t, &clear_nak);
        assert_eq!(
            events(&mut cp),
            vec![Event::SessionLost { command: command::POLL, loss: SessionLoss::Nak(NakCode(6)) }]
        );
        assert!(!cp.is_secure());
    }

    #[test]
    fn an_acked_keyset_switches_keys_and_ends_the_session() {
        let mut config = Config::new(1, Scbk::DEFAULT);
        config.allow_install_mode = true;
        let mut cp = Cp::new(config).unwrap();
        let mut pd = ScriptedPd::new(Scbk::DEFAULT);
        pd.install_mode_flag = 0;
        let t = Instant::now();
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        cp.receive(t, &pd.answer(&scrypt, 0, &[]));
        assert!(events(&mut cp).contains(&Event::SecureChannelEstablished { install_mode: true }));

        let err = cp.send(t, &Command::SetKey(Scbk::DEFAULT)).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
        cp.send(t, &Command::SetKey(KEY)).unwrap();
        let keyset = sent(&mut cp);
        assert_eq!(pd.command_data(&keyset), [&[1, 16][..], &KEY.0].concat());
        cp.receive(t, &pd.answer(&keyset, reply::ACK, &[]));
        assert_eq!(events(&mut cp), vec![Event::Reply { command: command::KEYSET, reply: Reply::Ack }]);
        assert!(!cp.is_secure());

        let mut pd = ScriptedPd::new(KEY);
        cp.connect(t, RND_A).unwrap();
        let chlng = sent(&mut cp);
        assert_eq!(&chlng[5..8], &[3, SCS_11, 1], "the new key, not SCBK-D");
        cp.receive(t, &pd.answer(&chlng, 0, &[]));
        let scrypt = sent(&mut cp);
        cp.receive(t, &pd.answer(&scrypt, 0, &[]));
        assert_eq!(events(&mut cp), vec![Event::SecureChannelEstablished { install_mode: false }]);
    }

    proptest::proptest! {
        #[test]
        fn noise_never_completes_or_breaks_a_command(noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let (mut cp, mut pd, t) = connected();
            cp.send(t, &Command::Poll).unwrap();
            let poll = sent(&mut cp);
            cp.receive(t, &noise);
            proptest::prop_assert_eq!(events(&mut cp), vec![]);
            proptest::prop_assert_eq!(cp.in_flight(), Some(command::POLL));
            cp.receive(t, &pd.answer(&poll, reply::ACK, &[]));
            proptest::prop_assert_eq!(events(&mut cp), vec![Event::Reply { command: command::POLL, reply: Reply::Ack }]);
        }
    }

    #[test]
    fn a_second_command_waits_for_the_first() {
        let (mut cp, _pd, t) = connected();
        cp.send(t, &Command::Poll).unwrap();
        let err = cp.send(t, &Command::InputStatus).unwrap_err();
        assert!(matches!(err, Error::Busy { address: 1, command: command::POLL }), "{err:?}");
    }
}

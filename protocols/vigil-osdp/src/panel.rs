//! The blocking driver: runs [`Cp`] over a [`Link`] with the real clock, and
//! the calls a door-lock plugin makes.

use std::io;
use std::time::{Duration, Instant};

use crate::cp::{Config, Cp, Event};
use crate::crypto::Scbk;
use crate::error::Error;
use crate::message::{Buzzer, Capability, Command, DeviceId, Led, LocalStatus, OutputAction, Reply, command};

/// How many bytes to ask the link for at a time.
const READ_CHUNK: usize = 256;

/// A byte stream to one RS-485 line: the host's serial port in a plugin, a
/// PTY in tests.
pub trait Link {
    /// Writes all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads up to `max` bytes, waiting at most `timeout` for the first;
    /// returns an empty vector when nothing came in time.
    fn recv(&mut self, max: usize, timeout: Duration) -> io::Result<Vec<u8>>;
}

/// Options beyond the address and key; the defaults are the spec's timings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Allow the well-known default key SCBK-D (install mode). Only while
    /// commissioning a reader: anyone on the wire can read and forge such a session.
    pub allow_install_mode: bool,
    /// How long to wait for each reply (default 200 ms).
    pub reply_timeout: Duration,
    /// How many times a command is sent before giving up (default 3).
    pub tries: u32,
    /// How long without replies before the reader counts as offline (default 8 s).
    pub offline_after: Duration,
    /// Send the mark character 0xFF before each frame, as OSDP 2.2 asks
    /// (default); off for older readers that take it for noise.
    pub mark: bool,
}

impl Default for Options {
    fn default() -> Options {
        let spec = Config::new(0, Scbk([0; 16]));
        Options {
            allow_install_mode: false,
            reply_timeout: spec.reply_timeout,
            tries: spec.tries,
            offline_after: spec.offline_after,
            mark: spec.mark,
        }
    }
}

/// An OSDP control panel talking to one reader over the Secure Channel.
///
/// Every call blocks until the reader answers or every try has timed out
/// (by default at most 3 × 200 ms, plus a handshake when one is needed).
/// When the secure session is down (never set up, the reader restarted,
/// a MAC failed) a command first sets it up again, once.
pub struct ControlPanel<L: Link> {
    link: L,
    cp: Cp,
    notices: Vec<Event>,
}

impl<L: Link> ControlPanel<L> {
    /// A control panel for the reader at `address` (0-126) with key `scbk`.
    /// Refuses the default key SCBK-D unless `options.allow_install_mode`.
    pub fn new(link: L, address: u8, scbk: Scbk, options: Options) -> Result<ControlPanel<L>, Error> {
        let config = Config {
            address,
            scbk,
            allow_install_mode: options.allow_install_mode,
            reply_timeout: options.reply_timeout,
            tries: options.tries,
            offline_after: options.offline_after,
            mark: options.mark,
        };
        Ok(ControlPanel { link, cp: Cp::new(config)?, notices: Vec::new() })
    }

    /// The reader's address.
    pub fn address(&self) -> u8 {
        self.cp.config().address
    }

    /// Whether the Secure Channel is up.
    pub fn is_secure(&self) -> bool {
        self.cp.is_secure()
    }

    /// Whether the reader answered lately.
    pub fn is_online(&self) -> bool {
        self.cp.is_online()
    }

    /// Bytes skipped on the line as noise or broken frames so far.
    pub fn skipped_bytes(&self) -> u64 {
        self.cp.skipped_bytes()
    }

    /// The link, e.g. to close it.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Sets up the Secure Channel with a fresh random challenge. A
    /// handshake that fails for a reason other than the key (a reply lost
    /// on a noisy line) is tried once more with a new challenge.
    pub fn connect(&mut self) -> Result<(), Error> {
        let mut rnd_a = [0u8; 8];
        getrandom::fill(&mut rnd_a).map_err(|e| Error::Random(e.to_string()))?;
        match self.connect_with(rnd_a) {
            Err(Error::SecureChannel { failure, .. }) if failure.is_transient() => {
                getrandom::fill(&mut rnd_a).map_err(|e| Error::Random(e.to_string()))?;
                self.connect_with(rnd_a)
            }
            result => result,
        }
    }

    /// Sets up the Secure Channel with the caller's random challenge RND.A
    /// (8 bytes that must never repeat).
    pub fn connect_with(&mut self, rnd_a: [u8; 8]) -> Result<(), Error> {
        let address = self.address();
        self.cp.connect(Instant::now(), rnd_a)?;
        for event in self.run()? {
            match event {
                Event::SecureChannelEstablished { .. } => return Ok(()),
                Event::SecureChannelFailed(failure) => return Err(Error::SecureChannel { address, failure }),
                Event::NoReply { command, tries } => return Err(self.no_reply(command, tries)),
                _ => {}
            }
        }
        unreachable!("a handshake always ends established, failed or unanswered")
    }

    /// Polls the reader and returns what happened since the last call:
    /// online/offline, secure channel changes, and anything the reader had
    /// to report (an osdp_ISTATR when a door contact changed, card data…).
    /// On error the events stay for [`ControlPanel::take_events`].
    pub fn poll(&mut self) -> Result<Vec<Event>, Error> {
        let reply = self.transact(&Command::Poll)?;
        if reply != Reply::Ack {
            self.notices.push(Event::Reply { command: command::POLL, reply });
        }
        Ok(std::mem::take(&mut self.notices))
    }

    /// Events seen since the last [`ControlPanel::poll`] or call to this.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.notices)
    }

    /// Drives output `output` (0-based): a door strike, a maglock, a siren relay.
    pub fn set_output(&mut self, output: u8, action: OutputAction) -> Result<(), Error> {
        let cmd = Command::Output { output, action };
        match self.transact(&cmd)? {
            Reply::Ack | Reply::OutputStatus(_) => Ok(()),
            other => Err(self.unexpected(&cmd, &other, "osdp_ACK")),
        }
    }

    /// Each output's state, `true` = active (to confirm a lock really changed).
    pub fn output_status(&mut self) -> Result<Vec<bool>, Error> {
        match self.transact(&Command::OutputStatus)? {
            Reply::OutputStatus(outputs) => Ok(outputs),
            other => Err(self.unexpected(&Command::OutputStatus, &other, "osdp_OSTATR")),
        }
    }

    /// Each input's state, `true` = active (door contacts, request-to-exit).
    pub fn input_status(&mut self) -> Result<Vec<bool>, Error> {
        match self.transact(&Command::InputStatus)? {
            Reply::InputStatus(inputs) => Ok(inputs),
            other => Err(self.unexpected(&Command::InputStatus, &other, "osdp_ISTATR")),
        }
    }

    /// Tamper and power status.
    pub fn local_status(&mut self) -> Result<LocalStatus, Error> {
        match self.transact(&Command::LocalStatus)? {
            Reply::LocalStatus(status) => Ok(status),
            other => Err(self.unexpected(&Command::LocalStatus, &other, "osdp_LSTATR")),
        }
    }

    /// Sets a reader LED.
    pub fn led(&mut self, led: Led) -> Result<(), Error> {
        let cmd = Command::Led(led);
        match self.transact(&cmd)? {
            Reply::Ack => Ok(()),
            other => Err(self.unexpected(&cmd, &other, "osdp_ACK")),
        }
    }

    /// Drives a reader's buzzer.
    pub fn buzzer(&mut self, buzzer: Buzzer) -> Result<(), Error> {
        let cmd = Command::Buzzer(buzzer);
        match self.transact(&cmd)? {
            Reply::Ack => Ok(()),
            other => Err(self.unexpected(&cmd, &other, "osdp_ACK")),
        }
    }

    /// Gives the reader a new base key and uses it from now on: how a
    /// reader in install mode (reached with SCBK-D, `allow_install_mode`)
    /// gets the site's key. The secure session is set up again with the new
    /// key on the next command. Keep the key: a reader whose key is lost
    /// has to be reset to install mode on site.
    pub fn set_key(&mut self, key: Scbk) -> Result<(), Error> {
        let cmd = Command::SetKey(key);
        match self.transact(&cmd)? {
            Reply::Ack => Ok(()),
            other => Err(self.unexpected(&cmd, &other, "osdp_ACK")),
        }
    }

    /// The reader's identification.
    pub fn id(&mut self) -> Result<DeviceId, Error> {
        match self.transact(&Command::Id)? {
            Reply::Id(id) => Ok(id),
            other => Err(self.unexpected(&Command::Id, &other, "osdp_PDID")),
        }
    }

    /// The reader's capabilities.
    pub fn capabilities(&mut self) -> Result<Vec<Capability>, Error> {
        match self.transact(&Command::Capabilities)? {
            Reply::Capabilities(caps) => Ok(caps),
            other => Err(self.unexpected(&Command::Capabilities, &other, "osdp_PDCAP")),
        }
    }

    fn unexpected(&self, cmd: &Command, reply: &Reply, expected: &'static str) -> Error {
        Error::UnexpectedReply { address: self.address(), command: cmd.code(), code: reply.code(), expected }
    }

    fn no_reply(&self, command: u8, tries: u32) -> Error {
        Error::NoReply { address: self.address(), command, timeout: self.cp.config().reply_timeout, tries }
    }

    /// Sends one command over the Secure Channel (setting it up first when
    /// needed) and returns its reply; NAKs become errors. A session that
    /// breaks under the command is set up again and the command resent,
    /// once. Every Vigil command but a pulse is idempotent; a pulse can run
    /// twice only when the reader carried it out and then its reply failed
    /// the MAC check.
    fn transact(&mut self, cmd: &Command) -> Result<Reply, Error> {
        let address = self.address();
        let mut retried = false;
        'attempt: loop {
            if !self.cp.is_secure() {
                self.connect()?;
            }
            self.cp.send(Instant::now(), cmd)?;
            for event in self.run()? {
                match event {
                    Event::Reply { command, reply: Reply::Nak(nak) } if command == cmd.code() => {
                        return Err(Error::Nak { address, command, nak });
                    }
                    Event::Reply { command, reply } if command == cmd.code() => return Ok(reply),
                    Event::BadReply { command, problem } => return Err(Error::BadReply { address, command, problem }),
                    Event::NoReply { command, tries } => return Err(self.no_reply(command, tries)),
                    Event::SessionLost { command, loss } => {
                        if retried {
                            return Err(Error::SessionLost { address, command, loss });
                        }
                        retried = true;
                        continue 'attempt;
                    }
                    _ => {}
                }
            }
            unreachable!("a command always ends answered, unanswered or with the session lost");
        }
    }

    /// Runs the state machine until nothing is in flight; returns the events.
    fn run(&mut self) -> Result<Vec<Event>, Error> {
        let result = self.pump();
        if result.is_err() {
            self.cp.abort();
        }
        let events = result?;
        self.notices.extend(events.iter().filter(|e| is_notice(e)).cloned());
        Ok(events)
    }

    fn pump(&mut self) -> Result<Vec<Event>, Error> {
        let address = self.address();
        let mut events = Vec::new();
        loop {
            while let Some(bytes) = self.cp.poll_transmit() {
                self.link.send(&bytes).map_err(|source| Error::Link { address, source })?;
            }
            events.extend(std::iter::from_fn(|| self.cp.poll_event()));
            let Some(deadline) = self.cp.deadline() else { return Ok(events) };
            let now = Instant::now();
            if now < deadline {
                let bytes =
                    self.link.recv(READ_CHUNK, deadline - now).map_err(|source| Error::Link { address, source })?;
                if !bytes.is_empty() {
                    self.cp.receive(Instant::now(), &bytes);
                }
            }
            self.cp.tick(Instant::now());
        }
    }
}

/// Events worth reporting to whoever polls, beyond one command's reply.
fn is_notice(event: &Event) -> bool {
    matches!(
        event,
        Event::Online
            | Event::Offline
            | Event::SecureChannelEstablished { .. }
            | Event::SecureChannelFailed(_)
            | Event::SessionLost { .. }
    )
}

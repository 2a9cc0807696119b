//! vigil-osdp's control panel against a real reader: libosdp's peripheral
//! device (PyPI `libosdp`, tests/peers/osdp_pd.py) on a PTY pair from socat.
//! The PD enforces the Secure Channel, so every command these tests see
//! answered went over it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil_osdp::{
    Buzzer, ControlPanel, Error, Event, Led, LedAction, LedColor, LedPattern, Link, NakCode, Options, OutputAction,
    Reply, ScFailure, Scbk, SessionLoss,
};
use vigil_peers::osdp::{OsdpPd, OsdpPdOptions};

const WAIT: Duration = Duration::from_secs(10);

/// The control panel's end of the PTY as a [`Link`]; a thread reads it so
/// `recv` can wait with a timeout.
struct PtyLink {
    writer: File,
    chunks: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl PtyLink {
    fn open(path: &Path) -> PtyLink {
        let writer = File::options().read(true).write(true).open(path).expect("open the CP end of the PTY");
        let mut reader = writer.try_clone().expect("clone the PTY handle");
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        PtyLink { writer, chunks, pending: Vec::new() }
    }
}

impl Link for PtyLink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    fn recv(&mut self, max: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        if self.pending.is_empty() {
            match self.chunks.recv_timeout(timeout) {
                Ok(chunk) => self.pending = chunk,
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(Vec::new()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the PTY closed"));
                }
            }
        }
        let n = max.min(self.pending.len());
        Ok(self.pending.drain(..n).collect())
    }
}

/// A link that must never be used: refusals happen before any I/O. (A
/// second [`PtyLink`] on the same PTY would steal the first one's bytes.)
struct NoLink;

impl Link for NoLink {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        panic!("a refused control panel must not send anything")
    }

    fn recv(&mut self, _: usize, _: Duration) -> io::Result<Vec<u8>> {
        panic!("a refused control panel must not read anything")
    }
}

const SITE_KEY: [u8; 16] = *b"school-site-key1";

fn pd(options: OsdpPdOptions) -> OsdpPd {
    OsdpPd::start(&options).expect("start the libosdp PD")
}

fn pd_with_key(key: [u8; 16]) -> OsdpPd {
    pd(OsdpPdOptions { scbk: Some(key), ..OsdpPdOptions::default() })
}

fn panel(pd: &OsdpPd, key: Scbk, options: Options) -> ControlPanel<PtyLink> {
    ControlPanel::new(PtyLink::open(pd.cp_path()), 1, key, options).expect("make the control panel")
}

fn is_command(event: &serde_json::Value, command: &str) -> bool {
    event["event"] == "command" && event["command"] == command
}

#[test]
fn the_secure_channel_comes_up_with_the_site_key() {
    let pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.connect().expect("secure channel");
    assert!(cp.is_secure());
    pd.wait_for(WAIT, |e| e["event"] == "sc" && e["active"] == true).expect("the PD saw the secure channel");
    let events = cp.poll().expect("poll");
    assert!(events.contains(&Event::Online), "{events:?}");
    assert!(events.contains(&Event::SecureChannelEstablished { install_mode: false }), "{events:?}");
}

/// Polls until the reader reports `expected` in reply to a poll.
fn poll_until_reported(cp: &mut ControlPanel<PtyLink>, expected: Reply) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let events = cp.poll().expect("poll");
        if events.contains(&Event::Reply { command: POLL, reply: expected.clone() }) {
            return;
        }
        seen.extend(events);
        assert!(Instant::now() < deadline, "the PD never reported {expected:?}; saw {seen:?}");
    }
}

const POLL: u8 = 0x60;

#[test]
fn set_output_reaches_the_pd_over_the_secure_channel_and_its_report_confirms_it() {
    let pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.connect().expect("secure channel");
    cp.set_output(1, OutputAction::On).expect("lock output 1");
    let seen = pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
    assert_eq!((seen["output_no"].as_u64(), seen["control_code"].as_u64()), (Some(1), Some(2)), "{seen}");
    poll_until_reported(&mut cp, Reply::OutputStatus(vec![false, true]));

    cp.set_output(1, OutputAction::Off).expect("unlock output 1");
    poll_until_reported(&mut cp, Reply::OutputStatus(vec![false, false]));
    cp.set_output(0, OutputAction::PulseOn { tenths: 50 }).expect("pulse output 0");
    let pulse = pd.wait_for(WAIT, |e| is_command(e, "output") && e["output_no"] == 0).expect("the PD got the pulse");
    assert_eq!((pulse["control_code"].as_u64(), pulse["timer_count"].as_u64()), (Some(5), Some(50)), "{pulse}");
}

#[test]
fn door_contact_changes_arrive_with_the_next_poll() {
    let mut pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.connect().expect("secure channel");
    pd.set_input(2, true).expect("set input 2");
    poll_until_reported(&mut cp, Reply::InputStatus(vec![false, false, true, false]));
    pd.set_input(2, false).expect("clear input 2");
    pd.set_input(0, true).expect("set input 0");
    poll_until_reported(&mut cp, Reply::InputStatus(vec![true, false, false, false]));
}

#[test]
fn led_and_buzzer_commands_reach_the_pd() {
    let pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.led(Led { reader: 0, led: 0, action: LedAction::Permanent(LedPattern::steady(LedColor::Red)) })
        .expect("permanent red");
    let led = pd.wait_for(WAIT, |e| is_command(e, "led")).expect("the PD got osdp_LED");
    assert_eq!(led["on_color"].as_u64(), Some(1), "{led}");
    assert_eq!(led["temporary"], false, "{led}");
    cp.buzzer(Buzzer::Beep { reader: 0, on_tenths: 2, off_tenths: 3, count: 4 }).expect("beep");
    let buz = pd.wait_for(WAIT, |e| is_command(e, "buzzer")).expect("the PD got osdp_BUZ");
    assert_eq!(
        (buz["on_count"].as_u64(), buz["off_count"].as_u64(), buz["rep_count"].as_u64()),
        (Some(2), Some(3), Some(4))
    );
}

#[test]
fn identification_and_capabilities_come_over_the_secure_channel_without_mark_characters() {
    let pd = pd_with_key(SITE_KEY);
    // Older readers take OSDP 2.2's mark character for noise; libosdp takes both.
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options { mark: false, ..Options::default() });
    let id = cp.id().expect("osdp_ID");
    // libosdp's Python PDInfo defaults: vendor 0xcafebabe (3 bytes go out), serial 0xdeadbeaf.
    assert_eq!(id.serial, 0xDEAD_BEAF, "{id:?}");
    let caps = cp.capabilities().expect("osdp_CAP");
    let outputs = caps.iter().find(|c| c.function == 2).expect("output control capability");
    assert_eq!(outputs.items, 2, "{caps:?}");
}

#[test]
fn a_wrong_key_is_refused_in_words() {
    let pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(*b"not-the-site-key"), Options::default());
    let err = cp.connect().expect_err("a wrong key must not make a secure channel");
    assert!(matches!(err, Error::SecureChannel { address: 1, failure: ScFailure::CryptogramMismatch }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "secure channel with the reader at address 1 refused: the reader's cryptogram does not match — wrong SCBK?"
    );
    assert!(!cp.is_secure());
    // Commands need the secure channel, so they fail the same way rather than go out in the clear.
    let err = cp.set_output(0, OutputAction::On).expect_err("no command without a secure channel");
    assert!(matches!(err, Error::SecureChannel { .. }), "{err:?}");
    assert!(!pd.events().iter().any(|e| is_command(e, "output")), "{:?}", pd.events());
}

#[test]
fn install_mode_is_refused_unless_allowed() {
    let pd = pd(OsdpPdOptions { scbk: None, ..OsdpPdOptions::default() });
    let refused = ControlPanel::new(NoLink, 1, Scbk::DEFAULT, Options::default());
    let err = refused.err().expect("SCBK-D must be refused by default");
    assert!(matches!(err, Error::InstallModeRefused { address: 1 }), "{err:?}");
    assert!(err.to_string().contains("allow_install_mode"), "{err}");

    let mut cp = panel(&pd, Scbk::DEFAULT, Options { allow_install_mode: true, ..Options::default() });
    cp.connect().expect("install-mode secure channel when allowed");
    cp.set_output(0, OutputAction::On).expect("osdp_OUT in install mode");
    pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
    assert!(cp.take_events().contains(&Event::SecureChannelEstablished { install_mode: true }));
}

#[test]
fn a_reader_in_install_mode_is_commissioned_with_the_site_key() {
    let pd = pd(OsdpPdOptions { scbk: None, ..OsdpPdOptions::default() });
    let mut cp = panel(&pd, Scbk::DEFAULT, Options { allow_install_mode: true, ..Options::default() });
    cp.connect().expect("install-mode secure channel when allowed");
    cp.set_key(Scbk(SITE_KEY)).expect("osdp_KEYSET");
    let keyset = pd.wait_for(WAIT, |e| is_command(e, "keyset")).expect("the PD got osdp_KEYSET");
    assert_eq!(keyset["data"].as_str(), Some(&*SITE_KEY.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    cp.take_events();

    cp.set_output(1, OutputAction::On).expect("osdp_OUT with the new key");
    assert!(cp.take_events().contains(&Event::SecureChannelEstablished { install_mode: false }));
    pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
}

#[test]
fn a_site_key_does_not_talk_to_a_reader_in_install_mode() {
    let pd = pd(OsdpPdOptions { scbk: None, ..OsdpPdOptions::default() });
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    let err = cp.connect().expect_err("a reader in install mode has no site key");
    assert!(matches!(err, Error::SecureChannel { .. }), "{err:?}");
}

#[test]
fn a_command_the_pd_cannot_do_is_naked_in_words() {
    // A PD without inputs does not know osdp_ISTAT.
    let pd = pd(OsdpPdOptions { inputs: 0, ..OsdpPdOptions::default() });
    let mut cp = panel(&pd, Scbk(*b"vigil-test-scbk!"), Options::default());
    let err = cp.input_status().expect_err("no inputs, no osdp_ISTAT");
    assert!(matches!(err, Error::Nak { address: 1, command: 0x65, nak: NakCode(3) }), "{err:?}");
    assert_eq!(err.to_string(), "the reader at address 1 NAKed osdp_ISTAT: unknown command code (NAK 3)");
    // The session survives a NAK.
    cp.set_output(0, OutputAction::On).expect("osdp_OUT after a NAK");
    assert!(cp.is_secure());
}

#[test]
fn a_silent_pd_times_out_goes_offline_and_comes_back() {
    let mut pd = pd_with_key(SITE_KEY);
    let options = Options { offline_after: Duration::from_secs(1), ..Options::default() };
    let mut cp = panel(&pd, Scbk(SITE_KEY), options);
    cp.connect().expect("secure channel");
    pd.set_silent(true).expect("silence the PD");

    let err = cp.set_output(0, OutputAction::On).expect_err("a silent PD cannot ACK");
    assert!(matches!(err, Error::NoReply { address: 1, command: 0x68, tries: 3, .. }), "{err:?}");
    assert_eq!(err.to_string(), "no reply from address 1 within 200 ms (3 tries) to osdp_OUT");

    let deadline = Instant::now() + WAIT;
    let mut seen = cp.take_events();
    while !seen.contains(&Event::Offline) {
        assert!(Instant::now() < deadline, "never reported offline: {seen:?}");
        let err = cp.poll().expect_err("a silent PD cannot answer a poll");
        assert!(matches!(err, Error::NoReply { .. }), "{err:?}");
        seen.extend(cp.take_events());
    }
    assert!(!cp.is_online());

    pd.set_silent(false).expect("wake the PD");
    let events = cp.poll().expect("poll after the PD is back");
    assert!(events.contains(&Event::Online), "{events:?}");
    assert!(cp.is_secure());
}

#[test]
fn noise_on_the_line_is_skipped() {
    let mut pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.connect().expect("secure channel");
    // Line noise, a SOM that claims a long frame, and a frame with a bad CRC.
    pd.send_noise(&[0x00, 0xFF, 0x12, 0x53, 0x81, 0xE8, 0x03, 0x05]).expect("noise");
    pd.send_noise(&[0x53, 0x81, 0x08, 0x00, 0x06, 0x40, 0x00, 0x00]).expect("noise");
    pd.set_input(1, true).expect("set input 1");
    poll_until_reported(&mut cp, Reply::InputStatus(vec![false, true, false, false]));
    assert!(cp.skipped_bytes() >= 16, "skipped {}", cp.skipped_bytes());
}

#[test]
fn a_reader_that_dropped_an_idle_session_is_reconnected_transparently() {
    let pd = pd_with_key(SITE_KEY);
    let mut cp = panel(&pd, Scbk(SITE_KEY), Options::default());
    cp.connect().expect("secure channel");
    pd.wait_for(WAIT, |e| e["event"] == "sc" && e["active"] == true).expect("the PD saw the secure channel");
    // libosdp's PD ends a secure session after 8 s without commands.
    pd.wait_for(Duration::from_secs(30), |e| e["event"] == "sc" && e["active"] == false)
        .expect("the PD ended the idle session");
    cp.take_events();

    cp.set_output(0, OutputAction::On).expect("osdp_OUT after the PD dropped the session");
    let events = cp.take_events();
    assert!(
        events.iter().any(|e| matches!(e, Event::SessionLost { loss: SessionLoss::Nak(NakCode(6)), .. })),
        "{events:?}"
    );
    assert!(events.contains(&Event::SecureChannelEstablished { install_mode: false }), "{events:?}");
    pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
}

/// Loses whatever the reader answers to the `nth` frame sent, as a noisy
/// line would.
struct LoseReplyTo {
    inner: PtyLink,
    nth: usize,
    sent: usize,
}

impl Link for LoseReplyTo {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sent += 1;
        self.inner.send(bytes)
    }

    fn recv(&mut self, max: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        let bytes = self.inner.recv(max, timeout)?;
        Ok(if self.sent == self.nth { Vec::new() } else { bytes })
    }
}

#[test]
fn a_lost_reply_does_not_stop_the_secure_channel() {
    // Frames sent: 1 osdp_CHLNG, 2 osdp_SCRYPT, 3 osdp_OUT.
    for (nth, step) in [(1, "osdp_CCRYPT"), (2, "osdp_RMAC_I"), (3, "osdp_ACK to osdp_OUT")] {
        let pd = pd_with_key(SITE_KEY);
        let link = LoseReplyTo { inner: PtyLink::open(pd.cp_path()), nth, sent: 0 };
        let mut cp = ControlPanel::new(link, 1, Scbk(SITE_KEY), Options::default()).expect("control panel");
        cp.connect().unwrap_or_else(|e| panic!("secure channel despite a lost {step}: {e}"));
        cp.set_output(0, OutputAction::On).unwrap_or_else(|e| panic!("osdp_OUT after a lost {step}: {e}"));
        pd.wait_for(WAIT, |e| is_command(e, "output")).expect("the PD got osdp_OUT");
    }
}

//! OSDP readers and I/O modules as door controllers: Vigil is the control
//! panel on a granted serial port (RS-485) and talks to each peripheral
//! device (PD) only over the Secure Channel (`vigil-osdp`).
//!
//! Confirmation comes from the PD's reports. A PD reports its outputs
//! (osdp_OSTATR) and inputs (osdp_ISTATR) in its answer to the next osdp_POLL
//! when they change, so after an osdp_OUT the door's state is what the next
//! report says, and until then it is not confirmed. Readers that also answer
//! the direct queries osdp_OSTAT and osdp_ISTAT are asked directly as well:
//! after every write and on every tick once they have answered one, and
//! once per secure session to learn the state of outputs and inputs nobody
//! changed yet. (libosdp's PD, for one, NAKs them.) Whatever the PD told is
//! forgotten when a new secure session starts or the PD goes offline, since
//! it may have restarted; the doors are then `unknown` until it reports
//! again, and the ones the plugin holds are written again.
//!
//! [`Reader`] holds this logic over the [`Panel`] seam, so it is tested
//! natively with a PD in memory; [`open`] puts it on the host's serial port.

use std::collections::BTreeSet;
use std::io;
use std::time::{Duration, Instant};

use vigil_osdp::message::command;
use vigil_osdp::{Buzzer, ControlPanel, Error, Event, Led, LedAction, LedPattern, Link, Options, OutputAction, Reply};
use vigil_plugin_sdk::serial;

use crate::backend::{Controller, LinkError};
use crate::config::{BuzzerSignal, LedSignal, Osdp};

/// At most this many polls in a row to collect the reports a PD has queued.
const MAX_DRAIN_POLLS: usize = 8;
/// The host waits at most this long in one serial read.
const MAX_READ_MS: u128 = 1_000;

/// The reader at `osdp.address` on the granted port `osdp.port`. Each
/// command waits `timeout` for its reply over three tries, and a write waits
/// up to `timeout` for the report that confirms it.
pub fn open(osdp: &Osdp, timeout: Duration) -> Result<Box<dyn Controller>, String> {
    let options = Options {
        allow_install_mode: osdp.allow_install_mode,
        reply_timeout: (timeout / 3).max(Duration::from_millis(10)),
        tries: 3,
        ..Options::default()
    };
    let link = SerialLink { name: osdp.port.clone(), port: None };
    let panel = ControlPanel::new(link, osdp.address, osdp.scbk, options)
        .map_err(|e| format!("OSDP reader on port {:?}: {e}", osdp.port))?;
    Ok(Box::new(Reader::new(panel, timeout, osdp.led, osdp.buzzer)))
}

/// What [`Reader`] needs of a control panel: the calls of
/// [`vigil_osdp::ControlPanel`], which implements it.
pub trait Panel {
    /// osdp_POLL: the events since the last call, the PD's report among them.
    fn poll(&mut self) -> Result<Vec<Event>, Error>;
    /// The events that came with other calls (secure channel up, offline…).
    fn take_events(&mut self) -> Vec<Event>;
    /// osdp_OUT.
    fn set_output(&mut self, output: u8, action: OutputAction) -> Result<(), Error>;
    /// osdp_OSTAT.
    fn output_status(&mut self) -> Result<Vec<bool>, Error>;
    /// osdp_ISTAT.
    fn input_status(&mut self) -> Result<Vec<bool>, Error>;
    /// osdp_LED.
    fn led(&mut self, led: Led) -> Result<(), Error>;
    /// osdp_BUZ.
    fn buzzer(&mut self, buzzer: Buzzer) -> Result<(), Error>;
}

impl<L: Link> Panel for ControlPanel<L> {
    fn poll(&mut self) -> Result<Vec<Event>, Error> {
        ControlPanel::poll(self)
    }
    fn take_events(&mut self) -> Vec<Event> {
        ControlPanel::take_events(self)
    }
    fn set_output(&mut self, output: u8, action: OutputAction) -> Result<(), Error> {
        ControlPanel::set_output(self, output, action)
    }
    fn output_status(&mut self) -> Result<Vec<bool>, Error> {
        ControlPanel::output_status(self)
    }
    fn input_status(&mut self) -> Result<Vec<bool>, Error> {
        ControlPanel::input_status(self)
    }
    fn led(&mut self, led: Led) -> Result<(), Error> {
        ControlPanel::led(self, led)
    }
    fn buzzer(&mut self, buzzer: Buzzer) -> Result<(), Error> {
        ControlPanel::buzzer(self, buzzer)
    }
}

/// Whether the PD answers a direct status query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    /// Not asked in this session.
    Untried,
    /// It answered: ask it on every tick.
    Answered,
    /// It NAKed: rely on its reports.
    Refused,
}

/// One OSDP PD as a door controller.
pub struct Reader<P> {
    panel: P,
    /// How long a write waits for the report that confirms it.
    window: Duration,
    led: Option<LedSignal>,
    buzzer: Option<BuzzerSignal>,
    /// Every output's state as the PD last told it in this session.
    outputs: Option<Vec<bool>>,
    /// Every input's state as the PD last told it in this session.
    inputs: Option<Vec<bool>>,
    /// Outputs written and not reported since: their state is not known.
    unconfirmed: BTreeSet<u16>,
    /// The output just written, whose next read is its confirmation.
    written: Option<u16>,
    output_query: Query,
    input_query: Query,
    /// What the LED shows in this session (`true`: locked), if set.
    led_shown: Option<bool>,
    /// Whether the buzzer sounded for the lockdown in progress.
    buzzed: bool,
}

impl<P: Panel> Reader<P> {
    /// A reader driven through `panel`; a write waits up to `window` for its report.
    pub fn new(panel: P, window: Duration, led: Option<LedSignal>, buzzer: Option<BuzzerSignal>) -> Reader<P> {
        Reader {
            panel,
            window,
            led,
            buzzer,
            outputs: None,
            inputs: None,
            unconfirmed: BTreeSet::new(),
            written: None,
            output_query: Query::Untried,
            input_query: Query::Untried,
            led_shown: None,
            buzzed: false,
        }
    }

    /// Runs one call and takes in the events that came with it, before its result.
    fn call<T>(&mut self, op: impl FnOnce(&mut P) -> Result<T, Error>) -> Result<T, Error> {
        let result = op(&mut self.panel);
        let events = self.panel.take_events();
        self.absorb(events);
        result
    }

    /// Takes in what the PD said, in order.
    fn absorb(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                // A new session or an absence: the PD may have restarted, so what it said before no longer holds.
                Event::SecureChannelEstablished { .. } | Event::Offline => self.forget(),
                Event::Reply { command: command::POLL, reply: Reply::OutputStatus(outputs) } => {
                    self.outputs = Some(outputs);
                    self.unconfirmed.clear();
                }
                Event::Reply { command: command::POLL, reply: Reply::InputStatus(inputs) } => {
                    self.inputs = Some(inputs);
                }
                _ => {}
            }
        }
    }

    fn forget(&mut self) {
        self.outputs = None;
        self.inputs = None;
        self.output_query = Query::Untried;
        self.input_query = Query::Untried;
        self.led_shown = None;
    }

    /// One osdp_POLL; `true` when the PD had something to report.
    fn poll_once(&mut self) -> Result<bool, LinkError> {
        match self.panel.poll() {
            Ok(events) => {
                let reported = events.iter().any(|e| matches!(e, Event::Reply { command: command::POLL, .. }));
                self.absorb(events);
                Ok(reported)
            }
            Err(e) => {
                let events = self.panel.take_events();
                self.absorb(events);
                Err(link_error(e))
            }
        }
    }

    /// Polls until the PD has nothing more to report (a bounded number of times).
    fn drain(&mut self) -> Result<(), LinkError> {
        for _ in 0..MAX_DRAIN_POLLS {
            if !self.poll_once()? {
                break;
            }
        }
        Ok(())
    }

    /// osdp_OSTAT, unless the PD refused it in this session.
    fn query_outputs(&mut self) -> Result<(), LinkError> {
        match self.call(|p| p.output_status()) {
            Ok(outputs) => {
                self.outputs = Some(outputs);
                self.unconfirmed.clear();
                self.output_query = Query::Answered;
                Ok(())
            }
            Err(Error::Nak { .. }) => {
                self.output_query = Query::Refused;
                Ok(())
            }
            Err(e) => Err(link_error(e)),
        }
    }

    /// osdp_ISTAT, unless the PD refused it in this session.
    fn query_inputs(&mut self) -> Result<(), LinkError> {
        match self.call(|p| p.input_status()) {
            Ok(inputs) => {
                self.inputs = Some(inputs);
                self.input_query = Query::Answered;
                Ok(())
            }
            Err(Error::Nak { .. }) => {
                self.input_query = Query::Refused;
                Ok(())
            }
            Err(e) => Err(link_error(e)),
        }
    }

    /// Waits for the PD to report output `n` after it was written: asks it
    /// directly if it answers that, else polls for its report until the
    /// window closes (and on until it has nothing more queued, so an older
    /// report still queued cannot pass for the new state).
    fn confirm(&mut self, n: u16) -> Result<(), LinkError> {
        if self.output_query == Query::Answered {
            self.drain()?;
            return self.query_outputs();
        }
        let deadline = Instant::now() + self.window;
        let mut reported = true;
        while (reported || self.unconfirmed.contains(&n)) && Instant::now() < deadline {
            reported = self.poll_once()?;
        }
        if self.unconfirmed.contains(&n) && self.output_query == Query::Untried {
            self.query_outputs()?;
        }
        Ok(())
    }
}

impl<P: Panel> Controller for Reader<P> {
    fn refresh(&mut self) -> Result<(), LinkError> {
        self.written = None;
        let result = self.drain().and_then(|()| {
            if self.output_query == Query::Answered {
                self.query_outputs()?;
            }
            if self.input_query == Query::Answered {
                self.query_inputs()?;
            }
            Ok(())
        });
        // A PD that cannot be polled tells nothing about any of its doors.
        result.map_err(|e| LinkError { offline: true, ..e })
    }

    fn read_output(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
        if self.written.take() == Some(n) {
            self.confirm(n)?;
        } else if self.outputs.is_none() && self.output_query == Query::Untried {
            self.query_outputs()?;
        }
        if self.unconfirmed.contains(&n) {
            return Ok(None);
        }
        match &self.outputs {
            None => Ok(None),
            Some(outputs) => outputs.get(usize::from(n)).map(|&v| Some(v)).ok_or_else(|| LinkError {
                message: format!("the reader reports {} outputs: it has no output {n}", outputs.len()),
                offline: false,
            }),
        }
    }

    fn write_output(&mut self, n: u16, on: bool) -> Result<(), LinkError> {
        let output = u8::try_from(n).map_err(|_| LinkError {
            message: format!("output {n} is out of range: OSDP outputs are 0-255"),
            offline: false,
        })?;
        // Whatever happens to the command, what the PD said of this output no longer holds.
        self.unconfirmed.insert(n);
        self.written = None;
        let action = if on { OutputAction::On } else { OutputAction::Off };
        self.call(|p| p.set_output(output, action)).map_err(link_error)?;
        self.written = Some(n);
        Ok(())
    }

    fn read_input(&mut self, n: u16) -> Result<Option<bool>, LinkError> {
        if self.inputs.is_none() && self.input_query == Query::Untried {
            self.query_inputs()?;
        }
        match &self.inputs {
            None => Ok(None),
            Some(inputs) => inputs.get(usize::from(n)).map(|&v| Some(v)).ok_or_else(|| LinkError {
                message: format!("the reader reports {} inputs: it has no input {n}", inputs.len()),
                offline: false,
            }),
        }
    }

    fn indicate(&mut self, locked: bool) -> Result<(), LinkError> {
        if let Some(signal) = self.led
            && self.led_shown != Some(locked)
        {
            let color = if locked { signal.locked } else { signal.normal };
            let led =
                Led { reader: signal.reader, led: signal.led, action: LedAction::Permanent(LedPattern::steady(color)) };
            self.call(|p| p.led(led)).map_err(link_error)?;
            self.led_shown = Some(locked);
        }
        if !locked {
            self.buzzed = false;
        } else if let Some(signal) = self.buzzer
            && !self.buzzed
        {
            let beep = Buzzer::Beep {
                reader: signal.reader,
                on_tenths: signal.on_tenths,
                off_tenths: signal.off_tenths,
                count: signal.beeps,
            };
            self.call(|p| p.buzzer(beep)).map_err(link_error)?;
            self.buzzed = true;
        }
        Ok(())
    }
}

/// A failure as the door logic sees it: only an answer about the one command
/// (a NAK, an unexpected or malformed reply) leaves the PD usable for others.
fn link_error(e: Error) -> LinkError {
    let offline = !matches!(e, Error::Nak { .. } | Error::UnexpectedReply { .. } | Error::BadReply { .. });
    LinkError { message: e.to_string(), offline }
}

/// The host's serial port as an OSDP line, opened on first use and again
/// after a failure.
struct SerialLink {
    /// The port's name in the grant.
    name: String,
    port: Option<serial::Port>,
}

impl SerialLink {
    fn port(&mut self) -> io::Result<&serial::Port> {
        let port = match self.port.take() {
            Some(port) => port,
            None => {
                serial::open(&self.name).map_err(|e| io::Error::other(format!("serial port {}: {e}", self.name)))?
            }
        };
        Ok(self.port.insert(port))
    }

    /// Drops the port after a failure, so the next use opens it again.
    fn failed(&mut self, e: String) -> io::Error {
        self.port = None;
        io::Error::other(format!("serial port {}: {e}", self.name))
    }
}

impl Link for SerialLink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self.port()?.write(bytes);
        result.map_err(|e| self.failed(e))
    }

    fn recv(&mut self, max: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        // Round up, so a wait shorter than a millisecond still waits.
        let ms = (timeout.as_micros().div_ceil(1000)).clamp(1, MAX_READ_MS) as u32;
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let result = self.port()?.read(max, ms);
        result.map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use vigil_osdp::{LedColor, NakCode, ScFailure};

    use super::*;
    use crate::config::Config;
    use crate::doors::Doors;
    use crate::policy::{Decision, Desired, Directive, DoorState, Locking, decide};

    /// A PD in memory (a fake: these tests are about what the plugin makes of
    /// what a reader says; the end-to-end test drives libosdp's real PD).
    struct Pd {
        outputs: Vec<bool>,
        /// Reports waiting for the next polls.
        queued: VecDeque<Reply>,
        /// Reports output changes in answer to polls (libosdp's PD does).
        reports: bool,
        /// Answers osdp_OSTAT (libosdp's PD NAKs it).
        answers_ostat: bool,
        /// An output whose relay stays as it is.
        stuck: Option<u8>,
        /// The handshake fails: the keys differ.
        wrong_key: bool,
        /// Answers nothing.
        silent: bool,
        session: bool,
        notices: Vec<Event>,
        /// Every command carried out, in words.
        log: Vec<String>,
    }

    impl Pd {
        /// A PD like libosdp's: reports changes on poll, NAKs status queries.
        fn reporting() -> Pd {
            Pd {
                outputs: vec![false; 2],
                queued: VecDeque::new(),
                reports: true,
                answers_ostat: false,
                stuck: None,
                wrong_key: false,
                silent: false,
                session: false,
                notices: Vec::new(),
                log: Vec::new(),
            }
        }

        /// A power cycle: relays off, session and queued reports gone.
        fn restart(&mut self) {
            self.outputs.iter_mut().for_each(|o| *o = false);
            self.queued.clear();
            self.session = false;
        }

        fn count(&self, what: &str) -> usize {
            self.log.iter().filter(|l| l.starts_with(what)).count()
        }
    }

    struct Fake(Rc<RefCell<Pd>>);

    impl Fake {
        /// One command: a handshake first when there is no session, as `ControlPanel` does.
        fn command<T>(&mut self, what: String, f: impl FnOnce(&mut Pd) -> Result<T, Error>) -> Result<T, Error> {
            let mut pd = self.0.borrow_mut();
            if pd.silent {
                let timeout = Duration::from_millis(200);
                return Err(Error::NoReply { address: 1, command: command::POLL, timeout, tries: 3 });
            }
            if !pd.session {
                if pd.wrong_key {
                    return Err(Error::SecureChannel { address: 1, failure: ScFailure::CryptogramMismatch });
                }
                pd.session = true;
                pd.notices.push(Event::SecureChannelEstablished { install_mode: false });
            }
            pd.log.push(what);
            f(&mut pd)
        }
    }

    impl Panel for Fake {
        fn poll(&mut self) -> Result<Vec<Event>, Error> {
            self.command("poll".into(), |pd| {
                let mut events = std::mem::take(&mut pd.notices);
                if let Some(reply) = pd.queued.pop_front() {
                    events.push(Event::Reply { command: command::POLL, reply });
                }
                Ok(events)
            })
        }
        fn take_events(&mut self) -> Vec<Event> {
            std::mem::take(&mut self.0.borrow_mut().notices)
        }
        fn set_output(&mut self, output: u8, action: OutputAction) -> Result<(), Error> {
            self.command(format!("out {output} {action:?}"), |pd| {
                if pd.stuck != Some(output) {
                    pd.outputs[usize::from(output)] = action == OutputAction::On;
                }
                if pd.reports {
                    let report = Reply::OutputStatus(pd.outputs.clone());
                    pd.queued.push_back(report);
                }
                Ok(())
            })
        }
        fn output_status(&mut self) -> Result<Vec<bool>, Error> {
            self.command("ostat".into(), |pd| {
                if pd.answers_ostat {
                    Ok(pd.outputs.clone())
                } else {
                    Err(Error::Nak { address: 1, command: command::OSTAT, nak: NakCode(9) })
                }
            })
        }
        fn input_status(&mut self) -> Result<Vec<bool>, Error> {
            self.command("istat".into(), |_| Err(Error::Nak { address: 1, command: command::ISTAT, nak: NakCode(9) }))
        }
        fn led(&mut self, led: Led) -> Result<(), Error> {
            self.command(format!("led {:?}", led.action), |_| Ok(()))
        }
        fn buzzer(&mut self, buzzer: Buzzer) -> Result<(), Error> {
            self.command(format!("buzzer {buzzer:?}"), |_| Ok(()))
        }
    }

    const SIGNALS: (LedSignal, BuzzerSignal) = (
        LedSignal { reader: 0, led: 0, locked: LedColor::Red, normal: LedColor::Green },
        BuzzerSignal { reader: 0, beeps: 1, on_tenths: 3, off_tenths: 2 },
    );

    fn reader(pd: Pd) -> (Reader<Fake>, Rc<RefCell<Pd>>) {
        let pd = Rc::new(RefCell::new(pd));
        let reader = Reader::new(Fake(pd.clone()), Duration::from_millis(50), Some(SIGNALS.0), Some(SIGNALS.1));
        (reader, pd)
    }

    #[test]
    fn a_write_is_confirmed_by_the_report_the_next_poll_brings() {
        let (mut r, pd) = reader(Pd::reporting());
        r.refresh().unwrap();
        assert_eq!(r.read_output(0), Ok(None), "nothing reported yet, and the PD NAKs osdp_OSTAT");
        assert_eq!(r.read_output(1), Ok(None));
        assert_eq!(pd.borrow().count("ostat"), 1, "asked once per session");

        r.write_output(0, true).unwrap();
        assert_eq!(r.read_output(0), Ok(Some(true)));
        assert_eq!(pd.borrow().log[2..], ["out 0 On", "poll", "poll"], "the report, then nothing queued");
        assert_eq!(r.read_output(1), Ok(Some(false)), "the report lists every output");
        assert_eq!(r.read_output(7).unwrap_err().message, "the reader reports 2 outputs: it has no output 7");
    }

    #[test]
    fn a_write_the_reader_never_reports_is_not_confirmed() {
        let (mut r, _pd) = reader(Pd { reports: false, ..Pd::reporting() });
        r.write_output(0, true).unwrap();
        assert_eq!(r.read_output(0), Ok(None), "no report within the window, and osdp_OSTAT is NAKed");
        r.refresh().unwrap();
        assert_eq!(r.read_output(0), Ok(None), "still not reported: never assumed");
    }

    #[test]
    fn a_reader_that_answers_osdp_ostat_is_asked_after_each_write() {
        let (mut r, pd) = reader(Pd { reports: false, answers_ostat: true, stuck: Some(1), ..Pd::reporting() });
        r.refresh().unwrap();
        assert_eq!(r.read_output(0), Ok(Some(false)));
        r.write_output(0, true).unwrap();
        assert_eq!(r.read_output(0), Ok(Some(true)));
        r.write_output(1, true).unwrap();
        assert_eq!(r.read_output(1), Ok(Some(false)), "the stuck relay reads as it is");
        let before = pd.borrow().count("ostat");
        r.refresh().unwrap();
        assert_eq!(pd.borrow().count("ostat"), before + 1, "asked on every tick once it answered");
    }

    #[test]
    fn an_older_report_still_queued_does_not_pass_for_the_new_state() {
        let (mut r, pd) = reader(Pd::reporting());
        r.write_output(0, true).unwrap();
        // Released before the lock's report was polled: both reports are queued.
        r.write_output(0, false).unwrap();
        assert_eq!(pd.borrow().queued.len(), 2);
        assert_eq!(r.read_output(0), Ok(Some(false)));
    }

    #[test]
    fn a_new_session_forgets_what_the_reader_said() {
        let (mut r, pd) = reader(Pd::reporting());
        r.write_output(0, true).unwrap();
        assert_eq!(r.read_output(0), Ok(Some(true)));
        pd.borrow_mut().restart();
        r.refresh().unwrap();
        assert_eq!(r.read_output(0), Ok(None), "the reader may have restarted: the relay is not known");
        r.write_output(0, true).unwrap();
        assert_eq!(r.read_output(0), Ok(Some(true)));
    }

    #[test]
    fn door_contacts_come_from_the_reports() {
        let (mut r, pd) = reader(Pd::reporting());
        r.refresh().unwrap();
        assert_eq!(r.read_input(0), Ok(None));
        pd.borrow_mut().queued.push_back(Reply::InputStatus(vec![true, false, false, false]));
        r.refresh().unwrap();
        assert_eq!((r.read_input(0), r.read_input(1)), (Ok(Some(true)), Ok(Some(false))));
        assert_eq!(pd.borrow().count("istat"), 1, "asked once per session");
        assert!(!r.read_input(9).unwrap_err().offline);
    }

    #[test]
    fn a_wrong_key_makes_the_reader_unusable_in_words() {
        let (mut r, pd) = reader(Pd { wrong_key: true, ..Pd::reporting() });
        let err = r.refresh().unwrap_err();
        assert!(err.offline);
        assert_eq!(
            err.message,
            "secure channel with the reader at address 1 refused: the reader's cryptogram does not match — wrong SCBK?"
        );
        let err = r.write_output(0, true).unwrap_err();
        assert!(err.offline && err.message.contains("wrong SCBK?"), "{err:?}");
        assert!(pd.borrow().log.is_empty(), "nothing reaches the PD: {:?}", pd.borrow().log);
    }

    #[test]
    fn a_silent_reader_is_offline_and_a_nak_is_not() {
        let (mut r, pd) = reader(Pd { silent: true, ..Pd::reporting() });
        let err = r.write_output(0, true).unwrap_err();
        assert!(err.offline, "{err:?}");
        assert_eq!(err.message, "no reply from address 1 within 200 ms (3 tries) to osdp_POLL");
        assert!(r.refresh().unwrap_err().offline);
        pd.borrow_mut().silent = false;
        r.refresh().unwrap();
        let nak = link_error(Error::Nak { address: 1, command: command::OUT, nak: NakCode(9) });
        assert!(!nak.offline, "a NAK is about one command: {nak:?}");
    }

    #[test]
    fn the_led_shows_a_lockdown_and_the_buzzer_sounds_when_it_starts() {
        let (mut r, pd) = reader(Pd::reporting());
        let red = format!("led {:?}", LedAction::Permanent(LedPattern::steady(LedColor::Red)));
        let green = format!("led {:?}", LedAction::Permanent(LedPattern::steady(LedColor::Green)));
        r.indicate(false).unwrap();
        r.indicate(true).unwrap();
        r.indicate(true).unwrap();
        let beep = "buzzer Beep { reader: 0, on_tenths: 3, off_tenths: 2, count: 1 }".to_string();
        assert_eq!(pd.borrow().log, [green.clone(), red.clone(), beep]);
        r.indicate(false).unwrap();
        assert_eq!(pd.borrow().log.last(), Some(&green));
        // A new session re-shows the LED, without sounding the lockdown again.
        r.indicate(true).unwrap();
        pd.borrow_mut().restart();
        r.refresh().unwrap();
        let before = pd.borrow().log.len();
        r.indicate(true).unwrap();
        assert_eq!(pd.borrow().log[before..], [red]);
    }

    #[test]
    fn a_held_door_is_written_again_when_the_reader_restarts() {
        let config = Config::parse(
            r#"{"controllers": [{"name": "reader", "kind": "osdp", "port": "osdp", "address": 1,
                                 "scbk": "00112233445566778899aabbccddeeff"}],
                "doors": [{"name": "front", "exterior": true, "output": 0, "locked_when": true}]}"#,
        )
        .unwrap();
        let (r, pd) = reader(Pd::reporting());
        let mut doors = Doors::new(config, vec![Box::new(r)]);
        let mut desired = Desired::default();
        let Decision::Lock(targets) = decide(doors.config(), &mut desired, 1, false, Directive::Lock(Locking::Secure))
        else {
            panic!("not a lock")
        };
        assert_eq!(doors.apply(&desired, &targets, 0), [(0, DoorState::Locked)]);
        pd.borrow_mut().restart();
        doors.tick(&desired, 1000);
        assert_eq!(doors.status(&desired).doors[0].state, "locked");
        assert_eq!((pd.borrow().count("out 0 On"), pd.borrow().outputs[0]), (2, true));
    }
}

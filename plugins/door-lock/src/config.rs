//! The operator's configuration (`[plugins.grant.door-lock.config]`, handed
//! to the plugin as JSON): raw serde structs with `deny_unknown_fields`,
//! validated into [`Config`] with errors that name the field.

use std::collections::BTreeSet;

use serde::Deserialize;
use vigil_osdp::{LedColor, Scbk};
use vigil_plugin_sdk::backoff::{RawRetry, Retry};

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The door controllers, by index.
    pub controllers: Vec<Controller>,
    /// The doors, in the order the operator listed them.
    pub doors: Vec<Door>,
    /// Whether drills lock real doors.
    pub drill_locks: bool,
    /// Bounds connecting and every reply, per controller request.
    pub timeout_ms: u64,
    /// Retry backoff after a failure: first delay, doubling up to the maximum.
    pub retry: Retry,
}

/// A door controller and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Its name, for doors to refer to and for messages.
    pub name: String,
    /// How to reach it.
    pub link: Link,
}

/// The protocol a controller speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A Modbus TCP relay or I/O module.
    Modbus {
        /// `host:port`.
        address: String,
        /// The unit id.
        unit: u8,
    },
    /// An OSDP reader or I/O module on an RS-485 line, Vigil being its control panel.
    Osdp(Osdp),
}

/// An OSDP peripheral device (PD) and how Vigil talks to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Osdp {
    /// The serial port's name in the grant (`serial = { osdp = "/dev/ttyUSB0" }`).
    pub port: String,
    /// The PD's address on the line, 0-126.
    pub address: u8,
    /// The Secure Channel Base Key shared with the PD.
    pub scbk: Scbk,
    /// Whether the install-mode default key SCBK-D may be used.
    pub allow_install_mode: bool,
    /// The reader LED that shows a lockdown, if any.
    pub led: Option<LedSignal>,
    /// The buzzer that sounds when a lockdown starts, if any.
    pub buzzer: Option<BuzzerSignal>,
}

/// How a reader's LED shows whether its doors are held locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedSignal {
    /// The reader number on the PD (0: the PD itself).
    pub reader: u8,
    /// The LED number on that reader.
    pub led: u8,
    /// Its steady colour while any of the PD's doors is held locked.
    pub locked: LedColor,
    /// Its steady colour otherwise.
    pub normal: LedColor,
}

/// How a reader's buzzer marks the start of a lockdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuzzerSignal {
    /// The reader number on the PD.
    pub reader: u8,
    /// How many beeps, 1-255.
    pub beeps: u8,
    /// Each beep's length, in 100 ms units.
    pub on_tenths: u8,
    /// The pause between beeps, in 100 ms units.
    pub off_tenths: u8,
}

impl Link {
    /// What the protocol calls an output, for messages ("coil 3").
    pub fn output_noun(&self) -> &'static str {
        match self {
            Link::Modbus { .. } => "coil",
            Link::Osdp(_) => "output",
        }
    }

    /// What the protocol calls an input, for messages ("discrete input 2").
    pub fn input_noun(&self) -> &'static str {
        match self {
            Link::Modbus { .. } => "discrete input",
            Link::Osdp(_) => "input",
        }
    }

    /// Where the controller is, for the status (`modbus://10.0.0.5:502/1`, `osdp://rs485/1`).
    pub fn describe(&self) -> String {
        match self {
            Link::Modbus { address, unit } => format!("modbus://{address}/{unit}"),
            Link::Osdp(o) => format!("osdp://{}/{}", o.port, o.address),
        }
    }
}

/// A door the plugin can lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    /// Its name ("gym-east").
    pub name: String,
    /// Index into [`Config::controllers`].
    pub controller: usize,
    /// An exterior door (locked by Secure as well as Lockdown).
    pub exterior: bool,
    /// The output (Modbus coil, OSDP output) that drives the lock.
    pub output: u16,
    /// The output's value that means locked: `true` when energising locks
    /// (the relay drives the panel's lockdown input, or a fail-safe strike's
    /// entry side), `false` when de-energising locks (fail-secure wiring).
    pub locked_when: bool,
    /// The input (Modbus discrete input, OSDP input) of the door-position contact, if wired.
    pub contact: Option<u16>,
    /// The contact's value that means closed.
    pub closed_when: bool,
}

impl Config {
    /// Parses and validates the plugin's JSON config.
    pub fn parse(json: &str) -> Result<Config, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| format!("invalid door-lock config: {e}"))?;
        raw.validate()
    }

    /// The doors on controller `index`, with their indexes.
    pub fn doors_of(&self, controller: usize) -> impl Iterator<Item = (usize, &Door)> {
        self.doors.iter().enumerate().filter(move |(_, d)| d.controller == controller)
    }
}

/// The config as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    controllers: Vec<RawController>,
    #[serde(default)]
    doors: Vec<RawDoor>,
    #[serde(default)]
    drill_locks: bool,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    retry: RawRetry,
}

/// One controller as written: the fields of every kind, checked against its
/// kind by [`RawConfig::validate`] so that a field of the wrong kind is named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    name: String,
    #[serde(default)]
    kind: Kind,
    /// Modbus: `host:port`; OSDP: the PD address, a number.
    address: Option<RawAddress>,
    unit: Option<u8>,
    port: Option<String>,
    scbk: Option<String>,
    allow_install_mode: Option<bool>,
    led: Option<RawLed>,
    buzzer: Option<RawBuzzer>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Modbus,
    Osdp,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAddress {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLed {
    #[serde(default)]
    reader: u8,
    #[serde(default)]
    led: u8,
    #[serde(default = "default_locked_color")]
    locked: String,
    #[serde(default = "default_normal_color")]
    normal: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuzzer {
    #[serde(default)]
    reader: u8,
    #[serde(default = "default_beeps")]
    beeps: u8,
    #[serde(default = "default_beep_ms")]
    on_ms: u64,
    #[serde(default = "default_pause_ms")]
    off_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    name: String,
    controller: Option<String>,
    #[serde(default)]
    exterior: bool,
    coil: Option<u16>,
    output: Option<u16>,
    locked_when: bool,
    contact: Option<u16>,
    #[serde(default = "default_true")]
    closed_when: bool,
}

fn default_timeout_ms() -> u64 {
    500
}

fn default_unit() -> u8 {
    1
}

fn default_locked_color() -> String {
    "red".into()
}

fn default_normal_color() -> String {
    "green".into()
}

fn default_beeps() -> u8 {
    1
}

fn default_beep_ms() -> u64 {
    300
}

fn default_pause_ms() -> u64 {
    200
}

fn default_true() -> bool {
    true
}

impl RawConfig {
    /// Checks the config and resolves names, with errors that name the field.
    pub fn validate(self) -> Result<Config, String> {
        if !(10..=10_000).contains(&self.timeout_ms) {
            return Err(format!("timeout_ms is {}: give 10 to 10000 milliseconds", self.timeout_ms));
        }
        let retry = self.retry.validate("retry")?;
        let mut names = BTreeSet::new();
        let mut controllers = Vec::new();
        for (i, c) in self.controllers.into_iter().enumerate() {
            let field = format!("controllers[{i}]");
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(format!("{field}.name {:?} is empty or used twice", c.name));
            }
            let name = c.name.clone();
            controllers.push(Controller { name, link: c.link(&field)? });
        }
        let mut door_names = BTreeSet::new();
        let mut outputs = BTreeSet::new();
        let mut doors = Vec::new();
        for (i, d) in self.doors.into_iter().enumerate() {
            let field = format!("doors[{i}]");
            if d.name.is_empty() || !door_names.insert(d.name.clone()) {
                return Err(format!("{field}.name {:?} is empty or used twice", d.name));
            }
            let controller = match (&d.controller, controllers.len()) {
                (None, 1) => 0,
                (None, n) => {
                    return Err(format!(
                        "{field}.controller is missing: with {n} controllers, name the one door {:?} is on",
                        d.name
                    ));
                }
                (Some(name), _) => controllers
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| format!("{field}.controller {name:?} is not one of the controllers"))?,
            };
            let link = &controllers[controller].link;
            let (key, output) = match (link, d.coil, d.output) {
                (Link::Modbus { .. }, Some(coil), None) => ("coil", coil),
                (Link::Osdp(_), None, Some(output)) if output <= u16::from(u8::MAX) => ("output", output),
                (Link::Osdp(_), None, Some(output)) => {
                    return Err(format!("{field}.output {output} is out of range: OSDP outputs are 0-255"));
                }
                (Link::Modbus { .. }, _, _) => {
                    return Err(format!(
                        "{field}: give the Modbus coil that drives door {:?} as coil (not output)",
                        d.name
                    ));
                }
                (Link::Osdp(_), _, _) => {
                    return Err(format!(
                        "{field}: give the OSDP output that drives door {:?} as output (not coil)",
                        d.name
                    ));
                }
            };
            if let (Link::Osdp(_), Some(contact)) = (link, d.contact)
                && contact > u16::from(u8::MAX)
            {
                return Err(format!("{field}.contact {contact} is out of range: OSDP inputs are 0-255"));
            }
            if !outputs.insert((controller, output)) {
                return Err(format!(
                    "{field}.{key} {output} of controller {:?} drives another door already",
                    controllers[controller].name
                ));
            }
            doors.push(Door {
                name: d.name,
                controller,
                exterior: d.exterior,
                output,
                locked_when: d.locked_when,
                contact: d.contact,
                closed_when: d.closed_when,
            });
        }
        Ok(Config { controllers, doors, drill_locks: self.drill_locks, timeout_ms: self.timeout_ms, retry })
    }
}

impl RawController {
    /// The link this controller's fields describe; `field` names it in errors.
    fn link(self, field: &str) -> Result<Link, String> {
        let stray = |present: bool, key: &str, kind: &str| {
            if present { Err(format!("{field}.{key} is not a field of a {kind} controller")) } else { Ok(()) }
        };
        match self.kind {
            Kind::Modbus => {
                stray(self.port.is_some(), "port", "modbus")?;
                stray(self.scbk.is_some(), "scbk", "modbus")?;
                stray(self.allow_install_mode.is_some(), "allow_install_mode", "modbus")?;
                stray(self.led.is_some(), "led", "modbus")?;
                stray(self.buzzer.is_some(), "buzzer", "modbus")?;
                let address = match self.address {
                    Some(RawAddress::Text(a)) if is_host_port(&a) => a,
                    Some(RawAddress::Text(a)) => return Err(format!("{field}.address {a:?} is not host:port")),
                    Some(RawAddress::Number(n)) => return Err(format!("{field}.address {n} is not host:port")),
                    None => return Err(format!("{field}.address is missing: give the controller's host:port")),
                };
                Ok(Link::Modbus { address, unit: self.unit.unwrap_or_else(default_unit) })
            }
            Kind::Osdp => {
                stray(self.unit.is_some(), "unit", "osdp")?;
                let port = self
                    .port
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| format!("{field}.port is missing: give the serial port's name in the grant"))?;
                let address = match self.address {
                    Some(RawAddress::Number(n)) if n <= 126 => n as u8,
                    Some(RawAddress::Number(n)) => {
                        return Err(format!("{field}.address {n} is out of range: an OSDP address is 0-126"));
                    }
                    Some(RawAddress::Text(a)) => {
                        return Err(format!("{field}.address {a:?} is not an OSDP address (a number, 0-126)"));
                    }
                    None => return Err(format!("{field}.address is missing: give the reader's OSDP address (0-126)")),
                };
                let allow_install_mode = self.allow_install_mode.unwrap_or(false);
                let scbk = match &self.scbk {
                    Some(hex) => Scbk::from_hex(hex)
                        .ok_or_else(|| format!("{field}.scbk is not 32 hexadecimal digits (a 16-byte key)"))?,
                    None if allow_install_mode => Scbk::DEFAULT,
                    None => {
                        return Err(format!(
                            "{field}.scbk is missing: give the reader's Secure Channel Base Key (32 hex digits)"
                        ));
                    }
                };
                if scbk.is_default() && !allow_install_mode {
                    return Err(format!(
                        "{field}.scbk is the install-mode default key SCBK-D, which anyone can use: give the reader's \
                         own key, or set allow_install_mode = true while commissioning"
                    ));
                }
                let led = self.led.map(|l| l.validate(&format!("{field}.led"))).transpose()?;
                let buzzer = self.buzzer.map(|b| b.validate(&format!("{field}.buzzer"))).transpose()?;
                Ok(Link::Osdp(Osdp { port, address, scbk, allow_install_mode, led, buzzer }))
            }
        }
    }
}

impl RawLed {
    fn validate(self, field: &str) -> Result<LedSignal, String> {
        Ok(LedSignal {
            reader: self.reader,
            led: self.led,
            locked: color(&self.locked).ok_or_else(|| bad_color(field, "locked", &self.locked))?,
            normal: color(&self.normal).ok_or_else(|| bad_color(field, "normal", &self.normal))?,
        })
    }
}

impl RawBuzzer {
    fn validate(self, field: &str) -> Result<BuzzerSignal, String> {
        if self.beeps == 0 {
            return Err(format!("{field}.beeps is 0: give 1 to 255 beeps"));
        }
        let tenths = |key: &str, ms: u64| {
            u8::try_from(ms / 100)
                .ok()
                .filter(|&t| t > 0)
                .ok_or_else(|| format!("{field}.{key} is {ms}: give 100 to 25500 milliseconds (100 ms steps)"))
        };
        Ok(BuzzerSignal {
            reader: self.reader,
            beeps: self.beeps,
            on_tenths: tenths("on_ms", self.on_ms)?,
            off_tenths: tenths("off_ms", self.off_ms)?,
        })
    }
}

/// An LED colour by its name in the config.
fn color(name: &str) -> Option<LedColor> {
    Some(match name {
        "off" | "black" => LedColor::Black,
        "red" => LedColor::Red,
        "green" => LedColor::Green,
        "amber" => LedColor::Amber,
        "blue" => LedColor::Blue,
        "magenta" => LedColor::Magenta,
        "cyan" => LedColor::Cyan,
        "white" => LedColor::White,
        _ => return None,
    })
}

fn bad_color(field: &str, key: &str, name: &str) -> String {
    format!("{field}.{key} {name:?} is not a colour: off, red, green, amber, blue, magenta, cyan or white")
}

fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "controllers": [{"name": "main", "address": "10.0.0.5:502", "unit": 3}, {"name": "gym", "address": "gym-io.local:502"}],
        "doors": [
            {"name": "front", "controller": "main", "exterior": true, "coil": 0, "locked_when": true, "contact": 0},
            {"name": "office", "controller": "main", "coil": 1, "locked_when": false},
            {"name": "gym-east", "controller": "gym", "exterior": true, "coil": 3, "locked_when": true, "contact": 5, "closed_when": false}
        ],
        "drill_locks": true,
        "timeout_ms": 300,
        "retry": {"initial_ms": 500, "max_ms": 8000}
    }"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.controllers[0].link, Link::Modbus { address: "10.0.0.5:502".into(), unit: 3 });
        assert_eq!(c.controllers[1].link, Link::Modbus { address: "gym-io.local:502".into(), unit: 1 });
        assert_eq!(c.doors[2].controller, 1);
        assert_eq!((c.doors[1].exterior, c.doors[1].locked_when, c.doors[1].contact), (false, false, None));
        assert!(!c.doors[2].closed_when && c.doors[0].closed_when);
        assert!(c.drill_locks);
        assert_eq!((c.timeout_ms, c.retry), (300, Retry { initial_ms: 500, max_ms: 8000 }));
    }

    const OSDP: &str = r#"{
        "controllers": [
            {"name": "main", "address": "10.0.0.5:502"},
            {"name": "lobby", "kind": "osdp", "port": "rs485", "address": 3, "scbk": "00112233445566778899AABBCCDDEEFF",
             "led": {"locked": "amber"}, "buzzer": {"beeps": 3, "on_ms": 200}}
        ],
        "doors": [
            {"name": "front", "controller": "lobby", "exterior": true, "output": 0, "locked_when": true, "contact": 1},
            {"name": "office", "controller": "main", "coil": 0, "locked_when": false}
        ]
    }"#;

    #[test]
    fn an_osdp_reader_parses_with_its_signals() {
        let c = Config::parse(OSDP).unwrap();
        let Link::Osdp(reader) = &c.controllers[1].link else { panic!("not OSDP: {:?}", c.controllers[1]) };
        assert_eq!((reader.port.as_str(), reader.address, reader.allow_install_mode), ("rs485", 3, false));
        assert_eq!(reader.scbk, Scbk::from_hex("00112233445566778899aabbccddeeff").unwrap());
        assert_eq!(reader.led, Some(LedSignal { reader: 0, led: 0, locked: LedColor::Amber, normal: LedColor::Green }));
        assert_eq!(reader.buzzer, Some(BuzzerSignal { reader: 0, beeps: 3, on_tenths: 2, off_tenths: 2 }));
        assert_eq!((c.doors[0].output, c.doors[0].contact), (0, Some(1)));
        assert_eq!(c.controllers[1].link.describe(), "osdp://rs485/3");
        assert_eq!(c.controllers[1].link.output_noun(), "output");
        assert!(!format!("{c:?}").contains("00112233"), "the key never shows in Debug");
    }

    #[test]
    fn osdp_errors_name_the_field() {
        let err = |controller: &str| {
            Config::parse(&format!(r#"{{"controllers": [{{"name": "r", "kind": "osdp", {controller}}}]}}"#))
                .unwrap_err()
        };
        let key = r#""scbk": "00112233445566778899aabbccddeeff""#;
        assert!(err(&format!(r#""address": 1, {key}"#)).contains("controllers[0].port is missing"));
        assert!(err(&format!(r#""port": "p", "address": 127, {key}"#)).contains("controllers[0].address 127"));
        assert!(err(&format!(r#""port": "p", "address": "h:1", {key}"#)).contains("not an OSDP address"));
        assert!(err(r#""port": "p", "address": 1"#).contains("controllers[0].scbk is missing"));
        assert!(err(r#""port": "p", "address": 1, "scbk": "0011""#).contains("32 hexadecimal digits"));
        assert!(err(&format!(r#""port": "p", "address": 1, {key}, "unit": 2"#)).contains("controllers[0].unit"));
        assert!(
            err(&format!(r#""port": "p", "address": 1, {key}, "led": {{"locked": "pink"}}"#))
                .contains("controllers[0].led.locked \"pink\"")
        );
        assert!(
            err(&format!(r#""port": "p", "address": 1, {key}, "buzzer": {{"on_ms": 50}}"#))
                .contains("controllers[0].buzzer.on_ms")
        );
        let modbus = Config::parse(r#"{"controllers": [{"name": "m", "address": "h:1", "scbk": "00"}]}"#).unwrap_err();
        assert!(modbus.contains("controllers[0].scbk is not a field of a modbus controller"), "{modbus}");
        let reader = format!(r#"{{"name": "r", "kind": "osdp", "port": "p", "address": 1, {key}}}"#);
        let door = |door: &str| {
            Config::parse(&format!(
                r#"{{"controllers": [{reader}], "doors": [{{"name": "d", "locked_when": true, {door}}}]}}"#
            ))
            .unwrap_err()
        };
        assert!(door(r#""coil": 0"#).contains("doors[0]: give the OSDP output"));
        assert!(door(r#""output": 256"#).contains("doors[0].output 256"));
        assert!(door(r#""output": 0, "contact": 300"#).contains("doors[0].contact 300"));
    }

    #[test]
    fn install_mode_is_refused_unless_allowed() {
        let reader = |fields: &str| {
            Config::parse(&format!(
                r#"{{"controllers": [{{"name": "r", "kind": "osdp", "port": "p", "address": 1, {fields}}}]}}"#
            ))
        };
        let scbk_d = r#""scbk": "303132333435363738393a3b3c3d3e3f""#;
        assert!(reader(scbk_d).unwrap_err().contains("controllers[0].scbk is the install-mode default key SCBK-D"));
        let allowed = reader(&format!(r#"{scbk_d}, "allow_install_mode": true"#)).unwrap();
        let Link::Osdp(o) = &allowed.controllers[0].link else { panic!() };
        assert!(o.scbk.is_default() && o.allow_install_mode);
        let Link::Osdp(o) = &reader(r#""allow_install_mode": true"#).unwrap().controllers[0].link else { panic!() };
        assert!(o.scbk.is_default(), "install mode without a key is SCBK-D");
    }

    #[test]
    fn an_empty_config_has_safe_defaults() {
        let c = Config::parse("").unwrap();
        assert!(c.doors.is_empty() && !c.drill_locks);
        assert_eq!((c.timeout_ms, c.retry.initial_ms, c.retry.max_ms), (500, 1000, 30000));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |json: &str| Config::parse(json).unwrap_err();
        assert!(err(r#"{"drill_lock": true}"#).contains("unknown field `drill_lock`"));
        assert!(err(r#"{"controllers": [{"name": "a", "address": "10.0.0.5"}]}"#).contains("controllers[0].address"));
        assert!(
            err(r#"{"controllers": [{"name": "a", "address": "h:1"}, {"name": "a", "address": "h:2"}]}"#)
                .contains("controllers[1].name")
        );
        let two = r#""controllers": [{"name": "a", "address": "h:1"}, {"name": "b", "address": "h:2"}]"#;
        assert!(
            err(&format!(r#"{{{two}, "doors": [{{"name": "d", "coil": 1, "locked_when": true}}]}}"#))
                .contains("doors[0].controller is missing")
        );
        assert!(
            err(&format!(
                r#"{{{two}, "doors": [{{"name": "d", "controller": "c", "coil": 1, "locked_when": true}}]}}"#
            ))
            .contains("doors[0].controller \"c\"")
        );
        let one = r#""controllers": [{"name": "a", "address": "h:1"}]"#;
        assert!(err(&format!(
            r#"{{{one}, "doors": [{{"name": "d", "coil": 1, "locked_when": true}}, {{"name": "e", "coil": 1, "locked_when": true}}]}}"#
        ))
        .contains("doors[1].coil 1"));
        assert!(err(&format!(r#"{{{one}, "doors": [{{"name": "d", "coil": 1}}]}}"#)).contains("locked_when"));
        assert!(err(r#"{"timeout_ms": 0}"#).contains("timeout_ms"));
        assert!(err(r#"{"retry": {"initial_ms": 10, "max_ms": 5}}"#).contains("retry"));
    }
}

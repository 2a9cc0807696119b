//! The operator's configuration (`[plugins.grant.door-lock.config]`, handed
//! to the plugin as JSON): raw serde structs with `deny_unknown_fields`,
//! validated into [`Config`] with errors that name the field.

use std::collections::BTreeSet;

use serde::Deserialize;

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

/// How long to wait before trying a failed controller or door again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The delay after the first failure.
    pub initial_ms: u64,
    /// The longest delay.
    pub max_ms: u64,
}

/// A door controller and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Its name, for doors to refer to and for messages.
    pub name: String,
    /// How to reach it.
    pub link: Link,
}

/// The protocol a controller speaks (an OSDP backend will add a variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A Modbus TCP relay or I/O module.
    Modbus {
        /// `host:port`.
        address: String,
        /// The unit id.
        unit: u8,
    },
}

impl Link {
    /// What the protocol calls an output, for messages ("coil 3").
    pub fn output_noun(&self) -> &'static str {
        match self {
            Link::Modbus { .. } => "coil",
        }
    }

    /// What the protocol calls an input, for messages ("discrete input 2").
    pub fn input_noun(&self) -> &'static str {
        match self {
            Link::Modbus { .. } => "discrete input",
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
    /// The output (Modbus coil) that drives the lock.
    pub output: u16,
    /// The output's value that means locked: `true` when energising locks
    /// (the relay drives the panel's lockdown input, or a fail-safe strike's
    /// entry side), `false` when de-energising locks (fail-secure wiring).
    pub locked_when: bool,
    /// The input (Modbus discrete input) of the door-position contact, if wired.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    name: String,
    #[serde(default)]
    kind: Kind,
    address: String,
    #[serde(default = "default_unit")]
    unit: u8,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Modbus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    name: String,
    controller: Option<String>,
    #[serde(default)]
    exterior: bool,
    coil: u16,
    locked_when: bool,
    contact: Option<u16>,
    #[serde(default = "default_true")]
    closed_when: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRetry {
    initial_ms: u64,
    max_ms: u64,
}

impl Default for RawRetry {
    fn default() -> RawRetry {
        RawRetry { initial_ms: 1_000, max_ms: 30_000 }
    }
}

fn default_timeout_ms() -> u64 {
    500
}

fn default_unit() -> u8 {
    1
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
        if self.retry.initial_ms == 0 || self.retry.max_ms < self.retry.initial_ms {
            return Err(format!(
                "retry: initial_ms ({}) must be at least 1 and max_ms ({}) at least initial_ms",
                self.retry.initial_ms, self.retry.max_ms
            ));
        }
        let mut names = BTreeSet::new();
        let mut controllers = Vec::new();
        for (i, c) in self.controllers.into_iter().enumerate() {
            let field = format!("controllers[{i}]");
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(format!("{field}.name {:?} is empty or used twice", c.name));
            }
            let link = match c.kind {
                Kind::Modbus => {
                    if !is_host_port(&c.address) {
                        return Err(format!("{field}.address {:?} is not host:port", c.address));
                    }
                    Link::Modbus { address: c.address, unit: c.unit }
                }
            };
            controllers.push(Controller { name: c.name, link });
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
            if !outputs.insert((controller, d.coil)) {
                return Err(format!(
                    "{field}.coil {} of controller {:?} drives another door already",
                    d.coil, controllers[controller].name
                ));
            }
            doors.push(Door {
                name: d.name,
                controller,
                exterior: d.exterior,
                output: d.coil,
                locked_when: d.locked_when,
                contact: d.contact,
                closed_when: d.closed_when,
            });
        }
        Ok(Config {
            controllers,
            doors,
            drill_locks: self.drill_locks,
            timeout_ms: self.timeout_ms,
            retry: Retry { initial_ms: self.retry.initial_ms, max_ms: self.retry.max_ms },
        })
    }
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

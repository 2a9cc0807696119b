//! The operator's configuration (`[plugins.grant.shield-inventory.config]`,
//! handed to the plugin as JSON): raw serde structs with
//! `deny_unknown_fields`, validated into [`Config`] with errors that name the
//! field.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use vigil_plugin_sdk::backoff::{RawRetry, Retry};

use crate::graph::Graph;

/// The most discrete inputs one Modbus read may fetch (the spec's limit for function 2).
const MAX_SPAN: u32 = 2000;
/// The most slots a cabinet may have.
const MAX_SLOTS: usize = 64;
/// The largest edge cost: far beyond any school, small enough that sums never overflow.
const MAX_COST: u64 = 1_000_000;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cabinets, in the order the operator listed them (ties in the search keep this order).
    pub cabinets: Vec<Cabinet>,
    /// The distinct controllers (`host:port` and unit) the cabinets are on.
    pub links: Vec<Link>,
    /// The site's adjacency graph.
    pub graph: Graph,
    /// What edge costs measure, for the answer's words.
    pub cost_unit: CostUnit,
    /// Bounds connecting and every reply, per controller request.
    pub timeout_ms: u64,
    /// Retry backoff for a controller that does not answer.
    pub retry: Retry,
}

/// Where something is: a camera's or a cabinet's building, floor and zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The building ("main").
    pub building: String,
    /// The floor ("1").
    pub floor: String,
    /// The zone ("gym").
    pub zone: String,
}

impl Place {
    /// A place from its parts.
    pub fn new(building: &str, floor: &str, zone: &str) -> Place {
        Place { building: building.to_string(), floor: floor.to_string(), zone: zone.to_string() }
    }

    /// Parses `building/floor/zone`; the zone is everything after the second `/`.
    pub fn parse(text: &str) -> Option<Place> {
        let mut parts = text.splitn(3, '/');
        let (building, floor, zone) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = |s: &str| !s.trim().is_empty() && s.trim() == s;
        (ok(building) && ok(floor) && ok(zone)).then(|| Place::new(building, floor, zone))
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.building, self.floor, self.zone)
    }
}

/// What graph costs measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum CostUnit {
    /// Metres walked.
    #[default]
    #[serde(rename = "m")]
    Metres,
    /// Seconds to get there.
    #[serde(rename = "s")]
    Seconds,
}

impl CostUnit {
    /// The unit's symbol in answers ("m", "s").
    pub fn symbol(self) -> &'static str {
        match self {
            CostUnit::Metres => "m",
            CostUnit::Seconds => "s",
        }
    }
}

/// A cabinet controller: a Modbus TCP I/O module and the unit id to address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// `host:port`.
    pub address: String,
    /// The Modbus unit id.
    pub unit: u8,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "modbus://{}/{}", self.address, self.unit)
    }
}

/// A shield cabinet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cabinet {
    /// Its name ("gym-east"), unique.
    pub name: String,
    /// Where it is.
    pub location: Place,
    /// Index into [`Config::links`].
    pub link: usize,
    /// The discrete input of each slot's presence sensor, slot 1 first.
    pub slots: Vec<u16>,
    /// The discrete input of the door-closed contact.
    pub door: u16,
    /// The discrete input of the tamper switch, if wired.
    pub tamper: Option<u16>,
    /// The presence input's value that means a shield is in its slot.
    pub present_when: bool,
    /// The door contact's value that means closed.
    pub closed_when: bool,
    /// The tamper input's value that means tampered.
    pub tampered_when: bool,
}

impl Cabinet {
    /// The first input and how many to read to cover every input of the cabinet in one request.
    pub fn span(&self) -> (u16, u16) {
        let inputs = || self.slots.iter().copied().chain([self.door]).chain(self.tamper);
        let first = inputs().min().unwrap_or(self.door);
        let last = inputs().max().unwrap_or(self.door);
        // Validation keeps the span at most MAX_SPAN, so this fits.
        (first, last - first + 1)
    }
}

impl Config {
    /// Parses and validates the plugin's JSON config.
    pub fn parse(json: &str) -> Result<Config, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| format!("invalid shield-inventory config: {e}"))?;
        raw.validate()
    }
}

/// The config as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    cabinets: Vec<RawCabinet>,
    #[serde(default)]
    graph: Vec<RawEdge>,
    #[serde(default)]
    cost_unit: CostUnit,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    retry: RawRetry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCabinet {
    name: String,
    location: RawPlace,
    address: String,
    #[serde(default = "default_unit")]
    unit: u8,
    slots: Vec<u16>,
    door: u16,
    tamper: Option<u16>,
    #[serde(default = "default_true")]
    present_when: bool,
    #[serde(default = "default_true")]
    closed_when: bool,
    #[serde(default = "default_true")]
    tampered_when: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlace {
    building: String,
    floor: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    from: String,
    to: String,
    cost: u64,
}

fn default_timeout_ms() -> u64 {
    300
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
        let retry = self.retry.validate("retry")?;
        let mut edges = Vec::new();
        for (i, e) in self.graph.into_iter().enumerate() {
            let place = |end: &str, text: &str| {
                Place::parse(text).ok_or_else(|| {
                    format!("graph[{i}].{end} {text:?} is not building/floor/zone (three non-empty parts)")
                })
            };
            let (from, to) = (place("from", &e.from)?, place("to", &e.to)?);
            if from == to {
                return Err(format!("graph[{i}] joins {from} to itself"));
            }
            if e.cost > MAX_COST {
                return Err(format!("graph[{i}].cost is {}: give 0 to {MAX_COST}", e.cost));
            }
            edges.push((from, to, e.cost));
        }
        let graph = Graph::new(&edges);

        let mut names = BTreeSet::new();
        let mut links: Vec<Link> = Vec::new();
        let mut used = BTreeSet::new();
        let mut cabinets = Vec::new();
        for (i, c) in self.cabinets.into_iter().enumerate() {
            let field = format!("cabinets[{i}]");
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(format!("{field}.name {:?} is empty or used twice", c.name));
            }
            let location = Place { building: c.location.building, floor: c.location.floor, zone: c.location.zone };
            if Place::parse(&location.to_string()).as_ref() != Some(&location) {
                return Err(format!(
                    "{field}.location {location} needs a non-empty building, floor and zone, without '/' in building \
                     or floor"
                ));
            }
            if !graph.is_empty() && !graph.contains(&location) {
                return Err(format!(
                    "{field}.location {location} is in no graph edge: connect it to the rest of the site"
                ));
            }
            if !is_host_port(&c.address) {
                return Err(format!("{field}.address {:?} is not host:port", c.address));
            }
            let link = Link { address: c.address, unit: c.unit };
            let link = match links.iter().position(|l| *l == link) {
                Some(n) => n,
                None => {
                    links.push(link);
                    links.len() - 1
                }
            };
            if c.slots.is_empty() || c.slots.len() > MAX_SLOTS {
                return Err(format!("{field}.slots lists {} inputs: give 1 to {MAX_SLOTS}", c.slots.len()));
            }
            let inputs =
                c.slots.iter().map(|&n| ("slots", n)).chain([("door", c.door)]).chain(c.tamper.map(|n| ("tamper", n)));
            for (what, n) in inputs {
                if !used.insert((link, n)) {
                    return Err(format!("{field}.{what}: discrete input {n} of {} is used twice", links[link]));
                }
            }
            let cabinet = Cabinet {
                name: c.name,
                location,
                link,
                slots: c.slots,
                door: c.door,
                tamper: c.tamper,
                present_when: c.present_when,
                closed_when: c.closed_when,
                tampered_when: c.tampered_when,
            };
            let inputs = cabinet.slots.iter().copied().chain([cabinet.door]).chain(cabinet.tamper);
            let (lo, hi) = inputs.fold((u16::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
            if u32::from(hi - lo) + 1 > MAX_SPAN {
                return Err(format!(
                    "{field}: inputs {lo} to {hi} span more than {MAX_SPAN}, the most one read fetches; wire the \
                     cabinet's inputs closer together"
                ));
            }
            cabinets.push(cabinet);
        }
        Ok(Config { cabinets, links, graph, cost_unit: self.cost_unit, timeout_ms: self.timeout_ms, retry })
    }
}

fn is_host_port(address: &str) -> bool {
    address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// The worked example of docs/plugins/shield-inventory.md, as JSON.
#[cfg(test)]
pub(crate) const EXAMPLE: &str = r#"{
    "cost_unit": "m",
    "timeout_ms": 300,
    "retry": {"initial_ms": 1000, "max_ms": 30000},
    "graph": [
        {"from": "main/1/entrance", "to": "main/1/office", "cost": 15},
        {"from": "main/1/entrance", "to": "main/1/north-hall", "cost": 40},
        {"from": "main/1/north-hall", "to": "main/1/gym", "cost": 30},
        {"from": "main/1/north-hall", "to": "main/1/stairs-north", "cost": 10},
        {"from": "main/1/stairs-north", "to": "main/2/stairs-north", "cost": 25},
        {"from": "main/2/stairs-north", "to": "main/2/science", "cost": 20},
        {"from": "main/2/science", "to": "main/2/library", "cost": 35}
    ],
    "cabinets": [
        {"name": "office", "location": {"building": "main", "floor": "1", "zone": "office"},
         "address": "10.0.0.7:502", "slots": [0, 1], "door": 2, "tamper": 3},
        {"name": "gym-east", "location": {"building": "main", "floor": "1", "zone": "gym"},
         "address": "10.0.0.7:502", "slots": [8, 9, 10], "door": 11},
        {"name": "library", "location": {"building": "main", "floor": "2", "zone": "library"},
         "address": "10.0.0.8:502", "unit": 2, "slots": [0, 1], "door": 4, "closed_when": false}
    ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(
            c.links,
            [Link { address: "10.0.0.7:502".into(), unit: 1 }, Link { address: "10.0.0.8:502".into(), unit: 2 }]
        );
        assert_eq!(c.cabinets.iter().map(|c| c.link).collect::<Vec<_>>(), [0, 0, 1]);
        assert_eq!(c.cabinets[0].tamper, Some(3));
        assert_eq!(c.cabinets[1].location, Place::new("main", "1", "gym"));
        assert!(!c.cabinets[2].closed_when && c.cabinets[2].present_when && c.cabinets[2].tampered_when);
        assert_eq!(c.cabinets[0].span(), (0, 4));
        assert_eq!(c.cabinets[1].span(), (8, 4));
        assert_eq!(c.cabinets[2].span(), (0, 5));
        assert_eq!(
            (c.cost_unit, c.timeout_ms, c.retry),
            (CostUnit::Metres, 300, Retry { initial_ms: 1000, max_ms: 30000 })
        );
        assert!(c.graph.contains(&Place::new("main", "2", "library")));
    }

    #[test]
    fn an_empty_config_has_safe_defaults() {
        let c = Config::parse("").unwrap();
        assert!(c.cabinets.is_empty() && c.links.is_empty() && c.graph.is_empty());
        assert_eq!(
            (c.cost_unit, c.timeout_ms, c.retry.initial_ms, c.retry.max_ms),
            (CostUnit::Metres, 300, 1000, 30000)
        );
    }

    #[test]
    fn places_parse_as_three_parts() {
        assert_eq!(Place::parse("main/1/north-hall"), Some(Place::new("main", "1", "north-hall")));
        assert_eq!(Place::parse("main/1/a/b"), Some(Place::new("main", "1", "a/b")));
        for bad in ["main/1", "main//gym", "/1/gym", "main/1/", "main/1/ gym", ""] {
            assert_eq!(Place::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Place::new("A", "2", "lab").to_string(), "A/2/lab");
    }

    fn cabinet(fields: &str) -> String {
        format!(
            r#"{{"cabinets": [{{"name": "c", "location": {{"building": "A", "floor": "1", "zone": "z"}}, "address": "h:502", {fields}}}]}}"#
        )
    }

    #[test]
    fn errors_name_the_field() {
        let err = |json: &str| Config::parse(json).unwrap_err();
        assert!(err(r#"{"cabinet": []}"#).contains("unknown field `cabinet`"));
        assert!(err(r#"{"cost_unit": "ft"}"#).contains("unknown variant `ft`"));
        assert!(err(r#"{"timeout_ms": 5}"#).contains("timeout_ms is 5"));
        assert!(err(r#"{"retry": {"initial_ms": 10, "max_ms": 5}}"#).contains("retry"));
        assert!(err(r#"{"graph": [{"from": "A/1", "to": "A/1/b", "cost": 1}]}"#).contains("graph[0].from \"A/1\""));
        assert!(err(r#"{"graph": [{"from": "A/1/a", "to": "A/1/a", "cost": 1}]}"#).contains("graph[0] joins A/1/a"));
        assert!(err(r#"{"graph": [{"from": "A/1/a", "to": "A/1/b", "cost": 2000000}]}"#).contains("graph[0].cost"));
        assert!(err(r#"{"graph": [{"from": "A/1/a", "to": "A/1/b", "cost": -1}]}"#).contains("invalid"));
        assert!(err(&cabinet(r#""slots": [], "door": 1"#)).contains("cabinets[0].slots lists 0 inputs"));
        assert!(err(&cabinet(r#""slots": [1], "door": 1"#)).contains("cabinets[0].door: discrete input 1"));
        assert!(err(&cabinet(r#""slots": [0, 1], "door": 2, "tamper": 0"#)).contains("cabinets[0].tamper"));
        assert!(err(&cabinet(r#""slots": [0], "door": 2500"#)).contains("cabinets[0]: inputs 0 to 2500"));
        assert!(err(&cabinet(r#""slots": [0]"#)).contains("missing field `door`"));
        let no_port = cabinet(r#""slots": [0], "door": 1"#).replace("h:502", "10.0.0.7");
        assert!(err(&no_port).contains("cabinets[0].address \"10.0.0.7\""));
        let with_graph = cabinet(r#""slots": [0], "door": 1"#).replacen(
            '{',
            r#"{"graph": [{"from": "A/1/x", "to": "A/1/y", "cost": 3}], "#,
            1,
        );
        assert!(err(&with_graph).contains("cabinets[0].location A/1/z is in no graph edge"));
        let slash = cabinet(r#""slots": [0], "door": 1"#).replace(r#""floor": "1""#, r#""floor": "1/2""#);
        assert!(err(&slash).contains("cabinets[0].location"));
        let two = r#"{"cabinets": [
            {"name": "c", "location": {"building": "A", "floor": "1", "zone": "z"}, "address": "h:502", "slots": [0], "door": 1},
            {"name": "c", "location": {"building": "A", "floor": "1", "zone": "z"}, "address": "h:502", "slots": [2], "door": 3}]}"#;
        assert!(err(two).contains("cabinets[1].name \"c\""));
        let shared = two.replacen(r#""name": "c""#, r#""name": "d""#, 1).replace(r#""slots": [2]"#, r#""slots": [0]"#);
        assert!(err(&shared).contains("cabinets[1].slots: discrete input 0 of modbus://h:502/1 is used twice"));
    }

    #[test]
    fn cabinets_on_one_controller_share_a_link_unless_the_unit_differs() {
        let json = r#"{"cabinets": [
            {"name": "a", "location": {"building": "A", "floor": "1", "zone": "z"}, "address": "h:502", "slots": [0], "door": 1},
            {"name": "b", "location": {"building": "A", "floor": "1", "zone": "z"}, "address": "h:502", "slots": [2], "door": 3},
            {"name": "c", "location": {"building": "A", "floor": "1", "zone": "z"}, "address": "h:502", "unit": 4, "slots": [0], "door": 1}]}"#;
        let c = Config::parse(json).unwrap();
        assert_eq!(c.links.len(), 2);
        assert_eq!(c.cabinets.iter().map(|c| c.link).collect::<Vec<_>>(), [0, 0, 1]);
    }
}

//! The nearest cabinet that still holds a shield, from an incident's location,
//! and the words of the answer. Pure: the caller passes each cabinet's
//! [`Availability`].
//!
//! Rules kept here:
//! - Costs are the cheapest path over the site graph (Dijkstra); a cabinet in
//!   the incident's own zone costs 0 even if that zone is on no edge.
//! - Offline, tampered, empty and not-yet-read cabinets are never offered; the
//!   answer names the ones nearer than (or as near as) the one it offers, with
//!   why they were passed over.
//! - Ties in cost go to the cabinet with more shields in place, then to the
//!   one listed first in the config.
//! - A cabinet with no path from the incident is never offered; when no
//!   cabinet can be offered, the answer fails and lists every cabinet's state,
//!   stocked but unreachable ones included, so officers still learn where
//!   shields are.
//! - A drill answers the same way, prefixed `DRILL:`.

use std::cmp::Reverse;

use crate::config::{Config, Place};
use crate::inventory::{Availability, Skip};

/// A cabinet that can be offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stocked {
    /// Index into the config's cabinets.
    pub cabinet: usize,
    /// Its cost from the incident; `None` when no path leads there.
    pub cost: Option<u64>,
    /// Shields in place.
    pub in_place: usize,
    /// Its slots.
    pub slots: usize,
    /// Its door reads open.
    pub door_open: bool,
}

/// A cabinet passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// Index into the config's cabinets.
    pub cabinet: usize,
    /// Its cost from the incident; `None` when no path leads there.
    pub cost: Option<u64>,
    /// Why it was passed over.
    pub why: Skip,
}

/// Every cabinet, ranked from one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Where the incident is.
    pub from: Place,
    /// Whether `from` is in the site graph.
    pub known: bool,
    /// Reachable cabinets holding shields, best first.
    pub stocked: Vec<Stocked>,
    /// Cabinets holding shields with no path from the incident, in config order.
    pub unreachable: Vec<Stocked>,
    /// Cabinets that cannot be offered, nearest first (unreachable ones last).
    pub passed: Vec<Passed>,
}

/// Ranks every cabinet of `config` from `from`; `availability` has one entry per cabinet.
pub fn search(config: &Config, from: &Place, availability: &[Availability]) -> Search {
    let distances = config.graph.distances(from);
    let mut found = Search {
        from: from.clone(),
        known: distances.known(),
        stocked: Vec::new(),
        unreachable: Vec::new(),
        passed: Vec::new(),
    };
    for (i, (cabinet, available)) in config.cabinets.iter().zip(availability).enumerate() {
        let cost = distances.to(&cabinet.location);
        match available {
            Availability::Stocked { in_place, slots, door_open } => {
                let s = Stocked { cabinet: i, cost, in_place: *in_place, slots: *slots, door_open: *door_open };
                if cost.is_some() { found.stocked.push(s) } else { found.unreachable.push(s) }
            }
            Availability::Skipped(why) => found.passed.push(Passed { cabinet: i, cost, why: why.clone() }),
        }
    }
    found.stocked.sort_by_key(|s| (s.cost, Reverse(s.in_place), s.cabinet));
    found.passed.sort_by_key(|p| (p.cost.is_none(), p.cost, p.cabinet));
    found
}

/// The answer: `Ok(words)` naming the nearest stocked cabinet (and the next),
/// `Err(reason)` when none can be offered.
pub fn answer(config: &Config, search: &Search, drill: bool) -> Result<String, String> {
    let unit = config.cost_unit.symbol();
    let name = |i: usize| &config.cabinets[i].name;
    let place = |i: usize| &config.cabinets[i].location;
    let contents = |s: &Stocked| {
        let door = if s.door_open { ", door open" } else { "" };
        format!("{} of {} in place{door}", s.in_place, s.slots)
    };
    let passed = |p: &Passed| match p.cost {
        Some(cost) => format!("'{}' ({}, ~{cost} {unit}): {}", name(p.cabinet), place(p.cabinet), p.why),
        None => format!("'{}' ({}, no path): {}", name(p.cabinet), place(p.cabinet), p.why),
    };
    let drill = if drill { "DRILL: " } else { "" };
    let mut stocked = search.stocked.iter();
    if let Some(best) = stocked.next() {
        let cost = best.cost.unwrap_or_default();
        let mut words = format!(
            "{drill}nearest shield: cabinet '{}' ({}), {}, ~{cost} {unit} from {}",
            name(best.cabinet),
            place(best.cabinet),
            contents(best),
            search.from
        );
        match stocked.next() {
            Some(next) => {
                words += &format!(
                    "; next: cabinet '{}' ({}), {}, ~{} {unit}",
                    name(next.cabinet),
                    place(next.cabinet),
                    contents(next),
                    next.cost.unwrap_or_default()
                )
            }
            None => words += "; next: none",
        }
        let nearer: Vec<String> =
            search.passed.iter().filter(|p| p.cost.is_some_and(|c| c <= cost)).map(passed).collect();
        if !nearer.is_empty() {
            words += &format!("; skipped nearer: {}", nearer.join("; "));
        }
        return Ok(words);
    }
    let mut words = if config.cabinets.is_empty() {
        format!("{drill}no shield cabinets are configured")
    } else if search.known {
        format!("{drill}no shield reachable from {}", search.from)
    } else {
        format!("{drill}no route from {}: it is not in the site graph (add it to `graph`)", search.from)
    };
    if !search.passed.is_empty() {
        words += &format!("; {}", search.passed.iter().map(passed).collect::<Vec<_>>().join("; "));
    }
    if !search.unreachable.is_empty() {
        let list: Vec<String> = search
            .unreachable
            .iter()
            .map(|s| format!("'{}' ({}), {}", name(s.cabinet), place(s.cabinet), contents(s)))
            .collect();
        words += &format!("; stocked but no path: {}", list.join("; "));
    }
    Err(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::test_rng::Rng;

    /// A small school: two floors joined by stairs, four cabinets.
    fn school() -> Config {
        Config::parse(
            r#"{
            "graph": [
                {"from": "A/1/main-hall", "to": "A/1/gym", "cost": 30},
                {"from": "A/1/main-hall", "to": "A/1/stairs", "cost": 10},
                {"from": "A/1/stairs", "to": "A/2/stairs", "cost": 15},
                {"from": "A/2/stairs", "to": "A/2/library", "cost": 20},
                {"from": "A/1/main-hall", "to": "A/1/office", "cost": 60},
                {"from": "B/1/annex", "to": "B/1/shop", "cost": 5}
            ],
            "cabinets": [
                {"name": "gym", "location": {"building": "A", "floor": "1", "zone": "gym"}, "address": "h:502", "slots": [0, 1, 2], "door": 3},
                {"name": "library", "location": {"building": "A", "floor": "2", "zone": "library"}, "address": "h:502", "slots": [8, 9], "door": 10},
                {"name": "office", "location": {"building": "A", "floor": "1", "zone": "office"}, "address": "k:502", "slots": [0], "door": 1},
                {"name": "annex", "location": {"building": "B", "floor": "1", "zone": "annex"}, "address": "k:502", "slots": [4, 5], "door": 6}
            ]}"#,
        )
        .unwrap()
    }

    fn stocked(in_place: usize, slots: usize) -> Availability {
        Availability::Stocked { in_place, slots, door_open: false }
    }

    fn hall() -> Place {
        Place::new("A", "1", "main-hall")
    }

    fn ask(config: &Config, from: &Place, available: &[Availability], drill: bool) -> Result<String, String> {
        answer(config, &search(config, from, available), drill)
    }

    #[test]
    fn the_nearest_stocked_cabinet_is_offered_with_the_next() {
        let c = school();
        let all = [stocked(2, 3), stocked(2, 2), stocked(1, 1), stocked(2, 2)];
        assert_eq!(
            ask(&c, &hall(), &all, false).unwrap(),
            "nearest shield: cabinet 'gym' (A/1/gym), 2 of 3 in place, ~30 m from A/1/main-hall; next: cabinet \
             'library' (A/2/library), 2 of 2 in place, ~45 m"
        );
    }

    #[test]
    fn an_empty_nearest_cabinet_is_skipped_and_named() {
        let c = school();
        let all = [Availability::Skipped(Skip::Empty), stocked(2, 2), stocked(1, 1), stocked(2, 2)];
        assert_eq!(
            ask(&c, &hall(), &all, false).unwrap(),
            "nearest shield: cabinet 'library' (A/2/library), 2 of 2 in place, ~45 m from A/1/main-hall; next: \
             cabinet 'office' (A/1/office), 1 of 1 in place, ~60 m; skipped nearer: 'gym' (A/1/gym, ~30 m): empty"
        );
    }

    #[test]
    fn offline_and_tampered_cabinets_are_skipped_with_their_reason() {
        let c = school();
        let all = [
            Availability::Skipped(Skip::Tampered),
            Availability::Skipped(Skip::Offline("the Modbus device at h:502 did not answer within 300 ms".into())),
            Availability::Stocked { in_place: 1, slots: 1, door_open: true },
            stocked(2, 2),
        ];
        assert_eq!(
            ask(&c, &hall(), &all, false).unwrap(),
            "nearest shield: cabinet 'office' (A/1/office), 1 of 1 in place, door open, ~60 m from A/1/main-hall; \
             next: none; skipped nearer: 'gym' (A/1/gym, ~30 m): tampered; 'library' (A/2/library, ~45 m): offline \
             (the Modbus device at h:502 did not answer within 300 ms)"
        );
    }

    #[test]
    fn ties_go_to_more_shields_then_config_order() {
        let mut c = school();
        c.cabinets[2].location = Place::new("A", "1", "gym"); // office moved next to the gym: same cost
        let s = search(&c, &hall(), &[stocked(1, 3), stocked(2, 2), stocked(2, 2), stocked(2, 2)]);
        assert_eq!(s.stocked.iter().map(|s| s.cabinet).collect::<Vec<_>>(), [2, 0, 1]);
        let s = search(&c, &hall(), &[stocked(2, 3), stocked(2, 2), stocked(2, 2), stocked(2, 2)]);
        assert_eq!(s.stocked.iter().map(|s| s.cabinet).collect::<Vec<_>>(), [0, 2, 1]);
        assert_eq!(s.unreachable.iter().map(|s| s.cabinet).collect::<Vec<_>>(), [3], "the annex has no path");
    }

    #[test]
    fn a_cabinet_in_the_incidents_zone_costs_nothing() {
        let c = school();
        let gym = Place::new("A", "1", "gym");
        let words = ask(&c, &gym, &[stocked(3, 3), stocked(2, 2), stocked(1, 1), stocked(2, 2)], false).unwrap();
        assert!(words.starts_with("nearest shield: cabinet 'gym' (A/1/gym), 3 of 3 in place, ~0 m from A/1/gym;"));
    }

    #[test]
    fn no_reachable_shield_fails_and_lists_every_cabinet() {
        let c = school();
        let all = [
            Availability::Skipped(Skip::Empty),
            Availability::Skipped(Skip::NotRead),
            Availability::Skipped(Skip::Offline("refused".into())),
            stocked(2, 2),
        ];
        assert_eq!(
            ask(&c, &hall(), &all, false).unwrap_err(),
            "no shield reachable from A/1/main-hall; 'gym' (A/1/gym, ~30 m): empty; 'library' (A/2/library, ~45 m): \
             not read yet; 'office' (A/1/office, ~60 m): offline (refused); stocked but no path: 'annex' (B/1/annex), \
             2 of 2 in place"
        );
    }

    #[test]
    fn an_incident_outside_the_graph_is_answered_with_where_shields_are() {
        let c = school();
        let lost = Place::new("A", "3", "roof");
        let all = [stocked(1, 3), Availability::Skipped(Skip::Empty), stocked(1, 1), stocked(2, 2)];
        assert_eq!(
            ask(&c, &lost, &all, false).unwrap_err(),
            "no route from A/3/roof: it is not in the site graph (add it to `graph`); 'library' (A/2/library, no \
             path): empty; stocked but no path: 'gym' (A/1/gym), 1 of 3 in place; 'office' (A/1/office), 1 of 1 in \
             place; 'annex' (B/1/annex), 2 of 2 in place"
        );
        assert_eq!(
            ask(&Config::parse("").unwrap(), &lost, &[], true).unwrap_err(),
            "DRILL: no shield cabinets are configured"
        );
    }

    #[test]
    fn a_drill_answers_the_same_way_and_says_so() {
        let c = school();
        let all = [stocked(2, 3), stocked(2, 2), stocked(1, 1), stocked(2, 2)];
        let real = ask(&c, &hall(), &all, false).unwrap();
        assert_eq!(ask(&c, &hall(), &all, true).unwrap(), format!("DRILL: {real}"));
    }

    #[test]
    fn seconds_read_as_seconds() {
        let mut c = school();
        c.cost_unit = crate::config::CostUnit::Seconds;
        let words = ask(&c, &hall(), &[stocked(2, 3), stocked(2, 2), stocked(1, 1), stocked(2, 2)], false).unwrap();
        assert!(words.contains("~30 s from A/1/main-hall") && words.ends_with("~45 s"), "{words}");
    }

    /// The answers docs/plugins/shield-inventory.md shows for its worked example.
    #[test]
    fn the_documented_example_answers() {
        let c = Config::parse(crate::config::EXAMPLE).unwrap();
        let science = Place::new("main", "2", "science");
        let library_empty = [stocked(2, 2), stocked(3, 3), Availability::Skipped(Skip::Empty)];
        assert_eq!(
            ask(&c, &science, &library_empty, false).unwrap(),
            "nearest shield: cabinet 'gym-east' (main/1/gym), 3 of 3 in place, ~85 m from main/2/science; next: \
             cabinet 'office' (main/1/office), 2 of 2 in place, ~110 m; skipped nearer: 'library' (main/2/library, \
             ~35 m): empty"
        );
        let entrance = Place::new("main", "1", "entrance");
        let all = [stocked(1, 2), stocked(3, 3), stocked(2, 2)];
        assert_eq!(
            ask(&c, &entrance, &all, true).unwrap(),
            "DRILL: nearest shield: cabinet 'office' (main/1/office), 1 of 2 in place, ~15 m from main/1/entrance; \
             next: cabinet 'gym-east' (main/1/gym), 3 of 3 in place, ~70 m"
        );
    }

    /// Property: whatever each cabinet holds, the one offered is stocked, at
    /// the least cost of all stocked reachable cabinets, and never costs more
    /// than a direct edge from the incident to any stocked cabinet; every other
    /// cabinet is accounted for exactly once.
    #[test]
    fn the_offer_is_never_worse_than_any_stocked_cabinet() {
        let c = school();
        let distances = c.graph.distances(&hall());
        let mut rng = Rng(42);
        for round in 0..2000 {
            let all: Vec<Availability> = (0..c.cabinets.len())
                .map(|_| match rng.below(5) {
                    0 => Availability::Skipped(Skip::Empty),
                    1 => Availability::Skipped(Skip::Tampered),
                    2 => Availability::Skipped(Skip::Offline("x".into())),
                    _ => stocked(1 + rng.below(3) as usize, 3),
                })
                .collect();
            let s = search(&c, &hall(), &all);
            assert_eq!(s.stocked.len() + s.unreachable.len() + s.passed.len(), c.cabinets.len(), "round {round}");
            let reachable_stocked: Vec<u64> = (0..c.cabinets.len())
                .filter(|&i| matches!(all[i], Availability::Stocked { .. }))
                .filter_map(|i| distances.to(&c.cabinets[i].location))
                .collect();
            match s.stocked.first() {
                Some(best) => {
                    assert!(matches!(all[best.cabinet], Availability::Stocked { .. }));
                    assert_eq!(best.cost, reachable_stocked.iter().min().copied(), "round {round}");
                    let direct = [(0, 30u64), (2, 60)]; // the school's edges from the hall to cabinet zones
                    for (i, edge) in direct {
                        if matches!(all[i], Availability::Stocked { .. }) {
                            assert!(best.cost.unwrap() <= edge, "round {round}");
                        }
                    }
                    assert!(ask(&c, &hall(), &all, false).is_ok());
                }
                None => {
                    assert!(reachable_stocked.is_empty(), "round {round}");
                    assert!(ask(&c, &hall(), &all, false).is_err());
                }
            }
        }
    }
}

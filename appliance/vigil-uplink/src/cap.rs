//! The alert as CAP 1.2 XML (OASIS Common Alerting Protocol), published on
//! `alerts/cap` for district systems that speak CAP rather than our JSON.
//!
//! One CAP message per transition, like the JSON: the raise is an `Alert`,
//! later transitions are `Update`s and a dismissal is a `Cancel`; both refer
//! back to the raise's message.

use std::fmt::Write;

use vigil_core::incident::{Incident, Stage, Transition};
use vigil_core::playbook::SrpAction;
use vigil_core::time::Moment;

use crate::alert::{AlertContext, alert_id};
use crate::topics::Topics;

/// The CAP 1.2 namespace.
pub const CAP_NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// The restriction text of every message: `scope` is `Restricted`.
pub const RESTRICTION: &str = "For school district safety staff and emergency responders only";

/// The CAP 1.2 XML for `transition`, given `incident` as it stands after it.
pub fn alert_cap(topics: &Topics, incident: &Incident, transition: &Transition, ctx: AlertContext<'_>) -> Vec<u8> {
    let sender = format!("vigil@{}", topics.device());
    let raise_id = alert_id(topics, incident.id.0, 0);
    let msg_type = match (transition.from, transition.to) {
        (None, _) => "Alert",
        (_, Stage::Dismissed) => "Cancel",
        _ => "Update",
    };
    let certainty = match transition.to {
        Stage::Dismissed => "Unlikely",
        _ if incident.times.verified.is_some() => "Observed",
        _ => "Likely",
    };
    let drill = if incident.drill { "DRILL: " } else { "" };
    let camera = if ctx.camera_name.is_empty() {
        incident.camera.to_string()
    } else {
        format!("{} ({})", ctx.camera_name, incident.camera)
    };
    let headline = format!("{drill}Weapon ({}) detected at {}: {}", incident.label, incident.location, transition.to);
    let description = format!(
        "{drill}A {} was detected (score {:.2}) by camera {camera} at {}, first seen at {}. \
         Incident {} is now {}: {}.",
        incident.label,
        incident.score,
        incident.location,
        incident.times.captured.rfc3339(),
        incident.id,
        transition.to,
        transition.reason,
    );

    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<alert xmlns=\"{CAP_NAMESPACE}\">");
    element(&mut x, 1, "identifier", &alert_id(topics, incident.id.0, ctx.seq));
    element(&mut x, 1, "sender", &sender);
    element(&mut x, 1, "sent", &cap_time(transition.at));
    element(&mut x, 1, "status", if incident.drill { "Exercise" } else { "Actual" });
    element(&mut x, 1, "msgType", msg_type);
    element(&mut x, 1, "scope", "Restricted");
    element(&mut x, 1, "restriction", RESTRICTION);
    if transition.from.is_some() {
        // CAP's `references` is "sender,identifier,sent" of the message referred to.
        element(&mut x, 1, "references", &format!("{sender},{raise_id},{}", cap_time(incident.times.raised)));
    }
    element(&mut x, 1, "incidents", &format!("{}:{}", topics.device(), incident.id));
    x.push_str("  <info>\n");
    element(&mut x, 2, "category", "Security");
    element(&mut x, 2, "event", "Weapon detected");
    if transition.to == Stage::AllClear {
        element(&mut x, 2, "responseType", "AllClear");
    }
    element(&mut x, 2, "urgency", "Immediate");
    element(&mut x, 2, "severity", "Extreme");
    element(&mut x, 2, "certainty", certainty);
    element(&mut x, 2, "senderName", &format!("Vigil device {}", topics.device()));
    element(&mut x, 2, "headline", &headline);
    element(&mut x, 2, "description", &description);
    element(&mut x, 2, "instruction", &instruction(incident));
    x.push_str("    <area>\n");
    element(&mut x, 3, "areaDesc", &incident.location.to_string());
    x.push_str("    </area>\n  </info>\n</alert>\n");
    x.into_bytes()
}

/// CAP's date-time: RFC 3339 to the second with an explicit `+00:00`, since CAP forbids `Z`.
pub fn cap_time(at: Moment) -> String {
    let full = at.rfc3339();
    format!("{}+00:00", full.get(..19).unwrap_or(&full))
}

/// What people should do now: the SRP directive in force, in the protocol's own words.
fn instruction(incident: &Incident) -> String {
    match incident.stage {
        Stage::Dismissed => "FALSE ALARM: Resume normal activity; any automatic action has been reverted.".into(),
        Stage::AllClear => "ALL CLEAR: The incident is over; resume normal activity as directed by staff.".into(),
        Stage::Responding(action) => directive(action).into(),
        _ => match incident.active.last() {
            Some(&action) => directive(action).into(),
            None => "Await instructions from school staff; the detection is being verified.".into(),
        },
    }
}

fn directive(action: SrpAction) -> &'static str {
    match action {
        SrpAction::Hold => "HOLD: In your room or area. Clear the halls.",
        SrpAction::Secure => "SECURE: Get inside. Lock outside doors.",
        SrpAction::Lockdown => "LOCKDOWN: Locks, lights, out of sight.",
        SrpAction::Evacuate => "EVACUATE: To the announced location.",
        SrpAction::Shelter => "SHELTER: Using the announced safety strategy.",
    }
}

fn element(x: &mut String, depth: usize, name: &str, text: &str) {
    let _ = writeln!(x, "{:indent$}<{name}>{}</{name}>", "", escape(text), indent = depth * 2);
}

/// `text` with the five XML special characters replaced by entities, and
/// characters XML 1.0 cannot carry at all (most C0 controls) by U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::{at, incident, topics, verified};
    use vigil_core::incident::Actor;

    /// A minimal well-formedness check: tags balance, one root, attribute
    /// values quoted, and text holds no raw `<` and only the five predefined
    /// entities. Returns the elements as (path, unescaped text).
    fn check(xml: &str) -> Vec<(String, String)> {
        let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("XML declaration");
        let mut stack: Vec<String> = Vec::new();
        let mut out = Vec::new();
        let mut roots = 0;
        let mut rest = body;
        while !rest.is_empty() {
            let lt = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..lt];
            if !text.trim().is_empty() {
                assert!(!stack.is_empty(), "text outside the root: {text:?}");
                out.push((stack.join("/"), unescape(text)));
            }
            rest = &rest[lt..];
            if rest.is_empty() {
                break;
            }
            let gt = rest.find('>').expect("unterminated tag");
            let tag = &rest[1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched closing tag");
            } else {
                let mut parts = tag.splitn(2, ' ');
                let name = parts.next().unwrap();
                assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()), "bad name {name:?}");
                if let Some(attrs) = parts.next() {
                    let (key, value) = attrs.split_once('=').expect("attribute");
                    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
                    assert!(value.starts_with('"') && value.ends_with('"') && value.matches('"').count() == 2);
                }
                if stack.is_empty() {
                    roots += 1;
                }
                stack.push(name.to_string());
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert_eq!(roots, 1);
        out
    }

    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let semi = rest[amp..].find(';').expect("unterminated entity") + amp;
            out.push(match &rest[amp + 1..semi] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                other => panic!("unknown entity {other}"),
            });
            rest = &rest[semi + 1..];
        }
        out.push_str(rest);
        out
    }

    fn field(elements: &[(String, String)], path: &str) -> Option<String> {
        elements.iter().find(|(p, _)| p == path).map(|(_, t)| t.clone())
    }

    fn cap(incident: &Incident, transition: &Transition, seq: u32, name: &str) -> Vec<(String, String)> {
        let xml =
            String::from_utf8(alert_cap(&topics(), incident, transition, AlertContext { seq, camera_name: name }))
                .unwrap();
        println!("{xml}");
        check(&xml)
    }

    #[test]
    fn a_verification_is_a_well_formed_update() {
        let e = cap(&incident(), &verified(), 2, "East hall");
        assert!(
            alert_cap(&topics(), &incident(), &verified(), AlertContext { seq: 2, camera_name: "" })
                .windows(CAP_NAMESPACE.len())
                .any(|w| w == CAP_NAMESPACE.as_bytes())
        );
        assert_eq!(field(&e, "alert/identifier").unwrap(), "lincoln-hs:7:2");
        assert_eq!(field(&e, "alert/sender").unwrap(), "vigil@lincoln-hs");
        assert_eq!(field(&e, "alert/sent").unwrap(), "2027-01-15T08:00:05+00:00");
        assert_eq!(field(&e, "alert/status").unwrap(), "Actual");
        assert_eq!(field(&e, "alert/msgType").unwrap(), "Update");
        assert_eq!(field(&e, "alert/scope").unwrap(), "Restricted");
        assert_eq!(field(&e, "alert/restriction").unwrap(), RESTRICTION);
        assert_eq!(field(&e, "alert/references").unwrap(), "vigil@lincoln-hs,lincoln-hs:7:0,2027-01-15T08:00:00+00:00");
        assert_eq!(field(&e, "alert/info/category").unwrap(), "Security");
        assert_eq!(field(&e, "alert/info/event").unwrap(), "Weapon detected");
        assert_eq!(field(&e, "alert/info/urgency").unwrap(), "Immediate");
        assert_eq!(field(&e, "alert/info/severity").unwrap(), "Extreme");
        assert_eq!(field(&e, "alert/info/certainty").unwrap(), "Observed");
        assert_eq!(field(&e, "alert/info/instruction").unwrap(), "LOCKDOWN: Locks, lights, out of sight.");
        assert_eq!(field(&e, "alert/info/area/areaDesc").unwrap(), "building A, floor 1, east-hall");
        let description = field(&e, "alert/info/description").unwrap();
        for part in ["handgun", "East hall (hall-1)", "building A, floor 1, east-hall", "2027-01-15T08:00:00.000Z"] {
            assert!(description.contains(part), "{description} lacks {part}");
        }
    }

    #[test]
    fn the_raise_is_an_alert_without_references_and_only_likely() {
        let mut i = incident();
        i.stage = Stage::Detected;
        i.times.verified = None;
        i.active.clear();
        let raise = Transition { from: None, to: Stage::Detected, actor: Actor::System, at: at(37), ..verified() };
        let e = cap(&i, &raise, 0, "East hall");
        assert_eq!(field(&e, "alert/msgType").unwrap(), "Alert");
        assert_eq!(field(&e, "alert/references"), None);
        assert_eq!(field(&e, "alert/info/certainty").unwrap(), "Likely");
        assert_eq!(field(&e, "alert/sent").unwrap(), "2027-01-15T08:00:00+00:00");
    }

    #[test]
    fn drills_are_exercises() {
        let mut i = incident();
        i.drill = true;
        let e = cap(&i, &verified(), 2, "East hall");
        assert_eq!(field(&e, "alert/status").unwrap(), "Exercise");
        assert!(field(&e, "alert/info/headline").unwrap().starts_with("DRILL: "));
    }

    #[test]
    fn a_dismissal_cancels_the_original_alert() {
        let mut i = incident();
        i.stage = Stage::Dismissed;
        i.times.verified = None;
        i.active.clear();
        let dismiss = Transition {
            from: Some(Stage::PendingVerification),
            to: Stage::Dismissed,
            reason: "dismissed as a false alarm; reverting secure".into(),
            ..verified()
        };
        let e = cap(&i, &dismiss, 2, "East hall");
        assert_eq!(field(&e, "alert/msgType").unwrap(), "Cancel");
        assert_eq!(field(&e, "alert/references").unwrap(), "vigil@lincoln-hs,lincoln-hs:7:0,2027-01-15T08:00:00+00:00");
        assert!(field(&e, "alert/info/instruction").unwrap().starts_with("FALSE ALARM"));
    }

    #[test]
    fn all_clear_is_an_update_with_response_type_all_clear() {
        let mut i = incident();
        i.stage = Stage::AllClear;
        i.active.clear();
        let clear = Transition { from: Some(Stage::Confirmed), to: Stage::AllClear, ..verified() };
        let e = cap(&i, &clear, 3, "East hall");
        assert_eq!(field(&e, "alert/msgType").unwrap(), "Update");
        assert_eq!(field(&e, "alert/info/responseType").unwrap(), "AllClear");
        assert!(field(&e, "alert/info/instruction").unwrap().starts_with("ALL CLEAR"));
    }

    #[test]
    fn special_characters_are_escaped() {
        let nasty = "<b>&\"'</b> ]]> \u{1}";
        let mut i = incident();
        i.location.zone = nasty.into();
        i.label = nasty.into();
        let t = Transition { reason: nasty.into(), ..verified() };
        let e = cap(&i, &t, 2, nasty);
        let expected = "<b>&\"'</b> ]]> \u{FFFD}";
        assert!(field(&e, "alert/info/area/areaDesc").unwrap().ends_with(expected));
        assert!(field(&e, "alert/info/description").unwrap().contains(&format!("camera {expected} (hall-1)")));
        assert!(field(&e, "alert/info/headline").unwrap().contains(expected));
        assert_eq!(escape("<&>\"'"), "&lt;&amp;&gt;&quot;&apos;");
    }

    #[test]
    fn the_instruction_follows_the_directive_in_force() {
        let mut i = incident();
        i.stage = Stage::Responding(SrpAction::Hold);
        assert!(instruction(&i).starts_with("HOLD"));
        i.stage = Stage::PendingVerification;
        i.active = vec![SrpAction::Secure];
        assert!(instruction(&i).starts_with("SECURE"));
        i.active.clear();
        assert!(instruction(&i).starts_with("Await"));
    }
}

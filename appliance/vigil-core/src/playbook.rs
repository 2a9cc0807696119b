//! The school's playbook: which Standard Response Protocol actions run on
//! their own when a threat is detected and which wait for a human.

use std::fmt;
use std::str::FromStr;

/// An action of the Standard Response Protocol. All Clear is not here: it
/// ends an incident and is only ever an operator's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SrpAction {
    /// Hold in your room or area; clear the halls.
    Hold,
    /// Secure: get inside, lock outside doors.
    Secure,
    /// Lockdown: locks, lights, out of sight.
    Lockdown,
    /// Evacuate to a announced location.
    Evacuate,
    /// Shelter for a hazard (weather, hazmat).
    Shelter,
}

impl SrpAction {
    /// Every action, in the protocol's order.
    pub const ALL: [SrpAction; 5] =
        [SrpAction::Hold, SrpAction::Secure, SrpAction::Lockdown, SrpAction::Evacuate, SrpAction::Shelter];

    /// The lowercase name used in config, commands and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SrpAction::Hold => "hold",
            SrpAction::Secure => "secure",
            SrpAction::Lockdown => "lockdown",
            SrpAction::Evacuate => "evacuate",
            SrpAction::Shelter => "shelter",
        }
    }
}

impl fmt::Display for SrpAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SrpAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SrpAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}: expected one of hold, secure, lockdown, evacuate, shelter"))
    }
}

/// What to do, automatically and after verification. Built only through
/// [`Playbook::new`], which enforces the safety rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playbook {
    on_detection: Vec<SrpAction>,
    on_verification: Vec<SrpAction>,
}

impl Playbook {
    /// A playbook, refusing automatic actions that are unsafe without a human:
    /// Evacuate would send students towards a threat whose position nobody has
    /// checked, and Shelter answers a different kind of hazard.
    pub fn new(on_detection: Vec<SrpAction>, on_verification: Vec<SrpAction>) -> Result<Playbook, String> {
        for (list, name) in [(&on_detection, "on_detection"), (&on_verification, "on_verification")] {
            for (i, a) in list.iter().enumerate() {
                if list[..i].contains(a) {
                    return Err(format!("{name} lists {a} twice"));
                }
            }
        }
        if let Some(a) = on_detection.iter().find(|a| matches!(a, SrpAction::Evacuate | SrpAction::Shelter)) {
            return Err(format!(
                "on_detection may not contain {a}: it moves people and must wait for a human who knows where the threat is; put it in on_verification"
            ));
        }
        Ok(Playbook { on_detection, on_verification })
    }

    /// Actions run as soon as an incident is raised.
    pub fn on_detection(&self) -> &[SrpAction] {
        &self.on_detection
    }

    /// Actions run once a human verifies the incident.
    pub fn on_verification(&self) -> &[SrpAction] {
        &self.on_verification
    }
}

impl Default for Playbook {
    /// Secure at once (outside doors locked, nobody hurt by a false alarm),
    /// Lockdown after a human has looked.
    fn default() -> Self {
        Playbook { on_detection: vec![SrpAction::Secure], on_verification: vec![SrpAction::Lockdown] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in SrpAction::ALL {
            assert_eq!(a.as_str().parse::<SrpAction>(), Ok(a));
        }
        assert!("all-clear".parse::<SrpAction>().unwrap_err().contains("expected one of"));
    }

    #[test]
    fn automatic_evacuate_or_shelter_is_refused() {
        let err = Playbook::new(vec![SrpAction::Evacuate], vec![]).unwrap_err();
        assert!(err.contains("on_detection may not contain evacuate"), "{err}");
        assert!(Playbook::new(vec![SrpAction::Shelter], vec![]).is_err());
        assert!(Playbook::new(vec![SrpAction::Lockdown], vec![SrpAction::Evacuate]).is_ok());
    }

    #[test]
    fn duplicates_are_refused() {
        let err = Playbook::new(vec![], vec![SrpAction::Lockdown, SrpAction::Lockdown]).unwrap_err();
        assert_eq!(err, "on_verification lists lockdown twice");
    }
}

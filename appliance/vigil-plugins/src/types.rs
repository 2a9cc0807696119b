//! The host's own mirror of the WIT `types` interface, so callers never
//! depend on bindgen's generated types (which change with each WIT version).

/// Standard Response Protocol actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrpAction {
    /// Hold in your room.
    Hold,
    /// Secure the perimeter.
    Secure,
    /// Locks, lights, out of sight.
    Lockdown,
    /// To a location.
    Evacuate,
    /// For a hazard.
    Shelter,
}

impl SrpAction {
    /// The manifest name of the action.
    pub fn name(self) -> &'static str {
        match self {
            SrpAction::Hold => "hold",
            SrpAction::Secure => "secure",
            SrpAction::Lockdown => "lockdown",
            SrpAction::Evacuate => "evacuate",
            SrpAction::Shelter => "shelter",
        }
    }
}

/// Where a camera is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// Building name.
    pub building: String,
    /// Floor name.
    pub floor: String,
    /// Zone name.
    pub zone: String,
}

/// An incident as plugins see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incident {
    /// The device-local incident number.
    pub id: u64,
    /// The camera id.
    pub camera: String,
    /// The camera's human name.
    pub camera_name: String,
    /// Where the camera is.
    pub location: Location,
    /// What was seen.
    pub label: String,
    /// The detection score, 0 to 1.
    pub score: f32,
    /// Raised during a drill.
    pub drill: bool,
    /// The stage after the event.
    pub stage: String,
    /// SRP actions in force, in the order they started.
    pub active: Vec<SrpAction>,
}

/// An incident lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A threat was detected.
    Raised(Incident),
    /// An operator verified it.
    Verified(Incident),
    /// An operator dismissed it.
    Dismissed(Incident),
    /// An action was requested.
    ActionRequested(Incident),
    /// The response ended.
    AllClear(Incident),
}

/// What an action request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Start an SRP action.
    Activate(SrpAction),
    /// Undo an action.
    Revert(SrpAction),
    /// End the response.
    AllClear,
}

impl Directive {
    /// The manifest action name that subscribes to this directive.
    pub fn action_name(self) -> &'static str {
        match self {
            Directive::Activate(a) | Directive::Revert(a) => a.name(),
            Directive::AllClear => "all-clear",
        }
    }
}

/// An action request, with who caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// The incident it is for.
    pub incident: Incident,
    /// What to do.
    pub directive: Directive,
    /// `system` or `operator:<id>`.
    pub actor: String,
}

/// A plugin's answer to an action request (or the host's answer for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// Carried out.
    Done(String),
    /// Tried and failed, or the plugin crashed or timed out.
    Failed(String),
    /// Nothing for this plugin to do.
    NotApplicable,
}

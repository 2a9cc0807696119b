//! Drill mode: incidents raised during a drill, and every action they ask
//! for, say so; an operator ends the drill, and that lasts.

use vigil_core::incident::{Command, Directive, Stage};
use vigil_core::playbook::SrpAction;
use vigild::Notice;

use crate::harness::{Camera, Site, Vigil, operator};

#[test]
fn a_drill_from_the_config_marks_incidents_and_their_actions() {
    let site = Site::new();
    let mut vigil = Vigil::start(&site.drill_config(&[Camera::demo("hall-1", "armed")]));
    let (raised, _) = vigil.raised("hall-1");
    assert!(raised.drill, "{raised:?}");
    vigil.reached(raised.id, Stage::PendingVerification);
    vigil.command(Command::Verify(raised.id)).expect("verifying a drill incident");
    vigil.reached(raised.id, Stage::Confirmed);

    let actions = vigil.actions();
    let directives: Vec<_> = actions.iter().map(|a| a.directive).collect();
    assert_eq!(directives, [Directive::Activate(SrpAction::Secure), Directive::Activate(SrpAction::Lockdown)]);
    assert!(actions.iter().all(|a| a.drill), "every action of a drill incident is a drill: {actions:?}");
    for notice in vigil.seen() {
        match notice {
            Notice::Raised { incident, .. } | Notice::Transition { incident, .. } => {
                assert!(incident.drill, "{notice:?}")
            }
            Notice::Action(request) => assert!(request.drill, "{notice:?}"),
            _ => {}
        }
    }
    let store = site.store();
    assert!(store.load().expect("the store reads back").open[0].drill, "the record on disk says drill");
    let audit = store.audit(raised.id).expect("the audit trail reads back");
    assert!(audit[0].reason.ends_with(", drill"), "{:?}", audit[0].reason);
    assert!(audit.iter().filter(|e| e.event == "action").all(|e| e.reason == "dispatched (drill)"), "{audit:#?}");

    vigil.command(Command::DrillStop).expect("stopping the drill");
    vigil.wait_for("the drill to end", |seen| {
        seen.iter().any(|n| matches!(n, Notice::Drill { active: false, actor } if *actor == operator())).then_some(())
    });
    let record = store.load().expect("the store reads back").open.remove(0);
    assert!(record.drill, "an incident raised during the drill stays a drill");
}

#[test]
fn a_drill_stopped_by_an_operator_stays_stopped_after_a_restart() {
    let site = Site::new();
    // `drill = true` starts the box in drill mode; an operator then ends the drill.
    {
        let mut vigil = Vigil::start(&site.drill_config(&[Camera::demo("gym-1", "quiet")]));
        vigil.command(Command::DrillStop).expect("stopping the drill");
        vigil.shutdown();
    }

    // The same config file, after a reboot: the operator's word stands.
    let mut vigil = Vigil::start(&site.drill_config(&[Camera::demo("hall-1", "armed")]));
    let (raised, _) = vigil.raised("hall-1");
    assert!(
        !raised.drill,
        "incident {} is a drill although an operator stopped the drill before the restart: \
         vigild's Supervisor::new ORs the persisted state with `device.drill` from the config, \
         and the store records \"stopped\" the same as \"never set\", so the config wins at every boot",
        raised.id
    );
}

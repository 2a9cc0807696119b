//! Operator commands through `Running::commands()`: each moves its incident,
//! dispatches the playbook's actions and is recorded with who gave it.

use vigil_core::incident::{ActionRequest, Command, Directive, IncidentId, Stage};
use vigil_core::playbook::SrpAction;
use vigild::Notice;

use crate::harness::{Camera, Site, Vigil, operator};

fn directives(actions: &[ActionRequest], id: IncidentId) -> Vec<Directive> {
    actions.iter().filter(|a| a.incident == id).map(|a| a.directive).collect()
}

#[test]
fn verify_then_all_clear_and_dismiss_dispatch_their_actions_and_audit_the_operator() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed"), Camera::demo("gym-1", "armed")]);
    let mut vigil = Vigil::start(&config);
    let hall = vigil.pending("hall-1");
    let gym = vigil.pending("gym-1");
    assert_ne!(hall.id, gym.id);

    // Verify: confirmed by the operator, and the verification playbook runs.
    vigil.command(Command::Verify(hall.id)).expect("verifying a pending incident");
    let confirmed = vigil.reached(hall.id, Stage::Confirmed);
    assert!(confirmed.times.verified.is_some());
    assert_eq!(
        directives(&vigil.actions(), hall.id),
        [Directive::Activate(SrpAction::Secure), Directive::Activate(SrpAction::Lockdown)]
    );

    // All clear: closed, everything released.
    vigil.command(Command::AllClear(hall.id)).expect("clearing a confirmed incident");
    let cleared = vigil.reached(hall.id, Stage::AllClear);
    assert!(cleared.active.is_empty() && cleared.times.closed.is_some(), "{cleared:?}");
    assert_eq!(directives(&vigil.actions(), hall.id).last(), Some(&Directive::AllClear));
    let by_operator: Vec<Stage> = vigil
        .seen()
        .iter()
        .filter_map(|n| match n {
            Notice::Transition { transition: t, .. } if t.incident == hall.id && t.actor == operator() => Some(t.to),
            _ => None,
        })
        .collect();
    assert_eq!(by_operator, [Stage::Confirmed, Stage::AllClear]);

    // A closed incident takes no more commands.
    let refused = vigil.command(Command::Verify(hall.id)).expect_err("verifying a closed incident");
    assert_eq!(refused.code, "unknown-incident", "{refused}");

    // Dismiss: the automatic action is reverted.
    vigil.command(Command::Dismiss(gym.id)).expect("dismissing a pending incident");
    let dismissed = vigil.reached(gym.id, Stage::Dismissed);
    assert!(dismissed.active.is_empty());
    assert_eq!(
        directives(&vigil.actions(), gym.id),
        [Directive::Activate(SrpAction::Secure), Directive::Revert(SrpAction::Secure)]
    );

    // The audit trail on disk says who did what.
    let store = site.store();
    let audit = store.audit(hall.id).expect("the audit trail reads back");
    let steps: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .filter(|e| e.event != "redetected")
        .map(|e| (e.event.as_str(), e.actor.as_str(), e.to.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            ("transition", "system", Some("detected")),
            ("action", "system", Some("activate:secure")),
            ("transition", "system", Some("pending-verification")),
            ("transition", "operator:sro@district", Some("confirmed")),
            ("action", "operator:sro@district", Some("activate:lockdown")),
            ("action", "operator:sro@district", Some("all-clear")),
            ("transition", "operator:sro@district", Some("all-clear")),
        ],
        "{audit:#?}"
    );
    let gym_audit = store.audit(gym.id).expect("the audit trail reads back");
    let last = gym_audit.last().expect("an audit trail");
    assert_eq!(
        (last.event.as_str(), last.actor.as_str(), last.from.as_deref(), last.to.as_deref()),
        ("transition", "operator:sro@district", Some("pending-verification"), Some("dismissed"))
    );
    assert!(gym_audit.iter().any(|e| e.to.as_deref() == Some("revert:secure")), "{gym_audit:#?}");

    // Both are closed on disk too.
    assert!(store.load().expect("the store reads back").open.is_empty());
}

//! Restarts on the same data folder: open incidents are resumed, closed ones
//! stay closed, and incident ids keep counting.

use vigil_core::incident::{Command, Directive, IncidentId, Stage};
use vigil_core::playbook::SrpAction;
use vigild::Notice;

use crate::harness::{Camera, Site, Vigil};

#[test]
fn open_incidents_survive_a_restart_and_ids_keep_counting() {
    let site = Site::new();

    let first = {
        let mut vigil = Vigil::start(&site.config(&[Camera::demo("hall-1", "armed")]));
        let incident = vigil.pending("hall-1");
        vigil.shutdown();
        incident
    };
    assert_eq!(first.id, IncidentId(1));

    // Same box, one camera more. The gun is still in the hall: that is the
    // open incident seen again, not a new one; the new camera's is the next id.
    let config = site.config(&[Camera::demo("hall-1", "armed"), Camera::demo("lab-1", "armed")]);
    let mut vigil = Vigil::start(&config);
    vigil.wait_for("the open incident to be redetected after the restart", |seen| {
        seen.iter().any(|n| matches!(n, Notice::Redetected { incident, .. } if *incident == first.id)).then_some(())
    });
    let (lab, _) = vigil.raised("lab-1");
    assert_eq!(lab.id, IncidentId(2), "ids are monotonic across restarts");
    vigil.reached(lab.id, Stage::PendingVerification);
    vigil.catch_up();
    let raised: Vec<IncidentId> = vigil
        .seen()
        .iter()
        .filter_map(|n| match n {
            Notice::Raised { incident, .. } => Some(incident.id),
            _ => None,
        })
        .collect();
    assert_eq!(raised, [lab.id], "hall-1 raised a second incident:\n{}", vigil.history());

    // The resumed incident is fully alive: it takes commands.
    vigil.command(Command::Verify(first.id)).expect("verifying the resumed incident");
    vigil.reached(first.id, Stage::Confirmed);
    vigil.command(Command::AllClear(first.id)).expect("clearing the resumed incident");
    vigil.command(Command::AllClear(lab.id)).expect("clearing the new incident");
    let cleared: Vec<Directive> =
        vigil.actions().iter().filter(|a| a.incident == first.id).map(|a| a.directive).collect();
    // The restart re-asserted the automatic Secure still in force, then the
    // operator's verification started Lockdown and All Clear released both.
    assert_eq!(
        cleared,
        [Directive::Activate(SrpAction::Secure), Directive::Activate(SrpAction::Lockdown), Directive::AllClear]
    );
    let reasserted = site.store().audit(first.id).expect("the audit trail reads back");
    assert!(
        reasserted
            .iter()
            .any(|e| e.to.as_deref() == Some("activate:secure") && e.reason == "re-asserted after a restart"),
        "{reasserted:#?}"
    );
    vigil.shutdown();

    // Everything closed: the next incident on the same camera is new, and its id is not reused.
    let loaded = site.store().load().expect("the store reads back");
    assert!(loaded.open.is_empty(), "closed incidents stay closed: {:?}", loaded.open);
    let mut vigil = Vigil::start(&site.config(&[Camera::demo("hall-1", "armed")]));
    let (again, _) = vigil.raised("hall-1");
    assert_eq!(again.id, IncidentId(3));
}

#[test]
fn a_lockdown_ordered_before_a_restart_is_still_reverted_after_it() {
    let site = Site::new();
    let config = site.config(&[Camera::demo("hall-1", "armed")]);
    let incident = {
        let mut vigil = Vigil::start(&config);
        let incident = vigil.pending("hall-1");
        vigil.command(Command::Verify(incident.id)).expect("verifying");
        vigil.shutdown();
        incident
    };
    let record = site.store().load().expect("the store reads back").open.remove(0);

    // After the restart the officer finds it was a false alarm: everything
    // started for it, the lockdown included, must be undone.
    let vigil = Vigil::start(&config);
    vigil.command(Command::Dismiss(incident.id)).expect("dismissing the resumed incident");
    let actions: Vec<Directive> = vigil.actions().iter().map(|a| a.directive).collect();
    assert_eq!(
        actions,
        [
            // Re-asserted at start: a door controller may have lost power with the box.
            Directive::Activate(SrpAction::Secure),
            Directive::Activate(SrpAction::Lockdown),
            Directive::Revert(SrpAction::Lockdown),
            Directive::Revert(SrpAction::Secure)
        ],
        "the lockdown must be re-asserted after the restart and reverted on dismiss; the record lists {:?}",
        record.active
    );
}

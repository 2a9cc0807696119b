//! Human-readable incident lines on stdout, for the demo and for an
//! integrator watching a box on a terminal.

use std::io::Write;

use crossbeam_channel::Receiver;
use vigil_core::incident::Incident;

use crate::actions::describe;
use crate::pipeline::Status;
use crate::supervisor::Notice;

/// Prints every notice until the channel closes.
pub fn print_notices(notices: Receiver<Notice>, mut out: impl Write) {
    for notice in notices {
        let _ = writeln!(out, "{}", format_notice(&notice));
        let _ = out.flush();
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn drill(incident: &Incident) -> &'static str {
    if incident.drill { "  [DRILL]" } else { "" }
}

/// One notice as text.
pub fn format_notice(notice: &Notice) -> String {
    match notice {
        Notice::Raised { incident: i, camera_name, snapshot } => {
            let t = &i.times;
            format!(
                "INCIDENT {id} RAISED{drill}: {label} {score:.2} on camera {camera} ({name}), {location}\n  \
                 snapshot: {snapshot}\n  \
                 captured {captured}, inference done +{inferred}, confirmed +{confirmed}, raised +{raised} (glass-to-incident {raised})",
                id = i.id,
                drill = drill(i),
                label = i.label,
                score = i.score,
                camera = i.camera,
                name = camera_name,
                location = i.location,
                snapshot = snapshot.as_ref().map_or_else(|| "(not written, see the log)".into(), |p| p.display().to_string()),
                captured = t.captured.rfc3339(),
                inferred = ms(t.inferred.since(t.captured)),
                confirmed = ms(t.confirmed.since(t.captured)),
                raised = ms(t.raised.since(t.captured)),
            )
        }
        Notice::Transition { transition: t, incident } => format!(
            "incident {}: {} -> {} by {}: {}{}",
            t.incident,
            t.from.map_or("(new)", |s| s.as_str()),
            t.to,
            t.actor,
            t.reason,
            drill(incident)
        ),
        Notice::Action(r) => format!(
            "incident {}: action {} at {}{}",
            r.incident,
            describe(r.directive),
            r.location,
            if r.drill { "  [DRILL]" } else { "" }
        ),
        Notice::Redetected { incident, score } => format!("incident {incident}: threat seen again ({score:.2})"),
        Notice::Drill { active, actor } => {
            format!("drill mode {} by {actor}", if *active { "STARTED" } else { "ended" })
        }
    }
}

/// The end-of-run summary.
pub fn format_summary(status: &Status) -> String {
    let s = &status.supervisor;
    let q = |h: &crate::stats::Histogram, p: f64| h.quantile(p).map_or_else(|| "-".into(), ms);
    let mut text = format!(
        "summary after {:.0} s: {} incident(s) raised; {} frames inferred on {} ({} requests), {} dropped as stale, {} inference errors\n  \
         detector utilization {:.0}%; glass-to-decision p50 {} p99 {}; glass-to-incident p50 {} p99 {}; store errors {}",
        status.uptime.as_secs_f64(),
        s.incidents,
        status.inferences,
        status.model.execution_devices,
        status.model.requests,
        status.dropped,
        status.inference_errors,
        status.detector_utilization * 100.0,
        q(&s.decision_latency, 0.5),
        q(&s.decision_latency, 0.99),
        q(&s.incident_latency, 0.5),
        q(&s.incident_latency, 0.99),
        s.store_errors,
    );
    for c in &status.cameras {
        text.push_str(&format!(
            "\n  camera {}: {:?}, {} frames offered, {} inferred, {} dropped, {} opens",
            c.id, c.health.state, c.slot.offered, c.slot.taken, c.slot.dropped, c.health.opens
        ));
    }
    text
}

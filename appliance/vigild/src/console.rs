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
                snapshot =
                    snapshot.as_ref().map_or_else(|| "(not written, see the log)".into(), |p| p.display().to_string()),
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
        Notice::ActionResult(o) => {
            format!(
                "incident {}: plugin {} {}: {}{}",
                o.incident,
                o.plugin,
                o.directive,
                o.describe(),
                if o.drill { " (drill)" } else { "" }
            )
        }
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
            "\n  camera {}: {}, {} frames offered, {} inferred, {} dropped, {} opens{}",
            c.id,
            c.health.state.as_str(),
            c.slot.offered,
            c.slot.taken,
            c.slot.dropped,
            c.health.opens,
            c.health.last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        ));
    }
    text
}

/// The operator commands the console accepts, one per line.
pub const CONSOLE_HELP: &str = "commands: verify ID | dismiss ID | action ID hold|secure|lockdown|evacuate|shelter | all-clear ID | drill start|stop | help";

/// Parses one console line into a command; `Ok(None)` for a blank line.
pub fn parse_command(line: &str) -> Result<Option<vigil_core::incident::Command>, String> {
    use vigil_core::incident::{Command, IncidentId};
    let words: Vec<&str> = line.split_whitespace().collect();
    let id = |w: Option<&&str>| -> Result<IncidentId, String> {
        let w = w.ok_or("which incident? give its number")?;
        w.parse().map(IncidentId).map_err(|_| format!("{w:?} is not an incident number"))
    };
    Ok(Some(match words.as_slice() {
        [] => return Ok(None),
        ["help"] => return Err(CONSOLE_HELP.to_string()),
        ["verify", rest @ ..] if rest.len() <= 1 => Command::Verify(id(rest.first())?),
        ["dismiss", rest @ ..] if rest.len() <= 1 => Command::Dismiss(id(rest.first())?),
        ["all-clear", rest @ ..] if rest.len() <= 1 => Command::AllClear(id(rest.first())?),
        ["action", n, action] => Command::Action(id(Some(n))?, action.parse()?),
        ["drill", "start"] => Command::DrillStart,
        ["drill", "stop"] => Command::DrillStop,
        _ => return Err(format!("cannot read {line:?}; {CONSOLE_HELP}")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::incident::{Command, IncidentId};
    use vigil_core::playbook::SrpAction;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse_command("verify 3"), Ok(Some(Command::Verify(IncidentId(3)))));
        assert_eq!(parse_command("  dismiss 4 "), Ok(Some(Command::Dismiss(IncidentId(4)))));
        assert_eq!(parse_command("action 5 lockdown"), Ok(Some(Command::Action(IncidentId(5), SrpAction::Lockdown))));
        assert_eq!(parse_command("all-clear 6"), Ok(Some(Command::AllClear(IncidentId(6)))));
        assert_eq!(parse_command("drill start"), Ok(Some(Command::DrillStart)));
        assert_eq!(parse_command("drill stop"), Ok(Some(Command::DrillStop)));
        assert_eq!(parse_command(""), Ok(None));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(parse_command("verify"), Err("which incident? give its number".into()));
        assert_eq!(parse_command("verify x"), Err("\"x\" is not an incident number".into()));
        assert!(parse_command("action 1 party").unwrap_err().contains("unknown action \"party\""));
        assert!(parse_command("launch").unwrap_err().contains("commands: verify ID"));
    }
}

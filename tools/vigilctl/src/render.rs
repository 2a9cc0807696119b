//! Everything `vigilctl` prints for people, as pure functions of what it
//! received: the status table, alert and status lines, command results,
//! config reports, plugin manifests, runs and tables, OS update jobs, and
//! the progress line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use vigil_plugins::{ActionResult, Directive, InstalledPlugin, Manifest, Metrics, PluginInfo};
use vigil_uplink::{CommandResponse, Reported, StatusDoc, Telemetry, Verdict};

use crate::cli::DeviceCommand;
use crate::fleet::DeviceState;
use crate::os_job::OsJob;

/// The `status` table, one row per device, with a header.
pub fn status_table<'a>(devices: impl IntoIterator<Item = (&'a str, &'a DeviceState)>) -> String {
    let header = ["DEVICE", "STATE", "SESSION", "VERSION", "CAMERAS", "DETECTOR", "OUTBOX", "CONFIG"];
    let mut rows = vec![header.map(String::from).to_vec()];
    for (device, state) in devices {
        let telemetry = state.current_telemetry();
        let status = state.status.as_ref();
        rows.push(vec![
            device.to_string(),
            state_cell(state),
            status.map_or("-".into(), |s| s.session.to_string()),
            status.map_or("-".into(), |s| s.version.clone()),
            telemetry.map_or("-".into(), cameras_cell),
            telemetry.map_or("-".into(), |t| format!("{:.1} fps", t.detector.fps)),
            telemetry.map_or("-".into(), outbox_cell),
            state.reported.as_ref().map_or("-".into(), config_cell),
        ]);
    }
    table(&rows)
}

/// Left-aligned columns two spaces apart, without trailing spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

fn state_cell(state: &DeviceState) -> String {
    match &state.status {
        None => "unknown".into(),
        Some(s) if s.online => match state.uptime_s() {
            Some(up) => format!("online, up {}", duration(up)),
            None => "online".into(),
        },
        Some(s) => {
            let mut cell = format!("offline ({})", s.reason.as_deref().unwrap_or("no reason given"));
            if let Some(t) = state.current_telemetry() {
                let _ = write!(cell, ", last seen {}", short_time(&t.at));
            }
            cell
        }
    }
}

/// "2 streaming, 1 stalled": streaming first, then the other states by name.
fn cameras_cell(t: &Telemetry) -> String {
    if t.cameras.is_empty() {
        return "none".into();
    }
    let mut counts: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    for camera in &t.cameras {
        *counts.entry((camera.state != "streaming", camera.state.as_str())).or_default() += 1;
    }
    counts.iter().map(|((_, state), n)| format!("{n} {state}")).collect::<Vec<_>>().join(", ")
}

fn outbox_cell(t: &Telemetry) -> String {
    match t.outbox.oldest_age_s {
        Some(age) if t.outbox.depth > 0 => format!("{} (oldest {})", t.outbox.depth, duration(age)),
        _ => t.outbox.depth.to_string(),
    }
}

fn config_cell(r: &Reported) -> String {
    let mut cell = version_name(r.running_version);
    if let (Some(desired), Some(Verdict::Rejected)) = (r.desired_version, r.verdict) {
        let _ = write!(cell, " (v{desired} rejected)");
    }
    cell
}

/// `v3`, or `local file` for version 0.
fn version_name(version: u64) -> String {
    if version == 0 { "local file".into() } else { format!("v{version}") }
}

/// One alert on one line: time, drill tag, device, incident, stage, what was
/// seen, where, the actions in force and who did it why. Tolerates missing fields.
pub fn alert_line(alert: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut parts = vec![clock_of(alert["at"].as_str().unwrap_or("?"))];
    if alert["drill"].as_bool().unwrap_or(false) {
        parts.push("DRILL".into());
    }
    parts.push(text(&alert["device"]));
    parts.push(format!("incident {}", alert["incident"].as_u64().map_or("?".into(), |n| n.to_string())));
    parts.push(text(&alert["stage"]));
    let score = alert["score"].as_f64().map_or(String::new(), |s| format!(" {s:.2}"));
    parts.push(format!("{}{score}", text(&alert["label"])));
    let camera = &alert["camera"];
    parts.push(camera["name"].as_str().filter(|n| !n.is_empty()).map_or_else(|| text(&camera["id"]), str::to_string));
    let location = &alert["location"];
    parts.push(format!(
        "building {}, floor {}, {}",
        text(&location["building"]),
        text(&location["floor"]),
        text(&location["zone"])
    ));
    let active: Vec<&str> = alert["active"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !active.is_empty() {
        parts.push(format!("active: {}", active.join(", ")));
    }
    let reason = alert["reason"].as_str().filter(|r| !r.is_empty());
    parts.push(match reason {
        Some(reason) => format!("by {}: {reason}", text(&alert["actor"])),
        None => format!("by {}", text(&alert["actor"])),
    });
    parts.join("  ")
}

/// A device going online or offline, for `watch`; `clock` is when it was seen.
pub fn status_line(clock: &str, device: &str, doc: &StatusDoc) -> String {
    if doc.online {
        format!(
            "{clock}  {device}  online (session {}, vigild {}, started {})",
            doc.session,
            doc.version,
            short_time(&doc.started)
        )
    } else {
        let reason = doc.reason.as_deref().unwrap_or("no reason given");
        format!("{clock}  {device}  OFFLINE ({reason}, session {})", doc.session)
    }
}

/// The result of a command the device carried out.
pub fn done(device: &str, command: &DeviceCommand, response: &CommandResponse) -> String {
    let args = command.args.as_object().map_or(String::new(), |args| {
        args.iter().map(|(k, v)| format!(" {k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
    });
    let mut out = format!("{device}: {}{args}: done", command.name);
    if let Some(data) = &response.data {
        let _ = write!(out, "\n{}", serde_json::to_string_pretty(data).unwrap_or_default());
    }
    out
}

/// `config get`: what the device runs and what became of the last desired config.
pub fn config_report(device: &str, r: &Reported, desired_on_broker: Option<u64>) -> String {
    let mut out = format!("{device} runs config {}\n", version_name(r.running_version));
    if let Some(desired) = r.desired_version {
        let verdict = match r.verdict {
            Some(Verdict::Applied) => "applied",
            Some(Verdict::Rejected) => "rejected",
            Some(Verdict::Unchanged) => "unchanged (already running)",
            None => "no verdict",
        };
        let _ = writeln!(out, "desired config v{desired}: {verdict} at {}", short_time(&r.at));
    }
    if let Some(error) = &r.error {
        let _ = writeln!(out, "error: {error}");
    }
    for change in &r.changes {
        let _ = writeln!(out, "  - {change}");
    }
    match desired_on_broker {
        Some(v) => {
            let _ = writeln!(out, "retained desired config on the broker: v{v}");
        }
        None => out += "no desired config retained on the broker\n",
    }
    out
}

/// `config push`, applied or already running.
pub fn pushed(device: &str, version: u64, r: &Reported) -> String {
    if r.verdict == Some(Verdict::Unchanged) {
        return format!("{device} already runs config v{version} (unchanged)\n");
    }
    let mut out = format!("{device} applied config v{version}\n");
    for change in &r.changes {
        let _ = writeln!(out, "  - {change}");
    }
    out
}

/// `config push`, rejected: the device's reason, and what it keeps running.
pub fn rejected(device: &str, version: u64, r: &Reported) -> String {
    let error = r.error.as_deref().unwrap_or("no reason given");
    format!("{device} rejected config v{version}: {error}; it keeps running {}", version_name(r.running_version))
}

/// The progress line while waiting.
pub fn progress(what: &str, elapsed_s: u64) -> String {
    format!("waiting for {what}… {elapsed_s} s")
}

/// "45s", "12m05s", "3h12m", "2d04h".
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match secs {
        0..60 => format!("{s}s"),
        60..3600 => format!("{m}m{s:02}s"),
        3600..86_400 => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// `2027-01-15T08:00:05.000Z` as `2027-01-15 08:00:05Z`; anything else unchanged.
pub fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(10..11), rfc3339.get(11..19)) {
        (Some(date), Some("T"), Some(time)) if rfc3339.ends_with('Z') => format!("{date} {time}Z"),
        _ => rfc3339.to_string(),
    }
}

/// The time of day of an RFC 3339 UTC time, `08:00:05Z`; anything else unchanged.
pub fn clock_of(rfc3339: &str) -> String {
    let short = short_time(rfc3339);
    match short.split_once(' ') {
        Some((_, time)) => time.to_string(),
        None => short,
    }
}

/// The UTC time of day of a Unix time, `08:00:05Z`.
pub fn utc_clock(unix_s: u64) -> String {
    let s = unix_s % 86_400;
    format!("{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// A manifest for `plugin verify`, one field per line.
pub fn manifest(m: &Manifest, component_bytes: usize) -> String {
    let caps = &m.capabilities;
    let mut asks: Vec<String> = caps.network.iter().map(|n| format!("network {n}")).collect();
    asks.extend(caps.serial.iter().map(|s| format!("serial {s}")));
    if caps.data {
        asks.push("data folder".into());
    }
    let mut out = format!(
        "plugin {} {} (vigil:plugin@{})
",
        m.name, m.version, m.wit
    );
    if !m.description.is_empty() {
        let _ = writeln!(out, "description: {}", m.description);
    }
    let _ = writeln!(out, "actions: {}", list_or(&m.actions, "none"));
    let _ = writeln!(out, "capabilities: {}", list_or(&asks, "none"));
    let _ = writeln!(out, "component: {component_bytes} bytes");
    out
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() { empty.into() } else { items.join(", ") }
}

/// A directive as the device's logs write it: `activate:lockdown`.
pub fn directive_name(directive: Directive) -> String {
    match directive {
        Directive::Activate(a) => format!("activate:{}", a.name()),
        Directive::Revert(a) => format!("revert:{}", a.name()),
        Directive::AllClear => "all-clear".into(),
    }
}

/// What `plugin run` saw the plugin do.
pub fn plugin_run(
    installed: &InstalledPlugin,
    trust: &str,
    event: &str,
    result: Option<&(Directive, Option<ActionResult>)>,
    status: Option<&Value>,
    info: Option<&PluginInfo>,
) -> String {
    let mut out = format!(
        "installed {} {}, {trust}
",
        installed.name, installed.version
    );
    let g = &installed.granted;
    let mut granted: Vec<String> = g.network.iter().map(|n| format!("network {n}")).collect();
    granted.extend(g.serial.iter().map(|s| format!("serial {s}")));
    if g.data {
        granted.push("data folder".into());
    }
    let _ = writeln!(out, "granted: {}", list_or(&granted, "nothing"));
    if !installed.denied.is_empty() {
        let _ = writeln!(out, "denied: {}", installed.denied.join(", "));
    }
    let _ = writeln!(out, "event: {event} sent");
    if let Some((directive, result)) = result {
        let directive = directive_name(*directive);
        let result = match result {
            Some(ActionResult::Done(detail)) => format!("done: {detail}"),
            Some(ActionResult::Failed(detail)) => format!("failed: {detail}"),
            Some(ActionResult::NotApplicable) => "not-applicable".into(),
            None => "no answer: the manifest's actions do not include it".into(),
        };
        let _ = writeln!(out, "action {directive}: {result}");
    }
    let status = status.map_or("none published".into(), Value::to_string);
    let _ = writeln!(out, "status: {status}");
    if let Some(info) = info {
        let m = &info.metrics;
        let _ = writeln!(out, "state: {}", info.state);
        let _ = writeln!(
            out,
            "metrics: calls {}, errors {}, traps {}, restarts {}, dropped {}, denied connects {}, \
             avg latency {} µs, memory {}",
            m.calls,
            m.errors,
            m.traps,
            m.restarts,
            m.dropped,
            m.denied_connects,
            m.avg_latency_us,
            bytes(m.memory_bytes)
        );
    }
    out
}

/// A plugin's counters as JSON, named as in the device's `plugin.list`.
pub fn metrics_json(m: &Metrics) -> Value {
    json!({
        "calls": m.calls, "errors": m.errors, "traps": m.traps, "restarts": m.restarts, "dropped": m.dropped,
        "denied_connects": m.denied_connects, "last_latency_us": m.last_latency_us,
        "avg_latency_us": m.avg_latency_us, "memory_bytes": m.memory_bytes,
    })
}

/// A size as people read it: `512 B`, `64 KiB`, `1.5 MiB`.
fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{} KiB", n / 1024),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// The device's answer to `plugin install`.
pub fn plugin_installed(device: &str, data: Option<&Value>) -> String {
    let field = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str);
    let mut out = format!("{device}: installed {} {}", field("name").unwrap_or("?"), field("version").unwrap_or("?"));
    if let Some(old) = field("replaced") {
        let _ = write!(out, " (replaced {old})");
    }
    out.push('\n');
    let denied: Vec<String> = data
        .and_then(|d| d.get("denied"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
        .unwrap_or_default();
    if !denied.is_empty() {
        let _ = writeln!(out, "denied (not in its grant on {device}): {}", denied.join(", "));
    }
    out
}

/// The `plugin list` table, from the device's `data.plugins`.
pub fn plugin_table(device: &str, plugins: &[Value]) -> String {
    if plugins.is_empty() {
        return format!("{device} has no plugins installed\n");
    }
    let header = ["NAME", "VERSION", "STATE", "CALLS", "ERRORS", "TRAPS", "RESTARTS", "AVG LATENCY", "MEMORY"];
    let mut rows = vec![header.map(String::from).to_vec()];
    for p in plugins {
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let number = |k: &str| p.get(k).and_then(Value::as_u64);
        let count = |k: &str| number(k).map_or("-".into(), |n| n.to_string());
        rows.push(vec![
            text("name"),
            text("version"),
            text("state"),
            count("calls"),
            count("errors"),
            count("traps"),
            count("restarts"),
            number("avg_latency_us").map_or("-".into(), |n| format!("{n} µs")),
            number("memory_bytes").map_or("-".into(), bytes),
        ]);
    }
    table(&rows)
}

/// A phase an OS update job entered, for `os update`: `verifying: RAUC is checking the bundle's signature`.
pub fn os_phase(job: &OsJob) -> String {
    let mut out = job.phase.clone();
    if let Some(p) = job.progress {
        let _ = write!(out, " {p}%");
    }
    if !job.detail.is_empty() {
        let _ = write!(out, ": {}", job.detail);
    }
    out
}

/// What the progress line waits for while an OS update job runs:
/// `test-hs to finish installing (45%: Copying image to rootfs.1)`.
pub fn os_waiting(device: &str, job: Option<&OsJob>) -> String {
    let Some(job) = job else { return format!("{device}'s first report of the update") };
    let mut out = format!("{device} to finish {}", job.phase);
    match (job.progress, job.detail.is_empty()) {
        (Some(p), false) => {
            let _ = write!(out, " ({p}%: {})", job.detail);
        }
        (Some(p), true) => {
            let _ = write!(out, " ({p}%)");
        }
        (None, _) => {}
    }
    out
}

/// `os update`'s last line when the job reached the reboot, or already succeeded.
pub fn os_updated(device: &str, job: &OsJob) -> String {
    let version = job.bundle_version.as_deref().map_or_else(String::new, |v| format!(" {v}"));
    let slot = job.to_boot.as_deref().map_or_else(|| "the new slot".to_string(), |b| format!("slot {b}"));
    if job.is_terminal() {
        return format!("{device}: updated to version{version}, {slot} marked good");
    }
    format!(
        "{device} is rebooting into version{version} ({slot}); it keeps it only if its health check passes: \
         see `vigilctl os status {device}`"
    )
}

/// `os status`: the job, one field per line.
pub fn os_job(device: &str, job: &OsJob) -> String {
    let mut out = format!("{device}: OS update {}: {}", job.id, job.phase);
    if let Some(p) = job.progress.filter(|_| !job.is_terminal()) {
        let _ = write!(out, " {p}%");
    }
    out.push('\n');
    if let Some(bundle) = &job.bundle {
        let _ = writeln!(out, "bundle: {bundle}");
    }
    let version = match (&job.bundle_version, &job.expected_version) {
        (Some(v), Some(want)) if v != want => Some(format!("{v} (expected {want})")),
        (Some(v), _) => Some(v.clone()),
        (None, Some(want)) => Some(format!("{want} expected")),
        (None, None) => None,
    };
    if let Some(v) = version {
        let _ = writeln!(out, "version: {v}");
    }
    if let Some(slot) = &job.to_slot {
        let boot = job.to_boot.as_deref().map_or_else(String::new, |b| format!(" (boot {b})"));
        let from = job.from_boot.as_deref().map_or_else(String::new, |b| format!(", from boot {b}"));
        let _ = writeln!(out, "slot: {slot}{boot}{from}");
    }
    if !job.detail.is_empty() && job.error.as_ref().is_none_or(|(_, m)| *m != job.detail) {
        let _ = writeln!(out, "detail: {}", job.detail);
    }
    if let Some((code, message)) = &job.error {
        let _ = writeln!(out, "error: {code}: {message}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::tests::{reported, status, telemetry};
    use serde_json::json;

    fn alert() -> Value {
        json!({
            "alert_id": "lincoln-hs:7:2", "device": "lincoln-hs", "incident": 7, "seq": 2,
            "stage": "confirmed", "previous_stage": "pending-verification",
            "at": "2027-01-15T08:00:05.000Z", "actor": "operator:sro@district",
            "reason": "verified from the evidence", "drill": false,
            "camera": {"id": "hall-1", "name": "East hall"},
            "location": {"building": "A", "floor": "1", "zone": "east-hall"},
            "label": "handgun", "score": 0.91, "active": ["secure", "lockdown"],
            "times": {}, "glass_to_incident_ms": 37,
            "snapshot_topic": "vigil/v1/lincoln-hs/alerts/7/snapshot"
        })
    }

    #[test]
    fn alert_lines() {
        assert_eq!(
            alert_line(&alert()),
            "08:00:05Z  lincoln-hs  incident 7  confirmed  handgun 0.91  East hall  building A, floor 1, east-hall  \
             active: secure, lockdown  by operator:sro@district: verified from the evidence"
        );
        let mut drill = alert();
        drill["drill"] = json!(true);
        drill["active"] = json!([]);
        drill["camera"]["name"] = json!("");
        drill["actor"] = json!("system");
        drill["reason"] = json!("");
        assert_eq!(
            alert_line(&drill),
            "08:00:05Z  DRILL  lincoln-hs  incident 7  confirmed  handgun 0.91  hall-1  building A, floor 1, east-hall  by system"
        );
        let line = alert_line(&json!({"alert_id": "x"}));
        assert!(line.starts_with("?  ?  incident ?  ?"), "{line}");
    }

    #[test]
    fn status_tables() {
        let online = DeviceState {
            status: Some(status(true, 8)),
            telemetry: Some(telemetry()),
            reported: Some(reported(3, Some((4, Verdict::Rejected)))),
        };
        let offline =
            DeviceState { status: Some(status(false, 2)), telemetry: None, reported: Some(reported(0, None)) };
        let unknown = DeviceState { status: None, telemetry: Some(telemetry()), reported: None };
        let table = status_table([("lincoln-hs", &online), ("roosevelt-ms", &offline), ("z", &unknown)]);
        let expected = "\
DEVICE        STATE                      SESSION  VERSION  CAMERAS                 DETECTOR  OUTBOX            CONFIG
lincoln-hs    online, up 3h12m           8        0.1.0    2 streaming, 1 stalled  14.2 fps  2 (oldest 1m15s)  v3 (v4 rejected)
roosevelt-ms  offline (connection-lost)  2        0.1.0    -                       -         -                 local file
z             unknown                    -        -        2 streaming, 1 stalled  14.2 fps  2 (oldest 1m15s)  -
";
        assert_eq!(table, expected, "\n{table}");
    }

    #[test]
    fn offline_devices_say_when_they_were_last_seen() {
        let state = DeviceState { status: Some(status(false, 2)), telemetry: Some(telemetry()), reported: None };
        assert_eq!(state_cell(&state), "offline (connection-lost), last seen 2027-01-15 11:12:00Z");
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_line("09:00:00Z", "d", &status(true, 8)),
            "09:00:00Z  d  online (session 8, vigild 0.1.0, started 2027-01-15 08:00:00Z)"
        );
        assert_eq!(
            status_line("09:00:00Z", "d", &status(false, 8)),
            "09:00:00Z  d  OFFLINE (connection-lost, session 8)"
        );
    }

    #[test]
    fn command_results() {
        let ok = CommandResponse { request_id: "r".into(), ok: true, error: None, data: None };
        let verify = DeviceCommand { name: "incident.action", args: json!({"incident": 7, "action": "lockdown"}) };
        assert_eq!(done("d", &verify, &ok), "d: incident.action action=lockdown incident=7: done");
        let with_data = CommandResponse { data: Some(json!({"n": 1})), ..ok };
        let rebirth = DeviceCommand { name: "rebirth", args: json!({}) };
        assert_eq!(done("d", &rebirth, &with_data), "d: rebirth: done\n{\n  \"n\": 1\n}");
    }

    #[test]
    fn config_reports() {
        let mut r = reported(3, Some((4, Verdict::Rejected)));
        assert_eq!(
            config_report("d", &r, Some(4)),
            "d runs config v3\ndesired config v4: rejected at 2027-01-15 09:00:00Z\nerror: line 3: cameras[0].fps is 0\n\
             retained desired config on the broker: v4\n"
        );
        assert_eq!(rejected("d", 4, &r), "d rejected config v4: line 3: cameras[0].fps is 0; it keeps running v3");
        r = reported(0, None);
        assert_eq!(
            config_report("d", &r, None),
            "d runs config local file\nno desired config retained on the broker\n"
        );
        r = reported(4, Some((4, Verdict::Applied)));
        r.changes = vec!["camera gym added".into()];
        assert_eq!(pushed("d", 4, &r), "d applied config v4\n  - camera gym added\n");
        r.verdict = Some(Verdict::Unchanged);
        assert_eq!(pushed("d", 4, &r), "d already runs config v4 (unchanged)\n");
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(
            progress("lincoln-hs to answer incident.verify", 3),
            "waiting for lincoln-hs to answer incident.verify… 3 s"
        );
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(725), "12m05s");
        assert_eq!(duration(3 * 3600 + 12 * 60 + 9), "3h12m");
        assert_eq!(duration(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(short_time("2027-01-15T08:00:05.000Z"), "2027-01-15 08:00:05Z");
        assert_eq!(short_time("yesterday"), "yesterday");
        assert_eq!(clock_of("2027-01-15T08:00:05.000Z"), "08:00:05Z");
        assert_eq!(utc_clock(1_800_000_005), "08:00:05Z");
    }

    #[test]
    fn plugin_tables_show_the_devices_counters() {
        let plugins = [json!({
            "name": "door-lock", "version": "1.2.0", "state": "running", "calls": 12, "errors": 1, "traps": 0,
            "restarts": 0, "avg_latency_us": 850, "memory_bytes": 1_572_864, "status": {"doors": "locked"},
        })];
        let table = plugin_table("d", &plugins);
        assert_eq!(
            table,
            "NAME       VERSION  STATE    CALLS  ERRORS  TRAPS  RESTARTS  AVG LATENCY  MEMORY\n\
             door-lock  1.2.0    running  12     1       0      0         850 µs       1.5 MiB\n"
        );
        assert_eq!(plugin_table("d", &[]), "d has no plugins installed\n");
    }

    #[test]
    fn install_answers_name_what_was_replaced_and_denied() {
        let data =
            json!({"name": "door-lock", "version": "1.2.0", "replaced": "1.1.0", "denied": ["network 10.0.0.5:4070"]});
        assert_eq!(
            plugin_installed("d", Some(&data)),
            "d: installed door-lock 1.2.0 (replaced 1.1.0)\ndenied (not in its grant on d): network 10.0.0.5:4070\n"
        );
        let fresh = json!({"name": "door-lock", "version": "1.2.0", "replaced": null, "denied": []});
        assert_eq!(plugin_installed("d", Some(&fresh)), "d: installed door-lock 1.2.0\n");
    }

    fn job(doc: Value) -> OsJob {
        OsJob::parse(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn os_update_phases_and_the_progress_line() {
        let installing = job(json!({"id": "os-1", "phase": "installing", "progress": 45, "detail": "Copying image"}));
        assert_eq!(os_phase(&installing), "installing 45%: Copying image");
        assert_eq!(os_waiting("d", Some(&installing)), "d to finish installing (45%: Copying image)");
        let queued = job(json!({"id": "os-1", "phase": "queued", "progress": null, "detail": ""}));
        assert_eq!((os_phase(&queued), os_waiting("d", Some(&queued))), ("queued".into(), "d to finish queued".into()));
        assert_eq!(os_waiting("d", None), "d's first report of the update");
        let rebooting = job(json!({"id": "os-1", "phase": "rebooting", "bundle_version": "2.0", "to_boot": "B"}));
        assert_eq!(
            os_updated("d", &rebooting),
            "d is rebooting into version 2.0 (slot B); it keeps it only if its health check passes: \
             see `vigilctl os status d`"
        );
    }

    #[test]
    fn os_status_shows_the_job_field_by_field() {
        let failed = job(json!({
            "id": "os-1", "source": {"kind": "url", "location": "https://u/v.raucb"}, "expected_version": "2.0",
            "phase": "failed", "progress": 100, "detail": "health check failed: no frames",
            "bundle_version": "2.0", "from_boot": "A", "to_slot": "rootfs.1", "to_boot": "B",
            "error": {"code": "unhealthy", "message": "health check failed: no frames"},
        }));
        assert_eq!(
            os_job("d", &failed),
            "d: OS update os-1: failed\nbundle: https://u/v.raucb\nversion: 2.0\nslot: rootfs.1 (boot B), from boot A\n\
             error: unhealthy: health check failed: no frames\n"
        );
        let mismatch = job(json!({
            "id": "os-2", "phase": "failed", "expected_version": "3.0", "bundle_version": "2.0", "detail": "x",
            "error": {"code": "version-mismatch", "message": "bundle version 2.0 does not match the expected 3.0"},
        }));
        assert!(
            os_job("d", &mismatch).contains("version: 2.0 (expected 3.0)\ndetail: x\n"),
            "{}",
            os_job("d", &mismatch)
        );
        let running = job(json!({"id": "os-3", "phase": "downloading", "progress": 7, "expected_version": "2.1"}));
        assert_eq!(os_job("d", &running), "d: OS update os-3: downloading 7%\nversion: 2.1 expected\n");
    }
}

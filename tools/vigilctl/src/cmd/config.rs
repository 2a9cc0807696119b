//! `config get` and `config push`: the device's config report, and a new
//! desired config retained on the broker, awaiting the device's verdict.

use std::path::Path;

use anyhow::Context as _;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::json;
use vigil_uplink::config::MAX_DESIRED;
use vigil_uplink::{Desired, Reported, Topics, Verdict};

use super::{Ctx, collect_retained};
use crate::conn::{Conn, Message};
use crate::failure::Failure;
use crate::render;
use crate::topics::{self, Kind};
use crate::wait::Wait;

/// Reads the config file to push.
pub fn read(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))
        .map_err(Failure::usage)
}

/// What the broker retains for a device's config.
struct Retained {
    reported: Option<Reported>,
    desired: Option<u64>,
}

/// Collects the retained config report and desired config of `device`.
async fn retained(conn: &mut Conn, ctx: &Ctx, device: &Topics) -> Result<Retained, Failure> {
    let kinds = [Kind::Reported, Kind::Desired];
    let both = |messages: &[Message]| {
        kinds.iter().all(|k| messages.iter().any(|m| m.topic == topics::filter(Some(device), *k)))
    };
    let (fleet, messages) = collect_retained(conn, ctx, Some(device), &kinds, |_, m| both(m)).await?;
    let desired_topic = device.config_desired();
    let desired = messages.iter().rev().find(|m| m.topic == desired_topic && !m.payload.is_empty()).and_then(|m| {
        Desired::parse(&m.payload)
            .map_err(|e| eprintln!("warning: ignoring the desired config retained for {}: {e}", device.device()))
            .ok()
    });
    let reported = fleet.get(device.device()).and_then(|s| s.reported.clone());
    Ok(Retained { reported, desired: desired.map(|d| d.version) })
}

/// Prints the config report of `device` and the desired version retained for it.
pub async fn get(conn: &mut Conn, ctx: &Ctx, device: &Topics) -> Result<(), Failure> {
    let Retained { reported, desired } = retained(conn, ctx, device).await?;
    let d = device.device();
    let Some(reported) = reported else {
        return Err(Failure::TimedOut(format!(
            "no config report from {d}: is the device id right, and has it ever connected to this broker? try `vigilctl status {d}`"
        )));
    };
    ctx.print(
        || render::config_report(d, &reported, desired),
        || json!({"device": d, "reported": reported, "desired_version": desired}),
    );
    Ok(())
}

/// The version to push: `requested`, or one above anything the device or the
/// broker knows. A version the device already runs (or passed) would not be applied.
fn next_version(requested: Option<u64>, running: u64, desired: Option<u64>) -> Result<u64, Failure> {
    let known = running.max(desired.unwrap_or(0));
    match requested {
        None => Ok(known + 1),
        Some(v) if v <= running => Err(Failure::Usage(format!(
            "--version {v} is not above the version the device runs ({running}), so it would not be applied; \
             leave --version out to push v{}",
            known + 1
        ))),
        Some(v) => Ok(v),
    }
}

/// Publishes `toml` as `device`'s desired config (retained) and waits for its verdict.
pub async fn push(
    conn: &mut Conn,
    ctx: &Ctx,
    device: &Topics,
    toml: String,
    requested: Option<u64>,
) -> Result<(), Failure> {
    let before = retained(conn, ctx, device).await?;
    let running = before.reported.as_ref().map_or(0, |r| r.running_version);
    let version = next_version(requested, running, before.desired)?;
    if let Some(d) = before.desired.filter(|d| version <= *d) {
        eprintln!("warning: replacing the retained desired config v{d} with v{version}");
    }
    let payload = Desired { version, toml }.to_json();
    if payload.len() > MAX_DESIRED {
        return Err(Failure::Usage(format!(
            "the config is {} bytes as a desired document; the device accepts at most {MAX_DESIRED}",
            payload.len()
        )));
    }
    conn.publish(&device.config_desired(), payload, true, PublishProperties::default()).await?;

    let d = device.device();
    let mut wait = Wait::new(format!("{d} to apply config v{version}"), ctx.timeout);
    let report = loop {
        let Some(m) = wait.message(conn).await? else {
            return Err(Failure::TimedOut(format!(
                "{d} did not report on config v{version} within {} s; the config stays retained on the broker \
                 and {d} applies it when it connects: check `vigilctl status {d}`",
                ctx.timeout.as_secs()
            )));
        };
        if m.topic != device.config_reported() || m.payload.is_empty() {
            continue;
        }
        match Reported::parse(&m.payload) {
            // The report retained from before is not the verdict on this push, even for the same version.
            Ok(r) if Some(&r) == before.reported.as_ref() => {}
            Ok(r) if r.desired_version == Some(version) && r.verdict.is_some() => break r,
            Ok(_) => {}
            Err(e) => wait.note(&format!("warning: ignoring {d}'s config report: {e}")),
        }
    };
    drop(wait);
    let json = || json!({"device": d, "version": version, "reported": report});
    if report.verdict == Some(Verdict::Rejected) {
        if ctx.json {
            println!("{}", json());
        }
        return Err(Failure::Rejected(render::rejected(d, version, &report)));
    }
    ctx.print(|| render::pushed(d, version, &report), json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_go_up() {
        assert_eq!(next_version(None, 0, None), Ok(1));
        assert_eq!(next_version(None, 3, Some(5)), Ok(6), "above a rejected desired version");
        assert_eq!(next_version(None, 7, Some(5)), Ok(8));
        assert_eq!(next_version(Some(9), 3, Some(5)), Ok(9));
        assert_eq!(next_version(Some(4), 3, Some(5)), Ok(4), "below the desired one is allowed, with a warning");
        let err = next_version(Some(3), 3, None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("leave --version out to push v4"), "{err}");
    }
}

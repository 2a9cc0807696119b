//! `status`: the retained status, telemetry and config report of every device, or of one.

use serde_json::Value;
use vigil_uplink::Topics;

use super::{Ctx, collect_retained};
use crate::conn::Conn;
use crate::failure::Failure;
use crate::render;
use crate::topics::Kind;

/// Prints the status table (or JSON) of `device`, or of every device seen.
pub async fn run(conn: &mut Conn, ctx: &Ctx, device: Option<&Topics>) -> Result<(), Failure> {
    let kinds = [Kind::Status, Kind::Telemetry, Kind::Reported];
    let id = device.map(Topics::device);
    let (fleet, _) = collect_retained(conn, ctx, device, &kinds, |fleet, _| {
        id.and_then(|d| fleet.get(d)).is_some_and(|state| state.complete())
    })
    .await?;
    match id {
        Some(d) => {
            let Some(state) = fleet.get(d).filter(|s| s.status.is_some()) else {
                return Err(Failure::TimedOut(format!(
                    "no status from {d}: is the device id right, and has it ever connected to this broker?"
                )));
            };
            ctx.print(|| render::status_table([(d, state)]), || state.to_json(d));
        }
        None => {
            if fleet.is_empty() {
                eprintln!("no Vigil device has published its status on {}", conn.url());
            }
            ctx.print(
                || if fleet.is_empty() { String::new() } else { render::status_table(fleet.iter()) },
                || Value::Array(fleet.iter().map(|(d, state)| state.to_json(d)).collect()),
            );
        }
    }
    Ok(())
}

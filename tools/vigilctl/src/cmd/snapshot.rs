//! `snapshot`: a camera's current frame, published by the device as a JPEG
//! on its own topic before it answers the command.

use std::path::Path;

use anyhow::Context as _;
use serde_json::json;
use vigil_uplink::{CommandResponse, Topics};

use super::Ctx;
use crate::cli::DeviceCommand;
use crate::conn::Conn;
use crate::failure::Failure;
use crate::request::{self, Pending};

/// Asks `device` for `camera`'s frame and writes it to `output`.
pub async fn run(conn: &mut Conn, ctx: &Ctx, device: &Topics, camera: &str, output: &Path) -> Result<(), Failure> {
    let frames = device.camera_snapshot(camera);
    let command = DeviceCommand { name: "snapshot", args: json!({"camera": camera}) };
    let pending =
        Pending::send(conn, device, &command, &ctx.operator, ctx.timeout, std::slice::from_ref(&frames)).await?;
    let mut wait = pending.wait();
    let mut response: Option<CommandResponse> = None;
    let mut frame: Option<Vec<u8>> = None;
    let jpeg = loop {
        if let Some(r) = &response {
            request::outcome(r)?;
            if let Some(f) = frame.take_if(|f| expected_size(r).is_none_or(|n| n == f.len())) {
                break f;
            }
        }
        let Some(m) = wait.message(conn).await? else {
            return Err(match response {
                None => pending.timed_out(),
                Some(_) => Failure::TimedOut(format!(
                    "{} answered, but the JPEG did not arrive on {frames} within {} s",
                    device.device(),
                    ctx.timeout.as_secs()
                )),
            });
        };
        if m.topic == frames && !m.payload.is_empty() {
            frame = Some(m.payload);
        } else if let Some(answer) = pending.answer(&m) {
            match answer {
                Ok(r) => response = Some(r),
                Err(e) => wait.note(&format!("warning: ignoring an answer on {}: {e}", m.topic)),
            }
        }
    };
    drop(wait);
    std::fs::write(output, &jpeg)
        .with_context(|| format!("cannot write the snapshot to {}", output.display()))
        .map_err(Failure::usage)?;
    ctx.print(
        || format!("wrote {} bytes from {} camera {camera} to {}", jpeg.len(), device.device(), output.display()),
        || json!({"device": device.device(), "camera": camera, "file": output, "bytes": jpeg.len(), "topic": frames}),
    );
    Ok(())
}

/// The JPEG's size as the response states it.
fn expected_size(r: &CommandResponse) -> Option<usize> {
    r.data.as_ref()?.get("bytes")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

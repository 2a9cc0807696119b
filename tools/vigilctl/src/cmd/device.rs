//! The commands that are one request and one response: incident, drill,
//! rebirth and log-level.

use vigil_uplink::Topics;

use super::Ctx;
use crate::cli::DeviceCommand;
use crate::conn::Conn;
use crate::failure::Failure;
use crate::render;
use crate::request::{self, Pending};

/// Sends `command` to `device` and prints the result.
pub async fn run(conn: &mut Conn, ctx: &Ctx, device: &Topics, command: &DeviceCommand) -> Result<(), Failure> {
    let pending = Pending::send(conn, device, command, &ctx.operator, ctx.timeout, &[]).await?;
    let response = pending.response(conn).await?;
    if ctx.json {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    } else if response.ok {
        println!("{}", render::done(device.device(), command, &response));
    }
    request::outcome(&response)
}

//! The commands, one module per group; each runs on an open connection and
//! prints its own result.

mod config;
mod device;
mod os;
mod plugin;
mod snapshot;
mod status;
mod watch;

use std::time::Duration;

use serde_json::Value;
use vigil_uplink::Topics;

use crate::cli::{Cli, Cmd, ConfigCmd, OsCmd, PluginCmd};
use crate::conn::{Conn, Message};
use crate::failure::Failure;
use crate::fleet::Fleet;
use crate::topics::{self, Kind};
use crate::wait::Wait;

/// How long retained messages are collected after subscribing: the broker
/// sends them right after the SUBACK, so this is ample even far away.
const RETAINED_WINDOW: Duration = Duration::from_secs(1);

/// What every command needs to know besides its own arguments.
pub struct Ctx {
    /// Recorded as the actor of commands.
    pub operator: String,
    /// How long to wait for the broker and the device.
    pub timeout: Duration,
    /// Results as JSON.
    pub json: bool,
}

impl Ctx {
    /// Prints a result on stdout: `text` for people, `json` with `--json`.
    fn print(&self, text: impl FnOnce() -> String, json: impl FnOnce() -> Value) {
        if self.json {
            println!("{}", json());
        } else {
            let text = text();
            print!("{text}");
            if !text.is_empty() && !text.ends_with('\n') {
                println!();
            }
        }
    }

    /// How long retained messages are collected.
    fn retained_window(&self) -> Duration {
        RETAINED_WINDOW.min(self.timeout)
    }
}

impl Ctx {
    fn new(cli: &Cli) -> Ctx {
        Ctx { operator: cli.global.operator(), timeout: cli.global.timeout(), json: cli.global.json }
    }
}

/// Runs the commands that need no broker (plugin keys, packages and the local
/// harness); `None` for the others. Called outside the async runtime: the
/// plugin host blocks, and WASI's blocking calls refuse to run inside one.
pub fn run_local(cli: &Cli) -> Option<Result<(), Failure>> {
    match &cli.command {
        Cmd::Plugin(command) => plugin::local(command, &Ctx::new(cli)),
        _ => None,
    }
}

/// Runs the command line: checks what needs no broker, connects, runs the
/// command and disconnects.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = Ctx::new(&cli);
    let endpoint = cli.global.endpoint()?;
    let desired_toml = match &cli.command {
        Cmd::Config(ConfigCmd::Push { file, .. }) => Some(config::read(file)?),
        _ => None,
    };
    let package = match &cli.command {
        Cmd::Plugin(PluginCmd::Install { package, .. }) => plugin::read_package(package)?,
        _ => Vec::new(),
    };
    let mut conn = Conn::connect(&endpoint, ctx.timeout).await?;
    let result = match cli.command {
        Cmd::Status { device } => status::run(&mut conn, &ctx, device.as_ref()).await,
        Cmd::Watch { device, ack } => watch::run(&mut conn, &ctx, device.as_ref(), ack).await,
        Cmd::Config(ConfigCmd::Get { device }) => config::get(&mut conn, &ctx, &device).await,
        Cmd::Config(ConfigCmd::Push { device, version, .. }) => {
            config::push(&mut conn, &ctx, &device, desired_toml.unwrap_or_default(), version).await
        }
        Cmd::Snapshot { device, camera, output } => snapshot::run(&mut conn, &ctx, &device, &camera, &output).await,
        Cmd::Plugin(PluginCmd::Install { device, chunk_kib, .. }) => {
            plugin::install(&mut conn, &ctx, &device, &package, chunk_kib as usize * 1024).await
        }
        Cmd::Plugin(PluginCmd::List { device }) => plugin::list(&mut conn, &ctx, &device).await,
        Cmd::Os(ref update @ OsCmd::Update { no_wait, stall_timeout, .. }) => {
            let (device, command) = update.update_command().expect("os update is an os.update command");
            os::update(&mut conn, &ctx, device, &command, no_wait, Duration::from_secs(stall_timeout)).await
        }
        Cmd::Os(OsCmd::Status { device }) => os::status(&mut conn, &ctx, &device).await,
        other => match other.device_command() {
            Some((device, command)) => device::run(&mut conn, &ctx, device, &command).await,
            None => Err(Failure::Usage(format!("{other:?} is not a device command"))),
        },
    };
    conn.close().await;
    result
}

/// Collects the retained messages of `kinds` (for one device or all) into a
/// fleet, for the retained window or until `enough` says so; returns the
/// fleet and every message, for kinds the fleet does not keep.
async fn collect_retained(
    conn: &mut Conn,
    ctx: &Ctx,
    device: Option<&Topics>,
    kinds: &[Kind],
    enough: impl Fn(&Fleet, &[Message]) -> bool,
) -> Result<(Fleet, Vec<Message>), Failure> {
    let filters: Vec<String> = kinds.iter().map(|k| topics::filter(device, *k)).collect();
    conn.subscribe(&filters, tokio::time::Instant::now() + ctx.timeout).await?;
    let mut fleet = Fleet::default();
    let mut messages = Vec::new();
    let mut wait = Wait::new("retained messages", ctx.retained_window());
    while let Some(m) = wait.message(conn).await? {
        let Some((from, kind)) = topics::parse(&m.topic) else { continue };
        if let Err(e) = fleet.apply(from.device(), kind, &m.payload) {
            wait.note(&format!("warning: {e}"));
        }
        messages.push(m);
        if enough(&fleet, &messages) {
            break;
        }
    }
    Ok((fleet, messages))
}

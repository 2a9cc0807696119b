//! `os update` and `os status`: the device's A/B OS update, started with the
//! `os.update` command and followed on the retained `os/update` topic,
//! where the device reports its job after every phase or progress change.

use std::time::Duration;

use serde_json::Value;
use vigil_uplink::{CommandResponse, Topics};

use super::Ctx;
use crate::cli::DeviceCommand;
use crate::conn::{Conn, Message};
use crate::failure::Failure;
use crate::os_job::{Follower, OsJob, Step};
use crate::render;
use crate::request::{self, Pending};
use crate::wait::Wait;

/// `os update`: sends `command`, prints the job id and, unless `no_wait`,
/// follows the job until the device reboots into the new slot or the job
/// ends; gives up when the job reports nothing new for `stall`.
pub async fn update(
    conn: &mut Conn,
    ctx: &Ctx,
    device: &Topics,
    command: &DeviceCommand,
    no_wait: bool,
    stall: Duration,
) -> Result<(), Failure> {
    let reports = device.os_update();
    // Subscribed before the command goes out: the device reports `queued`
    // before it answers, and the broker retains only the latest report.
    let pending =
        Pending::send(conn, device, command, &ctx.operator, ctx.timeout, std::slice::from_ref(&reports)).await?;
    let mut early = Vec::new();
    let response = {
        let mut wait = pending.wait();
        loop {
            let Some(m) = wait.message(conn).await? else { return Err(pending.timed_out()) };
            if m.topic == reports {
                early.push(m);
                continue;
            }
            match pending.answer(&m) {
                Some(Ok(response)) => break response,
                Some(Err(e)) => wait.note(&format!("warning: ignoring an answer on {}: {e}", m.topic)),
                None => {}
            }
        }
    };
    let d = device.device();
    if ctx.json && (!response.ok || no_wait) {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    }
    request::outcome(&response)?;
    let id = job_id(&response).ok_or_else(|| Failure::Refused {
        code: "bad-response".into(),
        message: format!("{d} accepted os.update but did not say which job runs it (no data.job in its answer)"),
    })?;
    if !ctx.json {
        println!("{d}: os.update accepted: job {id}");
    }
    if no_wait {
        return Ok(());
    }
    follow(conn, ctx, device, id, early, stall).await
}

/// The job id in the device's answer to `os.update`.
fn job_id(response: &CommandResponse) -> Option<&str> {
    response.data.as_ref()?.get("job")?.as_str().filter(|id| !id.is_empty())
}

/// Prints the reports of job `id` (those received with the answer first)
/// until it reaches the reboot or its end, which becomes the result.
async fn follow(
    conn: &mut Conn,
    ctx: &Ctx,
    device: &Topics,
    id: &str,
    early: Vec<Message>,
    stall: Duration,
) -> Result<(), Failure> {
    let (d, topic) = (device.device(), device.os_update());
    let mut follower = Follower::new(id);
    let mut early = early.into_iter();
    // The stall timeout counts from the job's last report.
    let mut wait = Wait::new(render::os_waiting(d, None), stall);
    loop {
        let m = match early.next() {
            Some(m) => m,
            None => wait.message(conn).await?.ok_or_else(|| stalled(d, id, follower.last(), stall))?,
        };
        if m.topic != topic {
            continue;
        }
        let step = match follower.on_report(&m.payload) {
            Ok(step) => step,
            Err(e) => {
                wait.note(&format!("warning: ignoring a report on {topic}: {e}"));
                continue;
            }
        };
        if ctx.json
            && let Step::Progress(job) | Step::Phase(job) | Step::Done(job) = &step
        {
            wait.note_out(&job.raw.to_string());
        }
        match step {
            Step::Ignore => {}
            Step::Progress(job) => wait.renew(render::os_waiting(d, Some(&job)), stall),
            Step::Phase(job) => {
                if !ctx.json {
                    wait.note_out(&render::os_phase(&job));
                }
                wait.renew(render::os_waiting(d, Some(&job)), stall);
            }
            Step::Done(job) => {
                drop(wait);
                let outcome = job.outcome().unwrap_or(Ok(()));
                if outcome.is_ok() && !ctx.json {
                    if !job.is_terminal() {
                        println!("{}", render::os_phase(&job));
                    }
                    println!("{}", render::os_updated(d, &job));
                }
                return outcome;
            }
        }
    }
}

/// The failure when the job went quiet.
fn stalled(device: &str, id: &str, last: Option<&OsJob>, stall: Duration) -> Failure {
    let last = last.map_or_else(|| "no report at all".to_string(), |job| format!("last: {}", render::os_phase(job)));
    Failure::TimedOut(format!(
        "job {id} on {device} reported nothing new for {} s ({last}); it may still be running: \
         check `vigilctl os status {device}`",
        stall.as_secs()
    ))
}

/// `os status`: the job retained on the device's `os/update` topic.
pub async fn status(conn: &mut Conn, ctx: &Ctx, device: &Topics) -> Result<(), Failure> {
    let topic = device.os_update();
    conn.subscribe(std::slice::from_ref(&topic), tokio::time::Instant::now() + ctx.timeout).await?;
    let d = device.device();
    let mut wait = Wait::new(format!("{d}'s OS update job"), ctx.retained_window());
    let job = loop {
        let Some(m) = wait.message(conn).await? else {
            return Err(Failure::TimedOut(format!(
                "no OS update job of {d} is retained on the broker: it has not run one, or the device id is wrong \
                 (check `vigilctl status {d}`)"
            )));
        };
        if m.topic != topic || m.payload.is_empty() {
            continue;
        }
        match OsJob::parse(&m.payload) {
            Ok(job) => break job,
            Err(e) => wait.note(&format!("warning: ignoring the report retained on {topic}: {e}")),
        }
    };
    drop(wait);
    ctx.print(|| render::os_job(d, &job), || Value::clone(&job.raw));
    Ok(())
}

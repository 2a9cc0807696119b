//! `watch`: alerts and online/offline changes as they happen, until Ctrl-C;
//! optionally acknowledging each alert as the district back end does.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::Value;
use tokio::time::Instant;
use vigil_uplink::Topics;

use super::Ctx;
use crate::conn::{Conn, Event, Message};
use crate::failure::Failure;
use crate::fleet::{Fleet, Update};
use crate::render;
use crate::topics::{self, Kind};

/// How long one wait for the next event lasts; `watch` just waits again.
const IDLE: Duration = Duration::from_secs(3600);

/// The state of a watch: devices' status, and the alert ids already shown.
struct Watch {
    fleet: Fleet,
    shown: HashSet<String>,
    ack: bool,
    json: bool,
}

/// Prints alerts and status changes of `device` (or all devices) until interrupted.
pub async fn run(conn: &mut Conn, ctx: &Ctx, device: Option<&Topics>, ack: bool) -> Result<(), Failure> {
    let filters = [topics::filter(device, Kind::Alerts), topics::filter(device, Kind::Status)];
    conn.subscribe(&filters, Instant::now() + ctx.timeout).await?;
    let whom = device.map_or_else(|| "every device".to_string(), |t| t.device().to_string());
    eprintln!("watching alerts and status of {whom} on {} (Ctrl-C to stop)", conn.url());
    let mut watch = Watch { fleet: Fleet::default(), shown: HashSet::new(), ack, json: ctx.json };
    let mut last_loss = None;
    loop {
        match conn.next(Instant::now() + IDLE).await {
            None => {}
            Some(Event::Message(m)) => watch.on_message(conn, m).await?,
            // Said once per reason, not at every retry.
            Some(Event::Lost(why)) if last_loss.as_ref() != Some(&why) => {
                eprintln!("lost the broker: {why}; reconnecting");
                last_loss = Some(why);
            }
            Some(Event::Lost(_)) => {}
            Some(Event::Reconnected) => {
                last_loss = None;
                conn.subscribe(&filters, Instant::now() + ctx.timeout).await?;
                eprintln!("connected again to {}", conn.url());
            }
            Some(Event::NotDelivered { topic, no_subscribers: false, reason }) => {
                eprintln!("warning: {} refused the message on {topic}: {reason}", conn.url());
            }
            Some(Event::NotDelivered { .. }) => {}
        }
    }
}

impl Watch {
    async fn on_message(&mut self, conn: &mut Conn, m: Message) -> Result<(), Failure> {
        let Some((device, kind)) = topics::parse(&m.topic) else { return Ok(()) };
        match kind {
            Kind::Alerts => self.on_alert(conn, &device, &m.payload).await,
            Kind::Status => {
                match self.fleet.apply(device.device(), kind, &m.payload) {
                    Ok(Update::StatusChanged(doc)) => {
                        let line = render::status_line(&now_clock(), device.device(), &doc);
                        // With --json, stdout carries alerts only.
                        if self.json { eprintln!("{line}") } else { println!("{line}") }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("warning: {e}"),
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Shows an alert the first time its id is seen, and acknowledges it every
    /// time: a repeat means the device did not get the previous ack.
    async fn on_alert(&mut self, conn: &mut Conn, device: &Topics, payload: &[u8]) -> Result<(), Failure> {
        let alert: Value = match serde_json::from_slice(payload) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                eprintln!("warning: ignoring an alert from {} that is not a JSON object", device.device());
                return Ok(());
            }
        };
        let Some(id) = alert["alert_id"].as_str() else {
            eprintln!("warning: ignoring an alert from {} without an alert_id", device.device());
            return Ok(());
        };
        if self.ack {
            conn.publish(&device.ack(), id.as_bytes().to_vec(), false, PublishProperties::default()).await?;
        }
        if self.shown.insert(id.to_string()) {
            if self.json { println!("{alert}") } else { println!("{}", render::alert_line(&alert)) }
        }
        Ok(())
    }
}

/// The time of day now, UTC.
fn now_clock() -> String {
    render::utc_clock(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

//! A command to a device and its correlated response.
//!
//! The response topic (under the device's prefix, named after our client
//! id) is subscribed to before the command is published, so the answer
//! cannot slip past. The command carries the request id as MQTT 5
//! correlation data and expires on the broker when we stop waiting, so a
//! device that connects later does not act on a command nobody awaits.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use tokio::time::Instant;
use vigil_uplink::{CommandResponse, Topics, command_json};

use crate::cli::DeviceCommand;
use crate::conn::{Conn, Message};
use crate::failure::Failure;
use crate::wait::Wait;

/// A command sent, waiting for its response.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    device: String,
    name: &'static str,
    request_id: String,
    command_topic: String,
    response_topic: String,
    timeout: Duration,
}

impl Pending {
    /// Subscribes to the response topic (and to `also`), then publishes `command` to the device.
    pub async fn send(
        conn: &mut Conn,
        topics: &Topics,
        command: &DeviceCommand,
        operator: &str,
        timeout: Duration,
        also: &[String],
    ) -> Result<Pending, Failure> {
        let response_topic = topics.response(conn.client_id());
        let filters: Vec<String> = std::iter::once(response_topic.clone()).chain(also.iter().cloned()).collect();
        conn.subscribe(&filters, Instant::now() + timeout).await?;
        let request_id = conn.next_request_id();
        let pending = Pending {
            device: topics.device().to_string(),
            name: command.name,
            command_topic: topics.command(command.name),
            request_id,
            response_topic,
            timeout,
        };
        let payload = command_json(&pending.request_id, operator, command.args.clone());
        conn.publish(&pending.command_topic, payload, false, pending.properties()).await?;
        Ok(pending)
    }

    /// The command's MQTT 5 properties: where to answer, what to echo, when to give up.
    fn properties(&self) -> PublishProperties {
        PublishProperties {
            response_topic: Some(self.response_topic.clone()),
            correlation_data: Some(self.request_id.as_bytes().to_vec().into()),
            message_expiry_interval: Some(u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX)),
            content_type: Some("application/json".into()),
            ..PublishProperties::default()
        }
    }

    /// A wait for the response, ended early if the device is not subscribed.
    pub fn wait(&self) -> Wait {
        let d = &self.device;
        let unheard = format!(
            "nothing subscribes to {}: {d} is not connected to this broker (and keeps no session there), \
             so it cannot answer {}; check `vigilctl status {d}`",
            self.command_topic, self.name
        );
        Wait::new(format!("{d} to answer {}", self.name), self.timeout).unless_unheard(&self.command_topic, unheard)
    }

    /// Whether `m` is the response to this command: `None` if it is not,
    /// else the response or why it cannot be read.
    pub fn answer(&self, m: &Message) -> Option<Result<CommandResponse, String>> {
        if m.topic != self.response_topic {
            return None;
        }
        if m.correlation.as_ref().is_some_and(|c| c != self.request_id.as_bytes()) {
            return None;
        }
        match CommandResponse::parse(&m.payload) {
            Err(e) => Some(Err(e)),
            Ok(r) if r.request_id != self.request_id => None,
            Ok(r) => Some(Ok(r)),
        }
    }

    /// The failure when no answer came.
    pub fn timed_out(&self) -> Failure {
        Failure::TimedOut(format!(
            "{} did not answer {} within {} s: is it online? try `vigilctl status {}`",
            self.device,
            self.name,
            self.timeout.as_secs(),
            self.device
        ))
    }

    /// Waits for the response, warning about responses that cannot be read.
    pub async fn response(&self, conn: &mut Conn) -> Result<CommandResponse, Failure> {
        let mut wait = self.wait();
        loop {
            let Some(m) = wait.message(conn).await? else { return Err(self.timed_out()) };
            match self.answer(&m) {
                Some(Ok(response)) => return Ok(response),
                Some(Err(e)) => wait.note(&format!("warning: ignoring an answer on {}: {e}", m.topic)),
                None => {}
            }
        }
    }
}

/// The response as a result: a refusal becomes [`Failure::Refused`] with the device's code.
pub fn outcome(response: &CommandResponse) -> Result<(), Failure> {
    if response.ok {
        return Ok(());
    }
    let (code, message) = match &response.error {
        Some(e) => (e.code.clone(), e.message.clone()),
        None => ("unknown".into(), "the device refused without saying why".into()),
    };
    Err(Failure::Refused { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        let t = Topics::new("d").unwrap();
        Pending {
            device: "d".into(),
            name: "incident.verify",
            request_id: "vigilctl-1-ab-1".into(),
            command_topic: t.command("incident.verify"),
            response_topic: t.response("vigilctl-1-ab"),
            timeout: Duration::from_secs(10),
        }
    }

    fn message(topic: &str, correlation: Option<&str>, payload: &[u8]) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.to_vec(),
            retain: false,
            correlation: correlation.map(|c| c.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_command_says_where_to_answer_and_when_to_give_up() {
        let props = pending().properties();
        assert_eq!(props.response_topic.as_deref(), Some("vigil/v1/d/responses/vigilctl-1-ab"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"vigilctl-1-ab-1"[..]));
        assert_eq!(props.message_expiry_interval, Some(10));
    }

    #[test]
    fn responses_are_matched_by_topic_and_correlation() {
        let p = pending();
        let ok = vigil_uplink::response_json("vigilctl-1-ab-1", Ok(()));
        let topic = "vigil/v1/d/responses/vigilctl-1-ab";
        assert!(p.answer(&message(topic, Some("vigilctl-1-ab-1"), &ok)).unwrap().unwrap().ok);
        assert!(p.answer(&message(topic, None, &ok)).unwrap().is_ok(), "the request id suffices");
        assert_eq!(p.answer(&message(topic, Some("other"), &ok)), None);
        assert_eq!(p.answer(&message("vigil/v1/d/status", Some("vigilctl-1-ab-1"), &ok)), None);
        let other = vigil_uplink::response_json("r-9", Ok(()));
        assert_eq!(p.answer(&message(topic, None, &other)), None);
        let garbage = p.answer(&message(topic, Some("vigilctl-1-ab-1"), b"nope")).unwrap().unwrap_err();
        assert!(garbage.starts_with("not a Vigil command response"), "{garbage}");
    }

    #[test]
    fn refusals_carry_the_devices_code() {
        let bytes = vigil_uplink::response_json("r", Err(("unknown-incident", "incident 9 is not open")));
        let refused = CommandResponse::parse(&bytes).unwrap();
        assert_eq!(
            outcome(&refused),
            Err(Failure::Refused { code: "unknown-incident".into(), message: "incident 9 is not open".into() })
        );
        assert_eq!(outcome(&CommandResponse::parse(&vigil_uplink::response_json("r", Ok(()))).unwrap()), Ok(()));
        let timed_out = pending().timed_out().to_string();
        assert_eq!(
            timed_out,
            "timed out: d did not answer incident.verify within 10 s: is it online? try `vigilctl status d`"
        );
    }
}

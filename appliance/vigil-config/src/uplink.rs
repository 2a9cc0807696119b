//! `[uplink]`: how the box reaches the district's MQTT broker, or runs its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{Secret, resolve};

/// The embedded broker's default address: loopback only, since it has no authentication.
pub const DEFAULT_EMBEDDED_LISTEN: &str = "127.0.0.1:1883";

/// `[uplink]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct UplinkConfig {
    /// Where the broker is.
    pub broker: Broker,
    /// The MQTT client id; defaults to the device id.
    pub client_id: String,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// How long the broker keeps the device's session (and commands queued for it) while it is offline.
    pub session_expiry: Duration,
    /// How often telemetry is published.
    pub telemetry_interval: Duration,
    /// When an alert may leave the outbox.
    pub ack: AckPolicy,
    /// An alert not acknowledged for this long is published again.
    pub resend_after: Duration,
    /// The most messages the outbox holds; a full outbox refuses new alerts loudly.
    pub outbox_max: u64,
}

/// Which broker the uplink talks to.
#[derive(Clone, Debug, PartialEq)]
pub enum Broker {
    /// No uplink at all: incidents stay in the local store (tests, benchmarks, air-gapped sites).
    None,
    /// Run the embedded broker on this loopback address and publish to it.
    Embedded {
        /// Where it listens.
        listen: SocketAddr,
    },
    /// The district's broker.
    Remote(RemoteBroker),
}

/// A district broker's address and credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteBroker {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS settings (`mqtts://`); `None` for plain `mqtt://`.
    pub tls: Option<TlsFiles>,
    /// MQTT user name.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<Secret>,
}

/// TLS trust and the device's own certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    /// PEM bundle of the CAs that may sign the broker's certificate; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and private key for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// When an alert is deleted from the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckPolicy {
    /// When the district publishes the alert's id on `ack` (end-to-end).
    District,
    /// When the broker acknowledges the QoS 1 publish (standalone schools with no district back end).
    Broker,
}

impl UplinkConfig {
    /// The files this config names, for the existence check at startup.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let Broker::Remote(RemoteBroker { tls: Some(tls), .. }) = &self.broker else { return Vec::new() };
        let mut files = Vec::new();
        if let Some(ca) = &tls.ca {
            files.push(("uplink.ca", ca.as_path()));
        }
        if let Some((cert, key)) = &tls.client {
            files.push(("uplink.cert", cert.as_path()));
            files.push(("uplink.key", key.as_path()));
        }
        files
    }
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUplink {
    broker: Option<String>,
    listen: Option<String>,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    keep_alive_s: Option<u64>,
    session_expiry_s: Option<u64>,
    telemetry_s: Option<u64>,
    ack: Option<String>,
    resend_after_s: Option<u64>,
    outbox_max: Option<u64>,
}

impl RawUplink {
    pub(crate) fn validate(&self, device_id: &str, base: &Path) -> Result<UplinkConfig, String> {
        let broker_text = self.broker.as_deref().unwrap_or("embedded");
        let broker = match broker_text {
            "none" => Broker::None,
            "embedded" => {
                let listen = self.listen.as_deref().unwrap_or(DEFAULT_EMBEDDED_LISTEN);
                let listen: SocketAddr = listen.parse().map_err(|_| {
                    format!("uplink.listen {listen:?}: expected an address with a port, like \"127.0.0.1:1883\"")
                })?;
                if !listen.ip().is_loopback() {
                    return Err(format!(
                        "uplink.listen {listen}: the embedded broker has no authentication, so it listens on loopback \
                         only (127.0.0.1 or ::1); for a broker reachable from the network configure a real one as \
                         uplink.broker = \"mqtts://...\""
                    ));
                }
                Broker::Embedded { listen }
            }
            url => Broker::Remote(self.remote(url, base)?),
        };
        if !matches!(broker, Broker::Embedded { .. }) && self.listen.is_some() {
            return Err("uplink.listen applies only to the embedded broker (uplink.broker = \"embedded\")".into());
        }
        if !matches!(broker, Broker::Remote(_)) {
            let remote_only = [
                ("ca", self.ca.is_some()),
                ("cert", self.cert.is_some()),
                ("key", self.key.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
            ];
            if let Some((field, _)) = remote_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "uplink.{field} applies only to a district broker (uplink.broker = \"mqtts://...\")"
                ));
            }
        }

        let client_id = self.client_id.clone().unwrap_or_else(|| device_id.to_string());
        if client_id.is_empty() || client_id.len() > 128 || client_id.chars().any(|c| c.is_control()) {
            return Err(format!("uplink.client_id {client_id:?}: use 1 to 128 printable characters"));
        }
        let seconds = |field: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
            let v = value.unwrap_or(default);
            if range.contains(&v) {
                Ok(Duration::from_secs(v))
            } else {
                Err(format!("uplink.{field} is {v}: use {} to {} seconds", range.start(), range.end()))
            }
        };
        let ack = match self.ack.as_deref() {
            None if matches!(broker, Broker::Remote(_)) => AckPolicy::District,
            None => AckPolicy::Broker,
            Some("district") => AckPolicy::District,
            Some("broker") => AckPolicy::Broker,
            Some(other) => return Err(format!("uplink.ack {other:?}: expected \"district\" or \"broker\"")),
        };
        let outbox_max = self.outbox_max.unwrap_or(100_000);
        if !(100..=10_000_000).contains(&outbox_max) {
            return Err(format!("uplink.outbox_max is {outbox_max}: use 100 to 10000000 messages"));
        }
        Ok(UplinkConfig {
            broker,
            client_id,
            keep_alive: seconds("keep_alive_s", self.keep_alive_s, 30, 5..=3600)?,
            session_expiry: seconds("session_expiry_s", self.session_expiry_s, 3600, 0..=7 * 24 * 3600)?,
            telemetry_interval: seconds("telemetry_s", self.telemetry_s, 30, 1..=3600)?,
            ack,
            resend_after: seconds("resend_after_s", self.resend_after_s, 60, 1..=24 * 3600)?,
            outbox_max,
        })
    }

    fn remote(&self, url: &str, base: &Path) -> Result<RemoteBroker, String> {
        let (host, port, tls) = parse_broker_url(url).map_err(|e| format!("uplink.broker {e}"))?;
        if self.password.is_some() && self.username.is_none() {
            return Err("uplink.password is set without uplink.username".into());
        }
        let tls = if tls {
            let client = match (&self.cert, &self.key) {
                (Some(c), Some(k)) => Some((resolve(base, c), resolve(base, k))),
                (None, None) => None,
                _ => return Err("uplink.cert and uplink.key go together: give both for mutual TLS, or neither".into()),
            };
            Some(TlsFiles { ca: self.ca.as_deref().map(|c| resolve(base, c)), client })
        } else {
            if self.ca.is_some() || self.cert.is_some() || self.key.is_some() {
                return Err(format!(
                    "uplink.ca, cert and key need TLS: write the broker as {}",
                    url.replacen("mqtt://", "mqtts://", 1)
                ));
            }
            None
        };
        Ok(RemoteBroker {
            host,
            port,
            tls,
            username: self.username.clone(),
            password: self.password.clone().map(Secret::new),
        })
    }
}

/// Parses `mqtts://host[:port]` (TLS, default port 8883) or `mqtt://host[:port]`
/// (default 1883) into host, port and whether TLS is on. The error starts with
/// the URL in quotes, for the caller to prefix with the field's name.
pub fn parse_broker_url(url: &str) -> Result<(String, u16, bool), String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!(
            "{url:?}: expected \"embedded\", \"none\", or a URL mqtts://host[:port] (TLS) or mqtt://host[:port]"
        ));
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.contains(['/', '@', '?', '#']) || hostport.chars().any(char::is_whitespace) {
        return Err(format!("{url:?}: give only host and port; credentials go in uplink.username and uplink.password"));
    }
    let (host, port) =
        split_host_port(hostport).ok_or_else(|| format!("{url:?}: the port is not a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(format!("{url:?}: the URL has no host"));
    }
    Ok((host.to_string(), port.unwrap_or(if tls { 8883 } else { 1883 }), tls))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when the port is not a valid number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).map(|p| (host, Some(p))),
    }
}

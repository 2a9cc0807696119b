//! The plugin's configuration: the operator's `[plugins.grant.pa-paging.config]`,
//! read raw from JSON and validated into [`Config`] with errors that name the field.

use std::net::SocketAddr;

use serde::Deserialize;
use vigil_sip::Credentials;

/// The directives `announce` may name, and its default: all of them.
const DIRECTIVES: [&str; 7] = ["hold", "secure", "lockdown", "evacuate", "shelter", "all-clear", "revert"];

/// The config as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    server: String,
    extension: String,
    user: Option<String>,
    password: Option<String>,
    from_user: Option<String>,
    repeat: Option<u32>,
    pause_ms: Option<u64>,
    answer_timeout_ms: Option<u64>,
    retries: Option<u32>,
    retry_delay_ms: Option<u64>,
    announce: Option<Vec<String>>,
    drills: Option<bool>,
}

/// The validated config.
pub struct Config {
    /// The SIP server (PBX or paging gateway) requests go to.
    pub server: SocketAddr,
    /// The paging extension's URI.
    pub target: String,
    /// Digest credentials, if the server asks for them.
    pub credentials: Option<Credentials>,
    /// The user part of `From`.
    pub from_user: String,
    /// How many times the message plays in one call.
    pub repeat: u32,
    /// Silence between repetitions.
    pub pause_ms: u64,
    /// How long the call may take to be answered.
    pub answer_timeout_ms: u64,
    /// Further attempts after a failure that may pass.
    pub retries: u32,
    /// The wait before each further attempt.
    pub retry_delay_ms: u64,
    /// The directives announced (`DIRECTIVES` names).
    pub announce: Vec<String>,
    /// Whether drills are announced (with the drill message).
    pub drills: bool,
}

impl Config {
    /// Reads and validates the plugin's config.
    pub fn load() -> Result<Config, String> {
        let raw: Raw = vigil_plugin_sdk::config()?;
        Config::validate(raw).map_err(|e| format!("invalid pa-paging config: {e}"))
    }

    fn validate(raw: Raw) -> Result<Config, String> {
        // The sandbox resolves no names, so the server must be an address.
        let server: SocketAddr = raw.server.parse().map_err(|_| {
            format!(
                "server: {:?} is not IP:port (the plugin cannot resolve names; write e.g. 10.0.0.5:5060)",
                raw.server
            )
        })?;
        let extension = raw.extension.trim();
        if extension.is_empty() || extension.contains(char::is_whitespace) {
            return Err(format!("extension: {:?} is not an extension or a sip: URI", raw.extension));
        }
        let target =
            if extension.starts_with("sip:") { extension.to_string() } else { format!("sip:{extension}@{server}") };
        let credentials = match (raw.user, raw.password) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            (None, None) => None,
            (Some(_), None) => return Err("user is set without password".into()),
            (None, Some(_)) => return Err("password is set without user".into()),
        };
        let repeat = in_range("repeat", raw.repeat.unwrap_or(2), 1, 5)?;
        let pause_ms = in_range("pause_ms", raw.pause_ms.unwrap_or(1000), 0, 5000)?;
        let answer_timeout_ms = in_range("answer_timeout_ms", raw.answer_timeout_ms.unwrap_or(5000), 500, 30_000)?;
        let retries = in_range("retries", raw.retries.unwrap_or(1), 0, 5)?;
        let retry_delay_ms = in_range("retry_delay_ms", raw.retry_delay_ms.unwrap_or(1000), 0, 10_000)?;
        let announce = raw.announce.unwrap_or_else(|| DIRECTIVES.iter().map(|d| d.to_string()).collect());
        if let Some(bad) = announce.iter().find(|a| !DIRECTIVES.contains(&a.as_str())) {
            return Err(format!("announce: unknown directive {bad:?}; use some of {DIRECTIVES:?}"));
        }
        Ok(Config {
            server,
            target,
            credentials,
            from_user: raw.from_user.unwrap_or_else(|| "vigil".into()),
            repeat,
            pause_ms,
            answer_timeout_ms,
            retries,
            retry_delay_ms,
            announce,
            drills: raw.drills.unwrap_or(true),
        })
    }

    /// Whether directive `key` (a `DIRECTIVES` name) is announced.
    pub fn announces(&self, key: &str) -> bool {
        self.announce.iter().any(|a| a == key)
    }

    /// The longest a page of a message of `message_ms` can take, every retry
    /// failing as late as possible: what the call deadline must cover.
    pub fn worst_case_ms(&self, message_ms: u64, hangup_ms: u64) -> u64 {
        let audio = message_ms * u64::from(self.repeat) + self.pause_ms * u64::from(self.repeat - 1);
        let attempt = self.answer_timeout_ms + audio + hangup_ms;
        attempt * u64::from(self.retries + 1) + self.retry_delay_ms * u64::from(self.retries)
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(field: &str, value: T, min: T, max: T) -> Result<T, String> {
    if value < min || value > max {
        return Err(format!("{field} is {value}: use {min} to {max}"));
    }
    Ok(value)
}

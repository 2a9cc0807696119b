//! Commands from the district: a JSON payload on `cmd/<name>` parsed into a
//! typed request, and the JSON verdict sent to the MQTT 5 response topic.
//!
//! ```json
//! {"request_id": "r-1", "operator": "sro@district", "args": {"incident": 7}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigil_core::CameraId;
use vigil_core::incident::{Actor, Command, IncidentId};
use vigil_core::playbook::SrpAction;

/// The largest command payload accepted, in bytes; checked before parsing.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The largest `plugin.install` payload (the package travels base64-encoded inside it).
pub const MAX_INSTALL_PAYLOAD: usize = 4 * 1024 * 1024;

/// The largest package a chunked `plugin.install` may assemble, in bytes.
pub const MAX_UPLOAD: usize = 32 * 1024 * 1024;

/// The most parts a chunked `plugin.install` may have.
pub const MAX_UPLOAD_PARTS: u32 = 4096;

/// The longest `request_id` or `operator`, in characters.
pub const MAX_IDENTITY: usize = 128;

/// Every command name, as it appears in the topic.
pub const COMMANDS: [&str; 15] = [
    "incident.verify",
    "incident.dismiss",
    "incident.action",
    "incident.all-clear",
    "drill.start",
    "drill.stop",
    "snapshot",
    "rebirth",
    "log-level",
    "plugin.install",
    "plugin.remove",
    "plugin.list",
    "plugin.disable",
    "plugin.enable",
    "os.update",
];

/// The log levels `log-level` accepts.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// What a command asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum UplinkCommand {
    /// A command for the incident book.
    Incident(Command),
    /// Publish a fresh snapshot from a camera.
    Snapshot {
        /// The camera.
        camera: CameraId,
    },
    /// Publish birth, config and status again.
    Rebirth,
    /// Change the log level; one of [`LOG_LEVELS`].
    LogLevel(String),
    /// Install or upgrade a signed plugin package.
    PluginInstall {
        /// The package bytes (sent base64-encoded).
        package: Vec<u8>,
    },
    /// One part of a package sent in pieces (for brokers with small
    /// message limits); the device installs it when every part has come.
    PluginUpload(UploadPart),
    /// Remove an installed plugin.
    PluginRemove {
        /// Its name.
        name: String,
    },
    /// List the installed plugins and their states.
    PluginList,
    /// Stop an installed plugin (`plugin.disable`, kept across restarts) or
    /// start it again (`plugin.enable`).
    PluginEnabled {
        /// Its name.
        name: String,
        /// `true` for `plugin.enable`.
        enabled: bool,
    },
    /// Install an OS bundle with RAUC, reboot into it and keep it only if
    /// healthy; progress on the `os/update` topic.
    OsUpdate {
        /// An absolute path on the device or an `http(s)://` URL.
        bundle: String,
        /// The version the bundle must carry, if the requester says.
        version: Option<String>,
    },
}

/// One piece of a chunked `plugin.install`:
/// `{"upload": "u-1", "part": 0, "parts": 3, "sha256": "<hex of the whole package>", "data": "<base64>"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadPart {
    /// Names the upload: 1 to 64 of `A-Z a-z 0-9 - _`.
    pub upload: String,
    /// This part's index, from 0.
    pub part: u32,
    /// How many parts the package has, 1 to [`MAX_UPLOAD_PARTS`].
    pub parts: u32,
    /// SHA-256 of the whole package, checked once it is assembled.
    pub sha256: [u8; 32],
    /// This part's bytes.
    pub data: Vec<u8>,
}

/// A parsed command with who sent it and how to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct UplinkRequest {
    /// The sender's id for this request, echoed in the response.
    pub request_id: String,
    /// Who issued it, as the district identifies its operators.
    pub operator: String,
    /// What to do.
    pub command: UplinkCommand,
}

impl UplinkRequest {
    /// The operator as the audit trail records them.
    pub fn actor(&self) -> Actor {
        Actor::Operator(self.operator.clone())
    }
}

/// What kind of failure a [`CommandParseError`] is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not JSON, or a value of the wrong type.
    Malformed,
    /// The topic names no known command.
    UnknownCommand,
    /// A required field is absent.
    MissingField,
    /// A field has the right type but an unacceptable value.
    BadArgument,
    /// The payload is over [`MAX_PAYLOAD`].
    TooLarge,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests and docs.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Malformed,
        ErrorKind::UnknownCommand,
        ErrorKind::MissingField,
        ErrorKind::BadArgument,
        ErrorKind::TooLarge,
    ];

    /// The stable machine-readable code sent in responses.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::UnknownCommand => "unknown-command",
            ErrorKind::MissingField => "missing-field",
            ErrorKind::BadArgument => "bad-argument",
            ErrorKind::TooLarge => "too-large",
        }
    }
}

/// Why a command payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({})", kind.code())]
pub struct CommandParseError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What is wrong and what to do.
    pub message: String,
    /// The request id, when it could be read, so the refusal can still be correlated.
    pub request_id: Option<String>,
}

impl CommandParseError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// The payload of a command, as `vigilctl` and the district's tools send it.
pub fn command_json(request_id: &str, operator: &str, args: Value) -> Vec<u8> {
    let payload = serde_json::json!({"request_id": request_id, "operator": operator, "args": args});
    serde_json::to_vec(&payload).expect("a JSON value always serializes")
}

/// Parses the payload of command `name` (the last level of its topic).
pub fn parse_command(name: &str, payload: &[u8]) -> Result<UplinkRequest, CommandParseError> {
    let mut p = Parser { request_id: None };
    let limit = if name == "plugin.install" { MAX_INSTALL_PAYLOAD } else { MAX_PAYLOAD };
    if payload.len() > limit {
        return Err(p.fail(
            ErrorKind::TooLarge,
            format!("payload is {} bytes; {name} may be at most {limit} bytes", payload.len()),
        ));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| p.fail(ErrorKind::Malformed, format!("payload is not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(p.fail(ErrorKind::Malformed, "payload must be a JSON object".into()));
    };
    let request_id = p.identity(&top, "request_id")?;
    p.request_id = Some(request_id.clone());
    let operator = p.identity(&top, "operator")?;
    if let Some(key) = top.keys().find(|k| !matches!(k.as_str(), "request_id" | "operator" | "args")) {
        return Err(
            p.fail(ErrorKind::Malformed, format!("unknown field {key:?}: expected request_id, operator and args"))
        );
    }
    let empty = Map::new();
    let args = match top.get("args") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(args)) => args,
        Some(_) => return Err(p.fail(ErrorKind::Malformed, "args must be a JSON object".into())),
    };
    let command = match name {
        "incident.verify" => UplinkCommand::Incident(Command::Verify(p.incident(args, &["incident"])?)),
        "incident.dismiss" => UplinkCommand::Incident(Command::Dismiss(p.incident(args, &["incident"])?)),
        "incident.all-clear" => UplinkCommand::Incident(Command::AllClear(p.incident(args, &["incident"])?)),
        "incident.action" => {
            let id = p.incident(args, &["incident", "action"])?;
            let action = p.string(args, "action")?;
            let action =
                action.parse::<SrpAction>().map_err(|e| p.fail(ErrorKind::BadArgument, format!("args.action: {e}")))?;
            UplinkCommand::Incident(Command::Action(id, action))
        }
        "drill.start" => p.no_args(args, UplinkCommand::Incident(Command::DrillStart))?,
        "drill.stop" => p.no_args(args, UplinkCommand::Incident(Command::DrillStop))?,
        "rebirth" => p.no_args(args, UplinkCommand::Rebirth)?,
        "snapshot" => {
            p.only(args, &["camera"])?;
            let camera = p.string(args, "camera")?;
            if camera.is_empty() {
                return Err(p.fail(ErrorKind::BadArgument, "args.camera must not be empty".into()));
            }
            UplinkCommand::Snapshot { camera: CameraId::new(camera) }
        }
        "log-level" => {
            p.only(args, &["level"])?;
            let level = p.string(args, "level")?;
            if !LOG_LEVELS.contains(&level) {
                return Err(p.fail(
                    ErrorKind::BadArgument,
                    format!("args.level {level:?} is not a log level: expected one of {}", LOG_LEVELS.join(", ")),
                ));
            }
            UplinkCommand::LogLevel(level.to_string())
        }
        "plugin.install" if args.contains_key("upload") => UplinkCommand::PluginUpload(p.upload_part(args)?),
        "plugin.install" => {
            p.only(args, &["package"])?;
            UplinkCommand::PluginInstall { package: p.base64(args, "package")? }
        }
        "plugin.remove" => UplinkCommand::PluginRemove { name: p.plugin_name(args)? },
        "plugin.disable" | "plugin.enable" => {
            UplinkCommand::PluginEnabled { name: p.plugin_name(args)?, enabled: name == "plugin.enable" }
        }
        "plugin.list" => p.no_args(args, UplinkCommand::PluginList)?,
        "os.update" => {
            p.only(args, &["bundle", "version"])?;
            let bundle = p.string(args, "bundle")?;
            let remote = bundle.starts_with("http://") || bundle.starts_with("https://");
            if !remote && !bundle.starts_with('/') {
                return Err(p.fail(
                    ErrorKind::BadArgument,
                    format!("args.bundle {bundle:?} must be an absolute path on the device or an http(s):// URL"),
                ));
            }
            let version = match args.get("version") {
                None | Some(Value::Null) => None,
                Some(Value::String(v)) if !v.is_empty() => Some(v.clone()),
                Some(_) => return Err(p.fail(ErrorKind::Malformed, "args.version must be a non-empty string".into())),
            };
            UplinkCommand::OsUpdate { bundle: bundle.to_string(), version }
        }
        _ => {
            return Err(p.fail(
                ErrorKind::UnknownCommand,
                format!("unknown command {name:?}: expected one of {}", COMMANDS.join(", ")),
            ));
        }
    };
    Ok(UplinkRequest { request_id, operator, command })
}

/// Carries what is known of the request so far into every error.
struct Parser {
    request_id: Option<String>,
}

impl Parser {
    fn fail(&self, kind: ErrorKind, message: String) -> CommandParseError {
        CommandParseError { kind, message, request_id: self.request_id.clone() }
    }

    fn identity(&self, top: &Map<String, Value>, field: &str) -> Result<String, CommandParseError> {
        let value = match top.get(field) {
            None => return Err(self.fail(ErrorKind::MissingField, format!("{field} is required"))),
            Some(Value::String(s)) => s,
            Some(_) => return Err(self.fail(ErrorKind::Malformed, format!("{field} must be a string"))),
        };
        if value.is_empty() || value.chars().count() > MAX_IDENTITY {
            return Err(
                self.fail(ErrorKind::BadArgument, format!("{field} must be 1 to {MAX_IDENTITY} characters long"))
            );
        }
        Ok(value.clone())
    }

    /// Refuses argument names outside `allowed`, so a misspelt one is not silently ignored.
    fn only(&self, args: &Map<String, Value>, allowed: &[&str]) -> Result<(), CommandParseError> {
        match args.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) if allowed.is_empty() => {
                Err(self.fail(ErrorKind::BadArgument, format!("unknown argument args.{key}: this command takes none")))
            }
            Some(key) => Err(self
                .fail(ErrorKind::BadArgument, format!("unknown argument args.{key}: expected {}", allowed.join(", ")))),
        }
    }

    fn no_args(&self, args: &Map<String, Value>, command: UplinkCommand) -> Result<UplinkCommand, CommandParseError> {
        self.only(args, &[]).map(|()| command)
    }

    fn incident(&self, args: &Map<String, Value>, allowed: &[&str]) -> Result<IncidentId, CommandParseError> {
        self.only(args, allowed)?;
        match args.get("incident") {
            None => Err(self.fail(ErrorKind::MissingField, "args.incident is required".into())),
            Some(v) => v
                .as_u64()
                .map(IncidentId)
                .ok_or_else(|| self.fail(ErrorKind::Malformed, "args.incident must be a non-negative integer".into())),
        }
    }

    /// `args.name`, the only argument, non-empty.
    fn plugin_name(&self, args: &Map<String, Value>) -> Result<String, CommandParseError> {
        self.only(args, &["name"])?;
        let name = self.string(args, "name")?;
        if name.is_empty() {
            return Err(self.fail(ErrorKind::BadArgument, "args.name must not be empty".into()));
        }
        Ok(name.to_string())
    }

    /// A non-empty base64 argument, decoded.
    fn base64(&self, args: &Map<String, Value>, field: &str) -> Result<Vec<u8>, CommandParseError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(self.string(args, field)?).map_err(|e| {
            self.fail(ErrorKind::BadArgument, format!("args.{field} is not base64 (standard alphabet, padded): {e}"))
        })?;
        if bytes.is_empty() {
            return Err(self.fail(ErrorKind::BadArgument, format!("args.{field} is empty")));
        }
        Ok(bytes)
    }

    fn upload_part(&self, args: &Map<String, Value>) -> Result<UploadPart, CommandParseError> {
        self.only(args, &["upload", "part", "parts", "sha256", "data"])?;
        let upload = self.string(args, "upload")?;
        if upload.is_empty()
            || upload.len() > 64
            || !upload.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.fail(ErrorKind::BadArgument, "args.upload must be 1 to 64 of A-Z a-z 0-9 - _".into()));
        }
        let number = |field: &str| match args.get(field) {
            None => Err(self.fail(ErrorKind::MissingField, format!("args.{field} is required"))),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| self.fail(ErrorKind::Malformed, format!("args.{field} must be a non-negative integer"))),
        };
        let (part, parts) = (number("part")?, number("parts")?);
        if !(1..=MAX_UPLOAD_PARTS).contains(&parts) {
            return Err(
                self.fail(ErrorKind::BadArgument, format!("args.parts is {parts}: use 1 to {MAX_UPLOAD_PARTS}"))
            );
        }
        if part >= parts {
            return Err(self.fail(
                ErrorKind::BadArgument,
                format!("args.part is {part}, but parts are numbered 0 to {} of {parts}", parts - 1),
            ));
        }
        let hex = self.string(args, "sha256")?;
        let mut sha256 = [0u8; 32];
        let ok = hex.len() == 64
            && hex.is_ascii()
            && sha256
                .iter_mut()
                .enumerate()
                .all(|(i, b)| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map(|v| *b = v).is_ok());
        if !ok {
            return Err(self.fail(ErrorKind::BadArgument, "args.sha256 must be 64 hex digits".into()));
        }
        let data = self.base64(args, "data")?;
        Ok(UploadPart { upload: upload.to_string(), part, parts, sha256, data })
    }

    fn string<'a>(&self, args: &'a Map<String, Value>, field: &str) -> Result<&'a str, CommandParseError> {
        match args.get(field) {
            None => Err(self.fail(ErrorKind::MissingField, format!("args.{field} is required"))),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(self.fail(ErrorKind::Malformed, format!("args.{field} must be a string"))),
        }
    }
}

/// The response JSON for a request: `Ok` or the refusal's stable code and
/// message. Codes from the incident book (`unknown-incident`,
/// `invalid-transition`) pass through unchanged.
pub fn response_json(request_id: &str, result: Result<(), (&str, &str)>) -> Vec<u8> {
    response_with_data(request_id, result, None)
}

/// Like [`response_json`], with a result document for the commands that return one (`snapshot`).
pub fn response_with_data(request_id: &str, result: Result<(), (&str, &str)>, data: Option<Value>) -> Vec<u8> {
    let response = match result {
        Ok(()) => CommandResponse { request_id: request_id.into(), ok: true, error: None, data },
        Err((code, message)) => CommandResponse {
            request_id: request_id.into(),
            ok: false,
            error: Some(ResponseError { code: code.into(), message: message.into() }),
            data,
        },
    };
    serde_json::to_vec(&response).expect("a response of strings always serializes")
}

/// A command response as it travels, for those who read them (`vigilctl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The request it answers.
    pub request_id: String,
    /// Whether the command was carried out.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// The command's result, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A refusal's stable code and words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    /// Stable, machine-readable.
    pub code: String,
    /// For people.
    pub message: String,
}

impl CommandResponse {
    /// Parses a response payload.
    pub fn parse(payload: &[u8]) -> Result<CommandResponse, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not a Vigil command response: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use vigil_core::incident::CommandError;

    fn parse(name: &str, args: Value) -> Result<UplinkRequest, CommandParseError> {
        parse_command(name, &command_json("r-1", "sro@district", args))
    }

    fn command(name: &str, args: Value) -> UplinkCommand {
        let request = parse(name, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(request.request_id, "r-1");
        assert_eq!(request.operator, "sro@district");
        assert_eq!(request.actor(), Actor::Operator("sro@district".into()));
        request.command
    }

    fn code(result: Result<UplinkRequest, CommandParseError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn every_command_parses() {
        use UplinkCommand::Incident as I;
        let id = IncidentId(7);
        assert_eq!(command("incident.verify", json!({"incident": 7})), I(Command::Verify(id)));
        assert_eq!(command("incident.dismiss", json!({"incident": 7})), I(Command::Dismiss(id)));
        assert_eq!(command("incident.all-clear", json!({"incident": 7})), I(Command::AllClear(id)));
        for action in SrpAction::ALL {
            assert_eq!(
                command("incident.action", json!({"incident": 7, "action": action.as_str()})),
                I(Command::Action(id, action))
            );
        }
        assert_eq!(command("drill.start", json!({})), I(Command::DrillStart));
        assert_eq!(command("drill.stop", Value::Null), I(Command::DrillStop));
        assert_eq!(
            command("snapshot", json!({"camera": "hall-1"})),
            UplinkCommand::Snapshot { camera: CameraId::new("hall-1") }
        );
        assert_eq!(command("rebirth", json!({})), UplinkCommand::Rebirth);
        assert_eq!(
            command("plugin.install", json!({"package": "VklHSUw="})),
            UplinkCommand::PluginInstall { package: b"VIGIL".to_vec() }
        );
        assert_eq!(
            command("plugin.remove", json!({"name": "door-lock"})),
            UplinkCommand::PluginRemove { name: "door-lock".into() }
        );
        assert_eq!(
            command("plugin.disable", json!({"name": "door-lock"})),
            UplinkCommand::PluginEnabled { name: "door-lock".into(), enabled: false }
        );
        assert_eq!(
            command("plugin.enable", json!({"name": "door-lock"})),
            UplinkCommand::PluginEnabled { name: "door-lock".into(), enabled: true }
        );
        assert_eq!(command("plugin.list", json!({})), UplinkCommand::PluginList);
        assert_eq!(parse("plugin.install", json!({"package": "not base64!"})).unwrap_err().code(), "bad-argument");
        // A package may be far larger than other commands.
        let big = json!({"request_id": "r", "operator": "o", "args": {"package": "QUFB".repeat(100_000)}});
        assert!(parse_command("plugin.install", &serde_json::to_vec(&big).unwrap()).is_ok());
        assert_eq!(parse_command("rebirth", &serde_json::to_vec(&big).unwrap()).unwrap_err().code(), "too-large");
        for level in LOG_LEVELS {
            assert_eq!(command("log-level", json!({"level": level})), UplinkCommand::LogLevel(level.into()));
        }
        for name in COMMANDS {
            assert_ne!(parse(name, json!({})).map_err(|e| e.code()), Err("unknown-command"), "{name}");
        }
        // args may be left out when a command takes none.
        let bare = parse_command("rebirth", br#"{"request_id": "r", "operator": "o"}"#).unwrap();
        assert_eq!(bare.command, UplinkCommand::Rebirth);
    }

    #[test]
    fn malformed_payloads_say_where() {
        for (payload, needle) in [
            (&b"not json"[..], "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (br#"{"request_id": 1, "operator": "o"}"#, "request_id must be a string"),
            (br#"{"request_id": "r", "operator": ["o"]}"#, "operator must be a string"),
            (br#"{"request_id": "r", "operator": "o", "args": 3}"#, "args must be a JSON object"),
            (br#"{"request_id": "r", "operator": "o", "arg": {}}"#, "unknown field \"arg\""),
        ] {
            let err = parse_command("incident.verify", payload).unwrap_err();
            assert_eq!(err.code(), "malformed", "{err}");
            assert!(err.message.contains(needle), "{err} lacks {needle}");
        }
        let err = parse("incident.verify", json!({"incident": "7"})).unwrap_err();
        assert_eq!(err.code(), "malformed");
        assert!(err.message.contains("args.incident"), "{err}");
        assert_eq!(code(parse("incident.verify", json!({"incident": -1}))), "malformed");
        assert_eq!(code(parse("snapshot", json!({"camera": 3}))), "malformed");
    }

    #[test]
    fn os_update_takes_a_device_path_or_a_url_and_an_optional_version() {
        assert_eq!(
            command("os.update", json!({"bundle": "/data/vigil-2.1.raucb", "version": "2.1"})),
            UplinkCommand::OsUpdate { bundle: "/data/vigil-2.1.raucb".into(), version: Some("2.1".into()) }
        );
        assert_eq!(
            command("os.update", json!({"bundle": "https://updates.district/vigil.raucb"})),
            UplinkCommand::OsUpdate { bundle: "https://updates.district/vigil.raucb".into(), version: None }
        );
        for (args, words) in [
            (json!({"bundle": "vigil.raucb"}), "absolute path"),
            (json!({}), "args.bundle is required"),
            (json!({"bundle": "/b", "version": 2}), "args.version must be"),
            (json!({"bundle": "/b", "reboot": false}), "args.reboot"),
        ] {
            let err = parse("os.update", args.clone()).unwrap_err();
            assert!(err.message.contains(words), "{args}: {err}");
        }
    }

    #[test]
    fn a_chunked_install_parses_part_by_part_and_bad_parts_are_named() {
        let sha = "ab".repeat(32);
        let part = json!({"upload": "u-1", "part": 1, "parts": 3, "sha256": sha, "data": "VklHSUw="});
        assert_eq!(
            command("plugin.install", part),
            UplinkCommand::PluginUpload(UploadPart {
                upload: "u-1".into(),
                part: 1,
                parts: 3,
                sha256: [0xab; 32],
                data: b"VIGIL".to_vec()
            })
        );
        let bad = [
            (json!({"upload": "u 1", "part": 0, "parts": 1, "sha256": sha, "data": "QQ=="}), "args.upload"),
            (json!({"upload": "u", "part": 3, "parts": 3, "sha256": sha, "data": "QQ=="}), "numbered 0 to 2"),
            (json!({"upload": "u", "part": 0, "parts": 0, "sha256": sha, "data": "QQ=="}), "args.parts is 0"),
            (json!({"upload": "u", "part": 0, "parts": 1, "sha256": "xyz", "data": "QQ=="}), "64 hex digits"),
            (json!({"upload": "u", "part": 0, "parts": 1, "sha256": "é".repeat(32), "data": "QQ=="}), "64 hex"),
            (json!({"upload": "u", "part": 0, "parts": 1, "sha256": sha, "data": ""}), "args.data is empty"),
            (json!({"upload": "u", "part": 0, "parts": 1, "sha256": sha}), "args.data is required"),
            (json!({"upload": "u", "part": -1, "parts": 1, "sha256": sha, "data": "QQ=="}), "args.part must be"),
            (json!({"upload": "u", "part": 0, "parts": 1, "sha256": sha, "data": "QQ==", "x": 1}), "args.x"),
        ];
        for (args, words) in bad {
            let err = parse("plugin.install", args.clone()).unwrap_err();
            assert!(err.message.contains(words), "{args}: {err}");
        }
    }

    #[test]
    fn unknown_commands_are_refused_with_the_request_id() {
        let err = parse("incident.explode", json!({})).unwrap_err();
        assert_eq!(err.code(), "unknown-command");
        assert_eq!(err.request_id.as_deref(), Some("r-1"));
        assert!(err.message.contains("incident.verify"), "lists the known commands: {err}");
    }

    #[test]
    fn missing_fields_are_named() {
        for (payload, field) in [(&br#"{"operator": "o"}"#[..], "request_id"), (br#"{"request_id": "r"}"#, "operator")]
        {
            let err = parse_command("rebirth", payload).unwrap_err();
            assert_eq!(err.code(), "missing-field");
            assert!(err.message.contains(field), "{err}");
        }
        for (name, args, field) in [
            ("incident.verify", json!({}), "args.incident"),
            ("incident.action", json!({"incident": 1}), "args.action"),
            ("incident.action", json!({"action": "hold"}), "args.incident"),
            ("snapshot", json!({}), "args.camera"),
            ("log-level", json!({}), "args.level"),
        ] {
            let err = parse(name, args).unwrap_err();
            assert_eq!(err.code(), "missing-field", "{name}");
            assert!(err.message.contains(field), "{err}");
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (name, args) in [
            ("incident.action", json!({"incident": 1, "action": "all-clear"})),
            ("incident.action", json!({"incident": 1, "action": "LOCKDOWN"})),
            ("log-level", json!({"level": "verbose"})),
            ("snapshot", json!({"camera": ""})),
            ("incident.verify", json!({"incident": 1, "action": "hold"})),
            ("rebirth", json!({"now": true})),
        ] {
            assert_eq!(code(parse(name, args.clone())), "bad-argument", "{name} {args}");
        }
        let long = "x".repeat(MAX_IDENTITY + 1);
        for payload in [
            json!({"request_id": "", "operator": "o"}),
            json!({"request_id": "r", "operator": ""}),
            json!({"request_id": long, "operator": "o"}),
            json!({"request_id": "r", "operator": long}),
        ] {
            assert_eq!(code(parse_command("rebirth", &serde_json::to_vec(&payload).unwrap())), "bad-argument");
        }
        let at_limit = json!({"request_id": "é".repeat(MAX_IDENTITY), "operator": "o"});
        assert!(parse_command("rebirth", &serde_json::to_vec(&at_limit).unwrap()).is_ok(), "limit counts characters");
    }

    #[test]
    fn oversized_payloads_are_refused_before_parsing() {
        let mut payload = vec![b' '; MAX_PAYLOAD + 1];
        payload[0] = b'{';
        let err = parse_command("no-such-command", &payload).unwrap_err();
        assert_eq!(err.code(), "too-large");
        assert_eq!(err.request_id, None);
        let mut ok = br#"{"request_id": "r", "operator": "o"}"#.to_vec();
        ok.resize(MAX_PAYLOAD, b' ');
        assert!(parse_command("rebirth", &ok).is_ok());
    }

    #[test]
    fn responses() {
        let ok: Value = serde_json::from_slice(&response_json("r-1", Ok(()))).unwrap();
        assert_eq!(ok, json!({"request_id": "r-1", "ok": true}));
        let err = parse("incident.explode", json!({})).unwrap_err();
        let refused: Value = serde_json::from_slice(&response_json("r-1", Err((err.code(), &err.message)))).unwrap();
        assert_eq!(refused["ok"], false);
        assert_eq!(refused["error"]["code"], "unknown-command");
        let book = CommandError { code: "invalid-transition", message: "cannot verify incident 7".into() };
        let bytes = response_json("r-2", Err((book.code, &book.message)));
        println!("{}", String::from_utf8_lossy(&bytes));
        let refused: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            refused,
            json!({"request_id": "r-2", "ok": false, "error": {"code": "invalid-transition", "message": "cannot verify incident 7"}})
        );
    }

    fn stable(result: &Result<UplinkRequest, CommandParseError>) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => ErrorKind::ALL.iter().any(|k| k.code() == e.code()),
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(name in "[a-z.-]{0,20}", payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(stable(&parse_command(&name, &payload)));
            for known in COMMANDS {
                prop_assert!(stable(&parse_command(known, &payload)));
            }
        }

        #[test]
        fn arbitrary_args_never_panic(
            name in proptest::sample::select(COMMANDS.to_vec()),
            key in "[a-z]{1,8}",
            value in prop_oneof![
                Just(json!(null)), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)), ".{0,20}".prop_map(Value::from),
            ],
            incident in prop_oneof![Just(None), any::<i64>().prop_map(Some)],
        ) {
            let mut args = Map::new();
            args.insert(key, value);
            if let Some(i) = incident {
                args.insert("incident".into(), i.into());
            }
            let payload = json!({"request_id": "r", "operator": "o", "args": args});
            prop_assert!(stable(&parse_command(name, &serde_json::to_vec(&payload).unwrap())));
        }
    }
}

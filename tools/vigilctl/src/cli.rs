//! The command line: clap types, validated into rich values (a device id
//! becomes its [`Topics`]), and the mapping from a device command on the
//! command line to the command name and JSON arguments sent to the device.
//! Plugin keys given as `ed25519:<hex>` become verifying keys here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use vigil_config::TlsFiles;
use vigil_link::Endpoint;
use vigil_uplink::Topics;
use vigil_uplink::command::MAX_IDENTITY;

use crate::failure::{EXIT_CODES, Failure};

/// `vigilctl`: manage Vigil devices over the district's MQTT broker.
#[derive(Debug, Parser)]
#[command(
    name = "vigilctl",
    version,
    about = "Manage Vigil school-safety devices over the district's MQTT broker",
    long_about = "Manage Vigil school-safety devices over the district's MQTT broker.\n\n\
        Reads status and telemetry, watches alerts, sends incident and drill commands, \
        pushes configuration and fetches camera snapshots. Messages go to stderr and results \
        to stdout; with --json, results are JSON on stdout.",
    after_long_help = EXIT_CODES
)]
pub struct Cli {
    /// How to reach the broker and how to answer.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The broker: mqtts://host[:port] (TLS, port 8883) or mqtt://host[:port] (port 1883)
    #[arg(long, global = true, env = "VIGIL_BROKER", default_value = "mqtt://127.0.0.1:1883", value_name = "URL")]
    pub broker: String,
    /// PEM bundle of the CAs that sign the broker's certificate (default: the system's roots)
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for brokers that require mutual TLS (with --key)
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// MQTT user name
    #[arg(long, global = true, value_name = "USER")]
    pub username: Option<String>,
    /// MQTT password (with --username)
    #[arg(long, global = true, env = "VIGIL_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Who you are, recorded in the device's audit trail [default: $USER@hostname]
    #[arg(long, global = true, env = "VIGIL_OPERATOR", value_name = "NAME", value_parser = operator)]
    pub operator: Option<String>,
    /// Seconds to wait for the broker and for the device's answer
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Print results as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show every device seen on the broker (or one): online state, version, cameras, detector, outbox, config
    ///
    /// Collects what the broker retains (status, telemetry, config report) for about a second.
    /// With --json: an object for DEVICE, else an array of them.
    Status {
        /// Only this device
        #[arg(value_parser = device)]
        device: Option<Topics>,
    },
    /// Print alerts and online/offline changes as they happen, until Ctrl-C
    ///
    /// An alert republished by the device (same alert id) is shown once. With --json, stdout carries
    /// each alert's JSON on one line, and status changes go to stderr.
    Watch {
        /// Only this device
        #[arg(value_parser = device)]
        device: Option<Topics>,
        /// Acknowledge each alert, as the district back end does (the device then stops resending it)
        #[arg(long)]
        ack: bool,
    },
    /// Verify, dismiss, respond to or close an incident
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Start or stop drill mode: incidents raised meanwhile are exercises
    #[command(subcommand)]
    Drill(DrillCmd),
    /// Read the config a device runs, or push a new one
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Save a camera's current frame as a JPEG file
    Snapshot {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The camera's id, as in the device's config
        #[arg(value_parser = camera)]
        camera: String,
        /// Where to write the JPEG
        #[arg(short, long, value_name = "FILE.jpg")]
        output: PathBuf,
    },
    /// Ask a device to publish its status, config and telemetry again
    Rebirth {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
    /// Make signing keys, sign and check plugin packages, try them locally; install, remove and list them on a device
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Update a device's operating system from a signed RAUC bundle, and follow the update
    #[command(subcommand)]
    Os(OsCmd),
    /// Change a device's log level until it restarts
    LogLevel {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The new level
        level: LogLevel,
    },
}

/// `incident …`: the incident book's commands.
#[derive(Debug, Subcommand)]
pub enum IncidentCmd {
    /// A person confirms the threat from the evidence
    Verify(IncidentRef),
    /// A false alarm: reverts automatic actions and closes the incident
    Dismiss(IncidentRef),
    /// Ends the response and closes the incident
    AllClear(IncidentRef),
    /// Starts a Standard Response Protocol action (verifies the incident if pending)
    Action {
        /// The device and incident
        #[command(flatten)]
        incident: IncidentRef,
        /// The action
        action: Action,
    },
}

/// A device and one of its incidents.
#[derive(Debug, Args)]
pub struct IncidentRef {
    /// The device
    #[arg(value_parser = device)]
    pub device: Topics,
    /// The incident number, as in the alerts
    pub incident: u64,
}

/// `drill …`.
#[derive(Debug, Subcommand)]
pub enum DrillCmd {
    /// Incidents raised from now on are drills
    Start {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
    /// Drill mode off
    Stop {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Show the config report of a device (and the desired version retained on the broker)
    Get {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
    /// Send a config file to a device and wait for its verdict (applied or rejected)
    Push {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The configuration file (TOML, as /etc/vigil/vigil.toml)
        file: PathBuf,
        /// The config version [default: one above the retained desired or the running version]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        version: Option<u64>,
    },
}

/// `os …`: the device's A/B OS updates (RAUC bundles, see docs/image.md).
#[derive(Debug, Subcommand)]
pub enum OsCmd {
    /// Have the device install a bundle into its other slot and reboot into it; follows the job until the reboot
    ///
    /// Prints the job id, then each phase (queued, downloading, verifying, installing, rebooting) as it
    /// happens, with a progress line on a terminal. Exits 0 once the device reboots into the new slot
    /// (it keeps it only if its health check passes: see `os status`), 1 if the update failed.
    /// With --json: each job report as one JSON line (with --no-wait: the device's response).
    Update {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The bundle: an absolute path on the device, or an http(s):// URL it downloads from
        #[arg(value_name = "BUNDLE", value_parser = bundle)]
        bundle: String,
        /// The version the bundle must carry; the device refuses to install anything else
        #[arg(long, value_name = "V", value_parser = bundle_version)]
        version: Option<String>,
        /// Print the job id and exit once the device accepted the update
        #[arg(long)]
        no_wait: bool,
        /// Give up following when the job reports nothing new for this long (the update goes on)
        #[arg(long, default_value_t = 600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        stall_timeout: u64,
    },
    /// Show the device's current or last OS update job (--json: the job as the device reports it)
    Status {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
}

impl OsCmd {
    /// The `os.update` command an `os update` line sends; `None` for `os status`.
    pub fn update_command(&self) -> Option<(&Topics, DeviceCommand)> {
        let OsCmd::Update { device, bundle, version, .. } = self else { return None };
        let mut args = json!({"bundle": bundle});
        if let Some(v) = version {
            args["version"] = json!(v);
        }
        Some((device, DeviceCommand { name: "os.update", args }))
    }
}

/// `plugin …`: the first four need no broker.
#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Make a signing key pair: writes the secret key and prints the public key for `[plugins] trusted_keys`
    Keygen {
        /// Where to write the secret key (base64, mode 0600; an existing file is never overwritten)
        #[arg(short, long, value_name = "KEYFILE")]
        output: PathBuf,
    },
    /// Check a manifest and sign it with a component into a package
    Sign {
        /// The plugin's manifest (JSON: name, version, wit, actions, capabilities, config_schema)
        #[arg(long, value_name = "MANIFEST.json")]
        manifest: PathBuf,
        /// The WebAssembly component (built for wasm32-wasip2)
        #[arg(long, value_name = "FILE.wasm")]
        component: PathBuf,
        /// The secret key from `plugin keygen` (not --key, which is the broker's TLS client key)
        #[arg(long, short = 'k', value_name = "KEYFILE")]
        signing_key: PathBuf,
        /// Where to write the package
        #[arg(short, long, value_name = "PACKAGE.vpk")]
        output: PathBuf,
    },
    /// Check a package's signature against trusted keys and show its manifest
    Verify {
        /// The package
        #[arg(value_name = "PACKAGE.vpk")]
        package: PathBuf,
        /// A public key the package may be signed by, as ed25519:<hex> (repeatable)
        #[arg(long, required = true, value_name = "ed25519:HEX", value_parser = trusted_key)]
        trust: Vec<VerifyingKey>,
    },
    /// Run a package here, in the device's plugin host, on a sample incident event (and action request)
    ///
    /// The plugin's log lines go to stderr; its result, status and metrics to stdout. Exits 0 if the
    /// plugin ran (even if it answered failed), 1 if the host refused to install it.
    Run(RunArgs),
    /// Send a package to a device, which verifies, health-checks and starts it (replacing an older version)
    Install {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The package from `plugin sign`
        #[arg(value_name = "PACKAGE.vpk")]
        package: PathBuf,
        /// Send a package larger than this in parts of this size, KiB (brokers limit message
        /// sizes: 128 KiB on some cloud brokers, 1 MiB on the device's embedded one)
        #[arg(long, value_name = "KIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=3072))]
        chunk_kib: u32,
    },
    /// Stop a plugin on a device and delete it with its stored data
    Remove {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The plugin's name
        name: String,
    },
    /// Stop a plugin on a device, keeping it installed (it stays stopped across restarts)
    Disable {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The plugin's name
        name: String,
    },
    /// Start a plugin an operator disabled
    Enable {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
        /// The plugin's name
        name: String,
    },
    /// Show the plugins on a device: state, counters, latency, memory (--json: the device's array)
    List {
        /// The device
        #[arg(value_parser = device)]
        device: Topics,
    },
}

/// `plugin run`'s arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The package from `plugin sign`
    #[arg(value_name = "PACKAGE.vpk")]
    pub package: PathBuf,
    /// The incident event to send
    #[arg(long, value_name = "EVENT")]
    pub event: SampleEvent,
    /// With --event action: the action requested [default: lockdown]
    #[arg(long)]
    pub action: Option<Action>,
    /// Make the sample incident a drill
    #[arg(long)]
    pub drill: bool,
    /// The plugin's config, as its grant on a device gives it (a JSON object)
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub config: Option<Value>,
    /// Grant a network endpoint the manifest asks for (repeatable)
    #[arg(long, value_name = "HOST:PORT")]
    pub network: Vec<String>,
    /// Grant this folder as the read-only /data the manifest asks for
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A public key the package may be signed by, as ed25519:<hex> (repeatable)
    #[arg(long, value_name = "ed25519:HEX", value_parser = trusted_key, required_unless_present = "trust_any")]
    pub trust: Vec<VerifyingKey>,
    /// Trust whoever signed the package (for trying your own builds; a device trusts only its configured keys)
    #[arg(long, conflicts_with = "trust")]
    pub trust_any: bool,
}

/// The incident events `plugin run` can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SampleEvent {
    /// A threat was detected
    Raised,
    /// An operator verified it
    Verified,
    /// An operator dismissed it
    Dismissed,
    /// An action was requested: the event, then the action request (see --action)
    Action,
    /// The response ended: the event, then the all-clear request
    AllClear,
}

/// Standard Response Protocol actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// In your room or area; clear the halls
    Hold,
    /// Get inside; lock outside doors
    Secure,
    /// Locks, lights, out of sight
    Lockdown,
    /// To the announced location
    Evacuate,
    /// Using the announced safety strategy
    Shelter,
}

/// The device's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only
    Error,
    /// Warnings and errors
    Warn,
    /// The default
    Info,
    /// Detail for troubleshooting
    Debug,
    /// Everything
    Trace,
}

/// A command for one device: its name (the last level of `cmd/<name>`) and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCommand {
    /// As in `vigil_uplink::command::COMMANDS`.
    pub name: &'static str,
    /// The `args` object.
    pub args: Value,
}

impl Cmd {
    /// The device and command for the commands that are one request and
    /// one response; `None` for those with more to them (status, watch, config, snapshot).
    pub fn device_command(&self) -> Option<(&Topics, DeviceCommand)> {
        let command = |name, args| DeviceCommand { name, args };
        Some(match self {
            Cmd::Incident(IncidentCmd::Verify(r)) => (&r.device, command("incident.verify", incident(r))),
            Cmd::Incident(IncidentCmd::Dismiss(r)) => (&r.device, command("incident.dismiss", incident(r))),
            Cmd::Incident(IncidentCmd::AllClear(r)) => (&r.device, command("incident.all-clear", incident(r))),
            Cmd::Incident(IncidentCmd::Action { incident: r, action }) => {
                (&r.device, command("incident.action", json!({"incident": r.incident, "action": value_name(action)})))
            }
            Cmd::Drill(DrillCmd::Start { device }) => (device, command("drill.start", json!({}))),
            Cmd::Drill(DrillCmd::Stop { device }) => (device, command("drill.stop", json!({}))),
            Cmd::Rebirth { device } => (device, command("rebirth", json!({}))),
            Cmd::LogLevel { device, level } => (device, command("log-level", json!({"level": value_name(level)}))),
            Cmd::Plugin(PluginCmd::Remove { device, name }) => {
                (device, command("plugin.remove", json!({"name": name})))
            }
            Cmd::Plugin(PluginCmd::Disable { device, name }) => {
                (device, command("plugin.disable", json!({"name": name})))
            }
            Cmd::Plugin(PluginCmd::Enable { device, name }) => {
                (device, command("plugin.enable", json!({"name": name})))
            }
            Cmd::Plugin(PluginCmd::List { device }) => (device, command("plugin.list", json!({}))),
            Cmd::Status { .. }
            | Cmd::Watch { .. }
            | Cmd::Config(_)
            | Cmd::Snapshot { .. }
            | Cmd::Plugin(_)
            | Cmd::Os(_) => {
                return None;
            }
        })
    }
}

fn incident(r: &IncidentRef) -> Value {
    json!({"incident": r.incident})
}

/// The name a value has on the command line, which is also its name on the wire.
fn value_name(v: &impl ValueEnum) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

impl Global {
    /// How long to wait for the broker and the device.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// The operator: `--operator`, or `$USER@hostname`.
    pub fn operator(&self) -> String {
        self.operator.clone().unwrap_or_else(default_operator)
    }

    /// The broker to connect to, with TLS files and credentials.
    pub fn endpoint(&self) -> Result<Endpoint, Failure> {
        let (host, port, tls) = parse_broker(&self.broker)?;
        let tls = if tls {
            let client = self.cert.clone().zip(self.key.clone());
            Some(TlsFiles { ca: self.ca.clone(), client })
        } else {
            if self.ca.is_some() || self.cert.is_some() {
                return Err(Failure::Usage(format!(
                    "--ca, --cert and --key need TLS: write the broker as {}",
                    self.broker.replacen("mqtt://", "mqtts://", 1)
                )));
            }
            None
        };
        Ok(Endpoint { host, port, tls, username: self.username.clone(), password: self.password.clone() })
    }
}

/// `--broker`: host, port and TLS.
fn parse_broker(url: &str) -> Result<(String, u16, bool), Failure> {
    if !url.starts_with("mqtt://") && !url.starts_with("mqtts://") {
        return Err(Failure::Usage(format!(
            "--broker {url:?}: expected mqtts://host[:port] (TLS) or mqtt://host[:port]"
        )));
    }
    vigil_config::parse_broker_url(url).map_err(|e| Failure::Usage(format!("--broker {}", in_cli_terms(&e))))
}

/// Text written for the device's config file, with its setting names
/// replaced by the `vigilctl` options that play their part.
pub fn in_cli_terms(text: &str) -> String {
    [
        ("uplink.username", "--username"),
        ("uplink.password", "--password"),
        ("uplink.broker", "--broker"),
        ("uplink.cert", "--cert"),
        ("uplink.key", "--key"),
        ("uplink.ca", "--ca"),
        ("uplink.client_id", "the client id"),
    ]
    .iter()
    .fold(text.to_string(), |t, (setting, option)| t.replace(setting, option))
}

fn default_operator() -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let operator = format!("{user}@{host}");
    operator.chars().take(MAX_IDENTITY).collect()
}

/// A device id, as its topics.
fn device(id: &str) -> Result<Topics, String> {
    Topics::new(id).map_err(|e| e.to_string())
}

/// A camera id: one topic level.
fn camera(id: &str) -> Result<String, String> {
    if id.is_empty() || id.contains(['/', '+', '#']) {
        return Err(format!("invalid camera id {id:?}: give the camera's id from the device's config"));
    }
    Ok(id.to_string())
}

/// An OS bundle as the device can reach it: an absolute path there, or an http(s) URL.
fn bundle(text: &str) -> Result<String, String> {
    let remote = text.starts_with("http://") || text.starts_with("https://");
    if !remote && !text.starts_with('/') {
        return Err(format!(
            "{text:?} is neither an absolute path on the device nor an http(s):// URL; vigilctl does not upload \
             bundles: copy it to the device (e.g. to /data) or serve it over HTTP(S)"
        ));
    }
    Ok(text.to_string())
}

/// A bundle version: not empty.
fn bundle_version(text: &str) -> Result<String, String> {
    let v = text.trim();
    if v.is_empty() {
        return Err("the version must not be empty: give it as in the bundle's manifest, e.g. 2.1.0".into());
    }
    Ok(v.to_string())
}

/// A trusted plugin signing key: `ed25519:<hex>`, as in the device's `[plugins] trusted_keys`.
fn trusted_key(text: &str) -> Result<VerifyingKey, String> {
    let hex = text
        .strip_prefix("ed25519:")
        .ok_or_else(|| format!("{text:?}: write the key as ed25519:<64 hex digits>, as `plugin keygen` prints it"))?;
    vigil_plugins::package::verifying_key_from_hex(hex).map_err(|e| e.to_string())
}

/// A JSON object.
fn json_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object, like '{\"relay\": 2}'".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// An operator name the device accepts.
fn operator(name: &str) -> Result<String, String> {
    let n = name.chars().count();
    if n == 0 || n > MAX_IDENTITY {
        return Err(format!("the operator must be 1 to {MAX_IDENTITY} characters long"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_uplink::command::{COMMANDS, LOG_LEVELS};

    fn cli(args: &[&str]) -> Cli {
        let argv = std::iter::once("vigilctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn sent(args: &[&str]) -> (String, DeviceCommand) {
        let cli = cli(args);
        let (topics, command) = cli.command.device_command().expect("a device command");
        // The device must accept exactly what we send.
        let payload = vigil_uplink::command_json("r-1", "sro@district", command.args.clone());
        vigil_uplink::parse_command(command.name, &payload).unwrap_or_else(|e| panic!("{args:?}: the device says {e}"));
        (topics.device().to_string(), command)
    }

    #[test]
    fn device_commands_map_to_the_wire() {
        for (args, name, expected) in [
            (&["incident", "verify", "lincoln-hs", "7"][..], "incident.verify", json!({"incident": 7})),
            (&["incident", "dismiss", "lincoln-hs", "7"], "incident.dismiss", json!({"incident": 7})),
            (&["incident", "all-clear", "lincoln-hs", "7"], "incident.all-clear", json!({"incident": 7})),
            (
                &["incident", "action", "lincoln-hs", "7", "lockdown"],
                "incident.action",
                json!({"incident": 7, "action": "lockdown"}),
            ),
            (&["drill", "start", "lincoln-hs"], "drill.start", json!({})),
            (&["drill", "stop", "lincoln-hs"], "drill.stop", json!({})),
            (&["rebirth", "lincoln-hs"], "rebirth", json!({})),
            (&["log-level", "lincoln-hs", "debug"], "log-level", json!({"level": "debug"})),
        ] {
            let (device, command) = sent(args);
            assert_eq!(device, "lincoln-hs");
            assert_eq!(command, DeviceCommand { name, args: expected }, "{args:?}");
            assert!(COMMANDS.contains(&command.name));
        }
    }

    #[test]
    fn every_action_and_level_is_one_the_device_knows() {
        for action in Action::value_variants() {
            let name = value_name(action);
            sent(&["incident", "action", "d", "1", &name]);
        }
        let levels: Vec<String> = LogLevel::value_variants().iter().map(value_name).collect();
        assert_eq!(levels, LOG_LEVELS);
    }

    #[test]
    fn plugin_remove_and_list_map_to_the_wire() {
        let (_, remove) = sent(&["plugin", "remove", "d", "door-lock"]);
        assert_eq!((remove.name, remove.args), ("plugin.remove", json!({"name": "door-lock"})));
        let (_, list) = sent(&["plugin", "list", "d"]);
        assert_eq!((list.name, list.args), ("plugin.list", json!({})));
        let (_, public) = vigil_plugins::package::keygen();
        let hex = vigil_plugins::package::verifying_key_to_hex(&public);
        assert_eq!(trusted_key(&format!("ed25519:{hex}")).unwrap(), public);
        assert!(trusted_key(&hex).unwrap_err().contains("ed25519:<64 hex digits>"));
        assert!(trusted_key("ab").unwrap_err().contains("ed25519:<64 hex digits>"));
    }

    #[test]
    fn os_update_maps_to_the_wire() {
        for (args, expected) in [
            (
                &["os", "update", "lincoln-hs", "/data/vigil-2.1.raucb", "--version", "2.1"][..],
                json!({"bundle": "/data/vigil-2.1.raucb", "version": "2.1"}),
            ),
            (
                &["os", "update", "lincoln-hs", "https://updates.district/v.raucb", "--no-wait"],
                json!({"bundle": "https://updates.district/v.raucb"}),
            ),
        ] {
            let c = cli(args);
            let Cmd::Os(os) = &c.command else { panic!("{args:?}") };
            let (device, command) = os.update_command().expect("an os.update command");
            assert_eq!(
                (device.device(), &command),
                ("lincoln-hs", &DeviceCommand { name: "os.update", args: expected })
            );
            // The device must accept exactly what we send.
            let payload = vigil_uplink::command_json("r-1", "sro@district", command.args.clone());
            let parsed =
                vigil_uplink::parse_command(command.name, &payload).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(matches!(parsed.command, vigil_uplink::UplinkCommand::OsUpdate { .. }), "{args:?}");
        }
        let Cmd::Os(status) = cli(&["os", "status", "d"]).command else { panic!() };
        assert!(status.update_command().is_none());
    }

    #[test]
    fn the_other_commands_are_not_single_requests() {
        for args in [
            &["status"][..],
            &["watch", "--ack"],
            &["config", "get", "d"],
            &["config", "push", "d", "vigil.toml", "--version", "4"],
            &["snapshot", "d", "hall-1", "-o", "x.jpg"],
            &["plugin", "install", "d", "p.vpk"],
            &["plugin", "keygen", "-o", "k"],
            &["plugin", "run", "p.vpk", "--event", "raised", "--trust-any"],
            &["os", "update", "d", "/data/u.raucb"],
            &["os", "status", "d"],
        ] {
            assert!(cli(args).command.device_command().is_none(), "{args:?}");
        }
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["incident", "verify", "a/b", "7"][..],
            &["incident", "verify", "d", "-1"],
            &["incident", "action", "d", "7", "all-clear"],
            &["log-level", "d", "verbose"],
            &["snapshot", "d", "hall/1", "-o", "x.jpg"],
            &["snapshot", "d", "hall-1"],
            &["config", "push", "d", "f.toml", "--version", "0"],
            &["status", "--timeout", "0"],
            &["status", "--cert", "c.pem"],
            &["status", "--operator", ""],
            &["plugin", "run", "p.vpk", "--event", "raised"],
            &["plugin", "run", "p.vpk", "--event", "raised", "--trust-any", "--trust", "ed25519:00"],
            &["plugin", "run", "p.vpk", "--event", "exploded", "--trust-any"],
            &["plugin", "run", "p.vpk", "--event", "raised", "--trust-any", "--config", "[1]"],
            &["plugin", "verify", "p.vpk"],
            &["os", "update", "d", "vigil.raucb"],
            &["os", "update", "d", "ftp://x/vigil.raucb"],
            &["os", "update", "d", "/data/u.raucb", "--version", " "],
            &["os", "update", "d", "/data/u.raucb", "--stall-timeout", "0"],
            &["os", "status"],
        ] {
            let argv = std::iter::once("vigilctl").chain(args.iter().copied());
            let err = Cli::try_parse_from(argv).expect_err(&format!("{args:?} is refused"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn global_options_go_anywhere() {
        let c = cli(&["status", "--json", "--timeout", "3", "--broker", "mqtts://broker.district:8884"]);
        assert!(c.global.json);
        assert_eq!(c.global.timeout(), Duration::from_secs(3));
        let endpoint = c.global.endpoint().unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("broker.district", 8884));
        assert!(endpoint.tls.is_some());
    }

    #[test]
    fn endpoints() {
        let plain = cli(&["status", "--broker", "mqtt://10.0.0.5"]).global.endpoint().unwrap();
        assert_eq!((plain.host.as_str(), plain.port, plain.tls.is_none()), ("10.0.0.5", 1883, true));
        let mtls = cli(&["status", "--broker", "mqtts://b", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
            .global
            .endpoint()
            .unwrap();
        let tls = mtls.tls.unwrap();
        assert_eq!(tls.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.client, Some((PathBuf::from("c.pem"), PathBuf::from("k.pem"))));
        let creds = cli(&["status", "--username", "sro", "--password", "pw"]).global.endpoint().unwrap();
        assert_eq!((creds.username.as_deref(), creds.password.as_deref()), (Some("sro"), Some("pw")));

        let no_tls = cli(&["status", "--broker", "mqtt://b", "--ca", "ca.pem"]).global.endpoint().unwrap_err();
        assert!(no_tls.to_string().contains("write the broker as mqtts://b"), "{no_tls}");
        for (url, needle) in [
            ("embedded", "expected mqtts://host[:port]"),
            ("mqtt://user@b", "--username and --password"),
            ("mqtt://b:99999", "port"),
        ] {
            let err = cli(&["status", "--broker", url]).global.endpoint().unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn connection_errors_name_our_options() {
        use rumqttc::v5::ConnectionError;
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
        let endpoint = cli(&["status"]).global.endpoint().unwrap();
        let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword);
        let words = in_cli_terms(&vigil_link::explain(&endpoint, &refused));
        assert!(words.contains("--username and --password"), "{words}");
        assert!(!words.contains("uplink."), "{words}");
    }

    #[test]
    fn the_default_operator_is_user_at_host() {
        let c = cli(&["status"]);
        if c.global.operator.is_none() {
            let op = c.global.operator();
            assert!(op.contains('@') && op.chars().count() <= MAX_IDENTITY, "{op}");
        }
        assert_eq!(cli(&["status", "--operator", "sro@district"]).global.operator(), "sro@district");
    }
}

//! `plugin …`: signing keys, signed packages and the local harness need no
//! broker (they use `vigil-plugins` directly, as the device does); `install`
//! and `list` are device commands with their own output (`remove` is a plain
//! device command).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use vigil_plugins::package::{self, Manifest};
use vigil_plugins::{
    ActionRequest, ActionResult, Directive, Event, Grant, HostConfig, Incident, Limits, Location, PluginHost,
    PluginInfo, PluginState, SUPPORTED_WIT, SrpAction,
};
use vigil_uplink::Topics;
use vigil_uplink::command::{MAX_UPLOAD, MAX_UPLOAD_PARTS};

use super::Ctx;
use crate::cli::{Action, DeviceCommand, PluginCmd, RunArgs, SampleEvent};
use crate::conn::Conn;
use crate::failure::Failure;
use crate::render;
use crate::request::{self, Pending};

/// Runs the plugin commands that need no broker; `None` for the others.
pub fn local(command: &PluginCmd, ctx: &Ctx) -> Option<Result<(), Failure>> {
    Some(match command {
        PluginCmd::Keygen { output } => keygen(ctx, output),
        PluginCmd::Sign { manifest, component, signing_key, output } => {
            sign(ctx, manifest, component, signing_key, output)
        }
        PluginCmd::Verify { package, trust } => verify(ctx, package, trust),
        PluginCmd::Run(args) => run(ctx, args),
        PluginCmd::Install { .. }
        | PluginCmd::Remove { .. }
        | PluginCmd::Disable { .. }
        | PluginCmd::Enable { .. }
        | PluginCmd::List { .. } => return None,
    })
}

/// `ed25519:<hex>`, the form `[plugins] trusted_keys` takes.
fn key_text(key: &VerifyingKey) -> String {
    format!("ed25519:{}", package::verifying_key_to_hex(key))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display())).map_err(Failure::usage)
}

fn keygen(ctx: &Ctx, output: &Path) -> Result<(), Failure> {
    let (signing, verifying) = package::keygen();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .with_context(|| {
            format!("cannot create the key file {} (an existing file is never overwritten)", output.display())
        })
        .map_err(Failure::usage)?;
    writeln!(file, "{}", package::signing_key_to_base64(&signing))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the key file {}", output.display()))
        .map_err(Failure::usage)?;
    let (public, id) = (key_text(&verifying), package::key_id(&verifying));
    ctx.print(
        || {
            format!(
                "wrote the secret key to {} (keep it secret)\npublic key: {public}\nkey id: {id}\n\
                 add the public key to the device's [plugins] trusted_keys",
                output.display()
            )
        },
        || json!({"secret_key_file": output, "public_key": public, "key_id": id}),
    );
    Ok(())
}

fn sign(ctx: &Ctx, manifest: &Path, component: &Path, key: &Path, output: &Path) -> Result<(), Failure> {
    let manifest_path = manifest;
    let manifest: Manifest = serde_json::from_slice(&read(manifest_path, "manifest")?)
        .map_err(|e| Failure::Usage(format!("the manifest {} is invalid: {e}", manifest_path.display())))?;
    let invalid = |why: String| Failure::Usage(format!("the manifest {} is invalid: {why}", manifest_path.display()));
    package::validate(&manifest).map_err(invalid)?;
    if !SUPPORTED_WIT.contains(&manifest.wit.as_str()) {
        return Err(invalid(format!(
            "wit {:?} is not a vigil:plugin version devices support ({})",
            manifest.wit,
            SUPPORTED_WIT.join(", ")
        )));
    }
    let component = read(component, "component")?;
    let key_text = String::from_utf8(read(key, "key file")?).unwrap_or_default();
    let key = package::signing_key_from_base64(&key_text)
        .map_err(|e| Failure::Usage(format!("the key file {}: {e}; make one with `plugin keygen`", key.display())))?;
    let bytes = package::build(&manifest, &component, &key);
    std::fs::write(output, &bytes)
        .with_context(|| format!("cannot write the package {}", output.display()))
        .map_err(Failure::usage)?;
    let id = package::key_id(&key.verifying_key());
    ctx.print(
        || {
            let mut text = format!(
                "signed {} {} ({} bytes) with key {id} into {}",
                manifest.name,
                manifest.version,
                bytes.len(),
                output.display()
            );
            if bytes.len() > MAX_UPLOAD {
                text += &format!("\nwarning: devices accept packages up to {MAX_UPLOAD} bytes; this one cannot be installed");
            }
            text
        },
        || json!({"name": manifest.name, "version": manifest.version, "bytes": bytes.len(), "key_id": id, "file": output}),
    );
    Ok(())
}

fn verify(ctx: &Ctx, path: &Path, trust: &[VerifyingKey]) -> Result<(), Failure> {
    let bytes = read(path, "package")?;
    let package =
        package::open(&bytes, trust).map_err(|e| Failure::PackageRefused(format!("{}: {e}", path.display())))?;
    let m = &package.manifest;
    let id = package::key_id(&package.signer);
    ctx.print(
        || format!("{}signed by {id}: trusted", render::manifest(m, package.component.len())),
        || {
            json!({
                "name": m.name, "version": m.version, "wit": m.wit, "description": m.description,
                "actions": m.actions, "capabilities": {
                    "network": m.capabilities.network, "serial": m.capabilities.serial, "data": m.capabilities.data,
                },
                "component_bytes": package.component.len(), "key_id": id, "trusted": true,
            })
        },
    );
    Ok(())
}

/// The key a package says signed it; `open` still checks the signature.
fn package_signer(bytes: &[u8]) -> Option<VerifyingKey> {
    let key = bytes.len().checked_sub(96).and_then(|start| bytes.get(start..start + 32))?;
    VerifyingKey::from_bytes(key.try_into().ok()?).ok()
}

/// The sample incident `plugin run` sends, as it stands after `event`.
fn sample_incident(event: SampleEvent, action: SrpAction, drill: bool) -> Incident {
    let (stage, active) = match event {
        SampleEvent::Raised => ("pending-verification".to_string(), vec![]),
        SampleEvent::Verified => ("confirmed".into(), vec![]),
        SampleEvent::Dismissed => ("dismissed".into(), vec![]),
        SampleEvent::Action => (format!("responding:{}", action.name()), vec![action]),
        SampleEvent::AllClear => ("all-clear".into(), vec![]),
    };
    Incident {
        id: 1,
        camera: "hall-1".into(),
        camera_name: "Main hall".into(),
        location: Location { building: "A".into(), floor: "1".into(), zone: "main-hall".into() },
        label: "handgun".into(),
        score: 0.93,
        drill,
        stage,
        active,
    }
}

fn srp(action: Action) -> SrpAction {
    match action {
        Action::Hold => SrpAction::Hold,
        Action::Secure => SrpAction::Secure,
        Action::Lockdown => SrpAction::Lockdown,
        Action::Evacuate => SrpAction::Evacuate,
        Action::Shelter => SrpAction::Shelter,
    }
}

/// Prints the plugin host's log lines (each carries the plugin's name) on stderr.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

/// Waits until `done` holds for the plugin's info, or `limit` passes; returns the last info.
fn wait_for(host: &PluginHost, name: &str, limit: Duration, done: impl Fn(&PluginInfo) -> bool) -> Option<PluginInfo> {
    let until = Instant::now() + limit;
    loop {
        let info = host.list().into_iter().find(|p| p.name == name);
        if info.as_ref().is_none_or(&done) || Instant::now() >= until {
            return info;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run(ctx: &Ctx, args: &RunArgs) -> Result<(), Failure> {
    if args.action.is_some() && args.event != SampleEvent::Action {
        return Err(Failure::Usage("--action goes with --event action".into()));
    }
    let bytes = read(&args.package, "package")?;
    let refused = |e: &dyn std::fmt::Display| Failure::PackageRefused(format!("{}: {e}", args.package.display()));
    let trusted = if args.trust_any { package_signer(&bytes).into_iter().collect() } else { args.trust.clone() };
    let package = package::open(&bytes, &trusted).map_err(|e| refused(&e))?;
    let name = package.manifest.name.clone();
    let signer = package::key_id(&package.signer);
    log_to_stderr();

    let state = tempfile::tempdir().context("cannot make a temporary state folder").map_err(Failure::usage)?;
    let grant = Grant {
        network: args.network.clone(),
        data_dir: args.data.clone(),
        config: args.config.clone().unwrap_or_else(|| json!({})),
        ..Grant::default()
    };
    let limits = Limits::default();
    let host = PluginHost::new(HostConfig {
        state_dir: state.path().to_path_buf(),
        trusted_keys: trusted,
        limits,
        grants: BTreeMap::from([(name.clone(), grant)]),
    })
    .map_err(|e| Failure::Usage(format!("cannot start the plugin host: {e}")))?;
    let installed = host.install(&bytes).map_err(|e| refused(&e))?;
    let started = wait_for(&host, &name, limits.call_deadline * 2, |p| p.state != PluginState::Starting);
    if let Some(PluginInfo { state: state @ PluginState::Disabled { .. }, .. }) = &started {
        return Err(refused(&format!("plugin {name} passed its health check but then did not start: {state}")));
    }
    let calls = started.map_or(0, |p| p.metrics.calls);

    let action = srp(args.action.unwrap_or(Action::Lockdown));
    let incident = sample_incident(args.event, action, args.drill);
    let (event, directive) = match args.event {
        SampleEvent::Raised => (Event::Raised(incident.clone()), None),
        SampleEvent::Verified => (Event::Verified(incident.clone()), None),
        SampleEvent::Dismissed => (Event::Dismissed(incident.clone()), None),
        SampleEvent::Action => (Event::ActionRequested(incident.clone()), Some(Directive::Activate(action))),
        SampleEvent::AllClear => (Event::AllClear(incident.clone()), Some(Directive::AllClear)),
    };
    host.dispatch_event(&event);
    let deadline = limits.call_deadline + Duration::from_secs(1);
    wait_for(&host, &name, deadline, |p| p.metrics.calls > calls);
    let result = directive.map(|directive| {
        let request = ActionRequest { incident, directive, actor: "operator:vigilctl".into() };
        let (tx, rx) = mpsc::channel();
        host.dispatch_action(&request, move |_plugin: &str, result| {
            let _ = tx.send(result);
        })
        .wait();
        (directive, rx.try_recv().ok())
    });
    let info = host.list().into_iter().find(|p| p.name == name);
    drop(host);

    let trust = if args.trust_any {
        format!(
            "signed by {signer}: trusted because of --trust-any (the package's own signer; a device trusts only its configured keys)"
        )
    } else {
        format!("signed by {signer}: trusted")
    };
    let status: Option<Value> = info
        .as_ref()
        .and_then(|i| i.status.as_deref())
        .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())));
    ctx.print(
        || {
            render::plugin_run(
                &installed,
                &trust,
                event_name(args.event),
                result.as_ref(),
                status.as_ref(),
                info.as_ref(),
            )
        },
        || {
            json!({
                "name": installed.name,
                "version": installed.version,
                "key_id": signer,
                "trust_any": args.trust_any,
                "denied": installed.denied,
                "event": event_name(args.event),
                "directive": result.as_ref().map(|(d, _)| render::directive_name(*d)),
                "result": result.as_ref().map(|(_, r)| r.as_ref().map(result_json)),
                "status": status,
                "state": info.as_ref().map(|i| i.state.to_string()),
                "metrics": info.as_ref().map(|i| render::metrics_json(&i.metrics)),
            })
        },
    );
    Ok(())
}

fn event_name(event: SampleEvent) -> &'static str {
    match event {
        SampleEvent::Raised => "raised",
        SampleEvent::Verified => "verified",
        SampleEvent::Dismissed => "dismissed",
        SampleEvent::Action => "action-requested",
        SampleEvent::AllClear => "all-clear",
    }
}

fn result_json(result: &ActionResult) -> Value {
    match result {
        ActionResult::Done(detail) => json!({"result": "done", "detail": detail}),
        ActionResult::Failed(detail) => json!({"result": "failed", "detail": detail}),
        ActionResult::NotApplicable => json!({"result": "not-applicable"}),
    }
}

/// Reads the package for `plugin install` and refuses one too big to send.
pub fn read_package(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = read(path, "package")?;
    if bytes.len() > MAX_UPLOAD {
        return Err(Failure::Usage(format!(
            "the package {} is {} bytes; a device accepts packages up to {MAX_UPLOAD} bytes: build the component \
             in release mode and strip it",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The `plugin.install` commands for a package: one carrying it whole when
/// it fits in `chunk` bytes, else one per part, each naming the upload, its
/// index and the whole package's SHA-256.
pub fn install_commands(package: &[u8], chunk: usize, upload: &str) -> Vec<DeviceCommand> {
    use sha2::Digest as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    if package.len() <= chunk {
        return vec![DeviceCommand { name: "plugin.install", args: json!({"package": b64(package)}) }];
    }
    // Never more parts than a device accepts: grow the parts instead.
    let chunk = chunk.max(package.len().div_ceil(MAX_UPLOAD_PARTS as usize));
    let sha256: String = sha2::Sha256::digest(package).iter().map(|b| format!("{b:02x}")).collect();
    let parts = package.len().div_ceil(chunk);
    package
        .chunks(chunk)
        .enumerate()
        .map(|(i, data)| DeviceCommand {
            name: "plugin.install",
            args: json!({"upload": upload, "part": i, "parts": parts, "sha256": sha256, "data": b64(data)}),
        })
        .collect()
}

/// `plugin install`: sends the package (in parts of at most `chunk` bytes)
/// and prints the device's answer to the last part.
pub async fn install(conn: &mut Conn, ctx: &Ctx, device: &Topics, package: &[u8], chunk: usize) -> Result<(), Failure> {
    let upload = conn.next_request_id();
    let commands = install_commands(package, chunk, &upload);
    let total = commands.len();
    let mut last = None;
    for (i, command) in commands.into_iter().enumerate() {
        let pending = Pending::send(conn, device, &command, &ctx.operator, ctx.timeout, &[]).await?;
        let response = pending.response(conn).await?;
        if !response.ok || i + 1 == total {
            last = Some(response);
            break;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!("\r\x1b[2Ksent part {}/{total} of {} bytes", i + 1, package.len());
        }
    }
    if total > 1 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprint!("\r\x1b[2K");
    }
    let response = last.expect("a package is at least one command");
    if ctx.json {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    } else if response.ok {
        print!("{}", render::plugin_installed(device.device(), response.data.as_ref()));
    }
    request::outcome(&response)
}

/// `plugin list`: the device's plugins as a table (with `--json`, the array).
pub async fn list(conn: &mut Conn, ctx: &Ctx, device: &Topics) -> Result<(), Failure> {
    let command = DeviceCommand { name: "plugin.list", args: json!({}) };
    let pending = Pending::send(conn, device, &command, &ctx.operator, ctx.timeout, &[]).await?;
    let response = pending.response(conn).await?;
    request::outcome(&response)?;
    let plugins = response.data.as_ref().and_then(|d| d.get("plugins")).and_then(Value::as_array);
    let plugins = plugins.cloned().unwrap_or_default();
    ctx.print(|| render::plugin_table(device.device(), &plugins), || Value::Array(plugins.clone()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_package_goes_in_parts_the_device_parses_and_reassembles() {
        let package: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let small = install_commands(&package[..1000], 64 * 1024, "u");
        assert_eq!(small.len(), 1);
        assert!(small[0].args.get("package").is_some());

        let commands = install_commands(&package, 64 * 1024, "vigilctl-1-a");
        assert_eq!(commands.len(), 4);
        let mut joined = Vec::new();
        for command in commands {
            let payload = vigil_uplink::command_json("r", &"é".repeat(128), command.args);
            // Every part fits a 128 KiB broker message with room for the envelope.
            assert!(payload.len() < 100 * 1024, "{} bytes", payload.len());
            match vigil_uplink::parse_command("plugin.install", &payload).unwrap().command {
                vigil_uplink::UplinkCommand::PluginUpload(part) => {
                    assert_eq!(
                        (part.upload.as_str(), part.parts, part.part as usize),
                        ("vigilctl-1-a", 4, joined.len())
                    );
                    joined.push(part.data);
                }
                other => panic!("not a part: {other:?}"),
            }
        }
        assert_eq!(joined.concat(), package);
    }

    #[test]
    fn the_signer_is_read_from_the_package_tail() {
        let (sk, vk) = package::keygen();
        let manifest = Manifest {
            name: "a".into(),
            version: "1".into(),
            wit: "0.1.0".into(),
            description: String::new(),
            actions: vec![],
            capabilities: Default::default(),
            config_schema: Value::Null,
        };
        assert_eq!(package_signer(&package::build(&manifest, b"c", &sk)), Some(vk));
        assert_eq!(package_signer(b"short"), None);
    }
}

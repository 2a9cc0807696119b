//! `vigild`: the supervisor daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use vigil_config::{Config, SourceConfig};
use vigil_core::SystemClock;
use vigil_detector::Detector;
use vigild::actions::LogActions;
use vigild::{Parts, console};

/// Vigil's supervisor: watches the school's cameras for weapons and raises incidents.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The configuration file.
    #[arg(long, short, default_value = "/etc/vigil/vigil.toml")]
    config: PathBuf,
    /// Validate the configuration file (and that the files it names exist), then exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Print incidents to stdout as they happen and a summary at the end, and
    /// take operator commands (verify, dismiss, action, all-clear, drill) on stdin.
    #[arg(long)]
    console: bool,
    /// Stop after this many seconds (for demos and tests).
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("vigild: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = args.check_config {
        let config = Config::load(&path)?;
        check_files(&config)?;
        println!(
            "{}: valid ({} camera(s), model {}, device {})",
            path.display(),
            config.cameras.len(),
            config.detector.model.display(),
            config.detector.device
        );
        return Ok(());
    }

    let config = Config::load(&args.config)?;
    check_files(&config)?;
    let detector = Detector::load_for_cameras(&config.detector, config.cameras.len())?;
    let info = detector.info();
    tracing::info!(
        model = %info.path.display(), library = %info.library, device = %info.device,
        execution_devices = %info.execution_devices, layout = %info.layout, requests = info.requests,
        load_ms = info.load_ms as u64, "detector ready"
    );

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()).context("installing signal handlers")?;

    let mut notices = Vec::new();
    let printer = args.console.then(|| {
        let (tx, rx) = crossbeam_channel::unbounded();
        notices.push(tx);
        std::thread::spawn(move || console::print_notices(rx, std::io::stdout()))
    });
    let parts = Parts { clock: Arc::new(SystemClock::new()), opener: None, actions: Box::new(LogActions), notices };
    let mut running = vigild::start(&config, detector, parts)?;
    tracing::info!(device = %config.device.id, cameras = config.cameras.len(), "vigild running");
    if args.console {
        println!("{}", console::CONSOLE_HELP);
        let commands = running.commands();
        std::thread::spawn(move || console_commands(commands));
    }

    let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(100));
        if reload.swap(false, Ordering::Relaxed) {
            reload_config(&args.config, &mut running);
        }
    }
    tracing::info!("shutting down");
    let status = running.shutdown();
    if let Some(printer) = printer {
        let _ = printer.join();
    }
    if args.console || args.seconds.is_some() {
        println!("{}", console::format_summary(&status));
    }
    Ok(())
}

/// SIGHUP: re-reads the config file and applies what changed. A config
/// that fails validation is refused and the running one kept.
fn reload_config(path: &std::path::Path, running: &mut vigild::Running) {
    let applied = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| check_files(&config).map_err(|e| format!("{e:#}")).map(|()| config))
        .and_then(|config| running.reconfigure(config));
    match applied {
        Ok(r) => tracing::info!(added = ?r.added, removed = ?r.removed, restarted = ?r.restarted, updated = ?r.updated, "config reloaded"),
        Err(e) => tracing::error!(error = %e, "config reload refused; the running config is kept"),
    }
}

/// Reads operator commands from stdin until it closes. The actor recorded in
/// the audit trail is `console:<login>`.
fn console_commands(commands: crossbeam_channel::Sender<vigild::CommandRequest>) {
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { return };
        let command = match console::parse_command(&line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                println!("{e}");
                continue;
            }
        };
        let (reply, verdict) = crossbeam_channel::bounded(1);
        let actor = vigil_core::incident::Actor::Operator(format!("console:{who}"));
        if commands.send(vigild::CommandRequest { command, actor, reply: Some(reply) }).is_err() {
            return;
        }
        match verdict.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => println!("refused: {e}"),
            Err(_) => return,
        }
    }
}

/// Files the config names must exist: refusing now beats a camera that
/// retries a missing file forever.
fn check_files(config: &Config) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let model = &config.detector.model;
    if !model.is_file() {
        missing.push(format!("detector.model {}", model.display()));
    } else if model.extension().is_some_and(|e| e == "xml") && !model.with_extension("bin").is_file() {
        missing.push(format!("the weights {} beside detector.model", model.with_extension("bin").display()));
    }
    for c in &config.cameras {
        if let SourceConfig::File { path, .. } = &c.source
            && !path.is_file()
        {
            missing.push(format!("camera {} source {}", c.id, path.display()));
        }
    }
    if !missing.is_empty() {
        bail!("files named in the config do not exist: {}", missing.join("; "));
    }
    Ok(())
}

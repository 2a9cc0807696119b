//! `vigild`: the supervisor daemon.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use vigil_broker::EmbeddedBroker;
use vigil_config::{Broker, Config};
use vigil_core::{Clock, SystemClock};
use vigil_detector::Detector;
use vigil_link::{Endpoint, Identity, Link, LinkEvent, LinkSettings};
use vigil_outbox::Outbox;
use vigil_uplink::Topics;
use vigil_uplink::telemetry::SystemHealth;
use vigild::district::{District, DistrictParts, MainRequest, SetLogLevel, read_district_config};
use vigild::journal::Journal;
use vigild::plugins::PluginActions;
use vigild::system::UpdateManager;
use vigild::{Parts, check_files, console};

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

/// How often plugins get `on-tick`.
const PLUGIN_TICK: Duration = Duration::from_secs(1);

/// The log filter unless `VIGIL_LOG` says otherwise.
const DEFAULT_LOG: &str = "info,rumqttd=off";

fn main() {
    // The embedded broker (rumqttd) logs every connection at info and a normal disconnect as an error;
    // its real failures surface as uplink errors, so it is quiet unless VIGIL_LOG asks for it.
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| DEFAULT_LOG.into());
    let (filter, log_filter) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
        .init();
    let set_log_level: SetLogLevel = Box::new(move |level: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("{level:?}: {e}"))?;
        log_filter.reload(filter).map_err(|e| e.to_string())
    });
    if let Err(e) = run(Args::parse(), set_log_level) {
        eprintln!("vigild: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args, set_log_level: SetLogLevel) -> anyhow::Result<()> {
    if let Some(path) = args.check_config {
        let config = Config::load(&path)?;
        check_files(&config)?;
        println!(
            "{}: valid ({} camera(s), model {}, device {}, uplink {})",
            path.display(),
            config.cameras.len(),
            config.detector.model.display(),
            config.detector.device,
            describe_broker(&config.uplink.broker)
        );
        return Ok(());
    }

    let (config, running_version) = load_config(&args.config)?;
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

    let system = Arc::new(vigild::system::start()?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let uplink = Uplink::start(&config, &clock)?;
    let updates = open_updates(&config, uplink.as_ref());

    let mut notices = Vec::new();
    let printer = args.console.then(|| {
        let (tx, rx) = crossbeam_channel::unbounded();
        notices.push(tx);
        std::thread::spawn(move || console::print_notices(rx, std::io::stdout()))
    });
    let plugins = vigild::plugins::start_host(&config.plugins, &config.device.data_dir)?;
    let (outcomes_tx, outcomes) = crossbeam_channel::unbounded();
    let (plugin_notices, plugin_events) = crossbeam_channel::unbounded();
    notices.push(plugin_notices);
    let events_thread = {
        let host = plugins.clone();
        std::thread::Builder::new()
            .name("plugin-events".into())
            .spawn(move || vigild::plugins::run_events(host, plugin_events, PLUGIN_TICK))
            .context("starting the plugin event thread")?
    };
    let parts = Parts {
        clock: clock.clone(),
        opener: None,
        actions: Box::new(PluginActions::new(plugins.clone(), outcomes_tx)),
        journal: uplink.as_ref().map(|u| u.journal()),
        outcomes: Some(outcomes),
        notices,
    };
    let mut running = vigild::start(&config, detector, parts)?;
    tracing::info!(device = %config.device.id, cameras = config.cameras.len(), running_version, "vigild running");
    let (main_tx, main_rx) = crossbeam_channel::unbounded();
    let district = match &uplink {
        Some(u) => {
            let mut parts = u.district_parts(
                &config,
                &args.config,
                running_version,
                main_tx.clone(),
                running.commands(),
                clock.clone(),
                set_log_level,
                plugins.clone(),
            );
            parts.updates = updates.clone();
            parts.heartbeat = Some(system.heartbeat("uplink", vigild::system::UPLINK_MAX_SILENCE));
            let (sys, upd) = (system.clone(), updates.clone());
            parts.system_health = Some(Box::new(move || system_health(&sys, upd.as_ref())));
            Some(District::start(parts).context("starting the district thread")?)
        }
        None => None,
    };
    match &updates {
        // READY=1 waits for the post-update health check (the image's
        // mark-good unit marks the slot good on READY=1).
        Some(updates) => {
            let (updates, main, link) = (updates.clone(), main_tx.clone(), uplink.as_ref().map(|u| u.link.handle()));
            let (system, timeout) = (system.clone(), config.os.health_timeout);
            std::thread::Builder::new()
                .name("os-update-boot".into())
                .spawn(move || finish_update_after_boot(&updates, &main, link.as_ref(), timeout, &system))
                .context("starting the post-boot update check")?;
        }
        None => system.ready(),
    }
    let detector_alive = system.heartbeat("detector", vigild::system::DETECTOR_MAX_SILENCE);
    let mut last_inferences = 0;
    let mut last_check = Instant::now();
    if args.console {
        println!("{}", console::CONSOLE_HELP);
        let commands = running.commands();
        std::thread::spawn(move || console_commands(commands));
    }

    let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        if let Ok(request) = main_rx.recv_timeout(Duration::from_millis(100)) {
            serve(request, &mut running);
        }
        if reload.swap(false, Ordering::Relaxed) {
            reload_config(&args.config, &mut running);
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            let status = running.status();
            // Alive: the detector produced results since the last look, or
            // has nothing to do (no camera is streaming).
            if status.inferences > last_inferences || !status.streaming() {
                detector_alive.beat();
            }
            last_inferences = status.inferences;
        }
    }
    tracing::info!("shutting down");
    system.stopping();
    if let Some(d) = district {
        // Requests the district thread is waiting on are answered before it stops.
        let (stopped_tx, stopped_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            d.stop();
            let _ = stopped_tx.send(());
        });
        while stopped_rx.try_recv().is_err() {
            if let Ok(request) = main_rx.recv_timeout(Duration::from_millis(20)) {
                serve(request, &mut running);
            }
        }
    }
    let status = running.shutdown();
    // The supervisor's notice senders are gone with it, which ends the event thread.
    let _ = events_thread.join();
    if let Some(u) = uplink {
        u.shutdown();
    }
    if let Some(printer) = printer {
        let _ = printer.join();
    }
    if args.console || args.seconds.is_some() {
        println!("{}", console::format_summary(&status));
    }
    Ok(())
}

/// The local config file, or the district's config applied last (kept in
/// the data folder) when there is one that still validates.
fn load_config(path: &Path) -> anyhow::Result<(Config, u64)> {
    let local = Config::load(path)?;
    let Some((version, text)) = read_district_config(&local.device.data_dir) else {
        return Ok((local, 0));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let label = PathBuf::from(format!("district config v{version}"));
    match Config::parse(&text, &label, base) {
        Ok(c) if c.device.id == local.device.id && c.device.data_dir == local.device.data_dir => {
            tracing::warn!(version, file = %path.display(), "running the district's config v{version}, not the local file");
            Ok((c, version))
        }
        Ok(_) => {
            tracing::error!(
                version,
                "the saved district config names another device or data folder; running the local file"
            );
            Ok((local, 0))
        }
        Err(e) => {
            tracing::error!(version, error = %e, "the saved district config no longer validates; running the local file");
            Ok((local, 0))
        }
    }
}

/// Carries out a request of the district thread on the pipeline.
fn serve(request: MainRequest, running: &mut vigild::Running) {
    match request {
        MainRequest::Reconfigure(config, reply) => {
            let r = running.reconfigure(*config);
            if let Ok(r) = &r {
                tracing::info!(added = ?r.added, removed = ?r.removed, restarted = ?r.restarted, updated = ?r.updated, "config applied from the district");
            }
            let _ = reply.send(r);
        }
        MainRequest::Status(reply) => {
            let _ = reply.send(running.status());
        }
        MainRequest::Snapshot(camera, reply) => {
            let _ = reply.send(running.snapshot(&camera));
        }
    }
}

fn describe_broker(b: &Broker) -> String {
    match b {
        Broker::None => "none".into(),
        Broker::Embedded { listen } => format!("embedded broker on {listen}"),
        Broker::Remote(r) => Endpoint::remote(r).url(),
    }
}

/// The district link: the embedded broker (if configured), the outbox and the MQTT link.
struct Uplink {
    broker: Option<EmbeddedBroker>,
    outbox: Arc<Outbox>,
    link: Link,
    events: crossbeam_channel::Receiver<LinkEvent>,
    topics: Topics,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Uplink {
    fn start(config: &Config, clock: &Arc<dyn Clock>) -> anyhow::Result<Option<Uplink>> {
        let u = &config.uplink;
        let (endpoint, broker) = match &u.broker {
            Broker::None => {
                tracing::warn!(
                    "uplink.broker = \"none\": incidents stay in the local store; nothing reaches the district"
                );
                return Ok(None);
            }
            Broker::Embedded { listen } => {
                let broker = EmbeddedBroker::start(*listen).context("starting the embedded MQTT broker")?;
                tracing::info!(listen = %broker.addr(), "embedded MQTT broker running (loopback only)");
                (Endpoint::plain(broker.addr()), Some(broker))
            }
            Broker::Remote(r) => (Endpoint::remote(r), None),
        };
        let data = &config.device.data_dir;
        std::fs::create_dir_all(data).with_context(|| format!("creating the data folder {}", data.display()))?;
        let outbox = Arc::new(Outbox::open_with_limit(&data.join("outbox.redb"), u.outbox_max)?);
        let topics = Topics::new(&config.device.id)?;
        let (events_tx, events) = crossbeam_channel::unbounded();
        let settings = LinkSettings {
            endpoint,
            client_id: u.client_id.clone(),
            keep_alive: u.keep_alive,
            session_expiry: u.session_expiry,
            ack: u.ack,
            resend_after: u.resend_after,
            topics: topics.clone(),
            session_file: data.join("uplink-session"),
            identity: Identity {
                boot_id: boot_id(),
                version: env!("CARGO_PKG_VERSION").into(),
                started: clock.now().rfc3339(),
                started_at: Instant::now(),
            },
        };
        tracing::info!(broker = %settings.endpoint.url(), pending = outbox.depth().unwrap_or(0), "uplink starting");
        let link = Link::start(settings, outbox.clone(), events_tx)?;
        Ok(Some(Uplink { broker, outbox, link, events, topics, refused: Arc::default() }))
    }

    fn journal(&self) -> Journal {
        Journal::new(self.outbox.clone(), self.topics.clone(), Some(self.link.handle()))
            .with_refused(self.refused.clone())
    }

    /// The district thread's parts; the OS parts are the caller's to fill in.
    #[allow(clippy::too_many_arguments)]
    fn district_parts(
        &self,
        config: &Config,
        config_path: &Path,
        running_version: u64,
        main: crossbeam_channel::Sender<MainRequest>,
        commands: crossbeam_channel::Sender<vigild::CommandRequest>,
        clock: Arc<dyn Clock>,
        set_log_level: SetLogLevel,
        plugins: Arc<vigil_plugins::PluginHost>,
    ) -> DistrictParts {
        DistrictParts {
            topics: self.topics.clone(),
            telemetry_interval: config.uplink.telemetry_interval,
            config_base: config_path.parent().map(Path::to_path_buf).unwrap_or_default(),
            data_dir: config.device.data_dir.clone(),
            running_version,
            link: self.link.handle(),
            events: self.events.clone(),
            main,
            commands,
            outbox: self.outbox.clone(),
            refused: self.refused.clone(),
            clock,
            set_log_level,
            plugins: Some(plugins),
            updates: None,
            heartbeat: None,
            system_health: None,
        }
    }

    fn shutdown(self) {
        self.link.shutdown(Duration::from_secs(3));
        drop(self.broker);
    }
}

/// The OS update manager, unless `[os] updates = false`; its jobs are
/// published retained on `os/update`. A job file that cannot be opened turns
/// updates off for this run and says why: the pipeline runs regardless.
fn open_updates(config: &Config, uplink: Option<&Uplink>) -> Option<UpdateManager> {
    if !config.os.updates {
        tracing::info!("OS updates are off ([os] updates = false)");
        return None;
    }
    let link = uplink.map(|u| (u.link.handle(), u.topics.clone()));
    let publish = move |job: &vigild::system::Job| {
        tracing::info!(job = %job.id, phase = job.phase.as_str(), progress = ?job.progress, detail = %job.detail, "OS update");
        if let Some((link, topics)) = &link {
            vigild::district::publish_job(link, topics, job);
        }
    };
    match vigild::system::update_manager(&config.device.data_dir, &config.os, publish) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "OS updates are unavailable this run");
            None
        }
    }
}

/// After a boot into an updated slot: waits until a camera streams, the
/// detector has inferred and the broker is connected (each only if
/// configured), then marks the slot good and tells systemd it is ready; if
/// that does not happen within `timeout` the slot is marked bad and the box
/// reboots into the old one, and the job says what was missing. On any other
/// boot it only tells systemd it is ready.
fn finish_update_after_boot(
    updates: &UpdateManager,
    main: &crossbeam_channel::Sender<MainRequest>,
    link: Option<&vigil_link::LinkHandle>,
    timeout: Duration,
    system: &vigild::system::System,
) {
    let health = || {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = health_missing(main, link);
            if missing.is_empty() {
                return vigild::system::HealthVerdict::Healthy;
            }
            if Instant::now() >= deadline {
                return vigild::system::HealthVerdict::Unhealthy(format!(
                    "after {} s: {}",
                    timeout.as_secs(),
                    missing.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let rebooting = match vigild::system::after_boot(updates, health) {
        Ok(Some(job)) => {
            tracing::warn!(job = %job.id, phase = job.phase.as_str(), "OS update after boot");
            // Unhealthy: the slot is marked bad and the reboot is under way.
            job.phase == vigild::system::Phase::Rebooting && job.error.as_ref().is_some_and(|e| e.code == "unhealthy")
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the OS update could not be finished after boot");
            false
        }
    };
    if !rebooting {
        system.ready();
    }
}

/// What the post-update health check still waits for, in words.
fn health_missing(main: &crossbeam_channel::Sender<MainRequest>, link: Option<&vigil_link::LinkHandle>) -> Vec<String> {
    let mut missing = Vec::new();
    let (reply, status) = crossbeam_channel::bounded(1);
    let status =
        main.send(MainRequest::Status(reply)).ok().and_then(|()| status.recv_timeout(Duration::from_secs(5)).ok());
    match status {
        None => missing.push("the pipeline does not answer".to_string()),
        Some(s) => {
            if !s.cameras.is_empty() && !s.streaming() {
                missing.push("no camera is streaming".into());
            }
            if !s.cameras.is_empty() && s.inferences == 0 {
                missing.push("the detector has not inferred a frame".into());
            }
        }
    }
    if link.is_some_and(|l| !l.status().connected) {
        missing.push("the district broker is not connected".into());
    }
    missing
}

/// The appliance OS's telemetry line.
fn system_health(system: &vigild::system::System, updates: Option<&UpdateManager>) -> SystemHealth {
    let time = vigild::system::time_status();
    SystemHealth {
        time_synchronized: time.synchronized,
        time_source: time.source.as_str().into(),
        watchdog: vigild::system::watchdog_line(system),
        os_update: updates.and_then(UpdateManager::job).map(|j| vigild::system::job_line(&j)),
    }
}

/// A fresh id for this run of vigild.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid").map(|s| s.trim().to_string()).unwrap_or_else(|_| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:x}-{:x}", t.as_nanos(), std::process::id())
    })
}

/// SIGHUP: re-reads the config file and applies what changed. A config
/// that fails validation is refused and the running one kept.
fn reload_config(path: &std::path::Path, running: &mut vigild::Running) {
    let applied = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| check_files(&config).map_err(|e| format!("{e:#}")).map(|()| config))
        .and_then(|config| running.reconfigure(config));
    match applied {
        Ok(r) => {
            tracing::info!(added = ?r.added, removed = ?r.removed, restarted = ?r.restarted, updated = ?r.updated, "config reloaded")
        }
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

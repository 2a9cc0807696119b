//! The pipeline benchmark: the whole of vigild (synthetic cameras, scheduler,
//! letterbox, asynchronous inference, decoding, confirmation) on a model of
//! YOLOv8n's cost, against OpenVINO's own `benchmark_app` on the same model
//! and device, measured in the same run. `cargo xtask bench` runs it.
//! `--ingest`, `--uplink` and `--plugins` run those benchmark binaries too and merge their JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vigil_config::Config;
use vigil_core::SystemClock;
use vigil_detector::Detector;
use vigild::Parts;
use vigild::actions::LogActions;

struct Args {
    model: PathBuf,
    labels: PathBuf,
    benchmark_app: PathBuf,
    seconds: u64,
    warmup: u64,
    cameras: Vec<usize>,
    fps: f32,
    device: String,
    requests: u32,
    hint: String,
    ingest: Option<PathBuf>,
    uplink: Option<PathBuf>,
    plugins: Option<PathBuf>,
    json: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        model: PathBuf::new(),
        labels: PathBuf::new(),
        benchmark_app: PathBuf::from("benchmark_app"),
        seconds: 20,
        warmup: 3,
        cameras: vec![1, 4, 16],
        fps: 10.0,
        device: "CPU".into(),
        requests: 0,
        hint: "throughput".into(),
        ingest: None,
        uplink: None,
        plugins: None,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => a.model = value()?.into(),
            "--labels" => a.labels = value()?.into(),
            "--benchmark-app" => a.benchmark_app = value()?.into(),
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--warmup" => a.warmup = value()?.parse().context("--warmup")?,
            "--fps" => a.fps = value()?.parse().context("--fps")?,
            "--device" => a.device = value()?,
            "--requests" => a.requests = value()?.parse().context("--requests")?,
            "--hint" => a.hint = value()?,
            "--ingest" => a.ingest = Some(value()?.into()),
            "--uplink" => a.uplink = Some(value()?.into()),
            "--plugins" => a.plugins = Some(value()?.into()),
            "--cameras" => {
                a.cameras =
                    value()?.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>().context("--cameras")?
            }
            "--json" => a.json = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    // The config written for each run lives in a temporary folder: paths must not be relative.
    for p in [&mut a.model, &mut a.labels] {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    if a.model.as_os_str().is_empty() || a.labels.as_os_str().is_empty() {
        bail!(
            "usage: vigil-bench --model M.xml --labels L --benchmark-app PATH [--seconds N] [--cameras 1,4,16] [--fps N] [--device CPU] [--requests N] [--hint throughput|latency] [--ingest PATH] [--uplink PATH] [--plugins PATH] [--json]"
        );
    }
    Ok(a)
}

/// OpenVINO's own figures for the model.
struct Reference {
    fps: f64,
    median_latency_ms: f64,
}

fn benchmark_app(args: &Args) -> anyhow::Result<Reference> {
    let out = Command::new(&args.benchmark_app)
        .arg("-m")
        .arg(&args.model)
        .args(["-d", &args.device, "-hint", &args.hint, "-t", &args.seconds.to_string()])
        .output()
        .with_context(|| format!("running {}", args.benchmark_app.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("benchmark_app failed: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    }
    let number_after = |key: &str| -> anyhow::Result<f64> {
        let line =
            text.lines().find(|l| l.contains(key)).with_context(|| format!("no {key:?} in benchmark_app's output"))?;
        let value = line.split(':').nth(1).and_then(|v| v.split_whitespace().next()).context("unparsable line")?;
        value.parse().with_context(|| format!("benchmark_app's {key} {value:?}"))
    };
    Ok(Reference { fps: number_after("Throughput:")?, median_latency_ms: number_after("Median:")? })
}

struct Row {
    cameras: usize,
    pipeline_fps: f64,
    reference_fps: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_target_ms: f64,
    dropped: u64,
    utilization: f64,
    requests: usize,
    rss_mib: f64,
}

fn config_text(args: &Args, cameras: usize, data: &Path) -> String {
    let mut t = format!(
        "[device]\nid = \"bench\"\ndata_dir = {data:?}\n\n[detector]\nmodel = {:?}\nlabels_file = {:?}\ndevice = {:?}\ninfer_requests = {}\nperformance_hint = {:?}\n\n[confirmation]\nthreat_labels = [\"person\"]\n",
        args.model, args.labels, args.device, args.requests, args.hint
    );
    for i in 0..cameras {
        let _ = write!(
            t,
            "\n[[camera]]\nid = \"cam-{i:02}\"\nfps = {}\nsource = {{ kind = \"demo\", scenario = \"quiet\" }}\n",
            args.fps
        );
    }
    t
}

fn run_pipeline(args: &Args, cameras: usize) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vigil.toml");
    std::fs::write(&path, config_text(args, cameras, dir.path()))?;
    let config = Config::load(&path)?;
    let detector = Detector::load_for_cameras(&config.detector, config.cameras.len())?;
    let requests = detector.info().requests;
    let parts = Parts {
        clock: Arc::new(SystemClock::new()),
        opener: None,
        actions: Box::new(LogActions),
        journal: None,
        outcomes: None,
        notices: Vec::new(),
    };
    let running = vigild::start(&config, detector, parts)?;
    std::thread::sleep(Duration::from_secs(args.warmup));
    let before = running.status();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let after = running.status();
    let elapsed = started.elapsed().as_secs_f64();
    running.shutdown();

    let busy = |s: &vigild::Status| s.detector_utilization * s.uptime.as_secs_f64();
    let latency = after.supervisor.decision_latency.since(&before.supervisor.decision_latency);
    let ms = |q: f64| latency.quantile(q).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Ok(Row {
        cameras,
        pipeline_fps: (after.inferences - before.inferences) as f64 / elapsed,
        reference_fps: 0.0,
        latency_p50_ms: ms(0.5),
        latency_p99_ms: ms(0.99),
        latency_target_ms: 0.0,
        dropped: after.dropped - before.dropped,
        utilization: (busy(&after) - busy(&before)) / elapsed,
        requests,
        rss_mib: peak_rss_mib(),
    })
}

/// The process's peak resident set (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    eprintln!("vigil-bench: benchmark_app on {} ({} s)", args.device, args.seconds);
    let first = benchmark_app(&args)?;
    let mut rows = Vec::new();
    for &n in &args.cameras {
        eprintln!(
            "vigil-bench: pipeline with {n} camera(s) at {} fps ({} s + {} s warm-up)",
            args.fps, args.seconds, args.warmup
        );
        rows.push(run_pipeline(&args, n)?);
    }
    let ingest = match &args.ingest {
        Some(bin) => {
            eprintln!("vigil-bench: camera ingest against gst-launch-1.0 ({} s)", args.seconds);
            ingest_runs(bin, args.seconds)?
        }
        None => Vec::new(),
    };
    eprintln!("vigil-bench: benchmark_app again, to bracket the pipeline runs");
    let second = benchmark_app(&args)?;
    // After the bracket: it measures the broker and the disk, not the detector.
    let uplink = match &args.uplink {
        Some(bin) => {
            eprintln!("vigil-bench: alert uplink against mosquitto_pub and a plain MQTT client");
            Some(json_run(bin, "uplink")?)
        }
        None => None,
    };
    let plugins = match &args.plugins {
        Some(bin) => {
            eprintln!("vigil-bench: plugin host against native trait calls");
            Some(json_run(bin, "plugin host")?)
        }
        None => None,
    };
    let reference = Reference {
        fps: (first.fps + second.fps) / 2.0,
        median_latency_ms: (first.median_latency_ms + second.median_latency_ms) / 2.0,
    };
    for r in &mut rows {
        r.reference_fps = reference.fps;
        r.latency_target_ms = reference.median_latency_ms + 1000.0 / f64::from(args.fps);
    }

    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "cameras": r.cameras,
                    "pipeline_fps": round(r.pipeline_fps),
                    "reference_fps": round(r.reference_fps),
                    "ratio": round(r.pipeline_fps / r.reference_fps),
                    "demand_fps": round(r.cameras as f64 * f64::from(args.fps)),
                    "latency_p50_ms": round(r.latency_p50_ms),
                    "latency_p99_ms": round(r.latency_p99_ms),
                    "latency_target_ms": round(r.latency_target_ms),
                    "dropped": r.dropped,
                    "utilization": round(r.utilization),
                    "infer_requests": r.requests,
                    "rss_mib": round(r.rss_mib),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "model": args.model.file_name().map(|n| n.to_string_lossy().into_owned()),
            "device": args.device,
            "camera_fps": args.fps,
            "performance_hint": args.hint,
            "seconds": args.seconds,
            "reference_fps_runs": [round(first.fps), round(second.fps)],
            "reference_latency_ms": round(reference.median_latency_ms),
            "results": rows,
            // The headline: one camera's ingest cost against gst-launch's.
            "ingest_ratio": ingest.first().and_then(|r| r.get("ingest_ratio")).cloned(),
            "ingest": ingest,
            // The alert path's headlines; the whole measurement is under "uplink".
            "outbox_ratio": uplink.as_ref().and_then(|u| u.get("outbox_ratio")).cloned(),
            "alert_latency_p50_ms": uplink.as_ref().and_then(|u| u.get("alert_latency_p50_ms")).cloned(),
            "alert_latency_p99_ms": uplink.as_ref().and_then(|u| u.get("alert_latency_p99_ms")).cloned(),
            "uplink": uplink,
            // The plugin host's headlines; the whole measurement is under "plugins".
            "plugin_instantiate_us": plugins.as_ref().and_then(|p| p.get("plugin_instantiate_us")).cloned(),
            "plugin_call_us": plugins.as_ref().and_then(|p| p.get("plugin_call_us")).cloned(),
            "native_call_us": plugins.as_ref().and_then(|p| p.get("native_call_us")).cloned(),
            "plugin_restart_ms": plugins.as_ref().and_then(|p| p.get("plugin_restart_ms")).cloned(),
            "plugin_idle_mib": plugins.as_ref().and_then(|p| p.get("plugin_idle_mib")).cloned(),
            "dispatch20_us": plugins.as_ref().and_then(|p| p.get("dispatch20_us")).cloned(),
            "plugins": plugins,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for r in &ingest {
            println!(
                "ingest, {} camera(s): {} ms CPU/s per camera, gst-launch {} ms CPU/s: ratio {}",
                r["cameras"], r["ingest_cpu_ms_per_s"], r["reference_cpu_ms_per_s"], r["ingest_ratio"]
            );
        }
        if let Some(u) = &uplink {
            println!(
                "uplink, {} alerts: Vigil {} alerts/s, mosquitto_pub {} alerts/s: outbox_ratio {}; replay {} alerts/s (ratio {})",
                u["alerts"],
                u["vigil_alerts_per_s"],
                u["mosquitto_pub_alerts_per_s"],
                u["outbox_ratio"],
                u["replay_alerts_per_s"],
                u["replay_ratio"]
            );
            println!(
                "alert latency: p50 {} ms, p99 {} ms; plain publish p99 {} ms: added p99 {} ms (target < {} ms)",
                u["alert_latency_p50_ms"],
                u["alert_latency_p99_ms"],
                u["alert_latency_reference_p99_ms"],
                u["alert_latency_added_p99_ms"],
                u["alert_latency_added_p99_target_ms"]
            );
        }
        if let Some(p) = &plugins {
            println!(
                "plugins: instantiate {} µs, call {} µs (native {} µs direct, {} µs with the same hand-off), restart {} ms ({} ms backoff; {} ms without), idle {} MiB each, 20-plugin dispatch p50 {} µs p99 {} µs",
                p["plugin_instantiate_us"],
                p["plugin_call_us"],
                p["native_call_us"],
                p["native_handoff_call_us"],
                p["plugin_restart_ms"],
                p["plugin_restart_backoff_ms"],
                p["plugin_restart_zero_backoff_ms"],
                p["plugin_idle_mib"],
                p["dispatch20_us"],
                p["dispatch20_p99_us"]
            );
        }
        println!(
            "model {} on {} ({} hint), cameras at {} fps; benchmark_app {:.2} / {:.2} FPS (mean {:.2}), median latency {:.1} ms",
            args.model.display(),
            args.device,
            args.hint,
            args.fps,
            first.fps,
            second.fps,
            reference.fps,
            reference.median_latency_ms
        );
        println!("cameras  demand  pipeline_fps  ratio  p50_ms  p99_ms  target_ms  dropped  util  requests  rss_mib");
        for r in &rows {
            println!(
                "{:>7}  {:>6.0}  {:>12.2}  {:>5.3}  {:>6.1}  {:>6.1}  {:>9.1}  {:>7}  {:>4.0}%  {:>8}  {:>7.1}",
                r.cameras,
                r.cameras as f64 * f64::from(args.fps),
                r.pipeline_fps,
                r.pipeline_fps / r.reference_fps,
                r.latency_p50_ms,
                r.latency_p99_ms,
                r.latency_target_ms,
                r.dropped,
                r.utilization * 100.0,
                r.requests,
                r.rss_mib
            );
        }
    }
    Ok(())
}

/// Runs the ingest benchmark binary for 1 and 4 cameras; one JSON object per count.
fn ingest_runs(bin: &Path, seconds: u64) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = Command::new(bin)
        .args(["--cameras", "1,4", "--seconds", &seconds.to_string()])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("the ingest benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("the ingest benchmark's output"))
        .collect()
}

/// Runs a benchmark binary that prints one JSON object with `--json` (the
/// uplink and plugin host benchmarks); its progress goes to our stderr.
fn json_run(bin: &Path, what: &str) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(bin)
        .arg("--json")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("the {what} benchmark failed ({}); its messages are above", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.starts_with('{')).with_context(|| format!("no JSON from the {what} benchmark"))?;
    serde_json::from_str(line).with_context(|| format!("the {what} benchmark's output"))
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

//! `cargo xtask`: everything a fresh machine needs to run Vigil's demo,
//! tests and benchmarks, in Rust so it runs wherever cargo does.
//!
//! Each command first makes the environment: a Python venv (`.venv`) with the
//! pinned OpenVINO wheel and model tooling, then the generated models in
//! `target/models`. Both steps are skipped when their inputs are unchanged.

mod devices;
mod env;
mod image;
mod plugins;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use env::Env;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo [--seconds N] [--config FILE]   set up, build and run vigild on the demo scene
       [--devices]                      ... with the door-lock and pa-paging plugins driving a
                                        pymodbus relay board and a SIPp paging extension on loopback
  test [-- CARGO_TEST_ARGS...]         set up and run the whole test suite
  bench [--json] [--seconds N] [--cameras 1,4,16] [--fps N] [--requests N] [--hint H] [--micro]
                                        pipeline benchmark against OpenVINO's benchmark_app
                                        (--micro: criterion micro-benchmarks instead)
  camera [--port N]                    serve the demo scene as an RTSP camera at rtsp://127.0.0.1:N/clip
                                        (default 8554), for config/rtsp-demo.toml
  setup                                only make the venv and the models
  crates-inc                           regenerate the image's vigild-crates.inc from Cargo.lock";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("camera") => camera(&args[1..]),
        Some("setup") => Env::prepare().map(|_| ()),
        Some("crates-inc") => image::write_crates_inc(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` from `args`, parsed.
fn option<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map(Some).map_err(|_| format!("{name}: {v:?} is not valid"))
        }
    }
}

/// Builds the sample plugin and signs it with the demo key into
/// `target/demo-plugins`, the install folder of the shipped demo configs.
/// The demo key is public (it is in the repository): never trust it on a real device.
fn demo_plugins(env: &Env) -> Result<(), String> {
    let wasm = plugins::build(&env.root)?;
    let out = env.root.join("target/demo-plugins");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    env.run(
        Command::new(env.root.join("target/release/vigilctl"))
            .args(["plugin", "sign", "--manifest"])
            .arg(env.root.join("plugins/template/manifest.json"))
            .arg("--component")
            .arg(wasm.join("vigil_plugin_template.wasm"))
            .arg("--signing-key")
            .arg(env.root.join("config/demo-plugins.key"))
            .arg("-o")
            .arg(out.join("template.vpk")),
    )
}

fn demo(args: &[String]) -> Result<(), String> {
    let env = Env::prepare()?;
    let with_devices = args.iter().any(|a| a == "--devices");
    let config: PathBuf = option(args, "--config")?.unwrap_or_else(|| env.root.join("config/demo.toml"));
    // The shipped demos start fresh: open incidents from an earlier run would
    // turn this run's detections into re-detections of the old incident.
    if with_devices || config.canonicalize().is_ok_and(|c| c.starts_with(env.root.join("config"))) {
        for dir in ["target/demo", "target/rtsp-demo", "target/devices-demo"] {
            let data = env.root.join(dir);
            if data.exists() {
                std::fs::remove_dir_all(&data).map_err(|e| format!("cannot clear {}: {e}", data.display()))?;
            }
        }
    }
    env.cargo(&["build", "--release", "--package", "vigild", "--package", "vigilctl"])?;
    demo_plugins(&env)?;
    let devices = if with_devices { Some(devices::Devices::start()?) } else { None };
    let config = match &devices {
        None => config,
        Some(d) => {
            let wasm = env.root.join("plugins/target/wasm32-wasip2/release");
            devices::package(&env, &wasm, &env.root.join("target/demo-plugins-devices"))?;
            let key = std::fs::read_to_string(env.root.join("config/demo.toml"))
                .ok()
                .and_then(|t| t.lines().find(|l| l.starts_with("trusted_keys")).map(str::to_string))
                .and_then(|l| l.split('"').nth(1).map(str::to_string))
                .ok_or("config/demo.toml names no trusted key")?;
            devices::write_config(&env, &d.plugins_config("../target/demo-plugins-devices", &key))?
        }
    };
    let mut cmd = Command::new(env.root.join("target/release/vigild"));
    cmd.arg("--config").arg(&config).arg("--console");
    // The console already shows every incident; keep the log to warnings unless asked.
    if std::env::var_os("VIGIL_LOG").is_none() {
        cmd.env("VIGIL_LOG", "warn,rumqttd=off");
    }
    if let Some(seconds) = option::<u64>(args, "--seconds")? {
        cmd.arg("--seconds").arg(seconds.to_string());
    }
    println!("xtask: running vigild on {} (Ctrl-C to stop)", config.display());
    let result = env.run(&mut cmd);
    if let Some(d) = &devices {
        print!("{}", d.report());
    }
    result
}

fn camera(args: &[String]) -> Result<(), String> {
    let env = Env::prepare()?;
    let port: u16 = option(args, "--port")?.unwrap_or(8554);
    let clip = env.root.join("target/demo-clip.y4m");
    if !clip.is_file() {
        let out = clip.to_string_lossy().into_owned();
        env.cargo(&[
            "run",
            "--release",
            "-p",
            "vigil-sources",
            "--example",
            "record_demo",
            "--",
            &out,
            "60",
            "hallway",
        ])?;
    }
    println!("xtask: serving {} at rtsp://127.0.0.1:{port}/clip (Ctrl-C to stop)", clip.display());
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(env.root.join("tests/peers/rtsp_server.py")).arg("--port").arg(port.to_string()).arg("--clip").arg(&clip);
    env.run(&mut cmd)
}

fn test(args: &[String]) -> Result<(), String> {
    let env = Env::prepare()?;
    // The plugin host's tests load the test components.
    plugins::build(&env.root)?;
    // The image layer's checks need the venv's oelint-adv and kas, made above.
    image::check(&env)?;
    let extra: Vec<&str> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    let mut cargo = vec!["test", "--workspace"];
    cargo.extend(extra);
    env.cargo(&cargo)
}

fn bench(args: &[String]) -> Result<(), String> {
    let env = Env::prepare()?;
    if args.iter().any(|a| a == "--micro") {
        return env.cargo(&["bench", "--package", "vigil-bench", "--bench", "micro"]);
    }
    env.cargo(&["build", "--release", "--package", "vigil-bench"])?;
    let mut cmd = Command::new(env.root.join("target/release/vigil-bench"));
    cmd.arg("--ingest").arg(env.root.join("target/release/ingest"));
    cmd.arg("--uplink").arg(env.root.join("target/release/uplink"));
    plugins::build(&env.root)?;
    cmd.arg("--plugins").arg(env.root.join("target/release/plugins"));
    cmd.arg("--model")
        .arg(env.models.join("yolov8n-640.xml"))
        .arg("--labels")
        .arg(env.models.join("coco80.labels"))
        .arg("--benchmark-app")
        .arg(env.venv_bin("benchmark_app"));
    for name in ["--seconds", "--cameras", "--fps", "--device", "--requests", "--hint"] {
        if let Some(v) = option::<String>(args, name)? {
            cmd.arg(name).arg(v);
        }
    }
    if args.iter().any(|a| a == "--json") {
        cmd.arg("--json");
    }
    env.run(&mut cmd)
}

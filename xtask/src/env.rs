//! The environment the project's commands need on a fresh Debian machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned Python packages: the OpenVINO runtime and the model tooling,
/// then the test peers and the image checks (pymodbus, libosdp, kas, oelint-adv).
const REQUIREMENTS: &[&str] = &["models/requirements.txt", "tests/peers/requirements.txt"];
/// The script that generates every model.
const GENERATOR: &str = "models/generate.py";

/// Debian packages the build and the tests need: libclang (bindgen for V4L2),
/// GStreamer (the RTSP camera source and its decoders), and the GStreamer RTSP
/// server with the system Python's GObject bindings, which the tests run as a
/// real camera.
const APT_PACKAGES: &[&str] = &[
    "pkg-config",
    // bindgen, for the v4l crate's kernel headers.
    "libclang-dev",
    "libgstreamer1.0-dev",
    "libgstreamer-plugins-base1.0-dev",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-libav",
    "gstreamer1.0-tools",
    "gir1.2-gst-rtsp-server-1.0",
    "python3-gi",
    // The district broker the uplink tests and benchmark run against, its
    // command-line clients, and openssl for the test certificates.
    "mosquitto",
    "mosquitto-clients",
    "openssl",
    // Plugin peers: sipp as the SIP paging endpoint, socat for the OSDP
    // serial line (a PTY pair), espeak-ng and sox for the paging messages.
    "sip-tester",
    "socat",
    "espeak-ng",
    "sox",
    // The OS integration: RAUC and a private D-Bus for its tests, systemd's
    // unit checker for the image's units.
    "rauc",
    // `rauc bundle` makes the test bundles' squashfs images.
    "squashfs-tools",
    "dbus-daemon",
    "systemd",
];

/// Paths and variables every command runs with.
pub struct Env {
    /// The workspace root.
    pub root: PathBuf,
    /// The Python venv.
    pub venv: PathBuf,
    /// Generated models.
    pub models: PathBuf,
    /// The folder holding `libopenvino_c.so.*`.
    pub openvino_lib: PathBuf,
}

impl Env {
    /// Makes (or reuses) the venv and the models.
    pub fn prepare() -> Result<Env, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("xtask has no parent folder")?.to_path_buf();
        let venv = root.join(".venv");
        let models = root.join("target/models");
        ensure_packages(APT_PACKAGES)?;
        ensure_venv(&root, &venv)?;
        let openvino_lib = wheel_libs(&venv)?;
        let env = Env { root, venv, models, openvino_lib };
        env.ensure_models()?;
        Ok(env)
    }

    /// A program inside the venv.
    pub fn venv_bin(&self, name: &str) -> PathBuf {
        self.venv.join("bin").join(name)
    }

    /// Runs cargo in the workspace with the environment set.
    pub fn cargo(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(args).current_dir(&self.root);
        self.run(&mut cmd)
    }

    /// Runs `cmd` with the venv's OpenVINO and the models visible, failing on a non-zero exit.
    pub fn run(&self, cmd: &mut Command) -> Result<(), String> {
        run_plain(
            cmd.env("OPENVINO_LIB", &self.openvino_lib)
                .env("VIGIL_MODELS", &self.models)
                .env("VIRTUAL_ENV", &self.venv),
        )
    }

    fn ensure_models(&self) -> Result<(), String> {
        let stamp = self.models.join(".stamp");
        let wanted = fingerprint(&[&self.root.join(GENERATOR), &self.root.join(REQUIREMENTS[0])])?;
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
            return Ok(());
        }
        println!("xtask: generating models into {}", self.models.display());
        let mut cmd = Command::new(self.venv_bin("python"));
        cmd.arg(self.root.join(GENERATOR)).arg("--out").arg(&self.models);
        run_plain(&mut cmd)?;
        std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
    }
}

fn ensure_venv(root: &Path, venv: &Path) -> Result<(), String> {
    let stamp = venv.join(".vigil-stamp");
    let files: Vec<PathBuf> = REQUIREMENTS.iter().map(|r| root.join(r)).collect();
    let wanted = fingerprint(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    let python = std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".into());
    println!("xtask: making the Python venv {} with {python}", venv.display());
    if run_plain(Command::new(&python).args(["-m", "venv"]).arg(venv)).is_err() {
        // Debian splits venv support out of python3.
        apt_install(&["python3-venv", "python3-pip"])?;
        run_plain(Command::new(&python).args(["-m", "venv", "--clear"]).arg(venv))?;
    }
    let pip = venv.join("bin/pip");
    for file in &files {
        run_plain(Command::new(&pip).args(["install", "--quiet", "--disable-pip-version-check", "-r"]).arg(file))?;
    }
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// Installs whichever of `packages` dpkg does not have.
fn ensure_packages(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let status = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !status.is_ok_and(|o| o.stdout.ends_with(b"install ok installed"))
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { apt_install(&missing) }
}

/// Installs Debian packages when running as root with apt; otherwise says what to install.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!("install these packages and retry: {}", packages.join(" ")));
    }
    println!("xtask: apt-get install {}", packages.join(" "));
    run_plain(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_plain(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )
}

/// The folder in the venv holding the wheel's `libopenvino_c.so.*`.
fn wheel_libs(venv: &Path) -> Result<PathBuf, String> {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .map_err(|e| format!("cannot list {}: {e}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/openvino/libs"))
        .find(|p| p.is_dir())
        .ok_or_else(|| format!("the venv {} has no openvino wheel", venv.display()))
}

/// A cheap fingerprint of files' contents (FNV-1a), to know when to redo a step.
fn fingerprint(files: &[&Path]) -> Result<String, String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        for b in std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))? {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}

fn run_plain(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed: {status}")) }
}

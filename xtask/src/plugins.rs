//! Builds the guest side: the plugin SDK, the template and the test plugins in
//! `plugins/`, a workspace of its own that only ever targets `wasm32-wasip2`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The only target plugins are built for; rustc links its cdylibs as components.
const TARGET: &str = "wasm32-wasip2";

/// Builds every plugin in release mode and returns the folder holding the
/// components (`plugins/target/wasm32-wasip2/release/*.wasm`).
pub fn build(root: &Path) -> Result<PathBuf, String> {
    ensure_target()?;
    let plugins = root.join("plugins");
    pa_paging_audio(&plugins.join("pa-paging/audio"))?;
    println!("xtask: building the plugins for {TARGET}");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .current_dir(root)
        // The plugins' own target folder, whatever the caller's cargo was told:
        // a host-target build dir must never mix with the guest's.
        .env_remove("CARGO_TARGET_DIR");
    run(&mut cmd)?;
    Ok(plugins.join("target").join(TARGET).join("release"))
}

/// Regenerates the pa-paging plugin's announcements (`make.sh`: espeak-ng and
/// sox) when one is missing or older than the script; the plugin embeds them
/// with `include_bytes!`. The script lists its outputs itself (`--outputs`).
fn pa_paging_audio(audio: &Path) -> Result<(), String> {
    let script = audio.join("make.sh");
    let listed = Command::new("sh")
        .arg(&script)
        .arg("--outputs")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !listed.status.success() {
        return Err(format!("{} --outputs failed: {}", script.display(), String::from_utf8_lossy(&listed.stderr)));
    }
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let script_time = modified(&script).ok_or_else(|| format!("cannot read {}", script.display()))?;
    let stale = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|name| modified(&audio.join(name)).is_none_or(|t| t < script_time));
    if !stale {
        return Ok(());
    }
    println!("xtask: generating the pa-paging announcements ({})", script.display());
    run(Command::new("sh").arg(&script))
}

/// Installs the target's standard library with rustup unless it is there already.
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup to check for {TARGET}: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    println!("xtask: rustup target add {TARGET}");
    run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// Runs `cmd`, failing on a non-zero exit.
fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed: {status}")) }
}

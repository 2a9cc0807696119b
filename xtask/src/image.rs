//! Checks of the Yocto layer in `image/` that run without bitbake: the
//! recipes pass oelint-adv, the kas files load with kas's own loader, the
//! systemd units pass `systemd-analyze verify`, RAUC loads its system.conf,
//! and vigild's crate list for the cargo fetcher matches `Cargo.lock`. No git host is contacted and
//! nothing is built; docs/image.md says what these checks do not cover.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::Env;

/// The recipe's crate list, relative to the workspace root.
const CRATES_INC: &str = "image/meta-vigil/recipes-vigil/vigild/vigild-crates.inc";
/// The layer the checks cover.
const LAYER: &str = "image/meta-vigil";
/// oelint-adv's settings (release, rules suppressed with their reasons).
const OELINT_CONFIG: &str = "image/.oelint.cfg";
/// RAUC's system.conf, with the placeholder the rauc-conf bbappend fills in.
const RAUC_CONF: &str = "image/meta-vigil/recipes-core/rauc/files/system.conf";
const RAUC_COMPATIBLE: &str = "@VIGIL_RAUC_COMPATIBLE@";
/// The kas files and the script that loads them with kas.
const KAS_DIR: &str = "image/kas";
const KAS_CHECK: &str = "image/tools/check_kas.py";
/// The command that rewrites [`CRATES_INC`].
const REGENERATE: &str = "cargo xtask crates-inc";

/// The programs the image's units start, as the image installs them (vigild
/// from vigild_git.bb, rauc from meta-rauc, kill from util-linux or busybox).
/// `systemd-analyze verify` refuses a unit whose program is missing, so a
/// unit naming anything else fails the check.
const IMAGE_PROGRAMS: &[&str] = &["usr/bin/vigild", "usr/bin/rauc", "bin/kill"];
/// Units the image gets from other layers, as stand-ins for the verifier:
/// meta-rauc's D-Bus activated `rauc.service`.
const FOREIGN_UNITS: &[(&str, &str)] = &[(
    "rauc.service",
    "[Unit]\nDescription=stand-in for meta-rauc's rauc.service\n\n[Service]\nType=dbus\nBusName=de.pengutronix.rauc\nExecStart=/usr/bin/rauc service\n",
)];

/// Runs every check of the layer; the error says what is wrong and how to fix it.
pub fn check(env: &Env) -> Result<(), String> {
    println!("xtask: checking the image layer (crates, oelint-adv, kas, systemd units, RAUC config)");
    check_crates_inc(&env.root)?;
    let recipes = layer_files(&env.root.join(LAYER), &["bb", "bbappend", "bbclass"])?;
    lint(&env.venv_bin("oelint-adv"), &env.root.join(OELINT_CONFIG), &recipes)?;
    validate_kas(&env.venv_bin("python"), &env.root.join(KAS_CHECK), &env.root.join(KAS_DIR))?;
    let units = layer_files(&env.root.join(LAYER), &["service", "mount"])?;
    verify_units(&units)?;
    check_rauc_conf(&env.root.join(RAUC_CONF))
}

/// Rewrites [`CRATES_INC`] from `Cargo.lock` (`cargo xtask crates-inc`);
/// needs neither the venv nor the models.
pub fn write_crates_inc() -> Result<(), String> {
    let root = workspace_root();
    let inc = crates_inc(&read(&root.join("Cargo.lock"))?)?;
    let path = root.join(CRATES_INC);
    std::fs::write(&path, inc).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

/// The workspace root: xtask's parent folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Fails unless [`CRATES_INC`] is what `Cargo.lock` makes.
fn check_crates_inc(root: &Path) -> Result<(), String> {
    let wanted = crates_inc(&read(&root.join("Cargo.lock"))?)?;
    let path = root.join(CRATES_INC);
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    if found == wanted {
        Ok(())
    } else {
        Err(format!("{} does not match Cargo.lock: run `{REGENERATE}`", path.display()))
    }
}

/// One package of a `Cargo.lock`, as far as the fetcher cares.
#[derive(Debug, Default)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// crates.io, as `Cargo.lock` names it.
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// The `[[package]]` tables of a `Cargo.lock` (the subset of TOML cargo
/// writes there: one `key = "value"` per line, arrays the fetcher ignores).
fn locked_packages(lock: &str) -> Result<Vec<LockedPackage>, String> {
    let mut packages = Vec::new();
    let mut current: Option<LockedPackage> = None;
    for (number, line) in lock.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            packages.extend(current.take());
            if line == "[[package]]" {
                current = Some(LockedPackage::default());
            }
            continue;
        }
        let Some(package) = current.as_mut() else { continue };
        let Some((key, value)) = line.split_once(" = ") else { continue };
        let string = || {
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string)
                .ok_or_else(|| format!("Cargo.lock line {}: {key} is not a string: {value}", number + 1))
        };
        match key {
            "name" => package.name = string()?,
            "version" => package.version = string()?,
            "source" => package.source = Some(string()?),
            "checksum" => package.checksum = Some(string()?),
            _ => {}
        }
    }
    packages.extend(current);
    Ok(packages)
}

/// The `vigild-crates.inc` for `lock`: a `crate://` URL and a sha256sum per
/// crates.io package, in `Cargo.lock`'s order, the format oe-core's
/// `cargo-update-recipe-crates` writes. Workspace members (no source) are
/// part of the recipe's own checkout; any other source is refused, naming the
/// package, as the recipe would have to fetch it some other way.
fn crates_inc(lock: &str) -> Result<String, String> {
    let mut urls = String::new();
    let mut sums = String::new();
    for package in locked_packages(lock)? {
        let (name, version) = (&package.name, &package.version);
        match package.source.as_deref() {
            None => continue,
            Some(CRATES_IO) => {}
            Some(other) => {
                return Err(format!(
                    "Cargo.lock: {name} {version} comes from {other}; the image's recipe fetches crates.io only: depend on a crates.io release, or add the source to vigild_git.bb's SRC_URI and teach xtask/src/image.rs about it"
                ));
            }
        }
        let checksum = package
            .checksum
            .as_deref()
            .ok_or_else(|| format!("Cargo.lock: {name} {version} from crates.io has no checksum"))?;
        urls.push_str(&format!("    crate://crates.io/{name}/{version} \\\n"));
        sums.push_str(&format!("SRC_URI[{name}-{version}.sha256sum] = \"{checksum}\"\n"));
    }
    Ok(format!(
        "# Generated from Cargo.lock by `{REGENERATE}`: do not edit.\n\
         # `cargo test -p xtask` fails when it no longer matches Cargo.lock.\n\n\
         SRC_URI += \"\\\n{urls}    \"\n\n{sums}"
    ))
}

/// Runs oelint-adv on `files` with `config`; any finding, of any severity, fails.
fn lint(oelint: &Path, config: &Path, files: &[PathBuf]) -> Result<(), String> {
    let output = Command::new(oelint)
        .arg("--quiet")
        .args(files)
        .env("OELINT_CONFIG", config)
        .output()
        .map_err(|e| format!("cannot run {} (made by `cargo xtask setup`): {e}", oelint.display()))?;
    let findings = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() && findings.trim().is_empty() {
        return Ok(());
    }
    Err(format!(
        "oelint-adv found problems in the image layer:\n{}\nfix them, or, where a rule does not apply, suppress it in {} with the reason",
        findings.trim_end(),
        config.display()
    ))
}

/// Loads every kas file in `kas_dir` with kas's own loader (`script`, run by
/// the venv's `python`): schema, format version, includes, lock file.
fn validate_kas(python: &Path, script: &Path, kas_dir: &Path) -> Result<(), String> {
    let output = Command::new(python)
        .arg(script)
        .arg(kas_dir)
        .output()
        .map_err(|e| format!("cannot run {} (made by `cargo xtask setup`): {e}", python.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "the kas files in {} are not valid:\n{}{}",
        kas_dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr).trim_end()
    ))
}

/// Runs `systemd-analyze verify` on `units` inside a scratch root that looks
/// like the image: the host's systemd units (standing in for the image's
/// systemd), [`FOREIGN_UNITS`] and [`IMAGE_PROGRAMS`] as empty scripts, and
/// nothing else the machine running the check happens to have. The verifier
/// logs bad keys and values without failing, so any output fails too.
fn verify_units(units: &[PathBuf]) -> Result<(), String> {
    let root = Scratch::new("vigil-units")?;
    let system = root.path.join("usr/lib/systemd/system");
    copy_dir(Path::new("/lib/systemd/system"), &system)?;
    for (name, text) in FOREIGN_UNITS {
        write(&system.join(name), text)?;
    }
    for program in IMAGE_PROGRAMS {
        let path = root.path.join(program);
        write(&path, "#!/bin/sh\n")?;
        make_executable(&path)?;
    }
    let local = root.path.join("etc/systemd/system");
    let mut copies = Vec::new();
    for unit in units {
        let name = unit.file_name().ok_or_else(|| format!("{} has no file name", unit.display()))?;
        let copy = local.join(name);
        write(&copy, &read(unit)?)?;
        copies.push(copy);
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path.display()))
        .args(&copies)
        .output()
        .map_err(|e| format!("cannot run systemd-analyze (Debian package systemd): {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() && said.trim().is_empty() {
        return Ok(());
    }
    let names: Vec<String> = units.iter().map(|u| u.display().to_string()).collect();
    Err(format!("systemd-analyze verify refuses the image's units ({}):\n{}", names.join(", "), said.trim_end()))
}

/// Has RAUC (Debian's, a few releases older than meta-rauc's) load `conf`,
/// the placeholder filled in. `rauc status` loads the config first and then
/// fails for want of a RAUC service on this machine, so only a refusal of the
/// config is a failure here; RAUC refuses unknown keys and bad values.
fn check_rauc_conf(conf: &Path) -> Result<(), String> {
    let scratch = Scratch::new("vigil-rauc")?;
    let filled = scratch.path.join("system.conf");
    write(&filled, &read(conf)?.replace(RAUC_COMPATIBLE, "vigil-intel-corei7-64"))?;
    let output = Command::new("rauc")
        .arg(format!("--conf={}", filled.display()))
        .arg("status")
        .output()
        .map_err(|e| format!("cannot run rauc (Debian package rauc): {e}"))?;
    let said = String::from_utf8_lossy(&output.stderr);
    match said.lines().find(|l| l.contains("Failed to load system config")) {
        None => Ok(()),
        Some(refusal) => Err(format!("RAUC refuses {}: {}", conf.display(), refusal.trim())),
    }
}

/// The files under `dir` whose names end in one of `extensions`, sorted.
fn layer_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e)) {
                found.push(path);
            }
        }
    }
    if found.is_empty() {
        return Err(format!("no {} files under {}", extensions.join("/"), dir.display()));
    }
    found.sort();
    Ok(found)
}

/// A folder under the temp dir, removed on drop.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(prefix: &str) -> Result<Scratch, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| format!("cannot clear {}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Copies the files and symlinks of `from` (one level, as unit folders are) into `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| format!("cannot stat {}: {e}", source.display()))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| format!("cannot link {}: {e}", target.display()))?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        workspace_root()
    }

    /// The venv `cargo xtask setup` makes; the tests that run its tools need it.
    fn venv_bin(name: &str) -> PathBuf {
        let path = root().join(".venv/bin").join(name);
        assert!(path.exists(), "{} is missing: run `cargo xtask setup` first", path.display());
        path
    }

    /// The checks `cargo xtask test` runs, on the layer as it is.
    #[test]
    fn the_layer_passes_every_check() {
        let root = root();
        let venv = root.join(".venv");
        venv_bin("python");
        let env = Env { models: root.join("target/models"), openvino_lib: venv.join("lib"), venv, root };
        if let Err(e) = check(&env) {
            panic!("{e}");
        }
    }

    #[test]
    fn vigild_crates_inc_matches_cargo_lock() {
        if let Err(e) = check_crates_inc(&root()) {
            panic!("{e}");
        }
    }

    const LOCK: &str = r#"version = 4

[[package]]
name = "anyhow"
version = "1.0.100"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "a23eb6b1614318a8071c9b2521f36b424b2c83db5eb3a0fead4a6c0809af6e61"

[[package]]
name = "vigild"
version = "0.1.0"
dependencies = [
 "anyhow",
]
"#;

    #[test]
    fn crates_inc_lists_registry_crates_and_skips_workspace_members() {
        let inc = crates_inc(LOCK).unwrap();
        assert!(inc.contains("    crate://crates.io/anyhow/1.0.100 \\\n"), "{inc}");
        assert!(
            inc.contains(
                "SRC_URI[anyhow-1.0.100.sha256sum] = \"a23eb6b1614318a8071c9b2521f36b424b2c83db5eb3a0fead4a6c0809af6e61\"\n"
            ),
            "{inc}"
        );
        assert!(!inc.contains("vigild"), "{inc}");
    }

    #[test]
    fn crates_inc_refuses_a_git_dependency_by_name() {
        let lock = format!(
            "{LOCK}\n[[package]]\nname = \"forked\"\nversion = \"0.2.0\"\nsource = \"git+https://example.org/forked?rev=abc#abc\"\n"
        );
        let e = crates_inc(&lock).unwrap_err();
        assert!(e.contains("forked 0.2.0 comes from git+https://example.org/forked"), "{e}");
    }

    #[test]
    fn crates_inc_refuses_a_registry_crate_without_checksum() {
        let lock =
            LOCK.replace("checksum = \"a23eb6b1614318a8071c9b2521f36b424b2c83db5eb3a0fead4a6c0809af6e61\"\n", "");
        let e = crates_inc(&lock).unwrap_err();
        assert!(e.contains("anyhow 1.0.100 from crates.io has no checksum"), "{e}");
    }

    /// The layer's units, copied into `dir` with `edit` applied to the one named `name`.
    fn units_with(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> Vec<PathBuf> {
        let units = layer_files(&root().join(LAYER), &["service", "mount"]).unwrap();
        units
            .iter()
            .map(|unit| {
                let text = read(unit).unwrap();
                let text = if unit.file_name().unwrap() == name { edit(&text) } else { text };
                let copy = dir.join(unit.file_name().unwrap());
                write(&copy, &text).unwrap();
                copy
            })
            .collect()
    }

    #[test]
    fn verify_refuses_a_unit_starting_a_program_the_image_lacks() {
        let dir = Scratch::new("vigil-units-test").unwrap();
        let units = units_with(&dir.path, "vigild.service", |t| t.replace("/usr/bin/vigild", "/usr/bin/vigil-daemon"));
        let e = verify_units(&units).unwrap_err();
        assert!(e.contains("vigil-daemon"), "{e}");
    }

    #[test]
    fn verify_refuses_a_misspelt_setting() {
        let dir = Scratch::new("vigil-units-test").unwrap();
        let units = units_with(&dir.path, "vigild.service", |t| t.replace("ProtectSystem=", "ProtectSystm="));
        let e = verify_units(&units).unwrap_err();
        assert!(e.contains("ProtectSystm"), "{e}");
    }

    #[test]
    fn verify_refuses_a_dependency_on_a_unit_nothing_provides() {
        let dir = Scratch::new("vigil-units-test").unwrap();
        let units = units_with(&dir.path, "vigil-mark-good.service", |t| {
            t.replace("Requires=vigild.service", "Requires=vigild.service vigil-health.service")
        });
        let e = verify_units(&units).unwrap_err();
        assert!(e.contains("vigil-health.service"), "{e}");
    }

    #[test]
    fn lint_reports_a_recipe_breaking_the_style_guide() {
        let dir = Scratch::new("vigil-lint-test").unwrap();
        let recipe = dir.path.join("broken_1.0.bb");
        let good = read(&root().join(LAYER).join("recipes-bsp/vigil-grubenv/vigil-grubenv_1.0.bb")).unwrap();
        // LICENSE after LIC_FILES_CHKSUM breaks oe-core's variable order.
        write(
            &recipe,
            &good
                .replace("LICENSE = \"Apache-2.0\"\n", "")
                .replace("inherit deploy", "LICENSE = \"Apache-2.0\"\n\ninherit deploy"),
        )
        .unwrap();
        let e = lint(&venv_bin("oelint-adv"), &root().join(OELINT_CONFIG), &[recipe]).unwrap_err();
        assert!(e.contains("broken_1.0.bb") && e.contains("LICENSE"), "{e}");
    }

    #[test]
    fn rauc_check_refuses_a_system_conf_rauc_cannot_load() {
        let dir = Scratch::new("vigil-rauc-test").unwrap();
        let conf = dir.path.join("system.conf");
        let good = read(&root().join(RAUC_CONF)).unwrap();
        write(&conf, &good.replace("bootloader=grub", "bootloader=grub\nbootloader-timeout=5")).unwrap();
        let e = check_rauc_conf(&conf).unwrap_err();
        assert!(e.contains("bootloader-timeout"), "{e}");
    }

    /// A copy of the release kas file and its lock in a folder of their own, edited.
    fn kas_with(dir: &Path, edit_config: impl Fn(&str) -> String, edit_lock: impl Fn(&str) -> String) {
        let kas = root().join(KAS_DIR);
        write(&dir.join("vigil.yml"), &edit_config(&read(&kas.join("vigil.yml")).unwrap())).unwrap();
        write(&dir.join("vigil.lock.yml"), &edit_lock(&read(&kas.join("vigil.lock.yml")).unwrap())).unwrap();
    }

    #[test]
    fn kas_check_refuses_a_key_outside_the_schema() {
        let dir = Scratch::new("vigil-kas-test").unwrap();
        kas_with(&dir.path, |t| t.replace("machine:", "machin:"), str::to_string);
        let e = validate_kas(&venv_bin("python"), &root().join(KAS_CHECK), &dir.path).unwrap_err();
        assert!(e.contains("'machin' was unexpected"), "{e}");
    }

    #[test]
    fn kas_check_refuses_a_pin_that_is_not_a_commit() {
        let dir = Scratch::new("vigil-kas-test").unwrap();
        kas_with(&dir.path, str::to_string, |t| t.replace("commit: 184adcbc", "commit: scarthgap-184adcbc"));
        let e = validate_kas(&venv_bin("python"), &root().join(KAS_CHECK), &dir.path).unwrap_err();
        assert!(e.contains("poky: commit 'scarthgap-184adcbc"), "{e}");
    }

    #[test]
    fn kas_check_refuses_a_pin_for_a_repository_no_kas_file_defines() {
        let dir = Scratch::new("vigil-kas-test").unwrap();
        kas_with(
            &dir.path,
            |t| t.replace("  meta-rauc:\n    url: https://github.com/rauc/meta-rauc\n", ""),
            str::to_string,
        );
        let e = validate_kas(&venv_bin("python"), &root().join(KAS_CHECK), &dir.path).unwrap_err();
        assert!(e.contains("pins meta-rauc, which no kas file defines"), "{e}");
    }
}

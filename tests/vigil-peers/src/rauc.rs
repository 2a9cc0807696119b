//! RAUC (Debian's 1.8, `/usr/bin/rauc`) as the device's update service, on a
//! private D-Bus daemon with a system-bus-like policy (optionally with
//! systemd-timedated beside it, [`RaucPeer::start_timedated`]), configured for two
//! raw "rootfs" slots that are image files, and a custom bootloader backend
//! (a shell script keeping the bootloader's state in files) so tests can
//! watch what RAUC asks the bootloader and simulate reboots.
//!
//! What runs in this container (root, no systemd, kernel 6.18), found by trying:
//! - `rauc service` on a private bus: yes. It reads `$DBUS_SYSTEM_BUS_ADDRESS`
//!   (GLib's system bus lookup), so no real system bus is needed.
//! - Installing `format=plain` bundles: yes. RAUC loop-mounts the squashfs
//!   (`/dev/loop*` exist and squashfs mounts without modprobe).
//! - Installing `format=verity` bundles: no. RAUC fails with "Failed mounting
//!   bundle: Failed to open /dev/mapper/control: No such file or directory"
//!   (the kernel has no device mapper here), so test bundles are `plain`.
//!   The appliance image uses verity; the D-Bus API is the same.
//! - Installing from an `http://` URL: no. Debian's build says "configured
//!   without --enable-streaming"; vigild downloads bundles itself.
//! - `rauc bundle` needs `mksquashfs` (Debian's `squashfs-tools`).
//! - RAUC 1.8's `Info` method answers every bad bundle (bad signature,
//!   missing file) with the bare D-Bus error "rauc info error"; the reason is
//!   only in RAUC's log ([`RaucPeer::log`]). `InstallBundle` failures carry it
//!   in `LastError`.
//! - The booted slot: RAUC 1.8 never calls the backend's `get-current`; it
//!   takes the booted slot from `rauc.slot=` on `/proc/cmdline` or from
//!   `--override-boot-slot`, which is how [`RaucPeer::reboot`] "boots" a slot.
//!
//! The simulated bootloader behaves like barebox's bootchooser with one
//! attempt: RAUC's `set-primary X` makes X the primary and gives it one trial
//! boot; booting a trial slot uses the trial up (its state becomes `bad`)
//! unless the booted system marks it `good`; a `bad` primary is skipped and
//! the other slot boots and becomes primary.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The RAUC binary (Debian's `rauc` package).
const RAUC: &str = "/usr/bin/rauc";
/// systemd's timedate1 service (Debian's `systemd` package); it runs on any bus, no systemd needed.
const TIMEDATED: &str = "/usr/lib/systemd/systemd-timedated";
/// timedated's well-known name.
const TIMEDATED_NAME: &str = "org.freedesktop.timedate1";
/// The D-Bus daemon (Debian's `dbus-daemon` package).
const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";
/// Asks the bus whether RAUC's name is owned.
const DBUS_SEND: &str = "/usr/bin/dbus-send";
const OPENSSL: &str = "/usr/bin/openssl";
/// RAUC's well-known name.
const RAUC_NAME: &str = "de.pengutronix.rauc";
/// The `compatible` of the test system.
pub const COMPATIBLE: &str = "vigil-test";
/// How long the bus and RAUC may take to come up.
const STARTUP: Duration = Duration::from_secs(15);
/// Size of the slots' image files and of a bundle's image (a multiple of 4 KiB, as RAUC wants).
const IMAGE_BYTES: usize = 64 * 1024;

/// The simulated bootloader's view, read from the backend's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootState {
    /// The bootname the bootloader tries first (`A`, `B`).
    pub primary: String,
    /// The bootname RAUC was started as booted from.
    pub booted: String,
    /// Slot A's state: `good`, `trial` (one boot attempt left) or `bad`.
    pub a: String,
    /// Slot B's state.
    pub b: String,
}

impl BootState {
    /// The state of the slot with `bootname`.
    pub fn state_of(&self, bootname: &str) -> &str {
        if bootname == "A" { &self.a } else { &self.b }
    }
}

/// Who signs a test bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The test CA in RAUC's keyring: RAUC accepts the signature.
    Trusted,
    /// A CA RAUC does not know: RAUC refuses the bundle.
    Stranger,
}

/// A private bus with a RAUC service on it; both killed on drop, files removed.
pub struct RaucPeer {
    bus: Child,
    address: String,
    service: Option<Child>,
    timedated: Option<Child>,
    booted: String,
    bundles: u32,
    boots: u32,
    dir: tempfile::TempDir,
}

impl RaucPeer {
    /// Starts a bus and RAUC booted from slot A (`rootfs.0`), both slots good.
    pub fn start() -> Result<RaucPeer, String> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-rauc-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for RAUC: {e}"))?;
        let root = dir.path();
        for sub in ["boot", "data", "mnt", "bundles"] {
            fs::create_dir(root.join(sub)).map_err(|e| format!("cannot create {}/{sub}: {e}", root.display()))?;
        }
        write(&root.join("boot/primary"), "A\n")?;
        write(&root.join("boot/state.A"), "good\n")?;
        write(&root.join("boot/state.B"), "good\n")?;
        write(&root.join("boot/current"), "A\n")?;
        write(&root.join("boot/boot_id"), "boot-1\n")?;
        for image in ["rootfs0.img", "rootfs1.img"] {
            fs::write(root.join(image), vec![0u8; IMAGE_BYTES]).map_err(|e| format!("cannot create {image}: {e}"))?;
        }
        let backend = root.join("bootloader-backend.sh");
        write(&backend, &backend_script(&root.join("boot")))?;
        make_executable(&backend)?;
        generate_ca(root, "ca")?;
        generate_ca(root, "stranger")?;
        write(&root.join("system.conf"), &system_conf(root, &backend))?;
        write(&root.join("bus.conf"), &bus_conf(&root.join("bus.sock")))?;

        let (bus, address) = start_bus(root)?;
        let mut peer =
            RaucPeer { bus, address, service: None, timedated: None, booted: "A".into(), bundles: 0, boots: 1, dir };
        peer.start_service()?;
        Ok(peer)
    }

    /// The private bus's D-Bus address (what `$DBUS_SYSTEM_BUS_ADDRESS` would be).
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The test system's `system.conf`.
    pub fn system_conf(&self) -> PathBuf {
        self.dir.path().join("system.conf")
    }

    /// The image file behind the slot with `bootname` (`A` → `rootfs.0`).
    pub fn slot_image(&self, bootname: &str) -> PathBuf {
        self.dir.path().join(if bootname == "A" { "rootfs0.img" } else { "rootfs1.img" })
    }

    /// A stand-in for `/proc/sys/kernel/random/boot_id`: a new id after each [`RaucPeer::reboot`].
    pub fn boot_id_file(&self) -> PathBuf {
        self.dir.path().join("boot/boot_id")
    }

    /// What the simulated bootloader's files say now.
    pub fn boot_state(&self) -> Result<BootState, String> {
        let read = |name: &str| {
            let path = self.dir.path().join("boot").join(name);
            fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(BootState {
            primary: read("primary")?,
            booted: self.booted.clone(),
            a: read("state.A")?,
            b: read("state.B")?,
        })
    }

    /// Builds a bundle with a 64 KiB raw `rootfs` image (whose content
    /// names `version`), signed by `signer`. Returns its path.
    pub fn bundle(&mut self, version: &str, compatible: &str, signer: Signer) -> Result<PathBuf, String> {
        self.bundles += 1;
        let root = self.dir.path();
        let content = root.join(format!("bundles/content-{}", self.bundles));
        fs::create_dir(&content).map_err(|e| format!("cannot create {}: {e}", content.display()))?;
        let mut image = format!("vigil test rootfs {version}\n").into_bytes();
        image.resize(IMAGE_BYTES, 0);
        fs::write(content.join("rootfs.img"), image).map_err(|e| format!("cannot write the bundle image: {e}"))?;
        let manifest = format!(
            "[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n"
        );
        write(&content.join("manifest.raucm"), &manifest)?;
        let out = root.join(format!("bundles/update-{}-{version}.raucb", self.bundles));
        let who = match signer {
            Signer::Trusted => "ca",
            Signer::Stranger => "stranger",
        };
        let cert = root.join(format!("{who}.cert.pem"));
        let key = root.join(format!("{who}.key.pem"));
        let output = Command::new(RAUC)
            .arg("bundle")
            .arg(format!("--cert={}", cert.display()))
            .arg(format!("--key={}", key.display()))
            .arg(&content)
            .arg(&out)
            .output()
            .map_err(|e| format!("cannot run {RAUC} bundle: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`rauc bundle` failed ({}); is squashfs-tools installed? {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(out)
    }

    /// Simulates a reboot: stops RAUC, lets the simulated bootloader pick a
    /// slot (see the module doc), and starts RAUC booted from it. Returns the
    /// booted bootname.
    pub fn reboot(&mut self) -> Result<String, String> {
        self.stop_service();
        let boot = self.dir.path().join("boot");
        let state = self.boot_state()?;
        let other = if state.primary == "A" { "B" } else { "A" };
        let booted = match state.state_of(&state.primary) {
            "good" => state.primary.clone(),
            "trial" => {
                // The trial is used up; only the booted system's `Mark good` keeps the slot.
                write(&boot.join(format!("state.{}", state.primary)), "bad\n")?;
                state.primary.clone()
            }
            _ => {
                write(&boot.join("primary"), &format!("{other}\n"))?;
                other.to_owned()
            }
        };
        write(&boot.join("current"), &format!("{booted}\n"))?;
        self.boots += 1;
        write(&boot.join("boot_id"), &format!("boot-{}\n", self.boots))?;
        self.booted = booted.clone();
        self.start_service()?;
        Ok(booted)
    }

    /// Stops the RAUC service (the bus stays), e.g. to test a missing service.
    pub fn stop_service(&mut self) {
        if let Some(mut child) = self.service.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts RAUC again after [`RaucPeer::stop_service`], booted as before.
    pub fn start_service(&mut self) -> Result<(), String> {
        if self.service.is_some() {
            return Ok(());
        }
        let root = self.dir.path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("rauc.log"))
            .map_err(|e| format!("cannot open the RAUC log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("cannot open the RAUC log: {e}"))?;
        let child = Command::new(RAUC)
            .arg("service")
            .arg(format!("--conf={}", root.join("system.conf").display()))
            .arg(format!("--override-boot-slot={}", self.booted))
            .arg("--debug")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {RAUC} service: {e}"))?;
        self.service = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(Ok(Some(status))) = self.service.as_mut().map(Child::try_wait) {
                self.service = None;
                return Err(format!("rauc service exited at startup ({status}): {}", self.log()));
            }
            if self.name_owned(RAUC_NAME)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop_service();
                return Err(format!("rauc service did not take {RAUC_NAME} within {STARTUP:?}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts systemd-timedated on the bus too (the device's clock service),
    /// waiting until it owns `org.freedesktop.timedate1`. It exits by itself
    /// after about 30 s without requests; call again to restart it.
    pub fn start_timedated(&mut self) -> Result<(), String> {
        if let Some(mut old) = self.timedated.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let child = Command::new(TIMEDATED)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {TIMEDATED}: {e}"))?;
        self.timedated = Some(child);
        let deadline = Instant::now() + STARTUP;
        while !self.name_owned(TIMEDATED_NAME)? {
            if let Some(Ok(Some(status))) = self.timedated.as_mut().map(Child::try_wait) {
                self.timedated = None;
                return Err(format!("systemd-timedated exited at startup ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!("systemd-timedated did not take {TIMEDATED_NAME} within {STARTUP:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// RAUC's log (stdout and stderr, `--debug`), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("rauc.log")).unwrap_or_default()
    }

    fn name_owned(&self, name: &str) -> Result<bool, String> {
        let out = Command::new(DBUS_SEND)
            .arg(format!("--bus={}", self.address))
            .args(["--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .args(["org.freedesktop.DBus.NameHasOwner", &format!("string:{name}")])
            .output()
            .map_err(|e| format!("cannot run {DBUS_SEND}: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("boolean true"))
    }
}

impl Drop for RaucPeer {
    fn drop(&mut self) {
        self.stop_service();
        if let Some(mut timedated) = self.timedated.take() {
            let _ = timedated.kill();
            let _ = timedated.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
        // RAUC unmounts its bundle after each install; a leftover mount would
        // keep the temporary directory from being removed.
        let _ = Command::new("umount").arg(self.dir.path().join("mnt/bundle")).stderr(Stdio::null()).status();
    }
}

/// Starts `dbus-daemon` on `root/bus.conf` and reads the address it prints.
fn start_bus(root: &Path) -> Result<(Child, String), String> {
    let log_path = root.join("bus.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut bus = Command::new(DBUS_DAEMON)
        .arg(format!("--config-file={}", root.join("bus.conf").display()))
        .args(["--nofork", "--print-address"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {DBUS_DAEMON}: {e}"))?;
    let stdout = bus.stdout.take().expect("piped stdout");
    let mut line = String::new();
    // dbus-daemon prints the address once it listens; EOF means it failed to start.
    let read = BufReader::new(stdout).read_line(&mut line);
    if read.is_err() || line.trim().is_empty() {
        let _ = bus.kill();
        let _ = bus.wait();
        let said = fs::read_to_string(&log_path).unwrap_or_default();
        return Err(format!("dbus-daemon printed no address ({read:?}): {}", said.trim()));
    }
    Ok((bus, line.trim().to_owned()))
}

/// A system-bus-like policy: RAUC and timedated may own their names, anyone may call anything.
fn bus_conf(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="{RAUC_NAME}"/>
    <allow own="{TIMEDATED_NAME}"/>
    <allow send_destination="*" eavesdrop="false"/>
    <allow receive_type="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

fn system_conf(root: &Path, backend: &Path) -> String {
    let r = root.display();
    format!(
        "[system]\ncompatible={COMPATIBLE}\nbootloader=custom\nmountprefix={r}/mnt\ndata-directory={r}/data\n\n\
         [keyring]\npath={r}/ca.cert.pem\n\n\
         [handlers]\nbootloader-custom-backend={}\n\n\
         [slot.rootfs.0]\ndevice={r}/rootfs0.img\ntype=raw\nbootname=A\n\n\
         [slot.rootfs.1]\ndevice={r}/rootfs1.img\ntype=raw\nbootname=B\n",
        backend.display()
    )
}

/// RAUC's custom bootloader backend protocol, over files in `boot`.
fn backend_script(boot: &Path) -> String {
    format!(
        r#"#!/bin/sh
# RAUC custom bootloader backend for tests: state lives in files.
set -e
d='{}'
case "$1" in
  get-primary) cat "$d/primary" ;;
  set-primary)
    echo "$2" > "$d/primary"
    # A new primary gets one trial boot unless it is already confirmed good.
    if [ "$(cat "$d/state.$2")" != good ]; then echo trial > "$d/state.$2"; fi ;;
  get-state)
    case "$(cat "$d/state.$2")" in bad) echo bad ;; *) echo good ;; esac ;;
  set-state) echo "$3" > "$d/state.$2" ;;
  get-current) cat "$d/current" ;;
  *) echo "unknown command $1" >&2; exit 1 ;;
esac
"#,
        boot.display()
    )
}

/// A self-signed certificate usable both as RAUC keyring and bundle signer.
fn generate_ca(root: &Path, name: &str) -> Result<(), String> {
    let key = root.join(format!("{name}.key.pem"));
    let cert = root.join(format!("{name}.cert.pem"));
    let out = Command::new(OPENSSL)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN=vigil-test {name}")])
        .output()
        .map_err(|e| format!("cannot run {OPENSSL}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("openssl could not make the {name} certificate: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

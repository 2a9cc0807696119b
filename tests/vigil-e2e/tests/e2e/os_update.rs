//! `os.update` end to end: the real vigild binary reporting to Debian's
//! Mosquitto, RAUC on a private D-Bus (`vigil_peers::rauc::RaucPeer`: the
//! real `rauc service`, two image-file slots and a simulated bootloader), and
//! `vigilctl os update` / `os status` as the operator.
//!
//! vigild reaches RAUC through `DBUS_SYSTEM_BUS_ADDRESS` (the peer's bus),
//! "reboots" with `[os] reboot_command`, a script that only leaves a marker
//! file, and reads the peer's boot id file instead of the kernel's. A reboot
//! is then: stop vigild, `peer.reboot()` (the bootloader picks a slot and
//! RAUC restarts booted from it), start vigild again on the same data folder.
//!
//! - A healthy update: verifying → installing → rebooting, and after the
//!   reboot the health check (the demo camera streams, the detector infers,
//!   the broker is connected) marks slot B good and the job `succeeded`.
//! - An unhealthy one: after the reboot the only camera is an RTSP address
//!   nothing listens on, so the health check fails: vigild marks slot B bad
//!   and reboots (the job waits in `rebooting` with the `unhealthy` reason),
//!   the bootloader boots slot A, and vigild there reports `rolled-back`.
//! - The new slot dies before vigild's health check: the bootloader falls
//!   back and vigild, up again on slot A, reports the job `rolled-back`.
//! - A bundle signed by a stranger: `failed` (`rauc-refused`) with RAUC's
//!   reason, no reboot, slot B untouched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_peers::rauc::{COMPATIBLE, RaucPeer, Signer};
use vigil_peers::{Mosquitto, MosquittoOptions};

use crate::daemon::{DEVICE, District, config_text, free_port, vigilctl_bin, vigild_bin};
use crate::harness::WAIT;

/// The version the test bundles carry.
const VERSION: &str = "2.0";
/// How long the post-boot health check gives the pipeline (`[os] health_timeout_s`).
const HEALTH_TIMEOUT_S: u64 = 15;
/// How long a test waits for the health check's outcome.
const HEALTH_WAIT: Duration = Duration::from_secs(HEALTH_TIMEOUT_S + 60);

/// The box: its folder (config, data, log, reboot marker), RAUC and the district broker.
struct Site {
    dir: tempfile::TempDir,
    peer: RaucPeer,
    broker: Mosquitto,
}

/// The demo camera, a gunman always in view (as `config_text` writes it).
const DEMO_SOURCE: &str = "source = { kind = \"demo\", scenario = \"armed\" }";

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let reboot = dir.path().join("reboot.sh");
        std::fs::write(&reboot, format!("#!/bin/sh\ntouch '{}'\n", dir.path().join("rebooted").display())).unwrap();
        let mut perms = std::fs::metadata(&reboot).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&reboot, perms).unwrap();
        let site = Site {
            dir,
            peer: RaucPeer::start().expect("RAUC starts on a private bus"),
            broker: Mosquitto::start(MosquittoOptions::default()).expect("Mosquitto starts"),
        };
        site.write_config(DEMO_SOURCE);
        site
    }

    /// Writes vigild's config with the camera's `source` line.
    fn write_config(&self, source: &str) {
        let uplink = format!("broker = \"{}\"\ntelemetry_s = 1\nkeep_alive_s = 5", self.broker.url());
        let config = config_text(&self.dir.path().join("data"), &uplink).replace(DEMO_SOURCE, source);
        assert!(config.contains(source), "config_text still writes the demo camera as {DEMO_SOURCE}");
        let os = format!(
            "\n[os]\nupdates = true\nreboot_command = ['{}']\nboot_id_file = '{}'\nhealth_timeout_s = {HEALTH_TIMEOUT_S}\n",
            self.dir.path().join("reboot.sh").display(),
            self.peer.boot_id_file().display()
        );
        std::fs::write(self.dir.path().join("vigil.toml"), config + &os).unwrap();
    }

    /// Starts vigild on the peer's bus.
    fn start(&self) -> Vigild {
        Vigild::start(&self.dir.path().join("vigil.toml"), &self.dir.path().join("vigild.log"), self.peer.bus_address())
    }

    /// The marker the reboot command leaves.
    fn reboot_marker(&self) -> PathBuf {
        self.dir.path().join("rebooted")
    }

    /// `vigilctl ARGS` against the broker, to completion (killed after [`HEALTH_WAIT`]).
    fn vigilctl(&self, args: &[&str]) -> Run {
        let mut child = Command::new(vigilctl_bin())
            .args(["--broker", &self.broker.url()])
            .args(args)
            .env_remove("VIGIL_BROKER")
            .env("VIGIL_OPERATOR", "it@district")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vigilctl runs");
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > HEALTH_WAIT {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        println!("vigilctl {args:?} -> {}\n--- stdout\n{}--- stderr\n{}", run.code, run.stdout, run.stderr);
        run
    }

    /// `vigilctl os update` of `bundle` with the expected version.
    fn update(&self, bundle: &Path) -> Run {
        self.vigilctl(&["os", "update", DEVICE, bundle.to_str().unwrap(), "--version", VERSION, "--timeout", "30"])
    }

    /// The retained job, as `vigilctl os status --json` prints it.
    fn os_status(&self) -> Value {
        let run = self.vigilctl(&["os", "status", DEVICE, "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str(run.stdout.trim()).expect("the job as JSON")
    }

    /// A box that installed the trusted bundle through vigilctl and stopped
    /// vigild for the reboot (not yet taken): the site, the district
    /// subscriber and the job id.
    fn updated_and_shut_down() -> (Site, District, String) {
        let mut site = Site::new();
        let district = District::connect(site.broker.port(), None, false);
        let mut vigild = site.start();
        wait_online(&district, 0);
        let id = site.install(&vigild);
        vigild.terminate();
        (site, district, id)
    }

    /// Installs the trusted bundle through vigilctl and checks the job up to the reboot request; returns the job id.
    fn install(&mut self, vigild: &Vigild) -> String {
        let bundle = self.peer.bundle(VERSION, COMPATIBLE, Signer::Trusted).unwrap();
        let run = self.update(&bundle);
        assert_eq!(run.code, 0, "{}\nvigild:\n{}", run.stderr, vigild.log());
        let id = job_id(&run);
        let phases: Vec<&str> = run.stdout.lines().skip(1).map(|l| l.split([':', ' ']).next().unwrap()).collect();
        assert_eq!(phases[..phases.len() - 1], ["queued", "verifying", "installing", "rebooting"], "{}", run.stdout);
        assert!(
            run.stdout.ends_with(&format!(
                "{DEVICE} is rebooting into version {VERSION} (slot B); it keeps it only if \
                 its health check passes: see `vigilctl os status {DEVICE}`\n"
            )),
            "{}",
            run.stdout
        );
        wait_until("the reboot command", WAIT, || self.reboot_marker().exists());
        let state = self.peer.boot_state().unwrap();
        assert_eq!((state.primary.as_str(), state.booted.as_str()), ("B", "A"), "RAUC made slot B primary: {state:?}");
        let job = self.os_status();
        assert_eq!((job["id"].as_str(), job["phase"].as_str()), (Some(id.as_str()), Some("rebooting")), "{job}");
        assert_eq!((job["to_boot"].as_str(), job["bundle_version"].as_str()), (Some("B"), Some(VERSION)));
        id
    }
}

/// One `vigilctl` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The job id `os update` printed first.
fn job_id(run: &Run) -> String {
    let first = run.stdout.lines().next().unwrap_or_default();
    let id = first.strip_prefix(&format!("{DEVICE}: os.update accepted: job ")).expect("the job id first");
    id.to_string()
}

/// vigild as a process with `DBUS_SYSTEM_BUS_ADDRESS` set (`daemon::Daemon`
/// takes no environment); killed on drop.
struct Vigild {
    child: Child,
    log: PathBuf,
}

impl Vigild {
    fn start(config: &Path, log: &Path, bus: &str) -> Vigild {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let out = err.try_clone().unwrap();
        let child = Command::new(vigild_bin())
            .args(["--console", "--config"])
            .arg(config)
            .env("VIGIL_LOG", "info,vigil_system=debug,rumqttd=off")
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting vigild");
        Vigild { child, log: log.to_path_buf() }
    }

    /// SIGTERM and wait, as `systemctl reboot` stops it.
    fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        wait_until("vigild to stop after SIGTERM", WAIT, || matches!(self.child.try_wait(), Ok(Some(_))));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Vigild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds, failing the test after `within`.
fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the device's report of job `id` in `phase` on `os/update`.
fn wait_job(district: &District, vigild: &Vigild, id: &str, phase: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let topic = format!("vigil/v1/{DEVICE}/os/update");
    loop {
        let job = district
            .received()
            .iter()
            .filter(|m| m.topic == topic)
            .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
            .find(|j| j["id"] == id && j["phase"] == phase);
        if let Some(job) = job {
            return job;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for job {id} to be {phase}; vigild:\n{}", vigild.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until vigild is online: a birth after the first `births_before`.
fn wait_online(district: &District, births_before: usize) {
    wait_until("vigild's birth", WAIT * 3, || births(district) > births_before);
}

fn births(district: &District) -> usize {
    let topic = format!("vigil/v1/{DEVICE}/status");
    district
        .received()
        .iter()
        .filter(|m| m.topic == topic)
        .filter(|m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|s| s["online"] == true))
        .count()
}

/// A loopback RTSP address nothing listens on.
fn dead_camera() -> String {
    format!("source = {{ kind = \"rtsp\", detect_url = \"rtsp://127.0.0.1:{}/h264\" }}", free_port())
}

#[test]
fn a_healthy_update_reboots_into_the_new_slot_marks_it_good_and_succeeds() {
    let (mut site, district, id) = Site::updated_and_shut_down();
    assert_eq!(site.peer.reboot().unwrap(), "B", "the bootloader tries the new slot");
    let vigild = site.start();
    let job = wait_job(&district, &vigild, &id, "succeeded", HEALTH_WAIT);
    assert!(job["error"].is_null(), "{job}");
    assert_eq!(site.peer.boot_state().unwrap().b, "good", "the health check marked slot B good");

    let status = site.vigilctl(&["os", "status", DEVICE]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.starts_with(&format!("{DEVICE}: OS update {id}: succeeded\n")), "{}", status.stdout);
    assert!(status.stdout.contains("slot: rootfs.1 (boot B), from boot A\n"), "{}", status.stdout);
    assert_eq!(site.peer.reboot().unwrap(), "B", "a slot marked good keeps booting");
}

#[test]
fn an_unhealthy_update_is_marked_bad_rebooted_out_of_and_reported_rolled_back() {
    let (mut site, district, id) = Site::updated_and_shut_down();
    assert_eq!(site.peer.reboot().unwrap(), "B");
    std::fs::remove_file(site.reboot_marker()).unwrap();
    // The new system comes up without a working camera: no frames, no inference.
    site.write_config(&dead_camera());
    let mut vigild = site.start();
    wait_until("the reboot out of the unhealthy slot", HEALTH_WAIT, || site.reboot_marker().exists());
    let job = site.os_status();
    assert_eq!((job["id"].as_str(), job["phase"].as_str()), (Some(id.as_str()), Some("rebooting")), "{job}");
    assert_eq!(job["error"]["code"], "unhealthy", "{job}");
    let reason = job["error"]["message"].as_str().unwrap().to_string();
    assert!(
        reason
            == format!(
                "health check failed: after {HEALTH_TIMEOUT_S} s: no camera is streaming; the detector has not inferred a frame"
            ),
        "{reason}"
    );
    assert_eq!(job["detail"].as_str(), Some(format!("{reason}; slot B marked bad; rebooting into A").as_str()));
    assert_eq!(site.peer.boot_state().unwrap().b, "bad", "the unhealthy slot is marked bad");

    // The bootloader skips the bad slot; vigild on the old system reports the rollback.
    vigild.terminate();
    assert_eq!(site.peer.reboot().unwrap(), "A", "the bootloader fell back");
    site.write_config(DEMO_SOURCE);
    let vigild = site.start();
    let job = wait_job(&district, &vigild, &id, "rolled-back", WAIT * 3);
    assert_eq!(job["error"]["code"], "unhealthy", "{job}");
    assert_eq!(job["error"]["message"].as_str(), Some(format!("{reason}; rolled back to slot A").as_str()));
    let status = site.vigilctl(&["os", "status", DEVICE]);
    assert!(status.stdout.starts_with(&format!("{DEVICE}: OS update {id}: rolled-back\n")), "{}", status.stdout);
    drop(vigild);
}

#[test]
fn a_new_slot_that_dies_before_the_health_check_is_reported_rolled_back() {
    let (mut site, district, id) = Site::updated_and_shut_down();
    // Slot B boots but never gets as far as vigild; its trial is used up and
    // the next boot is slot A's.
    assert_eq!(site.peer.reboot().unwrap(), "B");
    assert_eq!(site.peer.reboot().unwrap(), "A");
    let vigild = site.start();
    let job = wait_job(&district, &vigild, &id, "rolled-back", HEALTH_WAIT);
    assert_eq!(job["error"]["code"], "rolled-back", "{job}");
    assert_eq!(
        job["error"]["message"], "booted slot A instead of the updated slot B: the bootloader fell back",
        "{job}"
    );
    let status = site.vigilctl(&["os", "status", DEVICE]);
    assert!(status.stdout.starts_with(&format!("{DEVICE}: OS update {id}: rolled-back\n")), "{}", status.stdout);
}

#[test]
fn a_bundle_signed_by_a_stranger_fails_with_raucs_reason_and_installs_nothing() {
    let mut site = Site::new();
    let district = District::connect(site.broker.port(), None, false);
    let vigild = site.start();
    wait_online(&district, 0);
    let bundle = site.peer.bundle(VERSION, COMPATIBLE, Signer::Stranger).unwrap();

    let run = site.update(&bundle);
    assert_eq!(run.code, 1, "{}\nvigild:\n{}", run.stderr, vigild.log());
    let id = job_id(&run);
    let reason = format!("failed: rauc-refused: RAUC cannot read or verify the bundle {}", bundle.display());
    assert!(run.stderr.contains(&reason), "{}", run.stderr);
    assert!(!run.stdout.contains("installing"), "{}", run.stdout);

    let job = site.os_status();
    assert_eq!((job["id"].as_str(), job["phase"].as_str()), (Some(id.as_str()), Some("failed")), "{job}");
    assert_eq!(job["error"]["code"], "rauc-refused");
    assert!(!site.reboot_marker().exists(), "no reboot");
    let state = site.peer.boot_state().unwrap();
    assert_eq!((state.primary.as_str(), state.b.as_str()), ("A", "good"), "{state:?}");
    assert!(std::fs::read(site.peer.slot_image("B")).unwrap().iter().all(|&b| b == 0), "slot B untouched");

    // A second update is accepted once the first is over.
    let trusted = site.peer.bundle(VERSION, COMPATIBLE, Signer::Trusted).unwrap();
    let run = site.vigilctl(&["os", "update", DEVICE, trusted.to_str().unwrap(), "--no-wait"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = job_id(&run);
    assert_ne!(second, id);
    // Not torn down mid-install: RAUC would leave the bundle mounted.
    wait_job(&district, &vigild, &second, "rebooting", WAIT);
}

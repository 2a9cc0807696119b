//! `os.update` jobs end to end: a real RAUC installs into its slot files, the
//! peer's simulated bootloader "reboots", and a new `UpdateManager` on the
//! same data directory (vigild after the reboot) finishes the job.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_peers::rauc::{COMPATIBLE, RaucPeer, Signer};
use vigil_system::rauc::Bus;
use vigil_system::update::{
    BootOutcome, DownloadLimits, HealthVerdict, Job, JobStore, Phase, UpdateConfig, UpdateError, UpdateManager,
    UpdateRequest,
};

/// A manager on `data` whose "reboot" only records that it was asked; the
/// events it reported so far; the reboot requests.
struct Vigild {
    manager: UpdateManager,
    events: Arc<Mutex<Vec<Job>>>,
    reboots: mpsc::Receiver<()>,
}

fn vigild(peer: &RaucPeer, data: &Path) -> Vigild {
    vigild_with(peer, data, DownloadLimits::default())
}

fn vigild_with(peer: &RaucPeer, data: &Path, download: DownloadLimits) -> Vigild {
    vigild_rebooting(peer, data, download, Ok(()))
}

/// A manager whose reboot request returns `reboot`.
fn vigild_rebooting(peer: &RaucPeer, data: &Path, download: DownloadLimits, reboot: Result<(), String>) -> Vigild {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (tx, reboots) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = UpdateConfig {
        data_dir: data.to_owned(),
        bus: Bus::Address(peer.bus_address().to_owned()),
        download,
        reboot: Arc::new(move || {
            tx.lock().unwrap().send(()).map_err(|e| e.to_string())?;
            reboot.clone()
        }),
        boot_id_file: peer.boot_id_file(),
    };
    let sink = Arc::clone(&events);
    let manager =
        UpdateManager::open(config, Arc::new(move |job: &Job| sink.lock().unwrap().push(job.clone()))).unwrap();
    Vigild { manager, events, reboots }
}

impl Vigild {
    fn phases(&self) -> Vec<Phase> {
        let mut phases: Vec<Phase> = self.events.lock().unwrap().iter().map(|j| j.phase).collect();
        phases.dedup();
        phases
    }

    fn run(&self, bundle: &str, version: Option<&str>) -> Job {
        let request = UpdateRequest { bundle: bundle.to_owned(), expected_version: version.map(str::to_owned) };
        let id = self.manager.start(request).unwrap();
        self.manager.wait();
        let job = self.manager.job().unwrap();
        assert_eq!(job.id, id);
        job
    }
}

fn request_reboot_seen(v: &Vigild) {
    v.reboots.recv_timeout(Duration::from_secs(30)).expect("the job asked for a reboot");
}

/// Installs version 2.0.0 into slot B and "reboots" the peer.
fn install_and_reboot(peer: &mut RaucPeer, data: &Path) -> Job {
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Trusted).unwrap();
    let v = vigild(peer, data);
    let job = v.run(bundle.to_str().unwrap(), Some("2.0.0"));
    assert_eq!(job.phase, Phase::Rebooting, "{job:?}");
    request_reboot_seen(&v);
    assert_eq!(v.phases(), [Phase::Queued, Phase::Verifying, Phase::Installing, Phase::Rebooting]);
    let installing: Vec<u8> =
        v.events.lock().unwrap().iter().filter(|j| j.phase == Phase::Installing).filter_map(|j| j.progress).collect();
    assert_eq!(installing.last(), Some(&100), "install progress reaches 100%: {installing:?}");
    assert_eq!(
        (job.from_boot.as_deref(), job.to_slot.as_deref(), job.to_boot.as_deref(), job.bundle_version.as_deref()),
        (Some("A"), Some("rootfs.1"), Some("B"), Some("2.0.0"))
    );
    assert_eq!(JobStore::open(data).unwrap().load().unwrap().as_ref(), Some(&job), "the job file holds the job");
    job
}

#[test]
fn a_healthy_update_is_marked_good_and_succeeds() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    install_and_reboot(&mut peer, data.path());
    assert_eq!(peer.reboot().unwrap(), "B");

    let v = vigild(&peer, data.path());
    let mut asked = false;
    let job = vigil_system::appliance::after_boot(&v.manager, || {
        asked = true;
        HealthVerdict::Healthy
    })
    .unwrap()
    .unwrap();
    assert!(asked, "the health check ran");
    assert_eq!(job.phase, Phase::Succeeded, "{job:?}");
    assert_eq!(v.phases(), [Phase::HealthCheck, Phase::Succeeded]);
    assert_eq!(peer.boot_state().unwrap().b, "good", "the booted slot was marked good");
    assert_eq!(peer.reboot().unwrap(), "B", "a confirmed slot keeps booting");
    assert_eq!(vigild(&peer, data.path()).manager.on_boot().unwrap(), BootOutcome::Idle);
}

#[test]
fn an_unhealthy_update_is_marked_bad_and_the_rollback_is_reported_after_the_reboot() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    install_and_reboot(&mut peer, data.path());
    assert_eq!(peer.reboot().unwrap(), "B");

    let v = vigild(&peer, data.path());
    assert!(matches!(v.manager.on_boot().unwrap(), BootOutcome::HealthCheckDue(_)));
    let job = v.manager.finish_health_check(HealthVerdict::Unhealthy("no frames from camera hall-1".into())).unwrap();
    assert_eq!(job.phase, Phase::Rebooting);
    assert_eq!(job.detail, "health check failed: no frames from camera hall-1; slot B marked bad; rebooting into A");
    assert_eq!(job.error.as_ref().map(|e| e.code.as_str()), Some("unhealthy"));
    v.reboots.recv_timeout(Duration::from_secs(5)).expect("vigild asked for the reboot into the old slot");
    assert_eq!(peer.boot_state().unwrap().b, "bad");
    assert!(matches!(v.manager.finish_health_check(HealthVerdict::Healthy), Err(UpdateError::NoHealthCheckPending)));
    drop(v);

    assert_eq!(peer.reboot().unwrap(), "A", "the bootloader skips the bad slot");
    let v = vigild(&peer, data.path());
    let BootOutcome::Concluded(job) = v.manager.on_boot().unwrap() else { panic!("expected a concluded job") };
    assert_eq!(job.phase, Phase::RolledBack);
    let error = job.error.unwrap();
    assert_eq!(error.code, "unhealthy");
    assert_eq!(error.message, "health check failed: no frames from camera hall-1; rolled back to slot A");
}

#[test]
fn coming_up_on_the_old_slot_is_reported_rolled_back() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    install_and_reboot(&mut peer, data.path());
    // Slot B boots but dies before vigild runs its health check; the next
    // boot falls back to A.
    assert_eq!(peer.reboot().unwrap(), "B");
    assert_eq!(peer.reboot().unwrap(), "A");

    let v = vigild(&peer, data.path());
    let BootOutcome::Concluded(job) = v.manager.on_boot().unwrap() else { panic!("expected a concluded job") };
    assert_eq!(job.phase, Phase::RolledBack);
    let error = job.error.unwrap();
    assert_eq!(error.code, "rolled-back");
    assert_eq!(error.message, "booted slot A instead of the updated slot B: the bootloader fell back");
    assert_eq!(v.phases(), [Phase::RolledBack]);
}

#[test]
fn a_version_mismatch_fails_before_installing() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Trusted).unwrap();
    let v = vigild(&peer, data.path());
    let job = v.run(bundle.to_str().unwrap(), Some("3.0.0"));
    assert_eq!(job.phase, Phase::Failed);
    let error = job.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("version-mismatch", "bundle version 2.0.0 does not match the expected 3.0.0")
    );
    assert_eq!(v.phases(), [Phase::Queued, Phase::Verifying, Phase::Failed]);
    assert!(std::fs::read(peer.slot_image("B")).unwrap().iter().all(|&b| b == 0), "slot B untouched");
}

#[test]
fn a_bundle_rauc_refuses_fails_the_job_with_rauc_text() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = peer.bundle("2.0.0", "another-product", Signer::Trusted).unwrap();
    let v = vigild(&peer, data.path());
    let job = v.run(bundle.to_str().unwrap(), None);
    assert_eq!(job.phase, Phase::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, "rauc-refused");
    assert!(
        error.message.starts_with("RAUC refused the bundle: ") && error.message.contains("another-product"),
        "{error:?}"
    );
    assert!(v.reboots.try_recv().is_err(), "no reboot after a refusal");
}

#[test]
fn a_second_request_while_a_job_is_unfinished_is_busy() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let job = install_and_reboot(&mut peer, data.path());
    let v = vigild(&peer, data.path());
    let err =
        v.manager.start(UpdateRequest { bundle: "/data/other.raucb".into(), expected_version: None }).unwrap_err();
    assert_eq!(err.code(), "busy");
    assert_eq!(err.to_string(), format!("update job {} is still rebooting; wait for it to finish", job.id));
    let err = v.manager.start(UpdateRequest { bundle: "other.raucb".into(), expected_version: None }).unwrap_err();
    assert_eq!(err.code(), "bad-request");
}

#[test]
fn a_missing_rauc_service_fails_the_job_with_an_explanation() {
    let mut peer = RaucPeer::start().unwrap();
    peer.stop_service();
    let data = tempfile::tempdir().unwrap();
    let v = vigild(&peer, data.path());
    let job = v.run("/data/update.raucb", None);
    let error = job.error.unwrap();
    assert_eq!(error.code, "rauc-unavailable", "{error:?}");
    assert!(error.message.contains("(is rauc.service running?)"), "{error:?}");
}

#[test]
fn an_http_bundle_is_downloaded_then_installed() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = peer.bundle("2.1.0", COMPATIBLE, Signer::Trusted).unwrap();
    let server = super::download::HttpServer::serve_dir(bundle.parent().unwrap());
    let url = format!("{}/{}", server.url(), bundle.file_name().unwrap().to_str().unwrap());
    let v = vigild(&peer, data.path());
    let job = v.run(&url, Some("2.1.0"));
    assert_eq!(job.phase, Phase::Rebooting, "{job:?}");
    request_reboot_seen(&v);
    assert_eq!(v.phases(), [Phase::Queued, Phase::Downloading, Phase::Verifying, Phase::Installing, Phase::Rebooting]);
    let downloaded: Vec<u8> =
        v.events.lock().unwrap().iter().filter(|j| j.phase == Phase::Downloading).filter_map(|j| j.progress).collect();
    assert_eq!(downloaded.last(), Some(&100), "{downloaded:?}");
    assert!(std::fs::read(peer.slot_image("B")).unwrap().starts_with(b"vigil test rootfs 2.1.0\n"));
    let leftovers = std::fs::read_dir(data.path().join("bundles")).unwrap().count();
    assert_eq!(leftovers, 0, "the installed bundle is deleted from the data partition");
}

#[test]
fn a_restart_before_the_reboot_is_not_a_rollback() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let job = install_and_reboot(&mut peer, data.path());
    // vigild restarts (crash, systemd restart) before the reboot it asked for happens.
    let v = vigild(&peer, data.path());
    assert_eq!(v.manager.on_boot().unwrap(), BootOutcome::AwaitingReboot(job));
    assert_eq!(peer.reboot().unwrap(), "B");
    assert!(matches!(vigild(&peer, data.path()).manager.on_boot().unwrap(), BootOutcome::HealthCheckDue(_)));
}

#[test]
fn a_lost_link_is_retried_and_the_download_resumes() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = std::fs::read(peer.bundle("2.2.0", COMPATIBLE, Signer::Trusted).unwrap()).unwrap();
    let cut = bundle.len() / 2;
    let (url, ranges) = super::download::breaking_server(bundle, cut);
    let limits = DownloadLimits { attempts: 3, retry_delay: Duration::from_millis(10), ..DownloadLimits::default() };
    let v = vigild_with(&peer, data.path(), limits);
    let job = v.run(&url, Some("2.2.0"));
    assert_eq!(job.phase, Phase::Rebooting, "{job:?}");
    let ranges = ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(ranges[1].as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"), "{ranges:?}");
    assert!(std::fs::read(peer.slot_image("B")).unwrap().starts_with(b"vigil test rootfs 2.2.0\n"));
}

#[test]
fn a_download_cut_by_power_loss_resumes_after_restart() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = std::fs::read(peer.bundle("2.3.0", COMPATIBLE, Signer::Trusted).unwrap()).unwrap();
    let (url, ranges) = super::download::breaking_server(bundle.clone(), bundle.len());
    // What the job file and data partition held when the power went.
    let mut job = Job::new("os-1".into(), vigil_system::update::BundleSource::Url(url.clone()), None);
    job.enter(Phase::Downloading, "downloading").unwrap();
    JobStore::open(data.path()).unwrap().save(&job).unwrap();
    std::fs::create_dir(data.path().join("bundles")).unwrap();
    std::fs::write(data.path().join("bundles/os-1.raucb.part"), &bundle[..1000]).unwrap();

    let v = vigild(&peer, data.path());
    assert!(matches!(v.manager.on_boot().unwrap(), BootOutcome::Resumed(_)));
    v.manager.wait();
    let job = v.manager.job().unwrap();
    assert_eq!(job.phase, Phase::Rebooting, "{job:?}");
    assert_eq!(*ranges.lock().unwrap(), [Some("bytes=1000-".to_owned())]);
    assert!(std::fs::read(peer.slot_image("B")).unwrap().starts_with(b"vigil test rootfs 2.3.0\n"));
}

#[test]
fn a_failed_reboot_request_leaves_the_job_waiting_for_the_next_boot() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Trusted).unwrap();
    let v = vigild_rebooting(&peer, data.path(), DownloadLimits::default(), Err("systemctl: not found".into()));
    let job = v.run(bundle.to_str().unwrap(), None);
    assert_eq!(job.phase, Phase::Rebooting);
    assert_eq!(
        job.detail,
        "installed, but the reboot failed (systemctl: not found); the update completes on the next reboot"
    );
    assert_eq!(peer.reboot().unwrap(), "B");
    let v = vigild(&peer, data.path());
    assert!(matches!(v.manager.on_boot().unwrap(), BootOutcome::HealthCheckDue(_)));
}

#[test]
fn a_failed_download_job_frees_the_data_partition() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = std::fs::read(peer.bundle("2.4.0", COMPATIBLE, Signer::Trusted).unwrap()).unwrap();
    let (url, _) = super::download::breaking_server(bundle.clone(), bundle.len() / 2);
    let limits = DownloadLimits { attempts: 1, ..DownloadLimits::default() };
    let v = vigild_with(&peer, data.path(), limits);
    let job = v.run(&url, None);
    assert_eq!(job.phase, Phase::Failed);
    let error = job.error.unwrap();
    assert_eq!(error.code, "download");
    assert!(error.message.starts_with(&format!("downloading {url} to ")), "{error:?}");
    assert_eq!(std::fs::read_dir(data.path().join("bundles")).unwrap().count(), 0, "the partial bundle is deleted");
}

#[test]
fn a_missing_bundle_file_is_reported_before_asking_rauc() {
    let peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("nowhere.raucb");
    let v = vigild(&peer, data.path());
    let job = v.run(missing.to_str().unwrap(), None);
    let error = job.error.unwrap();
    assert_eq!(error.code, "bad-bundle");
    assert_eq!(
        error.message,
        format!("bundle {} cannot be read: No such file or directory (os error 2)", missing.display())
    );
}

#[test]
fn a_bundle_signed_by_a_stranger_fails_verification() {
    let mut peer = RaucPeer::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Stranger).unwrap();
    let v = vigild(&peer, data.path());
    let job = v.run(bundle.to_str().unwrap(), None);
    let error = job.error.unwrap();
    assert_eq!(error.code, "rauc-refused");
    assert!(
        error.message.starts_with(&format!("RAUC cannot read or verify the bundle {}", bundle.display())),
        "{error:?}"
    );
    assert_eq!(v.phases(), [Phase::Queued, Phase::Verifying, Phase::Failed]);
}

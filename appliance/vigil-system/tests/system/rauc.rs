//! The RAUC client against Debian's RAUC 1.8 on a private bus. Bundles are
//! `format=plain`: verity bundles cannot be mounted in this container (no
//! device mapper: "Failed to open /dev/mapper/control"), see `RaucPeer`.

use vigil_peers::rauc::{COMPATIBLE, RaucPeer, Signer};
use vigil_system::rauc::{Bus, MarkState, RaucClient, RaucError};

fn client(peer: &RaucPeer) -> RaucClient {
    RaucClient::connect(Bus::Address(peer.bus_address().to_owned())).expect("RAUC on the peer's bus")
}

#[test]
fn reads_system_and_slot_status() {
    let peer = RaucPeer::start().unwrap();
    let rauc = client(&peer);
    assert_eq!(rauc.compatible().unwrap(), COMPATIBLE);
    assert_eq!(rauc.boot_slot().unwrap(), "A");
    assert_eq!(rauc.operation().unwrap(), "idle");
    assert_eq!(rauc.primary().unwrap(), "rootfs.0");
    let mut slots = rauc.slot_status().unwrap();
    slots.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = slots.iter().map(|s| (s.name.as_str(), s.bootname.as_deref(), s.state.as_deref())).collect();
    assert_eq!(names, [("rootfs.0", Some("A"), Some("booted")), ("rootfs.1", Some("B"), Some("inactive"))]);
    assert_eq!(slots[1].boot_status.as_deref(), Some("good"));
}

#[test]
fn mark_reaches_the_bootloader_backend() {
    let peer = RaucPeer::start().unwrap();
    let rauc = client(&peer);
    assert_eq!(rauc.mark(MarkState::Bad, "other").unwrap(), "rootfs.1");
    assert_eq!(peer.boot_state().unwrap().b, "bad");
    let b = rauc.slot_status().unwrap().into_iter().find(|s| s.name == "rootfs.1").unwrap();
    assert_eq!(b.boot_status.as_deref(), Some("bad"), "RAUC reads the backend's get-state");
    assert_eq!(rauc.mark(MarkState::Good, "rootfs.1").unwrap(), "rootfs.1");
    assert_eq!(peer.boot_state().unwrap().b, "good");
    rauc.mark(MarkState::Active, "other").unwrap();
    assert_eq!(peer.boot_state().unwrap().primary, "B");
    assert_eq!(rauc.primary().unwrap(), "rootfs.1");
}

#[test]
fn mark_of_an_unknown_slot_quotes_rauc() {
    let peer = RaucPeer::start().unwrap();
    let e = client(&peer).mark(MarkState::Good, "rootfs.9").unwrap_err().to_string();
    assert!(e.starts_with("RAUC Mark(good, rootfs.9) failed:"), "{e}");
}

#[test]
fn install_writes_the_inactive_slot_and_reports_progress() {
    let mut peer = RaucPeer::start().unwrap();
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Trusted).unwrap();
    let rauc = client(&peer);
    let info = rauc.bundle_info(bundle.to_str().unwrap()).unwrap();
    assert_eq!((info.compatible.as_str(), info.version.as_str()), (COMPATIBLE, "2.0.0"));

    let mut progress = Vec::new();
    let outcome = rauc.install(bundle.to_str().unwrap(), |p| progress.push(p.clone())).unwrap();
    assert_eq!(outcome.primary, "rootfs.1");
    assert_eq!(progress.last().map(|p| p.percent), Some(100), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].percent <= w[1].percent), "{progress:?}");
    assert!(std::fs::read(peer.slot_image("B")).unwrap().starts_with(b"vigil test rootfs 2.0.0\n"));
    let state = peer.boot_state().unwrap();
    assert_eq!((state.primary.as_str(), state.b.as_str()), ("B", "trial"));
    let b = rauc.slot_status().unwrap().into_iter().find(|s| s.name == "rootfs.1").unwrap();
    assert_eq!(b.bundle_version.as_deref(), Some("2.0.0"));
    assert_eq!(rauc.last_error().unwrap(), "");
    // Other tests' installs may run concurrently; theirs end too.
    super::wait_for("the signal threads to end with their connections", std::time::Duration::from_secs(30), || {
        (signal_threads() == 0).then_some(())
    });
}

/// Threads named `rauc-signals` in this process.
fn signal_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "rauc-signals")
        .count()
}

#[test]
fn install_of_a_wrong_compatible_reports_rauc_last_error() {
    let mut peer = RaucPeer::start().unwrap();
    let bundle = peer.bundle("2.0.0", "someone-else", Signer::Trusted).unwrap();
    let rauc = client(&peer);
    let mut progress = Vec::new();
    let err = rauc.install(bundle.to_str().unwrap(), |p| progress.push(p.clone())).unwrap_err();
    let RaucError::Refused { last_error } = &err else { panic!("expected a refusal, got {err}") };
    assert!(last_error.contains("someone-else"), "{last_error}");
    assert_eq!(err.to_string(), format!("RAUC refused the bundle: {last_error}"));
    assert_eq!(rauc.last_error().unwrap(), *last_error);
    assert!(!progress.is_empty(), "RAUC reports progress before refusing");
    assert!(std::fs::read(peer.slot_image("B")).unwrap().iter().all(|&b| b == 0), "slot B untouched");
    assert_eq!(peer.boot_state().unwrap().primary, "A");
}

#[test]
fn a_bundle_signed_by_an_unknown_ca_is_refused() {
    let mut peer = RaucPeer::start().unwrap();
    let bundle = peer.bundle("2.0.0", COMPATIBLE, Signer::Stranger).unwrap();
    let rauc = client(&peer);
    let err = rauc.bundle_info(bundle.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, RaucError::Unverifiable { .. }), "{err}");
    assert!(err.to_string().contains("journalctl -u rauc"), "{err}");
    let err = rauc.install(bundle.to_str().unwrap(), |_| {}).unwrap_err();
    let RaucError::Refused { last_error } = &err else { panic!("expected a refusal, got {err}") };
    assert!(last_error.to_lowercase().contains("signature"), "{last_error}");
}

#[test]
fn a_missing_service_is_explained() {
    let mut peer = RaucPeer::start().unwrap();
    peer.stop_service();
    let err = RaucClient::connect(Bus::Address(peer.bus_address().to_owned())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no RAUC service on the bus at {} (is rauc.service running?)", peer.bus_address())
    );
}

#[test]
fn a_missing_bus_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}", dir.path().join("none.sock").display());
    let err = RaucClient::connect(Bus::Address(address.clone())).unwrap_err().to_string();
    assert!(err.starts_with(&format!("cannot connect to the bus at {address} to reach RAUC:")), "{err}");
}

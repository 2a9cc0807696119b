//! Clock sync state from Debian's systemd-timedated on a private bus (it
//! needs no running systemd), and the kernel fallback without it.

use vigil_peers::rauc::RaucPeer;
use vigil_system::Bus;
use vigil_system::clock::{TimeSource, kernel_time_status, time_status_on};

#[test]
fn timedated_answers_when_present() {
    let mut peer = RaucPeer::start().unwrap();
    peer.start_timedated().unwrap();
    let status = time_status_on(&Bus::Address(peer.bus_address().to_owned()));
    assert_eq!(status.source, TimeSource::Timedated, "{status:?}");
    // timedated's NTPSynchronized is the kernel's STA_UNSYNC read the same way.
    assert_eq!(status.synchronized, kernel_time_status().synchronized);
}

#[test]
fn without_timedated_the_kernel_answers() {
    let peer = RaucPeer::start().unwrap();
    let status = time_status_on(&Bus::Address(peer.bus_address().to_owned()));
    assert_eq!(status.source, TimeSource::Kernel);
    assert!(status.synchronized.is_some() && status.max_error_us.is_some(), "{status:?}");
}

#[test]
fn without_a_bus_the_kernel_answers() {
    let dir = tempfile::tempdir().unwrap();
    let status = time_status_on(&Bus::Address(format!("unix:path={}", dir.path().join("none").display())));
    assert_eq!(status.source, TimeSource::Kernel);
}

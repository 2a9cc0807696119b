//! The notify protocol against a datagram socket the test binds, as systemd would.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

use vigil_system::notify::Notifier;
use vigil_system::watchdog::Watchdog;

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notify datagram within the socket timeout");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn listening(socket: &UnixDatagram) {
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
}

#[test]
fn ready_status_and_stopping_reach_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    listening(&socket);
    let notifier = Notifier::to_socket(path.as_os_str()).unwrap();
    assert!(notifier.is_enabled());
    notifier.ready().unwrap();
    assert_eq!(recv(&socket), "READY=1");
    notifier.status("3 cameras\nstreaming").unwrap();
    assert_eq!(recv(&socket), "STATUS=3 cameras streaming");
    notifier.stopping().unwrap();
    assert_eq!(recv(&socket), "STOPPING=1");
}

#[test]
fn messages_reach_an_abstract_socket() {
    let name = format!("vigil-notify-test-{}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    listening(&socket);
    let notifier = Notifier::to_socket(OsStr::new(&format!("@{name}"))).unwrap();
    notifier.watchdog().unwrap();
    assert_eq!(recv(&socket), "WATCHDOG=1");
}

#[test]
fn a_vanished_socket_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.sock");
    let notifier = Notifier::to_socket(path.as_os_str()).unwrap();
    let e = notifier.ready().unwrap_err().to_string();
    assert!(e.starts_with(&format!("could not notify systemd at {}", path.display())), "{e}");
}

#[test]
fn watchdog_pings_only_while_every_heartbeat_is_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    listening(&socket);
    let notifier = Notifier::to_socket(path.as_os_str()).unwrap();
    // Pings every 50 ms; the detector must beat every 300 ms.
    let watchdog = Watchdog::start(notifier, Some(Duration::from_millis(100)));
    let detector = watchdog.register("detector", Duration::from_millis(300));
    let uplink = watchdog.register("uplink", Duration::from_secs(3600));
    uplink.beat();

    // While the detector beats, the socket hears keep-alives.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let beating = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                detector.beat();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let first = recv(&socket);
        let second = recv(&socket);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (first, second)
    });
    assert!(beating.0.starts_with("WATCHDOG=1") && beating.1.starts_with("WATCHDOG=1"), "{beating:?}");

    // Silent detector: keep-alives stop and STATUS says who is stale.
    let stale = super::wait_for("a STATUS naming the stale detector", Duration::from_secs(10), || {
        let msg = recv(&socket);
        msg.starts_with("STATUS=watchdog withheld").then_some(msg)
    });
    assert!(stale.contains("detector silent for") && !stale.contains("uplink"), "{stale}");
    assert!(!stale.contains("WATCHDOG=1"), "{stale}");
    // Every further message withholds the keep-alive until the detector beats again.
    for _ in 0..3 {
        assert!(recv(&socket).starts_with("STATUS=watchdog withheld"));
    }
    detector.beat();
    let recovered = super::wait_for("keep-alives again", Duration::from_secs(10), || {
        let msg = recv(&socket);
        msg.contains("WATCHDOG=1").then_some(msg)
    });
    assert_eq!(recovered, "WATCHDOG=1\nSTATUS=running; all components alive");
}

/// Set in the child process [`systemd_environment_is_honoured`] starts.
const PROBE: &str = "VIGIL_SYSTEM_NOTIFY_PROBE";

#[test]
fn systemd_environment_is_honoured() {
    if std::env::var_os(PROBE).is_some() {
        // The child: started as systemd would start vigild.
        let system = vigil_system::appliance::System::from_env().unwrap();
        assert_eq!(system.watchdog_interval(), Some(Duration::from_secs(2)));
        system.ready();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    listening(&socket);
    let child = |notify_socket: Option<&Path>| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "notify::systemd_environment_is_honoured", "--test-threads=1"])
            .env(PROBE, "1")
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("NOTIFY_SOCKET");
        if let Some(socket) = notify_socket {
            command.env("NOTIFY_SOCKET", socket);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stdout));
    };
    socket.set_nonblocking(true).unwrap();
    let drain = || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    };
    child(Some(&path));
    // The child has exited, so everything it sent is queued.
    let got = drain();
    assert!(got.contains(&"READY=1".to_owned()), "{got:?}");
    assert!(got.iter().all(|m| m == "READY=1" || m == "WATCHDOG=1"), "{got:?}");
    // Without NOTIFY_SOCKET (not under systemd) the same calls succeed and send nothing.
    child(None);
    assert_eq!(drain(), Vec::<String>::new());
}

//! vigil-system against real peers: a notify socket the test binds, a real
//! RAUC 1.8 service on a private D-Bus ([`vigil_peers::rauc::RaucPeer`]) and
//! local HTTP servers for bundle downloads.

mod clock;
mod download;
mod notify;
mod rauc;
mod update;

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, failing with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

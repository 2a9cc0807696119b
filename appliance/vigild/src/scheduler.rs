//! The frame scheduler between cameras and the detector: one slot per
//! camera holding only its freshest frame, served in rounds.
//!
//! In each round every camera with a frame waiting is served once; within a
//! round the freshest waiting frame goes first, which shortens glass-to-alert
//! when the detector is saturated without letting any camera get ahead.
//!
//! Architecture Invariant: a frame waiting here is never older than one frame
//! interval of its camera (a newer frame replaces it, counted as dropped), and
//! no camera is served twice while another camera has a frame waiting.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use vigil_core::{CameraId, Frame};
use vigil_detector::FrameQueue;

/// Counters of one camera's slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Frames put in.
    pub offered: u64,
    /// Frames replaced by a newer one before the detector took them.
    pub dropped: u64,
    /// Frames taken by the detector.
    pub taken: u64,
}

#[derive(Default)]
struct Slot {
    frame: Option<Frame>,
    /// The round this camera was last served in.
    served_in: u64,
    stats: SlotStats,
}

#[derive(Default)]
struct Inner {
    slots: BTreeMap<CameraId, Slot>,
    /// Starts at 1 so a new slot (served in round 0) counts as unserved.
    round: u64,
    closed: bool,
}

/// Latest-frame-per-camera queue; see the module docs.
#[derive(Default)]
pub struct LatestFrames {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl LatestFrames {
    /// An empty, open scheduler.
    pub fn new() -> LatestFrames {
        LatestFrames::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a camera's newest frame, replacing (and counting) any frame still waiting.
    pub fn put(&self, frame: Frame) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        let slot = inner.slots.entry(frame.camera.clone()).or_default();
        slot.stats.offered += 1;
        if slot.frame.replace(frame).is_some() {
            slot.stats.dropped += 1;
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Forgets a camera that was removed, with any frame it left waiting.
    pub fn remove(&self, camera: &CameraId) {
        self.lock().slots.remove(camera);
    }

    /// Wakes every taker with `None`; later puts are ignored.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Per-camera counters.
    pub fn stats(&self) -> Vec<(CameraId, SlotStats)> {
        self.lock().slots.iter().map(|(id, s)| (id.clone(), s.stats)).collect()
    }

    /// Frames dropped across all cameras.
    pub fn dropped(&self) -> u64 {
        self.lock().slots.values().map(|s| s.stats.dropped).sum()
    }
}

impl FrameQueue for LatestFrames {
    fn take(&self) -> Option<Frame> {
        let mut inner = self.lock();
        loop {
            if inner.closed {
                return None;
            }
            if !inner.slots.values().any(|s| s.frame.is_some()) {
                inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let round = inner.round.max(1);
            let freshest_unserved = |inner: &Inner, round: u64| {
                inner
                    .slots
                    .iter()
                    .filter(|(_, s)| s.served_in < round)
                    .filter_map(|(id, s)| s.frame.as_ref().map(|f| (id, f.captured.mono)))
                    .max_by_key(|(_, captured)| *captured)
                    .map(|(id, _)| id.clone())
            };
            // Everyone waiting was served this round: the next round begins.
            let (id, round) = match freshest_unserved(&inner, round) {
                Some(id) => (id, round),
                None => (freshest_unserved(&inner, round + 1).expect("a frame is waiting"), round + 1),
            };
            inner.round = round;
            let slot = inner.slots.get_mut(&id).expect("slot just found");
            slot.served_in = round;
            slot.stats.taken += 1;
            return slot.frame.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigil_core::Moment;

    fn frame(camera: &str, seq: u64) -> Frame {
        frame_at(camera, seq, seq)
    }

    fn frame_at(camera: &str, seq: u64, captured_ms: u64) -> Frame {
        let captured = Moment { mono: std::time::Duration::from_millis(captured_ms), wall: Default::default() };
        Frame::new(CameraId::new(camera), seq, captured, 1, 1, Arc::from(vec![0u8; 3])).unwrap()
    }

    #[test]
    fn keeps_only_the_freshest_frame_and_counts_the_rest() {
        let q = LatestFrames::new();
        for seq in 0..5 {
            q.put(frame("a", seq));
        }
        assert_eq!(q.take().unwrap().seq, 4);
        assert_eq!(q.stats(), vec![(CameraId::new("a"), SlotStats { offered: 5, dropped: 4, taken: 1 })]);
    }

    #[test]
    fn serves_cameras_round_robin_even_when_one_is_faster() {
        let q = LatestFrames::new();
        let mut served = Vec::new();
        for round in 0..6 {
            // "fast" offers a frame every round, "slow" every other round.
            q.put(frame("fast", round));
            if round % 2 == 0 {
                q.put(frame("slow", round));
            }
            served.push(q.take().unwrap().camera.to_string());
        }
        // The detector takes one frame per round: slow's frame waits for its
        // turn (it is not replaced), so the two alternate instead of fast
        // taking every turn it has a frame for.
        assert!(served.windows(2).all(|w| w[0] != w[1]), "{served:?}");
        assert_eq!(served.iter().filter(|c| *c == "slow").count(), 3);
    }

    #[test]
    fn within_a_round_the_freshest_frame_goes_first() {
        let q = LatestFrames::new();
        q.put(frame_at("a", 0, 10));
        q.put(frame_at("b", 0, 90));
        q.put(frame_at("c", 0, 50));
        let order: Vec<String> = (0..3).map(|_| q.take().unwrap().camera.to_string()).collect();
        assert_eq!(order, ["b", "c", "a"]);
        // A fresher frame from b cannot jump the round: b was served in it.
        q.put(frame_at("a", 1, 100));
        q.put(frame_at("b", 1, 200));
        q.put(frame_at("c", 1, 150));
        let order: Vec<String> = (0..3).map(|_| q.take().unwrap().camera.to_string()).collect();
        assert_eq!(order, ["b", "c", "a"], "a new round, freshest first again");
    }

    #[test]
    fn a_camera_cannot_be_served_twice_while_another_waits() {
        let q = LatestFrames::new();
        q.put(frame_at("old", 0, 0));
        q.put(frame_at("new", 0, 50));
        assert_eq!(q.take().unwrap().camera.as_str(), "new");
        q.put(frame_at("new", 1, 60));
        assert_eq!(q.take().unwrap().camera.as_str(), "old", "new already had its turn this round");
        assert_eq!(q.take().unwrap().camera.as_str(), "new");
    }

    #[test]
    fn a_returning_camera_gets_one_turn_per_round_not_a_backlog() {
        let q = LatestFrames::new();
        for seq in 0..50 {
            q.put(frame_at("busy", seq, seq * 100));
            q.take();
        }
        // "back" was away for 50 rounds; it gets one turn, then they alternate.
        let mut served = Vec::new();
        for seq in 50..56 {
            q.put(frame_at("busy", seq, seq * 100));
            q.put(frame_at("back", seq, seq * 100 - 1));
            served.push(q.take().unwrap().camera.to_string());
        }
        let back = served.iter().filter(|c| *c == "back").count();
        assert!((2..=4).contains(&back), "{served:?}");
    }

    #[test]
    fn no_camera_starves_among_many() {
        let q = LatestFrames::new();
        let names: Vec<String> = (0..16).map(|i| format!("cam-{i:02}")).collect();
        let mut served = std::collections::HashMap::new();
        for round in 0..10u64 {
            for n in &names {
                q.put(frame(n, round));
            }
            // The detector keeps up with only 4 of 16 cameras per round.
            for _ in 0..4 {
                *served.entry(q.take().unwrap().camera.to_string()).or_insert(0) += 1;
            }
        }
        assert_eq!(served.len(), 16, "every camera was served");
        assert!(served.values().all(|n| (2..=3).contains(n)), "{served:?}");
    }

    #[test]
    fn close_wakes_a_blocked_taker() {
        let q = Arc::new(LatestFrames::new());
        let taker = {
            let q = q.clone();
            std::thread::spawn(move || q.take())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        q.close();
        assert!(taker.join().unwrap().is_none());
        q.put(frame("a", 0));
        assert!(q.take().is_none(), "closed stays closed");
    }

    #[test]
    fn a_blocked_taker_gets_the_next_frame() {
        let q = Arc::new(LatestFrames::new());
        let taker = {
            let q = q.clone();
            std::thread::spawn(move || q.take().map(|f| f.seq))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.put(frame("a", 9));
        assert_eq!(taker.join().unwrap(), Some(9));
    }

    #[test]
    fn removed_cameras_are_forgotten() {
        let q = LatestFrames::new();
        q.put(frame("a", 0));
        q.remove(&CameraId::new("a"));
        assert!(q.stats().is_empty());
    }
}

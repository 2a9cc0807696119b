//! Confirmation: turning per-frame detections into an alarm.
//!
//! A single frame is never enough to call a gun: a detector flickers on
//! shadows, phones and umbrellas. Detections of the configured threat classes
//! are associated across frames into tracks (greedy IoU matching per class),
//! and a track raises an alarm once it has been hit in `hits` of the camera's
//! last `window` processed frames, each hit passing the score, size and zone
//! tests. A track raises at most one alarm in its life.

use std::sync::Arc;
use std::time::Duration;

use crate::frame::{CameraId, Detection, FrameResult};
use crate::geom::{BBox, Point, Polygon};
use crate::time::Moment;

/// How one camera decides that a detection is real. Built by the config
/// crate; the defaults are the documented ones.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfirmPolicy {
    /// Labels that count as threats; detections of other classes are ignored.
    pub threat_labels: Vec<Arc<str>>,
    /// A detection scoring below this is not a hit.
    pub min_score: f32,
    /// Hits needed within the window to raise an alarm.
    pub hits: u32,
    /// The window, in this camera's processed frames.
    pub window: u32,
    /// Minimum box side in frame pixels; smaller boxes are too far away to trust.
    pub min_box_px: f32,
    /// Zones (normalised polygons) the box centre must fall in; empty means the whole view.
    pub zones: Vec<Polygon>,
    /// Minimum IoU for a detection to continue a track.
    pub track_iou: f32,
    /// A track not hit for this long is forgotten, however many frames that is.
    pub track_timeout: Duration,
}

impl Default for ConfirmPolicy {
    fn default() -> Self {
        ConfirmPolicy {
            threat_labels: ["handgun", "rifle", "gun", "pistol"].into_iter().map(Arc::from).collect(),
            min_score: 0.5,
            hits: 3,
            window: 5,
            min_box_px: 8.0,
            zones: Vec::new(),
            track_iou: 0.2,
            track_timeout: Duration::from_secs(2),
        }
    }
}

/// A confirmed threat on one camera: what the incident is raised from.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// The camera that saw it.
    pub camera: CameraId,
    /// The track within that camera, for correlating later re-detections.
    pub track: u64,
    /// The class label.
    pub label: Arc<str>,
    /// The confirming detection's score.
    pub score: f32,
    /// The confirming detection's box.
    pub bbox: BBox,
    /// Sequence number of the confirming frame (the evidence frame).
    pub frame_seq: u64,
    /// When the confirming frame was captured.
    pub captured: Moment,
    /// When its inference finished.
    pub inferred: Moment,
    /// When the confirmation rule was met.
    pub confirmed: Moment,
    /// Hits in the window when it was met.
    pub hits: u32,
    /// The window size it was measured over.
    pub window: u32,
}

#[derive(Debug)]
struct Track {
    id: u64,
    label: Arc<str>,
    bbox: BBox,
    /// Bit i set: hit i processed frames ago (bit 0 is the current frame).
    history: u64,
    last_hit: Moment,
    alarmed: bool,
}

/// Confirmation state for one camera. Feed it every processed frame, hits or not.
#[derive(Debug)]
pub struct Confirmer {
    camera: CameraId,
    policy: ConfirmPolicy,
    tracks: Vec<Track>,
    next_track: u64,
}

/// Why a detection did not count as a hit; exposed for diagnostics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Its class is not a threat class.
    NotAThreat,
    /// Its score is below `min_score`.
    LowScore,
    /// Its box is smaller than `min_box_px`.
    TooSmall,
    /// Its centre is outside every zone.
    OutsideZones,
}

impl Confirmer {
    /// A confirmer for `camera`; `policy.window` is clamped to 1..=64 and
    /// `policy.hits` to 1..=window (the config crate rejects such values first).
    pub fn new(camera: CameraId, mut policy: ConfirmPolicy) -> Confirmer {
        policy.window = policy.window.clamp(1, 64);
        policy.hits = policy.hits.clamp(1, policy.window);
        Confirmer { camera, policy, tracks: Vec::new(), next_track: 0 }
    }

    /// The policy in force.
    pub fn policy(&self) -> &ConfirmPolicy {
        &self.policy
    }

    /// Replaces the policy, keeping tracks: a config reload must not reset a
    /// confirmation in progress.
    pub fn set_policy(&mut self, policy: ConfirmPolicy) {
        let camera = self.camera.clone();
        let tracks = std::mem::take(&mut self.tracks);
        let next_track = self.next_track;
        *self = Confirmer::new(camera, policy);
        self.tracks = tracks;
        self.next_track = next_track;
    }

    /// Number of live tracks.
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Whether `d` would count as a hit in a `width` x `height` frame, and why not.
    pub fn qualify(&self, d: &Detection, width: u32, height: u32) -> Result<(), Rejection> {
        let p = &self.policy;
        if !p.threat_labels.iter().any(|l| **l == *d.label) {
            return Err(Rejection::NotAThreat);
        }
        if d.score.is_nan() || d.score < p.min_score {
            return Err(Rejection::LowScore);
        }
        if d.bbox.width().min(d.bbox.height()) < p.min_box_px {
            return Err(Rejection::TooSmall);
        }
        if !p.zones.is_empty() {
            let c = d.bbox.center();
            let n = Point { x: c.x / width.max(1) as f32, y: c.y / height.max(1) as f32 };
            if !p.zones.iter().any(|z| z.contains(n)) {
                return Err(Rejection::OutsideZones);
            }
        }
        Ok(())
    }

    /// Takes one processed frame's result at time `now` and returns the alarms it completes.
    pub fn observe(&mut self, result: &FrameResult, now: Moment) -> Vec<Alarm> {
        let mask = if self.policy.window >= 64 { u64::MAX } else { (1u64 << self.policy.window) - 1 };
        for t in &mut self.tracks {
            t.history = (t.history << 1) & mask;
        }
        let timeout = self.policy.track_timeout;
        self.tracks.retain(|t| t.history != 0 || now.since(t.last_hit) < timeout);

        let mut hits: Vec<&Detection> =
            result.detections.iter().filter(|d| self.qualify(d, result.width, result.height).is_ok()).collect();
        // Strongest first, so a weak duplicate cannot steal a track from a strong box.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));

        let mut alarms = Vec::new();
        let mut matched = vec![false; self.tracks.len()];
        for d in hits {
            let best = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(i, t)| !matched[*i] && t.label == d.label)
                .map(|(i, t)| (i, t.bbox.iou(&d.bbox)))
                .filter(|(_, iou)| *iou >= self.policy.track_iou)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let index = match best {
                Some((i, _)) => i,
                None => {
                    self.tracks.push(Track {
                        id: self.next_track,
                        label: d.label.clone(),
                        bbox: d.bbox,
                        history: 0,
                        last_hit: now,
                        alarmed: false,
                    });
                    self.next_track += 1;
                    matched.push(false);
                    self.tracks.len() - 1
                }
            };
            matched[index] = true;
            let track = &mut self.tracks[index];
            track.bbox = d.bbox;
            track.history |= 1;
            track.last_hit = now;
            let count = track.history.count_ones();
            if !track.alarmed && count >= self.policy.hits {
                track.alarmed = true;
                alarms.push(Alarm {
                    camera: self.camera.clone(),
                    track: track.id,
                    label: d.label.clone(),
                    score: d.score,
                    bbox: d.bbox,
                    frame_seq: result.seq,
                    captured: result.captured,
                    inferred: result.inferred,
                    confirmed: now,
                    hits: count,
                    window: self.policy.window,
                });
            }
        }
        alarms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: Duration = Duration::from_millis(100);

    fn at(frame: u64) -> Moment {
        let t = FRAME * frame as u32;
        Moment { mono: t, wall: Duration::from_secs(1_800_000_000) + t }
    }

    fn gun(score: f32, x: f32) -> Detection {
        det("handgun", score, BBox { x1: x, y1: 100.0, x2: x + 30.0, y2: 120.0 })
    }

    fn det(label: &str, score: f32, bbox: BBox) -> Detection {
        Detection { class: 0, label: Arc::from(label), score, bbox }
    }

    fn result(seq: u64, detections: Vec<Detection>) -> FrameResult {
        FrameResult {
            camera: CameraId::new("hall-1"),
            seq,
            width: 640,
            height: 360,
            captured: at(seq),
            inferred: at(seq).plus(Duration::from_millis(30)),
            detections,
        }
    }

    fn confirmer() -> Confirmer {
        Confirmer::new(CameraId::new("hall-1"), ConfirmPolicy::default())
    }

    /// Runs a hit pattern (true = a gun detection that frame) and returns the frames that alarmed.
    fn run(c: &mut Confirmer, pattern: &[bool]) -> Vec<u64> {
        let mut alarmed = Vec::new();
        for (i, &hit) in pattern.iter().enumerate() {
            let seq = i as u64;
            let dets = if hit { vec![gun(0.9, 100.0 + i as f32)] } else { vec![] };
            if !c.observe(&result(seq, dets), at(seq)).is_empty() {
                alarmed.push(seq);
            }
        }
        alarmed
    }

    #[test]
    fn three_consecutive_hits_alarm_on_the_third() {
        assert_eq!(run(&mut confirmer(), &[true, true, true, true]), vec![2]);
    }

    #[test]
    fn three_hits_spread_over_five_frames_alarm() {
        assert_eq!(run(&mut confirmer(), &[true, false, true, false, true]), vec![4]);
    }

    #[test]
    fn three_hits_spread_over_six_frames_do_not_alarm() {
        assert_eq!(run(&mut confirmer(), &[true, false, false, true, false, false, true]), Vec::<u64>::new());
    }

    #[test]
    fn a_track_alarms_once_however_long_it_lasts() {
        assert_eq!(run(&mut confirmer(), &[true; 50]).len(), 1);
    }

    #[test]
    fn a_single_flicker_never_alarms() {
        let mut pattern = vec![false; 40];
        for i in (0..40).step_by(7) {
            pattern[i] = true;
        }
        assert!(run(&mut confirmer(), &pattern).is_empty());
    }

    #[test]
    fn alarm_carries_stage_times_of_the_confirming_frame() {
        let mut c = confirmer();
        let mut alarms = Vec::new();
        for seq in 0..3 {
            alarms = c.observe(&result(seq, vec![gun(0.8, 100.0)]), at(seq).plus(Duration::from_millis(40)));
        }
        let a = &alarms[0];
        assert_eq!(a.frame_seq, 2);
        assert_eq!(a.captured, at(2));
        assert_eq!(a.inferred, at(2).plus(Duration::from_millis(30)));
        assert_eq!(a.confirmed, at(2).plus(Duration::from_millis(40)));
        assert_eq!((a.hits, a.window), (3, 5));
        assert_eq!(&*a.label, "handgun");
    }

    #[test]
    fn non_threat_classes_never_alarm() {
        let mut c = confirmer();
        for seq in 0..10 {
            let phone = det("phone", 0.99, BBox { x1: 10.0, y1: 10.0, x2: 40.0, y2: 40.0 });
            assert!(c.observe(&result(seq, vec![phone]), at(seq)).is_empty());
        }
        assert_eq!(c.track_count(), 0);
    }

    #[test]
    fn low_scores_do_not_count() {
        let mut c = confirmer();
        for seq in 0..10 {
            assert!(c.observe(&result(seq, vec![gun(0.49, 100.0)]), at(seq)).is_empty());
        }
    }

    #[test]
    fn tiny_boxes_do_not_count() {
        let mut c = confirmer();
        let tiny = det("handgun", 0.99, BBox { x1: 10.0, y1: 10.0, x2: 17.0, y2: 40.0 });
        assert_eq!(c.qualify(&tiny, 640, 360), Err(Rejection::TooSmall));
        for seq in 0..10 {
            assert!(c.observe(&result(seq, vec![tiny.clone()]), at(seq)).is_empty());
        }
    }

    #[test]
    fn detections_outside_zones_do_not_count_and_inside_do() {
        let left_half = Polygon::new(vec![
            Point { x: 0.0, y: 0.0 },
            Point { x: 0.5, y: 0.0 },
            Point { x: 0.5, y: 1.0 },
            Point { x: 0.0, y: 1.0 },
        ])
        .unwrap();
        let policy = ConfirmPolicy { zones: vec![left_half], ..ConfirmPolicy::default() };
        let mut c = Confirmer::new(CameraId::new("hall-1"), policy);
        let right = gun(0.9, 500.0);
        assert_eq!(c.qualify(&right, 640, 360), Err(Rejection::OutsideZones));
        let mut alarms = 0;
        for seq in 0..5 {
            alarms += c.observe(&result(seq, vec![right.clone()]), at(seq)).len();
        }
        assert_eq!(alarms, 0);
        for seq in 5..8 {
            alarms += c.observe(&result(seq, vec![gun(0.9, 100.0)]), at(seq)).len();
        }
        assert_eq!(alarms, 1);
    }

    #[test]
    fn two_guns_far_apart_are_two_tracks_and_two_alarms() {
        let mut c = confirmer();
        let mut alarms = Vec::new();
        for seq in 0..3 {
            alarms.extend(c.observe(&result(seq, vec![gun(0.9, 50.0), gun(0.8, 400.0)]), at(seq)));
        }
        assert_eq!(alarms.len(), 2);
        assert_ne!(alarms[0].track, alarms[1].track);
    }

    #[test]
    fn a_jump_across_the_frame_starts_a_new_track() {
        let mut c = confirmer();
        let mut alarms = Vec::new();
        for seq in 0..4 {
            let x = if seq % 2 == 0 { 50.0 } else { 400.0 };
            alarms.extend(c.observe(&result(seq, vec![gun(0.9, x)]), at(seq)));
        }
        assert!(alarms.is_empty(), "alternating far-apart boxes are two tracks of 2 hits each");
        assert_eq!(c.track_count(), 2);
    }

    #[test]
    fn tracks_expire_after_the_window_and_timeout() {
        let mut c = confirmer();
        c.observe(&result(0, vec![gun(0.9, 100.0)]), at(0));
        assert_eq!(c.track_count(), 1);
        // Five empty frames empty the history; the timeout (2 s = 20 frames) keeps it alive.
        for seq in 1..=5 {
            c.observe(&result(seq, vec![]), at(seq));
        }
        assert_eq!(c.track_count(), 1);
        c.observe(&result(25, vec![]), at(25));
        assert_eq!(c.track_count(), 0);
    }

    #[test]
    fn a_long_gap_in_time_keeps_frame_counting_honest() {
        // Frames dropped under load: the window counts processed frames, so
        // three hits across three processed frames still confirm.
        let mut c = confirmer();
        let mut alarms = Vec::new();
        for (i, seq) in [0u64, 7, 14].into_iter().enumerate() {
            alarms = c.observe(&result(seq, vec![gun(0.9, 100.0 + i as f32)]), at(seq));
        }
        assert_eq!(alarms.len(), 1);
    }

    #[test]
    fn nan_scores_are_rejected() {
        assert_eq!(confirmer().qualify(&gun(f32::NAN, 0.0), 640, 360), Err(Rejection::LowScore));
    }

    #[test]
    fn policy_change_keeps_tracks_in_progress() {
        let mut c = confirmer();
        c.observe(&result(0, vec![gun(0.9, 100.0)]), at(0));
        c.observe(&result(1, vec![gun(0.9, 100.0)]), at(1));
        c.set_policy(ConfirmPolicy { hits: 2, ..ConfirmPolicy::default() });
        assert_eq!(c.observe(&result(2, vec![gun(0.9, 100.0)]), at(2)).len(), 1);
    }

    #[test]
    fn out_of_range_policy_is_clamped() {
        let c = Confirmer::new(CameraId::new("x"), ConfirmPolicy { hits: 10, window: 200, ..ConfirmPolicy::default() });
        assert_eq!((c.policy().hits, c.policy().window), (10, 64));
        let c = Confirmer::new(CameraId::new("x"), ConfirmPolicy { hits: 0, window: 3, ..ConfirmPolicy::default() });
        assert_eq!(c.policy().hits, 1);
    }

    /// Reference model: the alarm frame is the first index at which the last
    /// `window` entries of the pattern hold `hits` trues, given a single
    /// stationary object (one track) and no timeout.
    fn first_alarm(pattern: &[bool], hits: usize, window: usize) -> Option<u64> {
        (0..pattern.len())
            .find(|&i| pattern[i] && pattern[i.saturating_sub(window - 1)..=i].iter().filter(|h| **h).count() >= hits)
            .map(|i| i as u64)
    }

    proptest! {
        #[test]
        fn matches_the_n_of_m_reference(pattern in proptest::collection::vec(any::<bool>(), 0..80),
                                        window in 1u32..10, hits_frac in 0.0f64..1.0) {
            let hits = 1 + ((window - 1) as f64 * hits_frac) as u32;
            let policy = ConfirmPolicy { hits, window, track_timeout: Duration::from_secs(3600), ..ConfirmPolicy::default() };
            let mut c = Confirmer::new(CameraId::new("p"), policy);
            let mut got = None;
            for (i, &hit) in pattern.iter().enumerate() {
                let seq = i as u64;
                let dets = if hit { vec![gun(0.9, 100.0)] } else { vec![] };
                if !c.observe(&result(seq, dets), at(seq)).is_empty() && got.is_none() {
                    got = Some(seq);
                }
            }
            // With no timeout the track survives gaps of any length only while
            // its history is non-empty; a gap longer than the window starts a
            // fresh track, which the reference also models (no hits in window).
            prop_assert_eq!(got, first_alarm(&pattern, hits as usize, window as usize));
        }
    }
}

//! Turning a stream's own timeline into real time: thinning to a frame-rate
//! cap and sleeping until each frame is due.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::SourceError;

/// How far behind schedule a reader may fall before the schedule restarts from
/// now; a reader that stalled should get live frames afterwards, not a burst.
const MAX_LATENESS: Duration = Duration::from_secs(1);

/// Slack when comparing a frame's time with the next cap slot, so that a
/// 30 fps stream capped at 10 fps keeps exactly every third frame despite
/// rounding in `i / 30.0`.
const SLOT_EPSILON: f64 = 1e-9;

/// Decides which frames to hand out and when, from their times in the stream.
#[derive(Debug)]
pub(crate) struct Pacer {
    pace: bool,
    cap: Option<f64>,
    admitted: u64,
    /// The real instant that stream time `.1` (seconds) is due at.
    origin: Option<(Instant, f64)>,
}

impl Pacer {
    /// A pacer that sleeps if `pace` and keeps at most `fps_cap` frames per second of stream time.
    pub(crate) fn new(pace: bool, fps_cap: Option<f32>) -> Result<Pacer, SourceError> {
        if let Some(cap) = fps_cap
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(SourceError::invalid_options(format!(
                "fps_cap must be a positive number of frames per second, got {cap}"
            )));
        }
        Ok(Pacer { pace, cap: fps_cap.map(f64::from), admitted: 0, origin: None })
    }

    /// Whether the frame at stream time `t` seconds is kept under the cap.
    ///
    /// Kept frames are the first at or after each `k / cap` seconds, so the
    /// output rate is the cap on average however the two rates divide.
    pub(crate) fn admit(&mut self, t: f64) -> bool {
        if let Some(cap) = self.cap
            && t + SLOT_EPSILON < self.admitted as f64 / cap
        {
            return false;
        }
        self.admitted += 1;
        true
    }

    /// Sleeps until the frame at stream time `t` seconds is due, if pacing.
    pub(crate) fn wait(&mut self, t: f64) {
        if !self.pace {
            return;
        }
        let now = Instant::now();
        let Some((start, t0)) = self.origin else {
            self.origin = Some((now, t));
            return;
        };
        let due = start + Duration::from_secs_f64((t - t0).max(0.0));
        if due > now {
            thread::sleep(due - now);
        } else if now - due > MAX_LATENESS {
            self.origin = Some((now, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_every_third_frame_of_30_fps_at_10() {
        let mut p = Pacer::new(false, Some(10.0)).unwrap();
        let kept: Vec<u64> = (0..30u64).filter(|&i| p.admit(i as f64 / 30.0)).collect();
        assert_eq!(kept, (0..30).step_by(3).collect::<Vec<_>>());
    }

    #[test]
    fn cap_that_does_not_divide_keeps_the_average_rate() {
        let mut p = Pacer::new(false, Some(12.0)).unwrap();
        let kept = (0..300u64).filter(|&i| p.admit(i as f64 / 30.0)).count();
        assert_eq!(kept, 120);
    }

    #[test]
    fn cap_above_the_stream_rate_keeps_everything() {
        let mut p = Pacer::new(false, Some(60.0)).unwrap();
        assert!((0..100u64).all(|i| p.admit(i as f64 / 30.0)));
    }

    #[test]
    fn nonsense_cap_is_rejected_by_name() {
        for cap in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let err = Pacer::new(false, Some(cap)).unwrap_err();
            assert!(err.to_string().contains("fps_cap"), "{err}");
        }
    }

    #[test]
    fn pacing_spreads_frames_over_their_stream_time() {
        let mut p = Pacer::new(true, None).unwrap();
        let start = Instant::now();
        for i in 0..5 {
            p.wait(f64::from(i) / 100.0);
        }
        assert!(start.elapsed() >= Duration::from_millis(40));
    }
}

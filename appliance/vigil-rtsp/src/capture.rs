//! The pure parts of turning a decoded picture into a [`Frame`](vigil_core::Frame):
//! tight rows, the capture time, and the frame-rate cap.

use std::sync::Arc;
use std::time::Duration;

use vigil_core::Moment;

/// From the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_TO_UNIX: Duration = Duration::from_secs(2_208_988_800);

/// How far a camera's clock may be from ours before its timestamps are
/// ignored. Cameras often run with no NTP server at all, and a clock that is
/// hours out would put evidence at the wrong time; a few seconds of latency
/// and honest drift stay well inside this.
pub(crate) const MAX_CAMERA_SKEW: Duration = Duration::from_secs(10);

/// When a picture whose RTCP sender-report time is `ntp` (since the NTP
/// epoch) was taken, seen at `now`; `None` if the camera's clock is further
/// than [`MAX_CAMERA_SKEW`] from ours.
///
/// The wall time is the camera's; the monotonic time is ours, moved back by
/// the picture's age on the wall clock and never later than `now`.
pub(crate) fn camera_moment(now: Moment, ntp: Duration) -> Option<Moment> {
    let wall = ntp.checked_sub(NTP_TO_UNIX)?;
    if wall.abs_diff(now.wall) > MAX_CAMERA_SKEW {
        return None;
    }
    let age = now.wall.saturating_sub(wall);
    Some(Moment { mono: now.mono.saturating_sub(age), wall })
}

/// `height` rows of `row_len` bytes each, taken `stride` bytes apart from
/// `data`, packed without padding. GStreamer pads RGB rows to a multiple of 4
/// bytes, so any width not a multiple of 4 arrives with a gap after each row.
pub(crate) fn pack_rows(data: &[u8], row_len: usize, height: usize, stride: usize) -> Result<Arc<[u8]>, String> {
    let needed = if height == 0 { 0 } else { stride * (height - 1) + row_len };
    if stride < row_len || data.len() < needed {
        return Err(format!(
            "a picture of {height} rows of {row_len} bytes, {stride} apart, needs {needed} bytes, got {}",
            data.len()
        ));
    }
    if stride == row_len {
        return Ok(Arc::from(&data[..row_len * height]));
    }
    let mut out = Vec::with_capacity(row_len * height);
    for row in data.chunks(stride).take(height) {
        out.extend_from_slice(&row[..row_len]);
    }
    Ok(Arc::from(out))
}

/// Admits pictures at no more than a given rate, by their timestamps.
///
/// Time is cut into slots of one period, centred on the first picture's
/// timestamp, and the first picture in each slot is admitted. Centring makes
/// a stream that already runs at the cap pass whole even when its timestamps
/// jitter by up to half a period either way; a faster stream is thinned
/// evenly (30 fps capped at 25 keeps 5 in 6).
#[derive(Debug)]
pub(crate) struct RateGate {
    period: Duration,
    origin: Option<Duration>,
    last_slot: u64,
}

impl RateGate {
    /// A gate admitting at most `fps` pictures a second; `fps` must be positive.
    pub(crate) fn new(fps: f32) -> RateGate {
        RateGate { period: Duration::from_secs_f64(1.0 / f64::from(fps)), origin: None, last_slot: 0 }
    }

    /// Whether the picture stamped `pts` goes on.
    pub(crate) fn admit(&mut self, pts: Duration) -> bool {
        let origin = match self.origin {
            // Time going backwards means a new segment: start afresh from it.
            Some(origin) if pts >= origin => origin,
            _ => {
                self.origin = Some(pts);
                self.last_slot = 0;
                return true;
            }
        };
        let slot = ((pts - origin).as_secs_f64() / self.period.as_secs_f64() + 0.5) as u64;
        if slot > self.last_slot {
            self.last_slot = slot;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(mono_ms: u64, wall_ms: u64) -> Moment {
        Moment { mono: Duration::from_millis(mono_ms), wall: Duration::from_millis(wall_ms) }
    }

    const NOW_WALL_MS: u64 = 1_795_236_609_000;

    fn ntp_of_unix_ms(ms: u64) -> Duration {
        Duration::from_millis(ms) + NTP_TO_UNIX
    }

    #[test]
    fn camera_time_moves_mono_back_by_the_age() {
        let now = moment(50_000, NOW_WALL_MS);
        let got = camera_moment(now, ntp_of_unix_ms(NOW_WALL_MS - 300)).unwrap();
        assert_eq!(got, moment(49_700, NOW_WALL_MS - 300));
    }

    #[test]
    fn camera_slightly_ahead_is_clamped_to_now_on_mono() {
        let now = moment(50_000, NOW_WALL_MS);
        let got = camera_moment(now, ntp_of_unix_ms(NOW_WALL_MS + 200)).unwrap();
        assert_eq!(got, moment(50_000, NOW_WALL_MS + 200));
    }

    #[test]
    fn camera_clock_far_off_is_ignored() {
        let now = moment(50_000, NOW_WALL_MS);
        assert_eq!(camera_moment(now, ntp_of_unix_ms(NOW_WALL_MS - 3_600_000)), None);
        assert_eq!(camera_moment(now, ntp_of_unix_ms(NOW_WALL_MS + 60_000)), None);
        assert_eq!(camera_moment(now, Duration::from_secs(5)), None, "before 1970");
    }

    #[test]
    fn tight_rows_are_one_copy() {
        let data: Vec<u8> = (0..24).collect();
        assert_eq!(&*pack_rows(&data, 6, 4, 6).unwrap(), &data[..]);
    }

    #[test]
    fn padded_rows_lose_their_padding() {
        // 3 pixels wide: 9 bytes of RGB padded to a 12-byte stride; the last row may be short.
        let mut data = Vec::new();
        for row in 0..3u8 {
            data.extend((0..9).map(|i| row * 10 + i));
            if row < 2 {
                data.extend([0xee; 3]);
            }
        }
        let packed = pack_rows(&data, 9, 3, 12).unwrap();
        assert_eq!(packed.len(), 27);
        assert!(!packed.contains(&0xee));
        assert_eq!(packed[9], 10);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert!(pack_rows(&[0; 20], 9, 2, 12).is_err());
        assert!(pack_rows(&[0; 100], 9, 2, 8).is_err());
    }

    fn admitted(gate: &mut RateGate, fps: f64, seconds: f64, jitter_ms: f64) -> usize {
        let n = (fps * seconds) as usize;
        (0..n)
            .filter(|&i| {
                let wobble = if i % 2 == 0 { jitter_ms } else { -jitter_ms };
                let ms = (i as f64 * 1000.0 / fps + wobble).max(0.0);
                gate.admit(Duration::from_secs_f64(ms / 1000.0))
            })
            .count()
    }

    #[test]
    fn a_stream_at_the_cap_passes_whole_despite_jitter() {
        // ±20 ms on each frame, the first included, is up to 40 ms off the first frame's grid.
        assert_eq!(admitted(&mut RateGate::new(10.0), 10.0, 10.0, 20.0), 100);
    }

    #[test]
    fn a_faster_stream_is_thinned_to_the_cap() {
        for (source, cap) in [(30.0, 25.0), (30.0, 10.0), (25.0, 2.5), (10.0, 0.5)] {
            let got = admitted(&mut RateGate::new(cap as f32), source, 20.0, 0.0) as f64;
            let want = cap * 20.0;
            assert!((got - want).abs() <= 1.0, "{source} fps capped at {cap}: {got} in 20 s");
        }
    }

    #[test]
    fn time_going_backwards_restarts_the_gate() {
        let mut gate = RateGate::new(1.0);
        assert!(gate.admit(Duration::from_secs(100)));
        assert!(!gate.admit(Duration::from_millis(100_200)));
        assert!(gate.admit(Duration::from_secs(3)));
        assert!(!gate.admit(Duration::from_millis(3_100)));
        assert!(gate.admit(Duration::from_secs(4)));
    }
}

//! The ingest benchmark: CPU per camera of vigil-rtsp's [`RtspSource`]
//! (RTSP, H.264 decoding, RGB conversion, the copy into a `Frame`) against
//! `gst-launch-1.0` running the same decode to RGB into a fakesink, on the
//! same stream in the same run.
//!
//! Both sides run at once and are measured over the same window, steady
//! state only (after a warm-up), as the change in utime+stime of the
//! processes doing the work: this one by getrusage, less its idle baseline;
//! the gst-launch children from /proc/<pid>/stat, whose clock ticks (10 ms)
//! are fine enough over 15 s. The stream comes from `tests/peers/rtsp_server.py` (640x360
//! 10 fps H.264, one shared encoder), which runs in its own process and is
//! counted on neither side. Both sides use TCP and software decoding.
//!
//! `cargo run --release -p vigil-bench --bin ingest -- [--cameras 1,4] [--seconds 15]`
//! prints one JSON line per camera count.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use vigil_core::{CameraId, SystemClock};
use vigil_rtsp::{HwDecode, RtspOptions, RtspSource, Transport};
use vigil_sources::FrameSource;

/// Long enough for every stream to connect and its decoder to settle.
const WARMUP: Duration = Duration::from_secs(3);

struct Args {
    cameras: Vec<usize>,
    seconds: u64,
    gst_launch: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { cameras: vec![1, 4], seconds: 15, gst_launch: "gst-launch-1.0".into() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cameras" => {
                a.cameras =
                    value()?.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>().context("--cameras")?
            }
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--gst-launch" => a.gst_launch = value()?,
            other => {
                bail!("unknown argument {other:?}; usage: ingest [--cameras 1,4] [--seconds 15] [--gst-launch PATH]")
            }
        }
    }
    if a.seconds == 0 || a.cameras.contains(&0) {
        bail!("--seconds and every --cameras count must be at least 1");
    }
    Ok(a)
}

/// CPU time (user + system) of child process `pid` so far, from /proc, in clock ticks' resolution.
fn child_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')').context("unparsable stat")?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("no utime/stime in stat");
    let ticks = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0).unwrap_or(100);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// CPU time (user + system) of this process so far, every thread's, to the microsecond.
fn own_cpu_time() -> anyhow::Result<Duration> {
    // SAFETY: getrusage fills the zeroed struct it is given and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            bail!("getrusage: {}", std::io::Error::last_os_error());
        }
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime)))
}

/// This process's CPU time per second while it does nothing, in ms/s.
fn idle_baseline() -> anyhow::Result<f64> {
    let before = own_cpu_time()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    Ok(ms_per_s(own_cpu_time()? - before, started.elapsed()))
}

fn ms_per_s(cpu: Duration, wall: Duration) -> f64 {
    cpu.as_secs_f64() * 1000.0 / wall.as_secs_f64()
}

/// One measurement: ms of CPU per second per camera for ours and for the
/// reference, and our frames per second per camera.
struct Measured {
    ours: f64,
    reference: f64,
    fps: f64,
}

/// Runs `cameras` of our sources and as many gst-launch-1.0 processes side by
/// side and measures both over the same `seconds`: on a shared machine
/// (builds run beside benchmarks here) two separate windows differ more
/// than the two sides do, while whatever else runs weighs on both alike.
fn measure(gst_launch: &str, url: &str, cameras: usize, seconds: u64, idle: f64) -> anyhow::Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..cameras)
        .map(|i| {
            let mut options = RtspOptions::new(url);
            options.transport = Transport::Tcp;
            options.hw_decode = HwDecode::Off;
            options.connect_timeout = Duration::from_secs(15);
            let (stop, counting) = (stop.clone(), counting.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let id = CameraId::new(&format!("cam-{i:02}"));
                let mut source = RtspSource::open(id, Arc::new(SystemClock::new()), options)?;
                let mut frames = 0;
                while !stop.load(Ordering::Relaxed) {
                    source.next_frame()?.context("the stream ended")?;
                    if counting.load(Ordering::Relaxed) {
                        frames += 1;
                    }
                }
                Ok(frames)
            })
        })
        .collect();
    let pipeline = format!(
        "rtspsrc location={url} protocols=tcp latency=200 ! rtph264depay ! h264parse ! avdec_h264 \
         ! videoconvert ! video/x-raw,format=RGB ! fakesink"
    );
    let mut children = Vec::new();
    for _ in 0..cameras {
        let child = Command::new(gst_launch)
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {gst_launch}"))?;
        children.push(Reaped(child));
    }
    std::thread::sleep(WARMUP);

    let theirs = || -> anyhow::Result<Duration> { children.iter().map(|c| child_cpu_time(c.0.id())).sum() };
    let (ours_before, theirs_before, started) = (own_cpu_time()?, theirs()?, Instant::now());
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(seconds));
    counting.store(false, Ordering::Relaxed);
    let (ours_after, theirs_after, wall) = (own_cpu_time()?, theirs()?, started.elapsed());

    stop.store(true, Ordering::Relaxed);
    let mut frames = 0;
    for w in workers {
        frames += w.join().map_err(|_| anyhow::anyhow!("a camera thread panicked"))??;
    }
    for c in &mut children {
        if let Ok(Some(status)) = c.0.try_wait() {
            bail!("gst-launch-1.0 exited early ({status}); run it by hand: {gst_launch} {pipeline}");
        }
    }
    let n = cameras as f64;
    Ok(Measured {
        ours: (ms_per_s(ours_after - ours_before, wall) - idle).max(0.0) / n,
        reference: ms_per_s(theirs_after - theirs_before, wall) / n,
        fps: frames as f64 / wall.as_secs_f64() / n,
    })
}

/// A child process killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let server = vigil_peers::RtspServer::start(&[]).map_err(anyhow::Error::msg)?;
    let url = server.url("/h264");
    let idle = idle_baseline()?;
    for &cameras in &args.cameras {
        let m = measure(&args.gst_launch, &url, cameras, args.seconds, idle)?;
        let row = serde_json::json!({
            "cameras": cameras,
            "seconds": args.seconds,
            "ingest_cpu_ms_per_s": round2(m.ours),
            "reference_cpu_ms_per_s": round2(m.reference),
            "ingest_ratio": round2(m.ours / m.reference),
            "ingest_fps_per_camera": round2(m.fps),
            "idle_baseline_ms_per_s": round2(idle),
        });
        println!("{row}");
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

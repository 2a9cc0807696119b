//! vigil-rtsp against a real RTSP server: `tests/peers/rtsp_server.py`, one
//! per test on a free port, run with the system `/usr/bin/python3` (the one
//! that sees Debian's GStreamer GI bindings) and killed when the test ends.
//!
//! Tests wait with generous deadlines and assert no timings beyond them.

use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use vigil_core::{CameraId, Clock, Frame, SystemClock};
use vigil_peers::RtspServer;
use vigil_rtsp::{HwDecode, RtspOptions, RtspSource, Transport, redact};
use vigil_sources::{FrameSource, SourceErrorKind};

const PASSWORD: &str = "pa55-Vigil-test";

/// The test RTSP server with this file's password on `/secure`, or the test fails saying what is missing.
fn server() -> RtspServer {
    RtspServer::start(&["--password", PASSWORD]).unwrap_or_else(|e| panic!("{e}"))
}

fn options(url: &str) -> RtspOptions {
    logs();
    let mut o = RtspOptions::new(url);
    o.hw_decode = HwDecode::Off;
    o
}

fn open(url: &str) -> RtspSource {
    open_with(options(url))
}

fn open_with(o: RtspOptions) -> RtspSource {
    let shown = redact(&o.url);
    RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), o)
        .unwrap_or_else(|e| panic!("opening {shown}: {e}"))
}

fn frames(source: &mut RtspSource, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| source.next_frame().unwrap_or_else(|e| panic!("frame {i}: {e}")).expect("a frame, not the end"))
        .collect()
}

/// Frames in order, of the given size, stamped close to now.
fn assert_stream(frames: &[Frame], width: u32, height: u32, clock: &dyn Clock) {
    let now = clock.now();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.width, f.height), (width, height), "frame {i}");
        assert_eq!(f.rgb.len(), (width * height * 3) as usize);
        assert_eq!(f.seq, frames[0].seq + i as u64);
        assert!(now.wall.abs_diff(f.captured.wall) < Duration::from_secs(10), "frame {i} stamped far from now");
    }
    for w in frames.windows(2) {
        assert!(
            w[1].captured.mono > w[0].captured.mono,
            "captured times go {:?} then {:?}",
            w[0].captured,
            w[1].captured
        );
        assert!(w[1].captured.wall >= w[0].captured.wall);
    }
    // The test pattern is a ball on a plain background, not one flat colour.
    let last = frames.last().expect("frames");
    assert!(last.rgb.iter().any(|&b| b != last.rgb[0]), "a flat picture");
}

#[test]
fn h264_over_tcp_arrives_as_rgb() {
    let server = server();
    let clock = Arc::new(SystemClock::new());
    let mut o = options(&server.url("/h264"));
    o.transport = Transport::Tcp;
    let mut source = RtspSource::open(CameraId::new("cam"), clock.clone(), o).expect("open");
    let got = frames(&mut source, 12);
    assert_eq!(got[0].seq, 0);
    assert_stream(&got, 640, 360, &*clock);
}

#[test]
fn h264_over_udp_arrives() {
    let server = server();
    let clock = Arc::new(SystemClock::new());
    let mut o = options(&server.url("/h264"));
    o.transport = Transport::Udp;
    let mut source = RtspSource::open(CameraId::new("cam"), clock.clone(), o).expect("open");
    assert_stream(&frames(&mut source, 12), 640, 360, &*clock);
}

#[test]
fn h265_arrives_with_hardware_decoding_where_it_works() {
    let server = server();
    let mut o = options(&server.url("/h265"));
    o.hw_decode = HwDecode::Auto;
    let mut source = open_with(o);
    assert_stream(&frames(&mut source, 5), 640, 360, &SystemClock::new());
}

#[test]
fn hd_stream_is_scaled_down_to_fit_keeping_its_shape() {
    let server = server();
    let mut o = options(&server.url("/hd"));
    o.fit = Some((640, 640));
    let mut source = open_with(o);
    assert_stream(&frames(&mut source, 3), 640, 360, &SystemClock::new());
    drop(source);

    // 333 pixels of RGB is 999 bytes, which GStreamer pads to 1000 a row.
    let mut o = options(&server.url("/hd"));
    o.fit = Some((333, 333));
    let f = frames(&mut open_with(o), 2).pop().expect("a frame");
    assert_eq!(f.width, 333);
    assert!((186..=188).contains(&f.height), "{}x{}", f.width, f.height);
}

#[test]
fn fit_never_scales_up() {
    let server = server();
    let mut o = options(&server.url("/h264"));
    o.fit = Some((1920, 1920));
    assert_stream(&frames(&mut open_with(o), 2), 640, 360, &SystemClock::new());
}

#[test]
fn fps_cap_thins_the_stream() {
    let server = server();
    let mut o = options(&server.url("/h264"));
    o.fps_cap = Some(2.5);
    let mut source = open_with(o);
    let got = frames(&mut source, 6);
    // 10 fps capped at 2.5 leaves 400 ms between frames; 5 gaps take about 2 s.
    let span = got[5].captured.since(got[0].captured);
    assert!(span >= Duration::from_millis(1500), "6 frames in {span:?}");
}

#[test]
fn wrong_password_is_unauthorized_and_never_shown() {
    let server = server();
    let wrong = "not-the-Password-42";
    // Credentials from the config.
    let mut o = options(&server.url("/secure"));
    o.username = Some("vigil".into());
    o.password = Some(wrong.into());
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), o).err().expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::Unauthorized, "{err}");
    assert!(err.to_string().contains("(401)"), "{err}");
    assert!(!format!("{err} {err:?}").contains(wrong), "{err:?}");

    // Credentials in the URL.
    let url = format!("rtsp://vigil:{wrong}@127.0.0.1:{}/secure", server.port());
    let err =
        RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), options(&url)).err().expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::Unauthorized, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong) && !shown.contains("vigil:"), "{shown}");
    assert!(shown.contains(&format!("rtsp://***@127.0.0.1:{}/secure", server.port())), "{shown}");

    // No credentials at all.
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), options(&server.url("/secure")))
        .err()
        .expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::Unauthorized, "{err}");
}

#[test]
fn right_password_streams_and_config_credentials_win() {
    let server = server();
    let mut o = options(&server.url("/secure"));
    o.username = Some("vigil".into());
    o.password = Some(PASSWORD.into());
    frames(&mut open_with(o), 3);

    // The URL's wrong password loses to the config's right one.
    let mut o = options(&format!("rtsp://vigil:wrong@127.0.0.1:{}/secure", server.port()));
    o.password = Some(PASSWORD.into());
    frames(&mut open_with(o), 3);

    frames(&mut open(&format!("rtsp://vigil:{PASSWORD}@127.0.0.1:{}/secure", server.port())), 3);
}

#[test]
fn logs_never_show_credentials() {
    let server = server();
    let good = format!("rtsp://vigil:{PASSWORD}@127.0.0.1:{}/secure", server.port());
    let mut source = open(&good);
    frames(&mut source, 2);
    drop(source);
    let bad = format!("rtsp://vigil:{PASSWORD}x@127.0.0.1:{}/secure", server.port());
    assert!(RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), options(&bad)).is_err());
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(logs.contains("rtsp camera streaming"), "the test saw no logs: {logs}");
    assert!(!logs.contains(PASSWORD) && !logs.contains("vigil:"), "{logs}");
}

/// Everything every test logged. One global subscriber, set before any
/// source is opened: a per-test `with_default` misses events whose callsite
/// another test thread registered first.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        logs
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn dead_port_is_unreachable_within_the_connect_timeout() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut o = options(&format!("rtsp://127.0.0.1:{port}/h264"));
    o.connect_timeout = Duration::from_secs(3);
    let started = Instant::now();
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), o).err().expect("nothing listens");
    assert_eq!(err.kind(), SourceErrorKind::Unreachable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3 + 5), "took {:?}", started.elapsed());
    assert!(err.to_string().starts_with(&format!("rtsp://127.0.0.1:{port}/h264: ")), "{err}");
}

#[test]
fn garbage_is_a_bad_stream() {
    let server = server();
    let mut o = options(&server.url("/garbage"));
    o.connect_timeout = Duration::from_secs(3);
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), o).err().expect("undecodable");
    assert_eq!(err.kind(), SourceErrorKind::BadStream, "{err}");
}

#[test]
fn server_killed_while_streaming_ends_the_stream_and_a_reopen_works() {
    let mut server = server();
    let port = server.port();
    let mut o = options(&server.url("/h264"));
    o.stall_timeout = Duration::from_secs(2);
    let mut source = open_with(o.clone());
    frames(&mut source, 2);
    server.kill();

    let started = Instant::now();
    let outcome = loop {
        match source.next_frame() {
            // Frames already on their way may still come out.
            Ok(Some(_)) => assert!(started.elapsed() < Duration::from_secs(2 + 5), "frames kept coming"),
            other => break other,
        }
    };
    assert!(started.elapsed() < Duration::from_secs(2 + 5), "noticed after {:?}", started.elapsed());
    if let Err(e) = &outcome {
        assert!(
            matches!(e.kind(), SourceErrorKind::Stalled | SourceErrorKind::Unreachable),
            "unexpected {:?}: {e}",
            e.kind()
        );
    }
    drop(source);

    let _server =
        RtspServer::on_port(port, vec!["--password".into(), PASSWORD.into()]).unwrap_or_else(|e| panic!("{e}"));
    let mut source = open_with(o);
    assert_stream(&frames(&mut source, 3), 640, 360, &SystemClock::new());
}

#[test]
fn frozen_server_is_stalled() {
    let server = server();
    let mut o = options(&server.url("/h264"));
    o.stall_timeout = Duration::from_secs(2);
    let mut source = open_with(o);
    frames(&mut source, 2);
    // Stopped, not killed: the connection stays open and simply goes quiet.
    let pid = server.pid().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().is_ok_and(|s| s.success()), "kill -STOP");
    let _resume = Resume(pid);
    let started = Instant::now();
    let err = loop {
        match source.next_frame() {
            Ok(Some(_)) => assert!(started.elapsed() < Duration::from_secs(2 + 5), "frames kept coming"),
            Ok(None) => panic!("a frozen server is not the end of the stream"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), SourceErrorKind::Stalled, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2 + 5), "noticed after {:?}", started.elapsed());
}

/// Lets a stopped process run again, so the server's guard can end it.
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

#[test]
fn a_codec_other_than_h264_or_h265_is_unsupported() {
    let server = server();
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), options(&server.url("/mjpeg")))
        .err()
        .expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("JPEG"), "{err}");
}

#[test]
fn eight_cameras_on_one_server_all_stream() {
    let server = server();
    let url = server.url("/h264");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut o = options(&url);
                o.connect_timeout = Duration::from_secs(15);
                let mut source = RtspSource::open(CameraId::new(&format!("cam{i}")), Arc::new(SystemClock::new()), o)
                    .unwrap_or_else(|e| panic!("camera {i}: {e}"));
                frames(&mut source, 5).len()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap_or_else(|_| panic!("camera {i} panicked")), 5);
    }
}

#[test]
fn invalid_options_are_refused_by_field() {
    let mut o = options("rtsp://127.0.0.1:1/x");
    o.fps_cap = Some(0.0);
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), o).err().expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
    assert!(err.to_string().contains("fps_cap"), "{err}");
    let err = RtspSource::open(CameraId::new("cam"), Arc::new(SystemClock::new()), options("http://a:b@cam/x"))
        .err()
        .expect("refused");
    assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
    assert!(!err.to_string().contains(":b@"), "{err}");
}

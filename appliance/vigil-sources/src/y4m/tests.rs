use std::fs;
use std::time::Duration;

use tempfile::TempDir;
use vigil_core::{ManualClock, Moment, SystemClock};

use super::*;
use crate::SourceErrorKind;

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(Moment { mono: Duration::ZERO, wall: Duration::from_secs(1_700_000_000) }))
}

fn camera() -> CameraId {
    CameraId::new("hall-east")
}

fn open(path: &Path, options: Y4mOptions) -> Result<Y4mSource, SourceError> {
    Y4mSource::open(path, camera(), clock(), options)
}

fn frame_of(rgb: Vec<u8>, width: u32, height: u32) -> Frame {
    Frame::new(camera(), 0, clock().now(), width, height, rgb).unwrap()
}

/// A `width` x `height` frame in one flat colour.
fn flat(colour: [u8; 3], width: u32, height: u32) -> Frame {
    frame_of(colour.repeat((width * height) as usize), width, height)
}

/// Writes `frames` flat grey frames whose level says which frame they are.
fn numbered_file(dir: &TempDir, frames: u8, rate: FrameRate) -> PathBuf {
    let path = dir.path().join("numbered.y4m");
    let mut w = Y4mWriter::create(&path, 8, 4, rate).unwrap();
    for i in 0..frames {
        w.write_frame(&flat([level(i); 3], 8, 4)).unwrap();
    }
    w.finish().unwrap();
    path
}

fn level(i: u8) -> u8 {
    20 + i * 7
}

/// Which numbered frame this is, from its grey level.
fn which(frame: &Frame) -> u8 {
    let l = frame.rgb[0];
    (0..=30).find(|&i| level(i).abs_diff(l) <= 2).unwrap_or_else(|| panic!("grey {l} is no frame"))
}

fn read_all(source: &mut Y4mSource) -> Vec<Frame> {
    iter::from_fn(|| source.next_frame().unwrap()).collect()
}

fn err_of(r: Result<impl fmt::Debug, SourceError>) -> SourceError {
    r.expect_err("should have failed")
}

#[test]
fn round_trip_keeps_flat_patches_within_3() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("patches.y4m");
    let colours: Vec<[u8; 3]> = vec![
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 0, 255],
        [0, 255, 255],
        [200, 170, 120],
        [44, 52, 82],
        [128, 128, 128],
        [17, 201, 90],
        [250, 240, 5],
    ];
    // 4x3 patches of 16x16 pixels.
    let (w, h) = (64u32, 48u32);
    let mut rgb = Vec::new();
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&colours[(y / 16 * 4 + x / 16) as usize]);
        }
    }
    let mut writer = Y4mWriter::create(&path, w, h, FrameRate::per_second(10)).unwrap();
    writer.write_frame(&frame_of(rgb, w, h)).unwrap();
    writer.finish().unwrap();

    let mut source = open(&path, Y4mOptions::default()).unwrap();
    assert_eq!((source.width(), source.height(), source.frame_rate()), (w, h, FrameRate::per_second(10)));
    let frame = source.next_frame().unwrap().unwrap();
    assert_eq!((frame.seq, frame.width, frame.height, frame.camera.as_str()), (0, w, h, "hall-east"));
    for y in 0..h {
        for x in 0..w {
            // Chroma at a patch edge mixes two patches; only interiors must be exact.
            if (x % 16) < 2 || (x % 16) > 13 || (y % 16) < 2 || (y % 16) > 13 {
                continue;
            }
            let want = colours[(y / 16 * 4 + x / 16) as usize];
            let i = ((y * w + x) * 3) as usize;
            let got = &frame.rgb[i..i + 3];
            assert!(got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 3), "at {x},{y}: {got:?} vs {want:?}");
        }
    }
    assert!(source.next_frame().unwrap().is_none());
    assert!(source.next_frame().unwrap().is_none(), "the end of a stream stays the end");
}

#[test]
fn odd_sized_frames_round_trip() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("odd.y4m");
    let mut writer = Y4mWriter::create(&path, 5, 3, FrameRate::per_second(1)).unwrap();
    writer.write_frame(&flat([90, 160, 30], 5, 3)).unwrap();
    writer.finish().unwrap();
    let frame = open(&path, Y4mOptions::default()).unwrap().next_frame().unwrap().unwrap();
    assert!(frame.rgb.chunks_exact(3).all(|p| p.iter().zip([90u8, 160, 30]).all(|(&g, w)| g.abs_diff(w) <= 3)));
}

/// A hand-made file: stream header, then each frame's planes after a FRAME line.
fn raw_file(dir: &TempDir, header: &str, frames: &[&[u8]]) -> PathBuf {
    let path = dir.path().join("raw.y4m");
    let mut bytes = format!("{header}\n").into_bytes();
    for f in frames {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend_from_slice(f);
    }
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reads_444_with_frame_parameters() {
    let dir = TempDir::new().unwrap();
    // Two pixels: BT.601 red and green.
    let path = dir.path().join("444.y4m");
    fs::write(&path, b"YUV4MPEG2 W2 H1 F25:1 C444 XCOLORRANGE=LIMITED\nFRAME Ixyz\n\x51\x91\x5a\x36\xf0\x22").unwrap();
    let frame = open(&path, Y4mOptions::default()).unwrap().next_frame().unwrap().unwrap();
    let close = |got: &[u8], want: [u8; 3]| got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 2);
    assert!(close(&frame.rgb[..3], [255, 0, 0]), "{:?}", &frame.rgb[..3]);
    assert!(close(&frame.rgb[3..], [0, 255, 0]), "{:?}", &frame.rgb[3..]);
}

#[test]
fn reads_422() {
    let dir = TempDir::new().unwrap();
    // 2x2: luma black/white per column, one chroma pair per row, neutral.
    let path = raw_file(&dir, "YUV4MPEG2 W2 H2 F25:1 C422", &[&[16, 235, 16, 235, 128, 128, 128, 128]]);
    let frame = open(&path, Y4mOptions::default()).unwrap().next_frame().unwrap().unwrap();
    assert_eq!(&frame.rgb[..], &[0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255]);
}

#[test]
fn reads_mono_as_grey() {
    let dir = TempDir::new().unwrap();
    let path = raw_file(&dir, "YUV4MPEG2 W3 H1 F25:1 Cmono", &[&[16, 126, 235]]);
    let frame = open(&path, Y4mOptions::default()).unwrap().next_frame().unwrap().unwrap();
    assert_eq!(&frame.rgb[..], &[0, 0, 0, 128, 128, 128, 255, 255, 255]);
}

#[test]
fn truncated_frame_names_the_frame_and_offset() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 3, FrameRate::per_second(10));
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();

    let mut source = open(&path, Y4mOptions::default()).unwrap();
    assert_eq!(source.next_frame().unwrap().unwrap().seq, 0);
    assert_eq!(source.next_frame().unwrap().unwrap().seq, 1);
    let err = err_of(source.next_frame());
    assert_eq!(err.kind(), SourceErrorKind::BadFormat);
    let msg = err.to_string();
    assert!(msg.contains("frame 2 of") && msg.contains("truncated") && msg.contains("byte offset"), "{msg}");
    assert!(!msg.ends_with('.'));
}

#[test]
fn truncated_frame_line_names_the_frame() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 1, FrameRate::per_second(10));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"FRA");
    fs::write(&path, &bytes).unwrap();
    let mut source = open(&path, Y4mOptions::default()).unwrap();
    source.next_frame().unwrap().unwrap();
    let msg = err_of(source.next_frame()).to_string();
    assert!(msg.contains("frame 1 of") && msg.contains("cut short"), "{msg}");
}

#[test]
fn garbage_instead_of_frame_line_is_named() {
    let dir = TempDir::new().unwrap();
    let path = raw_file(&dir, "YUV4MPEG2 W1 H1 F25:1 Cmono", &[&[16]]);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"FRAMES\n\x10");
    fs::write(&path, &bytes).unwrap();
    let mut source = open(&path, Y4mOptions::default()).unwrap();
    source.next_frame().unwrap().unwrap();
    let msg = err_of(source.next_frame()).to_string();
    assert!(msg.contains("frame 1 of") && msg.contains("should start with \"FRAME\""), "{msg}");
}

#[test]
fn bad_header_names_the_field_and_the_file() {
    let dir = TempDir::new().unwrap();
    let path = raw_file(&dir, "YUV4MPEG2 W640 Hsix F30:1", &[]);
    let err = err_of(open(&path, Y4mOptions::default()));
    assert_eq!(err.kind(), SourceErrorKind::BadFormat);
    let msg = err.to_string();
    assert!(msg.contains("field H (height)") && msg.contains("raw.y4m") && msg.contains("\"six\""), "{msg}");

    let path = raw_file(&dir, "YUV4MPEG2 W640 H360 C420p10", &[]);
    let err = err_of(open(&path, Y4mOptions::default()));
    assert_eq!(err.kind(), SourceErrorKind::Unsupported);
    assert!(err.to_string().contains("field C (colour space)"), "{err}");
}

#[test]
fn not_a_y4m_file_is_rejected_quickly() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("movie.mp4");
    fs::write(&path, vec![0u8; 10_000]).unwrap();
    let msg = err_of(open(&path, Y4mOptions::default())).to_string();
    assert!(msg.contains("movie.mp4") && msg.contains("longer than 1024 bytes"), "{msg}");

    fs::write(&path, b"YUV4MPEG2 W2").unwrap();
    let msg = err_of(open(&path, Y4mOptions::default())).to_string();
    assert!(msg.contains("ends at byte offset 12"), "{msg}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let err = err_of(open(&dir.path().join("nope.y4m"), Y4mOptions::default()));
    assert_eq!(err.kind(), SourceErrorKind::Io);
    assert!(err.to_string().contains("nope.y4m"));
    assert!(std::error::Error::source(&err).is_some(), "the OS error is kept as the source");
}

#[test]
fn loop_at_end_continues_seq() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 3, FrameRate::per_second(10));
    let mut source = open(&path, Y4mOptions { loop_at_end: true, ..Y4mOptions::default() }).unwrap();
    let frames: Vec<Frame> = (0..8).map(|_| source.next_frame().unwrap().unwrap()).collect();
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert_eq!(frames.iter().map(which).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2, 0, 1]);
}

#[test]
fn looping_an_empty_file_is_an_error_not_a_spin() {
    let dir = TempDir::new().unwrap();
    let path = raw_file(&dir, "YUV4MPEG2 W2 H2 F25:1", &[]);
    assert!(open(&path, Y4mOptions::default()).unwrap().next_frame().unwrap().is_none());
    let mut source = open(&path, Y4mOptions { loop_at_end: true, ..Y4mOptions::default() }).unwrap();
    assert!(err_of(source.next_frame()).to_string().contains("has no frames"));
}

#[test]
fn fps_cap_skips_frames_and_numbers_what_it_hands_out() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 30, FrameRate::per_second(30));
    let mut source = open(&path, Y4mOptions { fps_cap: Some(10.0), ..Y4mOptions::default() }).unwrap();
    let frames = read_all(&mut source);
    assert_eq!(frames.iter().map(which).collect::<Vec<_>>(), (0..30).step_by(3).collect::<Vec<_>>());
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
}

#[test]
fn fps_cap_above_the_file_rate_skips_nothing() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 6, FrameRate::per_second(5));
    let mut source = open(&path, Y4mOptions { fps_cap: Some(15.0), ..Y4mOptions::default() }).unwrap();
    assert_eq!(read_all(&mut source).len(), 6);
}

#[test]
fn invalid_fps_cap_is_rejected_before_opening() {
    let err = err_of(open(Path::new("/nonexistent.y4m"), Y4mOptions { fps_cap: Some(0.0), ..Y4mOptions::default() }));
    assert_eq!(err.kind(), SourceErrorKind::InvalidOptions);
}

#[test]
fn paced_frames_are_stamped_when_handed_out() {
    let dir = TempDir::new().unwrap();
    let path = numbered_file(&dir, 5, FrameRate::per_second(100));
    let options = Y4mOptions { pace: true, ..Y4mOptions::default() };
    let mut source = Y4mSource::open(&path, camera(), Arc::new(SystemClock::new()), options).unwrap();
    let frames = read_all(&mut source);
    let span = frames[4].captured.since(frames[0].captured);
    assert!(span >= Duration::from_millis(40) && span < Duration::from_millis(500), "{span:?}");
}

#[test]
fn writer_rejects_a_frame_of_the_wrong_size() {
    let mut writer = Y4mWriter::new(Vec::new(), 4, 4, FrameRate::per_second(1)).unwrap();
    let err = writer.write_frame(&flat([1, 2, 3], 2, 2)).unwrap_err();
    assert!(err.to_string().contains("frame 0") && err.to_string().contains("2x2"), "{err}");
    let bytes = writer.finish().unwrap();
    assert_eq!(bytes, b"YUV4MPEG2 W4 H4 F1:1 Ip A1:1 C420jpeg\n");
}

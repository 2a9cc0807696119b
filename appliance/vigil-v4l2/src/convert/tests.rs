//! Conversions on buffers made here from known RGB pictures: YUYV built with
//! the BT.601 forward transform, MJPEG made by the `image` crate's encoder.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;

use super::*;

const TOLERANCE: u8 = 4;

/// BT.601 limited-range Y, Cb, Cr of one RGB pixel, rounded.
fn ycbcr([r, g, b]: [u8; 3]) -> [f64; 3] {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    [
        16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0,
        128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
        128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
    ]
}

/// `rgb` (`width` x `height`) as YUYV with rows `stride` bytes apart; the
/// padding is filled with 0xEE so a converter that reads it shows.
pub(crate) fn yuyv_of(rgb: &[u8], width: u32, height: u32, stride: usize) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut out = vec![0xEE; stride * h];
    for y in 0..h {
        for pair in 0..w.div_ceil(2) {
            let px = |x: usize| {
                let x = x.min(w - 1);
                let i = (y * w + x) * 3;
                ycbcr([rgb[i], rgb[i + 1], rgb[i + 2]])
            };
            let (a, b) = (px(pair * 2), px(pair * 2 + 1));
            let o = y * stride + pair * 4;
            out[o] = a[0].round() as u8;
            out[o + 1] = ((a[1] + b[1]) / 2.0).round() as u8;
            out[o + 2] = b[0].round() as u8;
            out[o + 3] = ((a[2] + b[2]) / 2.0).round() as u8;
        }
    }
    out
}

/// A flat `colour` frame as YUYV.
pub(crate) fn flat_yuyv(colour: [u8; 3], width: u32, height: u32, stride: usize) -> Vec<u8> {
    yuyv_of(&colour.repeat((width * height) as usize), width, height, stride)
}

/// `rgb` as a baseline JPEG from the `image` crate, quality 90.
pub(crate) fn jpeg_of(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90).encode(rgb, width, height, ExtendedColorType::Rgb8).unwrap();
    out
}

/// The marker segments of `jpeg` before its scan, as (marker, whole segment) pairs, and where the scan starts.
fn segments(jpeg: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut i = 2;
    let mut found = Vec::new();
    loop {
        assert_eq!(jpeg[i], 0xFF, "no marker at {i}");
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            return (found, i);
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        found.push((marker, &jpeg[i..i + 2 + len]));
        i += 2 + len;
    }
}

/// `jpeg` without its Huffman tables, as a UVC camera sends it.
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let (segs, scan) = segments(jpeg);
    let mut out = vec![0xFF, 0xD8];
    for (marker, seg) in segs {
        if marker != 0xC4 {
            out.extend_from_slice(seg);
        }
    }
    out.extend_from_slice(&jpeg[scan..]);
    out
}

/// Every Huffman table defined in `jpeg`, by class and id, as (code counts, symbols).
fn huffman_tables(jpeg: &[u8]) -> BTreeMap<u8, (Vec<u8>, Vec<u8>)> {
    let mut tables = BTreeMap::new();
    for (_, seg) in segments(jpeg).0.into_iter().filter(|(m, _)| *m == 0xC4) {
        let mut body = &seg[4..];
        while !body.is_empty() {
            let bits = body[1..17].to_vec();
            let n: usize = bits.iter().map(|&b| usize::from(b)).sum();
            tables.insert(body[0], (bits, body[17..17 + n].to_vec()));
            body = &body[17 + n..];
        }
    }
    tables
}

/// Four flat quadrants: red, green, blue and a skin tone; boundaries on even columns and multiples of 16.
fn quadrants(width: u32, height: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let colour = match (x < width / 2, y < height / 2) {
                (true, true) => [220, 40, 30],
                (false, true) => [30, 180, 60],
                (true, false) => [40, 60, 200],
                (false, false) => [224, 172, 140],
            };
            rgb.extend_from_slice(&colour);
        }
    }
    rgb
}

/// A busy picture, like a hallway with texture, so JPEG timings are not flattered by flat areas.
fn textured(width: u32, height: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    let mut noise = 0x2545_F491_u32;
    for y in 0..height {
        for x in 0..width {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let n = (noise & 31) as u8;
            rgb.extend_from_slice(&[
                ((x * 255 / width) as u8).saturating_add(n),
                ((y * 255 / height) as u8).saturating_add(n),
                (((x / 8 + y / 8) % 2) as u8 * 120).saturating_add(n),
            ]);
        }
    }
    rgb
}

fn assert_close(got: &[u8], want: [u8; 3], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(g.abs_diff(w) <= TOLERANCE, "{what}: got {got:?}, want {want:?}");
    }
}

const COLOURS: [[u8; 3]; 10] = [
    [0, 0, 0],
    [255, 255, 255],
    [128, 128, 128],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [0, 255, 255],
    [224, 172, 140],
    [17, 99, 201],
];

#[test]
fn yuyv_flat_colours_round_trip_within_tolerance() {
    let mut out = Vec::new();
    for colour in COLOURS {
        yuyv_to_rgb(&flat_yuyv(colour, 8, 4, 16), 8, 4, 16, &mut out).unwrap();
        assert_eq!(out.len(), 8 * 4 * 3);
        for px in out.chunks_exact(3) {
            assert_close(px, colour, "flat patch");
        }
    }
}

#[test]
fn yuyv_reference_levels_are_exact() {
    // Limited range: Y 16 is black, 235 white; U = V = 128 is grey.
    let mut out = Vec::new();
    yuyv_to_rgb(&[16, 128, 235, 128], 2, 1, 4, &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 255, 255, 255]);
    // Below black and above white clip rather than wrap.
    yuyv_to_rgb(&[0, 128, 255, 128], 2, 1, 4, &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 255, 255, 255]);
    // BT.601 red: Y 81, Cb 90, Cr 240.
    yuyv_to_rgb(&[81, 90, 81, 240], 2, 1, 4, &mut out).unwrap();
    assert_close(&out[..3], [255, 0, 0], "red");
}

#[test]
fn yuyv_matches_the_bt601_formula_over_its_whole_range() {
    // Every extreme of Y, U and V, and a grid between: the fixed-point maths
    // and the saturation table stay within 1 of the exact formula, clipped.
    let levels: Vec<u8> = (0..=255).step_by(5).chain([1, 16, 128, 235, 240, 254]).collect();
    let mut out = Vec::new();
    for &y in &levels {
        for &u in &levels {
            for &v in &levels {
                yuyv_to_rgb(&[y, u, y, v], 2, 1, 4, &mut out).unwrap();
                let (c, d, e) = (f64::from(y) - 16.0, f64::from(u) - 128.0, f64::from(v) - 128.0);
                let exact = [1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d];
                for (got, want) in out[..3].iter().zip(exact) {
                    let want = want.clamp(0.0, 255.0);
                    assert!(
                        (f64::from(*got) - want).abs() <= 1.5,
                        "Y {y} U {u} V {v}: got {:?}, want {exact:?}",
                        &out[..3]
                    );
                }
            }
        }
    }
}

#[test]
fn yuyv_patches_keep_their_colours() {
    let (w, h) = (32, 16);
    let rgb = quadrants(w, h);
    let mut out = Vec::new();
    yuyv_to_rgb(&yuyv_of(&rgb, w, h, 64), w, h, 64, &mut out).unwrap();
    for (i, (got, want)) in out.chunks_exact(3).zip(rgb.chunks_exact(3)).enumerate() {
        assert_close(got, [want[0], want[1], want[2]], &format!("pixel {i}"));
    }
}

#[test]
fn yuyv_padded_and_odd_strides_read_only_the_pixels() {
    let (w, h) = (10, 6);
    let rgb = quadrants(w, h);
    let mut tight = Vec::new();
    yuyv_to_rgb(&yuyv_of(&rgb, w, h, 20), w, h, 20, &mut tight).unwrap();
    for stride in [21, 23, 32, 64] {
        let mut padded = Vec::new();
        yuyv_to_rgb(&yuyv_of(&rgb, w, h, stride), w, h, stride, &mut padded).unwrap();
        assert_eq!(padded, tight, "stride {stride}");
    }
}

#[test]
fn yuyv_odd_width_uses_the_first_pixel_of_the_last_pair() {
    let (w, h) = (5, 3);
    let rgb = quadrants(w, h);
    let row = yuyv_row_bytes(w);
    assert_eq!(row, 12);
    let mut out = Vec::new();
    yuyv_to_rgb(&yuyv_of(&rgb, w, h, 13), w, h, 13, &mut out).unwrap();
    assert_eq!(out.len(), 5 * 3 * 3);
    for (got, want) in out.chunks_exact(3).zip(rgb.chunks_exact(3)) {
        assert_close(got, [want[0], want[1], want[2]], "odd width");
    }
}

#[test]
fn yuyv_truncated_buffers_are_errors_not_panics() {
    let (w, h, stride) = (6, 4, 16);
    let full = flat_yuyv([90, 90, 90], w, h, stride);
    // The last row's padding is optional.
    let needed = stride * 3 + 12;
    let mut out = Vec::new();
    yuyv_to_rgb(&full[..needed], w, h, stride, &mut out).unwrap();
    for len in 0..needed {
        let err = yuyv_to_rgb(&full[..len], w, h, stride, &mut out).unwrap_err();
        assert!(err.contains(&format!("holds {len} bytes")) && err.contains(&format!("needs {needed}")), "{err}");
    }
    let err = yuyv_to_rgb(&full, w, h, 11, &mut out).unwrap_err();
    assert!(err.contains("11 bytes per line cannot hold 6 pixels"), "{err}");
}

#[test]
fn standard_huffman_tables_are_well_formed() {
    for (bits, values) in [
        (&DC_LUMA_BITS, &DC_VALUES[..]),
        (&DC_CHROMA_BITS, &DC_VALUES[..]),
        (&AC_LUMA_BITS, &AC_LUMA_VALUES[..]),
        (&AC_CHROMA_BITS, &AC_CHROMA_VALUES[..]),
    ] {
        assert_eq!(bits.iter().map(|&b| usize::from(b)).sum::<usize>(), values.len());
    }
    // Each AC table codes end-of-block, sixteen zeros, and every run 0..=15 with every size 1..=10, once.
    let every: BTreeSet<u8> =
        [0x00, 0xF0].into_iter().chain((0..16u8).flat_map(|run| (1..=10u8).map(move |size| run << 4 | size))).collect();
    for values in [&AC_LUMA_VALUES, &AC_CHROMA_VALUES] {
        assert_eq!(values.iter().copied().collect::<BTreeSet<u8>>(), every);
    }
}

#[test]
fn inserted_huffman_tables_are_the_ones_an_encoder_writes() {
    // The image crate's encoder writes the Annex K tables, so the restored
    // tables must equal the stripped ones, table by table.
    let jpeg = jpeg_of(&quadrants(32, 32), 32, 32);
    let stripped = strip_dht(&jpeg);
    let sos = missing_huffman_tables(&stripped).expect("stripped tables not noticed");
    let mut restored = Vec::new();
    insert_standard_huffman_tables(&stripped, sos, &mut restored);
    assert_eq!(huffman_tables(&restored), huffman_tables(&jpeg));
    assert_eq!(huffman_tables(&restored).len(), 4);
}

#[test]
fn mjpeg_decodes_encoder_output() {
    let (w, h) = (64, 48);
    let rgb = quadrants(w, h);
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    assert_eq!(mjpeg_to_rgb(&jpeg_of(&rgb, w, h), &mut scratch, &mut out).unwrap(), (w, h));
    assert_eq!(out.len(), rgb.len());
    // JPEG blurs edges; the middle of each quadrant keeps its colour.
    for (x, y) in [(16, 12), (48, 12), (16, 36), (48, 36)] {
        let i = ((y * w + x) * 3) as usize;
        assert_close(&out[i..i + 3], [rgb[i], rgb[i + 1], rgb[i + 2]], &format!("({x},{y})"));
    }
}

#[test]
fn mjpeg_without_huffman_tables_decodes_the_same() {
    let (w, h) = (80, 64);
    let jpeg = jpeg_of(&textured(w, h), w, h);
    let stripped = strip_dht(&jpeg);
    assert!(missing_huffman_tables(&jpeg).is_none());
    assert!(stripped.len() < jpeg.len() && missing_huffman_tables(&stripped).is_some());
    let (mut scratch, mut want, mut got) = (Vec::new(), Vec::new(), Vec::new());
    mjpeg_to_rgb(&jpeg, &mut scratch, &mut want).unwrap();
    assert_eq!(mjpeg_to_rgb(&stripped, &mut scratch, &mut got).unwrap(), (w, h));
    assert_eq!(got, want);
}

#[test]
fn mjpeg_headers_as_uvc_cameras_send_them_are_parsed() {
    // An AVI1 APP0 in place of JFIF, fill bytes before a marker and a restart
    // interval segment: none of them may hide the missing tables.
    let (w, h) = (32, 32);
    let jpeg = jpeg_of(&quadrants(w, h), w, h);
    let stripped = strip_dht(&jpeg);
    let (segs, scan) = segments(&stripped);
    let mut uvc = vec![0xFF, 0xD8];
    uvc.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10, b'A', b'V', b'I', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for (marker, seg) in segs.iter().filter(|(m, _)| *m != 0xE0) {
        if *marker == 0xC0 {
            uvc.extend_from_slice(&[0xFF, 0xFF]);
        }
        uvc.extend_from_slice(seg);
    }
    uvc.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04, 0x00, 0x00]);
    uvc.extend_from_slice(&stripped[scan..]);
    let sos = missing_huffman_tables(&uvc).unwrap();
    assert_eq!(&uvc[sos..sos + 2], [0xFF, 0xDA]);
    let (mut scratch, mut want, mut got) = (Vec::new(), Vec::new(), Vec::new());
    mjpeg_to_rgb(&jpeg, &mut scratch, &mut want).unwrap();
    mjpeg_to_rgb(&uvc, &mut scratch, &mut got).unwrap();
    assert_eq!(got, want);
}

#[test]
fn mjpeg_garbage_and_truncation_are_errors_not_panics() {
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    assert!(mjpeg_to_rgb(&[], &mut scratch, &mut out).is_err());
    assert!(mjpeg_to_rgb(b"definitely not a jpeg", &mut scratch, &mut out).is_err());
    let mut noise = 0x9E37_79B9_u32;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            noise as u8
        })
        .collect();
    assert!(mjpeg_to_rgb(&garbage, &mut scratch, &mut out).is_err());
    let mut after_soi = vec![0xFF, 0xD8];
    after_soi.extend_from_slice(&garbage);
    assert!(mjpeg_to_rgb(&after_soi, &mut scratch, &mut out).is_err());

    let (w, h) = (64, 64);
    let jpeg = strip_dht(&jpeg_of(&textured(w, h), w, h));
    let scan = segments(&jpeg).1;
    // Cut anywhere, as a USB transfer cut short does: headers, scan or end marker.
    for cut in 0..jpeg.len() {
        let err = mjpeg_to_rgb(&jpeg[..cut], &mut scratch, &mut out);
        assert!(err.is_err(), "a frame cut at {cut} of {} (scan at {scan}) decoded", jpeg.len());
    }
    // Regression: the decoder fills a scan that ends a few dozen bytes early with
    // zeros and reports success, so the end marker is what shows a frame is whole.
    let err = mjpeg_to_rgb(&jpeg[..jpeg.len() - 36], &mut scratch, &mut out).unwrap_err();
    assert!(err.contains("end-of-image marker"), "{err}");
    // Padding after the end marker, as some cameras send, is fine.
    let mut padded = jpeg.clone();
    padded.extend_from_slice(&[0; 100]);
    mjpeg_to_rgb(&padded, &mut scratch, &mut out).unwrap();
    // Damage inside the scan must never panic, whatever the decoder makes of it.
    for at in (scan + 20..jpeg.len() - 2).step_by(31) {
        let mut damaged = jpeg.clone();
        damaged[at] ^= 0x5A;
        let _ = mjpeg_to_rgb(&damaged, &mut scratch, &mut out);
    }
}

#[test]
fn mjpeg_greyscale_comes_out_as_rgb() {
    let (w, h) = (16, 16);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90).encode(&[77; 256], w, h, ExtendedColorType::L8).unwrap();
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    mjpeg_to_rgb(&strip_dht(&jpeg), &mut scratch, &mut out).unwrap();
    assert_eq!(out.len(), 16 * 16 * 3);
    assert_close(&out[..3], [77, 77, 77], "grey");
}

#[test]
fn fit_keeps_aspect_and_never_enlarges() {
    assert_eq!(fit_size(1280, 720, (640, 640)), (640, 360));
    assert_eq!(fit_size(720, 1280, (640, 640)), (360, 640));
    assert_eq!(fit_size(1920, 1080, (300, 300)), (300, 169));
    assert_eq!(fit_size(640, 480, (640, 640)), (640, 480));
    assert_eq!(fit_size(320, 240, (640, 640)), (320, 240));
    assert_eq!(fit_size(10_000, 1, (10, 10)), (10, 1));
    assert_eq!(fit_size(1280, 720, (416, 416)), (416, 234));
}

#[test]
fn area_weights_of_each_output_pixel_sum_to_the_source_size() {
    for (src, dst) in [(1280, 640), (1280, 416), (720, 234), (7, 3), (5, 5), (1000, 1)] {
        let taps = Taps::new(src, dst);
        for j in 0..dst as usize {
            let (first, weights) = taps.of(j);
            assert_eq!(weights.iter().sum::<u32>(), src, "{src}->{dst} pixel {j}");
            assert!(first + weights.len() <= src as usize && weights.iter().all(|&w| w > 0));
        }
    }
}

#[test]
fn downscale_averages_areas() {
    let mut out = Vec::new();
    // Halving averages 2x2 blocks exactly.
    #[rustfmt::skip]
    let src: Vec<u8> = [
        [0, 0, 0], [100, 0, 0], [10, 20, 30], [10, 20, 30],
        [200, 0, 0], [100, 0, 0], [10, 20, 30], [10, 20, 30],
    ].concat();
    downscale(&src, 4, 2, 2, 1, &mut out);
    assert_eq!(out, [100, 0, 0, 10, 20, 30]);
    // Three to two: the middle pixel is shared half and half.
    downscale(&[0, 0, 0, 90, 90, 90, 180, 180, 180], 3, 1, 2, 1, &mut out);
    assert_eq!(out, [30, 30, 30, 150, 150, 150]);
    // A one-pixel checkerboard becomes grey, not a moiré of black and white:
    // flat at a whole ratio, near grey at a fractional one (each output pixel
    // covers a little more of one colour than the other).
    let board: Vec<u8> = (0..64 * 64).flat_map(|i| [if (i % 64 + i / 64) % 2 == 0 { 0 } else { 255 }; 3]).collect();
    downscale(&board, 64, 64, 16, 16, &mut out);
    assert!(out.iter().all(|&v| v.abs_diff(128) <= 1), "{:?}", &out[..12]);
    downscale(&board, 64, 64, 20, 20, &mut out);
    assert!(out.iter().all(|&v| v.abs_diff(128) <= 12), "{:?}", &out[..12]);
    // Flat stays flat.
    downscale(&[33, 66, 99].repeat(1280 * 720), 1280, 720, 416, 234, &mut out);
    assert!(out.chunks_exact(3).all(|px| px == [33, 66, 99]));
}

/// Median and fastest time of one call of `f`, in milliseconds, over about a
/// second of calls; the fastest is the steadiest figure on a shared machine.
fn time_per_call(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < 1.0 || times.len() < 20 {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// Timing of the per-frame work at 1280x720; run in release with
/// `cargo test --release -p vigil-v4l2 -- --ignored --nocapture timing`.
#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn timing_conversions_at_1280x720() {
    if cfg!(debug_assertions) {
        eprintln!("timing: this is a debug build; the numbers below mean nothing, run with --release");
    }
    let (w, h) = (1280, 720);
    let rgb = textured(w, h);
    let yuyv = yuyv_of(&rgb, w, h, 2560);
    let jpeg = jpeg_of(&rgb, w, h);
    let stripped = strip_dht(&jpeg);
    let (mut scratch, mut out, mut small) = (Vec::new(), Vec::new(), Vec::new());
    let yuyv_ms = time_per_call(|| yuyv_to_rgb(&yuyv, w, h, 2560, &mut out).unwrap());
    let jpeg_ms = time_per_call(|| {
        mjpeg_to_rgb(&jpeg, &mut scratch, &mut out).unwrap();
    });
    let stripped_ms = time_per_call(|| {
        mjpeg_to_rgb(&stripped, &mut scratch, &mut out).unwrap();
    });
    let fit = fit_size(w, h, (640, 640));
    let down_ms = time_per_call(|| downscale(&rgb, w, h, fit.0, fit.1, &mut small));
    eprintln!("timing: per frame, median / fastest");
    eprintln!("timing: YUYV 1280x720 -> RGB              {:.2} / {:.2} ms", yuyv_ms.0, yuyv_ms.1);
    eprintln!("timing: MJPEG 1280x720 ({} KiB) -> RGB    {:.2} / {:.2} ms", jpeg.len() / 1024, jpeg_ms.0, jpeg_ms.1);
    eprintln!("timing: MJPEG without DHT -> RGB          {:.2} / {:.2} ms", stripped_ms.0, stripped_ms.1);
    eprintln!("timing: downscale 1280x720 -> {}x{}      {:.2} / {:.2} ms", fit.0, fit.1, down_ms.0, down_ms.1);
}

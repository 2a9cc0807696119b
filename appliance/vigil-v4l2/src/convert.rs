//! Pixel conversions: YUYV and MJPEG to packed RGB, and an area-averaging
//! downscale. Pure functions on byte slices; errors say why a frame cannot be
//! decoded, and the caller adds which camera and frame.

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// The largest JPEG accepted either way, so a corrupt header cannot ask for gigabytes.
const MAX_JPEG_SIDE: usize = 8192;

/// Bytes one row of `width` YUYV pixels takes: pixels come in pairs sharing U and V.
pub(crate) fn yuyv_row_bytes(width: u32) -> usize {
    (width as usize).div_ceil(2) * 4
}

/// Converts a YUYV (Y0 U Y1 V) frame, BT.601 limited range, to RGB in `out`.
///
/// Rows start `stride` bytes apart; drivers pad rows, so `stride` may exceed
/// the row's own bytes. Bytes past the last row's pixels need not be there.
pub(crate) fn yuyv_to_rgb(src: &[u8], width: u32, height: u32, stride: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let (w, h) = (width as usize, height as usize);
    let row = yuyv_row_bytes(width);
    if stride < row {
        return Err(format!("{stride} bytes per line cannot hold {width} pixels of YUYV, which need {row}"));
    }
    let needed = h.checked_sub(1).map_or(0, |rows| stride * rows + row);
    if src.len() < needed {
        return Err(format!(
            "the buffer holds {} bytes, a {width}x{height} YUYV frame with {stride} bytes per line needs {needed}",
            src.len()
        ));
    }
    out.clear();
    out.resize(w * h * 3, 0);
    if w == 0 {
        return Ok(());
    }
    for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &src[y * stride..y * stride + row];
        let (pairs, odd) = dst.split_at_mut(w / 2 * 6);
        for (s, d) in src.chunks_exact(4).zip(pairs.chunks_exact_mut(6)) {
            let chroma = Chroma::new(s[1], s[3]);
            let ([r0, g0, b0], [r1, g1, b1]) = (chroma.rgb(s[0]), chroma.rgb(s[2]));
            d.copy_from_slice(&[r0, g0, b0, r1, g1, b1]);
        }
        // An odd width leaves one pixel: the first of a pair whose second was never shown.
        if !odd.is_empty() {
            let s = &src[row - 4..row];
            odd.copy_from_slice(&Chroma::new(s[1], s[3]).rgb(s[0]));
        }
    }
    Ok(())
}

/// Saturation to 0..=255 by table for YUYV: indexed by a value shifted down
/// from 8.8 fixed point plus [`CLAMP_OFFSET`]. A table rather than `clamp`
/// because the comparisons compile to branches that camera noise mispredicts.
static CLAMP: [u8; 1024] = {
    let mut table = [0u8; 1024];
    let mut i = 0;
    while i < 1024 {
        let v = i as i32 - CLAMP_OFFSET;
        table[i] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        i += 1;
    }
    table
};

/// Where 0 is in [`CLAMP`]; the shifted values reach from about -280 to 540.
const CLAMP_OFFSET: i32 = 384;

fn clamp8(fixed: i32) -> u8 {
    // The mask keeps the index in the table without a bounds check; values never reach it.
    CLAMP[((fixed >> 8) + CLAMP_OFFSET) as usize & 1023]
}

/// The chroma terms of BT.601 limited-range YCbCr to RGB in 8.8 fixed point,
/// shared by the two pixels of a YUYV pair.
struct Chroma {
    r: i32,
    g: i32,
    b: i32,
}

impl Chroma {
    fn new(u: u8, v: u8) -> Chroma {
        let (d, e) = (i32::from(u) - 128, i32::from(v) - 128);
        // 1.596, 0.392, 0.813 and 2.017 times 256, plus 128 to round the final shift.
        Chroma { r: 409 * e + 128, g: -100 * d - 208 * e + 128, b: 516 * d + 128 }
    }

    fn rgb(&self, y: u8) -> [u8; 3] {
        // 1.164 (255/219) times 256.
        let c = 298 * (i32::from(y) - 16);
        [clamp8(c + self.r), clamp8(c + self.g), clamp8(c + self.b)]
    }
}

/// Decodes one MJPEG frame to RGB in `out`, restoring missing Huffman tables
/// (through `scratch`); returns the picture's width and height.
pub(crate) fn mjpeg_to_rgb(jpeg: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(u32, u32), String> {
    if jpeg.is_empty() {
        return Err("the buffer is empty".to_string());
    }
    // The decoder makes up the last few dozen bytes of a scan cut short, so
    // look for the end marker; it cannot occur inside entropy-coded data
    // (0xFF is stuffed there), so finding it means the frame ended.
    if !jpeg.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        return Err("the frame ends without its end-of-image marker (cut short on the way)".to_string());
    }
    let data = if let Some(sos) = missing_huffman_tables(jpeg) {
        insert_standard_huffman_tables(jpeg, sos, scratch);
        &scratch[..]
    } else {
        jpeg
    };
    // Strict mode turns a frame cut short on the wire into an error instead of a half-grey picture.
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true)
        .set_max_width(MAX_JPEG_SIDE)
        .set_max_height(MAX_JPEG_SIDE);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder.decode_headers().map_err(|e| format!("not a decodable JPEG: {e}"))?;
    let (Some((w, h)), Some(size)) = (decoder.dimensions(), decoder.output_buffer_size()) else {
        return Err("the JPEG headers give no picture size".to_string());
    };
    if w == 0 || h == 0 || size != w * h * 3 {
        return Err(format!("the JPEG decodes to {size} bytes, not {w}x{h} RGB"));
    }
    out.clear();
    out.resize(size, 0);
    decoder.decode_into(out).map_err(|e| format!("corrupt JPEG data: {e}"))?;
    Ok((w as u32, h as u32))
}

/// Where to put Huffman tables (the offset of the start-of-scan marker) when
/// `jpeg` has none before its scan, as many UVC cameras send it: the UVC
/// MJPEG payload format leaves them out and implies the ones in ITU T.81 Annex K.
/// `None` when tables are present, or when the headers are too broken to tell
/// (the decoder then says what is wrong).
pub(crate) fn missing_huffman_tables(jpeg: &[u8]) -> Option<usize> {
    const DHT: u8 = 0xC4;
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        if *jpeg.get(i)? != 0xFF {
            return None;
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while jpeg.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        match *jpeg.get(i + 1)? {
            DHT | EOI => return None,
            SOS => return Some(i),
            // Markers without a length: TEM, SOI and the restart markers.
            0x01 | 0xD0..=0xD8 => i += 2,
            _ => {
                let len = usize::from(u16::from_be_bytes([*jpeg.get(i + 2)?, *jpeg.get(i + 3)?]));
                if len < 2 {
                    return None;
                }
                i += 2 + len;
            }
        }
    }
}

/// `jpeg` with the standard tables inserted at `at`, into `out`.
pub(crate) fn insert_standard_huffman_tables(jpeg: &[u8], at: usize, out: &mut Vec<u8>) {
    let tables = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES[..]),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES[..]),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES[..]),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES[..]),
    ];
    let len: usize = 2 + tables.iter().map(|(_, bits, values)| 1 + bits.len() + values.len()).sum::<usize>();
    out.clear();
    out.reserve(jpeg.len() + len + 2);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for (class_and_id, bits, values) in tables {
        out.push(class_and_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
    out.extend_from_slice(&jpeg[at..]);
}

// The typical Huffman tables of ITU T.81 Annex K.3 (Tables K.3 to K.6): for each
// table, how many codes there are of each length from 1 to 16 bits, then the
// symbols in order of code. An AC symbol is run-of-zeros << 4 | size, with
// 0x00 end-of-block and 0xF0 a run of sixteen zeros.

const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
/// Both DC tables code the sizes 0 to 11 in order.
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
#[rustfmt::skip]
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// The size of a `width` x `height` picture shrunk to fit `bounds`, keeping its aspect; never larger.
pub(crate) fn fit_size(width: u32, height: u32, bounds: (u32, u32)) -> (u32, u32) {
    let (bw, bh) = (u64::from(bounds.0.max(1)), u64::from(bounds.1.max(1)));
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    if w <= bw && h <= bh {
        return (width, height);
    }
    // Full bounding width if the height then fits, else full bounding height; rounded to nearest.
    let (fw, fh) = if h * bw <= bh * w { (bw, (h * bw + w / 2) / w) } else { ((w * bh + h / 2) / h, bh) };
    (fw.clamp(1, bw) as u32, fh.clamp(1, bh) as u32)
}

/// Shrinks packed RGB `src` (`sw` x `sh`) to `dw` x `dh` into `out` by area
/// averaging: each output pixel is the mean of the source area it covers,
/// weighting source pixels it covers only in part, so thin lines fade rather
/// than vanish or alias. Expects `dw <= sw` and `dh <= sh`.
pub(crate) fn downscale(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32, out: &mut Vec<u8>) {
    let (line_len, row_len) = (sw as usize * 3, dw as usize * 3);
    let across = Taps::new(sw, dw);
    let down = Taps::new(sh, dh);
    // A multiply instead of a division per sample; the sums are exact, so only exact halves may round either way.
    let scale = 1.0 / (f64::from(sw) * f64::from(sh));
    out.clear();
    out.resize(row_len * dh as usize, 0);
    // Down first, into one full-width line per output row: a plain multiply-add
    // over contiguous bytes, and the costlier pass across then runs on `dh`
    // lines instead of `sh`. A column sum is at most 255 * sh.
    let mut column_sums = vec![0u32; line_len];
    for (j, dst) in out.chunks_exact_mut(row_len).enumerate() {
        column_sums.fill(0);
        let (first, weights) = down.of(j);
        let lines = src[first * line_len..(first + weights.len()) * line_len].chunks_exact(line_len);
        // At a whole ratio every line weighs the same: add them and apply the
        // weight once at the end, as x86-64's baseline SSE2 has no 32-bit multiply.
        let row_scale = if weights.iter().all(|&w| w == weights[0]) {
            for line in lines {
                for (sum, &p) in column_sums.iter_mut().zip(line) {
                    *sum += u32::from(p);
                }
            }
            scale * f64::from(weights[0])
        } else {
            for (line, &wy) in lines.zip(weights) {
                for (sum, &p) in column_sums.iter_mut().zip(line) {
                    *sum += wy * u32::from(p);
                }
            }
            scale
        };
        for (i, px) in dst.chunks_exact_mut(3).enumerate() {
            let (first, weights) = across.of(i);
            let span = &column_sums[first * 3..(first + weights.len()) * 3];
            let mut sum = [0u64; 3];
            for (&wx, p) in weights.iter().zip(span.chunks_exact(3)) {
                sum[0] += u64::from(wx) * u64::from(p[0]);
                sum[1] += u64::from(wx) * u64::from(p[1]);
                sum[2] += u64::from(wx) * u64::from(p[2]);
            }
            // Through i64: converting a signed integer to f64 is one instruction, an unsigned one is several.
            px.copy_from_slice(&sum.map(|v| ((v as i64) as f64 * row_scale + 0.5) as u8));
        }
    }
}

/// Which source pixels each output pixel of one axis covers, and how much of
/// each: source pixel `i` spans `[i * dst, (i + 1) * dst)` and output pixel `j`
/// spans `[j * src, (j + 1) * src)`, so the weights of one output sum to `src`.
struct Taps {
    /// Per output pixel: first source pixel, and where its weights start in `weights`; one more entry ends the last.
    spans: Vec<(usize, usize)>,
    weights: Vec<u32>,
}

impl Taps {
    fn new(src: u32, dst: u32) -> Taps {
        let (src, dst) = (u64::from(src), u64::from(dst));
        let mut spans = Vec::with_capacity(dst as usize + 1);
        let mut weights = Vec::new();
        for j in 0..dst {
            let (lo, hi) = (j * src, (j + 1) * src);
            let (first, last) = (lo / dst, (hi - 1) / dst);
            spans.push((first as usize, weights.len()));
            for i in first..=last {
                weights.push(((i + 1) * dst).min(hi).saturating_sub((i * dst).max(lo)) as u32);
            }
        }
        spans.push((0, weights.len()));
        Taps { spans, weights }
    }

    /// The first source pixel output pixel `j` covers, and the weights from there on.
    fn of(&self, j: usize) -> (usize, &[u32]) {
        let (first, start) = self.spans[j];
        (first, &self.weights[start..self.spans[j + 1].1])
    }
}

#[cfg(test)]
pub(crate) mod tests;

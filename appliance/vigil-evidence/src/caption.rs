//! The caption band across the top of a snapshot.

use crate::WHITE;
use crate::canvas::{Canvas, Rect, line_height};
use crate::font::ADVANCE;

/// The most lines a caption takes before its text is made smaller: enough
/// for an incident's usual caption at full size without hiding much scene.
const MAX_LINES: usize = 2;

/// Space between lines of a caption, in font pixels, on top of the
/// descender row.
const LINE_GAP: i64 = 1;

/// Draws `caption` in white on a darkened band across the top and returns
/// the band's height, 0 when there is no caption. Text is set at `scale` if
/// it fits in [`MAX_LINES`] lines, else smaller; at scale 1 whatever does
/// not fit is cut off.
pub(crate) fn draw(canvas: &mut Canvas<'_>, caption: &str, scale: i64) -> i64 {
    if caption.trim().is_empty() {
        return 0;
    }
    let mut scale = scale.max(1);
    let mut lines = wrap(caption, per_line(canvas.width(), scale));
    while lines.len() > MAX_LINES && scale > 1 {
        scale -= 1;
        lines = wrap(caption, per_line(canvas.width(), scale));
    }
    lines.truncate(MAX_LINES);
    let pitch = line_height(scale) + LINE_GAP * scale;
    let band = scale + pitch * lines.len() as i64;
    canvas.darken(Rect::at(0, 0, canvas.width(), band));
    for (i, line) in (0i64..).zip(&lines) {
        canvas.text(scale, scale + i * pitch, line, scale, WHITE);
    }
    band
}

/// How many characters fit across `width` pixels at `scale`, with a margin
/// of one font pixel each side; at least one so that text always advances.
fn per_line(width: i64, scale: i64) -> usize {
    // n glyphs take n * ADVANCE - 1 font pixels; the margins take 2.
    let fit = (width / scale - 1) / ADVANCE;
    usize::try_from(fit).unwrap_or(0).max(1)
}

/// Splits `text` into lines of at most `max` characters. Captions separate
/// their fields with two spaces, so a line breaks there when that keeps at
/// least half of it filled, else at the last space, else mid-word.
fn wrap(text: &str, max: usize) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // Byte offsets of the first max + 1 characters: a space just past
        // the limit still ends a full line.
        let head: Vec<(usize, char)> = rest.char_indices().take(max + 1).collect();
        if head.len() <= max {
            lines.push(rest);
            break;
        }
        let space_at = |i: &usize| head[*i].1 == ' ';
        let field = (max / 2..=max).rev().filter(space_at).find(|&i| i + 1 < head.len() && head[i + 1].1 == ' ');
        let word = (1..=max).rev().find(space_at);
        let end = field.or(word).map_or(head[max].0, |i| head[i].0);
        lines.push(rest[..end].trim_end());
        rest = rest[end..].trim_start();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_prefers_field_breaks_then_spaces_then_cuts_words() {
        let caption = "INCIDENT 42  HALL-1  MAIN HALL B1 F1  2026-11-21 04:50:09Z  DRILL";
        assert_eq!(wrap(caption, 53), ["INCIDENT 42  HALL-1  MAIN HALL B1 F1", "2026-11-21 04:50:09Z  DRILL"]);
        assert_eq!(wrap(caption, 100), [caption]);
        assert_eq!(wrap("A  BCD EFGHIJ", 10), ["A  BCD", "EFGHIJ"]);
        assert_eq!(wrap("ONE TWO THREE", 8), ["ONE TWO", "THREE"]);
        assert_eq!(wrap("ONE TWO", 7), ["ONE TWO"]);
        assert_eq!(wrap("ABCDEFG", 3), ["ABC", "DEF", "G"]);
        assert_eq!(wrap("ÉÉÉÉ", 2), ["ÉÉ", "ÉÉ"]);
        assert_eq!(wrap("  A   ", 1), ["A"]);
        assert!(wrap("   ", 5).is_empty());
    }

    #[test]
    fn per_line_leaves_a_margin_and_never_reaches_zero() {
        // 53 glyphs at scale 2 take 634 pixels, plus 4 of margin.
        assert_eq!(per_line(640, 2), 53);
        assert_eq!(per_line(638, 2), 53);
        assert_eq!(per_line(637, 2), 52);
        assert_eq!(per_line(1, 1), 1);
        assert_eq!(per_line(0, 3), 1);
    }
}

//! Vigil's own bitmap font: 5x8 glyphs (7 rows above the baseline, one
//! descender row) for ASCII 32..=126, drawn as a sheet that is parsed and
//! checked at compile time.

/// Width of a glyph in font pixels.
pub(crate) const GLYPH_WIDTH: i64 = 5;

/// Height of a glyph in font pixels, including the descender row.
pub(crate) const GLYPH_ROWS: usize = 8;

/// Horizontal distance from one glyph to the next, in font pixels.
pub(crate) const ADVANCE: i64 = GLYPH_WIDTH + 1;

/// The first character the sheet draws (space).
const FIRST: u8 = b' ';

/// How many characters the sheet draws: ASCII 32..=126.
const COUNT: usize = 95;

/// Glyphs per band of the sheet.
const PER_BAND: usize = 16;

/// What any character outside the sheet looks like: a visible box, so a
/// character the font lacks is noticed rather than silently dropped.
const UNKNOWN: [u8; GLYPH_ROWS] = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0];

/// The glyph sheet, in bands of 16 characters. Each band is a legend line
/// naming its characters (centred over their cells) followed by eight rows
/// of art, `#` for ink and `.` for paper, cells separated by one space.
/// The legend is checked, so a glyph cannot silently land on the wrong
/// character.
const SHEET: [&str; COUNT.div_ceil(PER_BAND)] = [
    r#"
        !     "     #     $     %     &     '     (     )     *     +     ,     -     .     /
..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... .....
..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#
..... ..#.. ..... ##### #.#.. ...#. #.#.. .#... .#... ...#. #.#.# ..#.. ..... ..... ..... ...#.
..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... ##### ..... ..#..
..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#...
..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....
..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... ..... ..#.. ..... .##.. .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... .....
"#,
    r#"
  0     1     2     3     4     5     6     7     8     9     :     ;     <     =     >     ?
.###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###.
#...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...# .##.. .##.. ..#.. ..... ..#.. #...#
#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# .##.. .##.. .#... ##### ...#. ....#
#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### ..... ..... #.... ..... ....# ...#.
##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# .##.. .##.. .#... ##### ...#. ..#..
#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. ..#.. ..#.. ..... ..#.. .....
.###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. ..... .#... ...#. ..... .#... ..#..
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
"#,
    r#"
  @     A     B     C     D     E     F     G     H     I     J     K     L     M     N     O
.###. .###. ####. .###. ###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
#...# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
....# #...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
.##.# ##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
#.#.# #...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
#.#.# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
.###. #...# ####. .###. ###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
"#,
    r#"
  P     Q     R     S     T     U     V     W     X     Y     Z     [     \     ]     ^     _
####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. ..... .###. ..#.. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... #.... ...#. .#.#. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# .....
####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....
#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... .....
#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ....# ...#. ..... .....
#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ..... .###. ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... #####
"#,
    r#"
  `     a     b     c     d     e     f     g     h     i     j     k     l     m     n     o
.#... ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... .....
..#.. ..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... .....
...#. .###. ####. .#### .#### .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.
..... ....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#
..... .#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#
..... #...# #...# #.... #...# #.... .#... .#### #...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...#
..... .#### ####. .#### .#### .###. .#... ....# #...# .###. #..#. #..#. .###. #.#.# #...# .###.
..... ..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... .....
"#,
    r#"
  p     q     r     s     t     u     v     w     x     y     z     {     |     }     ~
..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...## ..#.. ##... .....
..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. .....
####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#...
#...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.#
#...# #...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.
####. .#### #.... ....# .#..# #..## .#.#. #.#.# .#.#. .#### .#... ..#.. ..#.. ..#.. .....
#.... ....# #.... ####. ..##. .##.# ..#.. .#.#. #...# ....# ##### ...## ..#.. ##... .....
#.... ....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..... ..... .....
"#,
];

/// Row bitmaps for every character of the sheet, bit 4 the leftmost column.
static FONT: [[u8; GLYPH_ROWS]; COUNT] = parse(SHEET);

/// Turns the sheet into row bitmaps; any mistake in it fails the build.
const fn parse(sheet: [&str; COUNT.div_ceil(PER_BAND)]) -> [[u8; GLYPH_ROWS]; COUNT] {
    let mut font = [[0; GLYPH_ROWS]; COUNT];
    let mut band = 0;
    while band < sheet.len() {
        let text = sheet[band].as_bytes();
        let first = band * PER_BAND;
        let cells = if COUNT - first < PER_BAND { COUNT - first } else { PER_BAND };
        // Line 0 is the legend, lines 1..=GLYPH_ROWS the art.
        let mut line = 0;
        let mut start = 0;
        let mut end = 0;
        while end <= text.len() {
            if end < text.len() && text[end] != b'\n' {
                end += 1;
                continue;
            }
            if end > start {
                if line == 0 {
                    // The legend may lose its trailing spaces to an editor.
                    if end - start < (cells - 1) * 6 + 3 {
                        panic!("a font sheet legend is too short for its band");
                    }
                    let mut cell = 0;
                    while cell < cells {
                        if text[start + cell * 6 + 2] != FIRST + (first + cell) as u8 {
                            panic!("a font sheet legend names the wrong character");
                        }
                        cell += 1;
                    }
                } else if line <= GLYPH_ROWS {
                    if end - start != cells * 6 - 1 {
                        panic!("a font sheet row has the wrong width");
                    }
                    let mut cell = 0;
                    while cell < cells {
                        let mut bits = 0;
                        let mut col = 0;
                        while col < GLYPH_WIDTH as usize {
                            bits <<= 1;
                            match text[start + cell * 6 + col] {
                                b'#' => bits |= 1,
                                b'.' => {}
                                _ => panic!("font sheet art may hold only '#' and '.'"),
                            }
                            col += 1;
                        }
                        font[first + cell][line - 1] = bits;
                        cell += 1;
                    }
                } else {
                    panic!("a font sheet band has more than a legend and eight rows");
                }
                line += 1;
            }
            end += 1;
            start = end;
        }
        if line != GLYPH_ROWS + 1 {
            panic!("a font sheet band needs a legend and eight rows");
        }
        band += 1;
    }
    font
}

/// The rows of `c`'s glyph; characters outside ASCII 32..=126 get a box.
pub(crate) fn glyph(c: char) -> &'static [u8; GLYPH_ROWS] {
    u32::from(c).checked_sub(u32::from(FIRST)).and_then(|i| FONT.get(i as usize)).unwrap_or(&UNKNOWN)
}

/// Width in font pixels of `text` set on one line, without trailing space.
pub(crate) fn text_width(text: &str) -> i64 {
    let chars = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    chars.saturating_mul(ADVANCE).saturating_sub(1).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_table_covers_printable_ascii_with_distinct_glyphs() {
        assert_eq!(glyph(' '), &[0; GLYPH_ROWS], "space must be blank");
        let printable: Vec<char> = (33u8..=126).map(char::from).collect();
        for &c in &printable {
            let g = glyph(c);
            assert!(g.iter().any(|&row| row != 0), "{c:?} has no ink");
            assert_ne!(g, &UNKNOWN, "{c:?} falls back to the unknown box");
            assert!(g.iter().all(|&row| row < 1 << GLYPH_WIDTH), "{c:?} is wider than a cell");
        }
        for (i, &a) in printable.iter().enumerate() {
            for &b in &printable[i + 1..] {
                assert_ne!(glyph(a), glyph(b), "{a:?} and {b:?} look the same");
            }
        }
    }

    #[test]
    fn sheet_rows_land_where_drawn() {
        // 'T' is a full bar over a centre stem: a check on bit order.
        assert_eq!(glyph('T')[0], 0b11111);
        assert_eq!(glyph('T')[6], 0b00100);
        assert_eq!(glyph('L')[0], 0b10000);
        // Descenders use the eighth row; capitals leave it empty.
        assert_ne!(glyph('g')[7], 0);
        assert_eq!(glyph('G')[7], 0);
    }

    #[test]
    fn characters_outside_the_sheet_draw_as_a_box() {
        for c in ['\n', '\u{7f}', 'é', '😀'] {
            assert_eq!(glyph(c), &UNKNOWN, "{c:?}");
        }
    }

    #[test]
    fn text_width_counts_characters_not_bytes() {
        assert_eq!(text_width(""), 0);
        assert_eq!(text_width("A"), 5);
        assert_eq!(text_width("AB"), 11);
        assert_eq!(text_width("éé"), 11);
    }
}

//! Text helpers shared by the layouts: draw, measure and fit strings with u8g2 fonts.
//!
//! The fonts cover Latin-1; any other character is drawn as '?', so a participant's name in
//! another script still shows that something is there instead of failing the render.

use crate::Frame;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::Point;
use std::borrow::Cow;
use u8g2_fonts::types::{FontColor, HorizontalAlignment, VerticalPosition};
use u8g2_fonts::FontRenderer;

/// Horizontal anchor of a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// `pos` is the left edge.
    Left,
    /// `pos` is the centre.
    Center,
    /// `pos` is the right edge.
    Right,
}

/// A font plus the metrics the layouts need.
#[derive(Clone)]
pub struct Font {
    renderer: FontRenderer,
}

impl Font {
    /// Wraps a u8g2 font.
    pub const fn new<F: u8g2_fonts::Font>() -> Self {
        Font { renderer: FontRenderer::new::<F>().with_ignore_unknown_chars(true) }
    }

    /// Pixels above the baseline.
    pub fn ascent(&self) -> i32 {
        i32::from(self.renderer.get_ascent())
    }

    /// Pixels below the baseline (positive).
    pub fn descent(&self) -> i32 {
        -i32::from(self.renderer.get_descent())
    }

    /// Ascent plus descent.
    pub fn height(&self) -> i32 {
        self.ascent() + self.descent()
    }

    /// Width of `s` in pixels.
    pub fn width(&self, s: &str) -> i32 {
        let s = latin1(s);
        self.renderer
            .get_rendered_dimensions(s.as_ref(), Point::zero(), VerticalPosition::Baseline)
            .map_or(0, |d| d.advance.x)
    }

    /// Draws `s` with its baseline at `pos.y`, anchored at `pos.x` per `align`; returns the width.
    pub fn draw(&self, target: &mut Frame, s: &str, pos: Point, align: Align, color: Rgb888) -> i32 {
        let s = latin1(s);
        let h = match align {
            Align::Left => HorizontalAlignment::Left,
            Align::Center => HorizontalAlignment::Center,
            Align::Right => HorizontalAlignment::Right,
        };
        let w = self.width(s.as_ref());
        // Drawing into a Frame cannot fail, and unknown glyphs are ignored.
        let _ = self.renderer.render_aligned(
            s.as_ref(),
            pos,
            VerticalPosition::Baseline,
            h,
            FontColor::Transparent(color),
            target,
        );
        w
    }

    /// `s` shortened with ".." so it fits in `max` pixels (binary search on the length, so a
    /// very long string costs a few measurements, not one per character).
    pub fn fit<'a>(&self, s: &'a str, max: i32) -> Cow<'a, str> {
        // An empty string has nothing to shorten, even where nothing fits (max < 0 on tiny screens).
        if s.is_empty() || self.width(s) <= max {
            return Cow::Borrowed(s);
        }
        let ends: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let candidate = |n: usize| format!("{}..", s[..ends[n]].trim_end());
        // The longest prefix of n characters (n < char count) whose "prefix.." fits.
        let (mut lo, mut hi) = (0usize, ends.len());
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if self.width(&candidate(mid)) <= max {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if lo == 0 && self.width(&candidate(0)) > max {
            return Cow::Owned(String::new());
        }
        Cow::Owned(candidate(lo))
    }
}

impl Font {
    /// Breaks `s` into at most `max_lines` lines of at most `max` pixels, at spaces where
    /// possible; the last line is shortened with ".." if text remains.
    pub fn wrap(&self, s: &str, max: i32, max_lines: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() && lines.len() < max_lines {
            if lines.len() + 1 == max_lines || self.width(rest) <= max {
                lines.push(self.fit(rest, max).into_owned());
                break;
            }
            // The longest prefix ending at a space that fits; else cut mid-word.
            let mut cut = None;
            for (i, c) in rest.char_indices() {
                if c == ' ' {
                    // Prefix widths only grow: stop at the first space past the edge.
                    if self.width(&rest[..i]) > max {
                        break;
                    }
                    cut = Some(i);
                }
            }
            let cut = cut.unwrap_or_else(|| {
                let fitted = self.fit(rest, max);
                fitted.trim_end_matches('.').len().max(1)
            });
            let cut = (1..=cut).rev().find(|&i| rest.is_char_boundary(i)).unwrap_or(rest.len());
            lines.push(rest[..cut].trim_end().to_owned());
            rest = rest[cut..].trim_start();
        }
        lines
    }
}

/// Picks the first (largest) font in which `s` fits in `max` pixels, else the last (smallest).
/// The layouts pass non-empty constant lists.
pub fn largest_fitting<'f>(fonts: &'f [Font], s: &str, max: i32) -> &'f Font {
    fonts.iter().find(|f| f.width(s) <= max).or_else(|| fonts.last()).expect("layouts pass at least one font")
}

/// `s` with every character outside Latin-1 replaced by '?'.
fn latin1(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| u32::from(c) <= 0xFF) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().map(|c| if u32::from(c) <= 0xFF { c } else { '?' }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use u8g2_fonts::fonts::u8g2_font_6x10_tf;

    #[test]
    fn fit_shortens_with_dots_and_keeps_short_text() {
        let f = Font::new::<u8g2_font_6x10_tf>();
        assert_eq!(f.width("abcd"), 24);
        assert_eq!(f.fit("abcd", 24), "abcd");
        assert_eq!(f.fit("abcdefgh", 36), "abcd..");
        assert_eq!(f.fit("abc", 0), "");
        assert_eq!(f.fit("", -5), "", "nothing to shorten where nothing fits");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_truncates_the_last_line() {
        let f = Font::new::<u8g2_font_6x10_tf>();
        // 6 px per character: 10 characters per 60 px line.
        assert_eq!(f.wrap("run roomcast probe and copy", 60, 3), vec!["run", "roomcast", "probe an.."]);
        assert_eq!(f.wrap("short", 60, 2), vec!["short"]);
        assert_eq!(f.wrap("abcdefghijklmnop", 60, 2), vec!["abcdefgh", "ijklmnop"]);
        assert_eq!(f.wrap("", 60, 2), Vec::<String>::new());
        assert_eq!(f.wrap("a b", 60, 0), Vec::<String>::new());
    }

    #[test]
    fn non_latin1_text_draws_as_question_marks() {
        let f = Font::new::<u8g2_font_6x10_tf>();
        assert_eq!(f.width("東京"), f.width("??"));
        let mut a = Frame::new(embedded_graphics::prelude::Size::new(30, 12));
        let mut b = a.clone();
        f.draw(&mut a, "東京", Point::new(0, 9), Align::Left, Rgb888::new(255, 255, 255));
        f.draw(&mut b, "??", Point::new(0, 9), Align::Left, Rgb888::new(255, 255, 255));
        assert_eq!(a, b);
    }
}

//! Layouts: `auto` follows the number of rooms (1 full screen, 2 side by side, 3-4 in a 2x2
//! grid, 5-9 in 3x3); a fixed layout shows at most its number of tiles. Tiles are 16:9 boxes
//! centred in their grid cells above the status strip, on even pixel positions (4:2:0 chroma).

use embedded_graphics::prelude::{Point, Size};
use embedded_graphics::primitives::Rectangle;

use crate::DisplayError;

/// `[screen] layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Follows the number of rooms.
    #[default]
    Auto,
    /// One room, full screen.
    Single,
    /// Two rooms side by side.
    Pair,
    /// Up to four rooms, 2x2.
    Grid2,
    /// Up to nine rooms, 3x3.
    Grid3,
}

/// The names `[screen] layout` takes.
pub const LAYOUT_NAMES: [&str; 5] = ["auto", "1x1", "2x1", "2x2", "3x3"];

impl std::str::FromStr for Layout {
    type Err = DisplayError;
    fn from_str(s: &str) -> Result<Self, DisplayError> {
        match s {
            "auto" => Ok(Layout::Auto),
            "1x1" | "single" => Ok(Layout::Single),
            "2x1" | "pair" => Ok(Layout::Pair),
            "2x2" => Ok(Layout::Grid2),
            "3x3" => Ok(Layout::Grid3),
            other => {
                Err(DisplayError::BadScreen(format!("layout {other:?}: expected one of {}", LAYOUT_NAMES.join(", "))))
            }
        }
    }
}

impl Layout {
    /// The grid (columns, rows) for `rooms` rooms.
    pub fn grid(self, rooms: usize) -> (u32, u32) {
        match self {
            Layout::Single => (1, 1),
            Layout::Pair => (2, 1),
            Layout::Grid2 => (2, 2),
            Layout::Grid3 => (3, 3),
            Layout::Auto => match rooms {
                0 | 1 => (1, 1),
                2 => (2, 1),
                3 | 4 => (2, 2),
                _ => (3, 3),
            },
        }
    }

    /// How many tiles it shows of `rooms`.
    pub fn capacity(self, rooms: usize) -> usize {
        let (c, r) = self.grid(rooms);
        rooms.min((c * r) as usize)
    }

    /// The tiles' rectangles for `rooms` rooms in `area` (the screen above the status strip).
    pub fn tiles(self, rooms: usize, area: Rectangle) -> Vec<Rectangle> {
        let (cols, rows) = self.grid(rooms);
        let gap = (area.size.height / 90).max(2) & !1;
        let cell_w = area.size.width / cols;
        let cell_h = area.size.height / rows;
        (0..self.capacity(rooms) as u32)
            .map(|i| {
                let (col, row) = (i % cols, i / cols);
                let (w, h) = fit_16_9(cell_w.saturating_sub(gap), cell_h.saturating_sub(gap));
                let x = area.top_left.x as u32 + col * cell_w + (cell_w - w) / 2;
                let y = area.top_left.y as u32 + row * cell_h + (cell_h - h) / 2;
                Rectangle::new(Point::new((x & !1) as i32, (y & !1) as i32), Size::new(w, h))
            })
            .collect()
    }
}

/// The largest 16:9 box (even sides) inside `w` x `h`.
pub fn fit_16_9(w: u32, h: u32) -> (u32, u32) {
    fit(16, 9, w, h)
}

/// The largest box of aspect `aw:ah` (even sides, at least 2x2) inside `w` x `h`.
pub fn fit(aw: u32, ah: u32, w: u32, h: u32) -> (u32, u32) {
    let (aw, ah) = (u64::from(aw.max(1)), u64::from(ah.max(1)));
    let (w64, h64) = (u64::from(w), u64::from(h));
    let (fw, fh) = if w64 * ah <= h64 * aw { (w64, w64 * ah / aw) } else { (h64 * aw / ah, h64) };
    ((fw as u32 & !1).max(2), (fh as u32 & !1).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area() -> Rectangle {
        Rectangle::new(Point::zero(), Size::new(1280, 680))
    }

    #[test]
    fn auto_follows_the_room_count() {
        assert_eq!(Layout::Auto.grid(1), (1, 1));
        assert_eq!(Layout::Auto.grid(2), (2, 1));
        assert_eq!(Layout::Auto.grid(4), (2, 2));
        assert_eq!(Layout::Auto.grid(7), (3, 3));
        assert_eq!(Layout::Auto.tiles(12, area()).len(), 9);
        assert_eq!(Layout::Single.tiles(3, area()).len(), 1);
    }

    #[test]
    fn tiles_are_16_9_even_inside_the_area_and_apart() {
        for rooms in 1..=9 {
            let tiles = Layout::Auto.tiles(rooms, area());
            for (i, t) in tiles.iter().enumerate() {
                assert_eq!(t.top_left.x % 2, 0);
                assert_eq!(t.top_left.y % 2, 0);
                assert_eq!(t.size.width % 2, 0);
                let ratio = f64::from(t.size.width) / f64::from(t.size.height);
                assert!((ratio - 16.0 / 9.0).abs() < 0.02, "{rooms}: {t:?}");
                let br = t.bottom_right().unwrap();
                assert!(br.x < 1280 && br.y < 680, "{rooms}: {t:?}");
                for u in &tiles[i + 1..] {
                    assert!(t.intersection(u).is_zero_sized(), "{rooms}: {t:?} overlaps {u:?}");
                }
            }
        }
    }

    #[test]
    fn names_parse() {
        for name in LAYOUT_NAMES {
            assert!(name.parse::<Layout>().is_ok(), "{name}");
        }
        assert!("4x4".parse::<Layout>().is_err());
    }
}

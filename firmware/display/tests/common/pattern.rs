//! The test source's picture: a room-coloured background, coloured corner blocks (red top left,
//! green top right, blue bottom left, white bottom right, each a sixth of the picture) and a
//! vertical yellow bar that moves with the frame index. Packed I420, BT.601 limited range.

#![allow(dead_code)]

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

pub const RED: Rgb = (220, 30, 30);
pub const GREEN: Rgb = (30, 200, 60);
pub const BLUE: Rgb = (30, 60, 220);
pub const WHITE: Rgb = (235, 235, 235);
pub const BAR: Rgb = (240, 220, 20);

/// Room backgrounds.
pub const ROOM_COLOURS: [Rgb; 9] = [
    (70, 90, 130),
    (120, 80, 60),
    (60, 110, 80),
    (110, 70, 120),
    (90, 90, 90),
    (130, 110, 60),
    (60, 100, 120),
    (100, 60, 70),
    (80, 120, 110),
];

/// BT.601 limited-range YUV of an RGB colour.
pub fn yuv((r, g, b): Rgb) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    (y.round() as u8, u.round() as u8, v.round() as u8)
}

/// The colour the pattern has at (x, y).
pub fn colour_at(w: u32, h: u32, room: usize, frame: u64, x: u32, y: u32) -> Rgb {
    let (bw, bh) = (w / 6, h / 6);
    let bar_x = (frame as u32 * 8) % w;
    match (x < bw, x >= w - bw, y < bh, y >= h - bh) {
        (true, _, true, _) => RED,
        (_, true, true, _) => GREEN,
        (true, _, _, true) => BLUE,
        (_, true, _, true) => WHITE,
        _ if x >= bar_x && x < bar_x + w / 40 + 2 => BAR,
        _ => ROOM_COLOURS[room % ROOM_COLOURS.len()],
    }
}

/// The packed I420 picture.
pub fn picture(w: u32, h: u32, room: usize, frame: u64) -> Vec<u8> {
    let (wu, hu) = (w as usize, h as usize);
    let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
    let mut out = vec![0u8; wu * hu + 2 * cw * ch];
    for y in 0..h {
        for x in 0..w {
            out[y as usize * wu + x as usize] = yuv(colour_at(w, h, room, frame, x, y)).0;
        }
    }
    for cy in 0..ch as u32 {
        for cx in 0..cw as u32 {
            let (_, u, v) = yuv(colour_at(w, h, room, frame, cx * 2, cy * 2));
            out[wu * hu + cy as usize * cw + cx as usize] = u;
            out[wu * hu + cw * ch + cy as usize * cw + cx as usize] = v;
        }
    }
    out
}

/// Whether two colours are within `tol` on every channel.
pub fn near(a: Rgb, b: Rgb, tol: u8) -> bool {
    a.0.abs_diff(b.0) <= tol && a.1.abs_diff(b.1) <= tol && a.2.abs_diff(b.2) <= tol
}

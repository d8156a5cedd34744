//! [`Compositor`]: the remote rooms' pictures and the box's status into one screen. Pictures go
//! into the I420 [`Canvas`] (scaled, aspect kept, letterboxed in their 16:9 tile), the canvas is
//! turned into RGB once, then the overlays are drawn on it with the status display's fonts: each
//! tile's caption (room name, a red MUTED mark), a green frame around the active speaker, "waiting
//! for video" on a tile without a picture yet, the self-view's frame and the status strip.
//! A pure function of its inputs: the same tiles give the same pixels (golden screens).

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{Point, Primitive, Size};
use embedded_graphics::primitives::PrimitiveStyleBuilder;
use embedded_graphics::primitives::{CornerRadii, PrimitiveStyle, Rectangle, RoundedRectangle, StrokeAlignment};
use embedded_graphics::Drawable;
use u8g2_fonts::fonts;

use super::canvas::{Canvas, Yuv};
use super::layout::{fit, Layout};
use super::I420Planes;
use crate::render::summary::{kbps, loss};
use crate::render::text::{Align, Font};
use crate::{DisplayError, Frame};

const WHITE: Rgb888 = Rgb888::WHITE;
const GREY: Rgb888 = Rgb888::new(150, 150, 150);
const CAPTION_BG: Rgb888 = Rgb888::new(16, 16, 20);
const STRIP_BG: Rgb888 = Rgb888::new(32, 32, 36);
const SPEAKER: Rgb888 = Rgb888::new(80, 220, 110);
const RED: Rgb888 = Rgb888::new(200, 40, 40);

/// One remote room's tile.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    /// The room's name (the caption).
    pub name: &'a str,
    /// The room is muted.
    pub muted: bool,
    /// The room is the active speaker ([`super::SpeakerTracker`]).
    pub speaking: bool,
    /// Its newest decoded picture, if any yet.
    pub picture: Option<I420Planes<'a>>,
}

/// The status strip: this box.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// This room's name.
    pub room: String,
    /// The meeting's name.
    pub meeting: String,
    /// The encoder label ("SW AV1").
    pub encoder: String,
    /// Send bitrate.
    pub send_kbps: u32,
    /// Receive bitrate.
    pub recv_kbps: u32,
    /// Receive loss in percent.
    pub loss_percent: f32,
    /// This box's microphone is muted.
    pub muted: bool,
}

/// Composes screens of one size and layout.
pub struct Compositor {
    canvas: Canvas,
    layout: Layout,
}

fn font_for(height: u32) -> Font {
    match height {
        600.. => Font::new::<fonts::u8g2_font_helvB24_tf>(),
        300.. => Font::new::<fonts::u8g2_font_helvB18_tf>(),
        200.. => Font::new::<fonts::u8g2_font_helvB14_tf>(),
        _ => Font::new::<fonts::u8g2_font_helvB10_tf>(),
    }
}

fn filled(r: Rectangle, c: Rgb888, frame: &mut Frame) {
    let _ = r.into_styled(PrimitiveStyle::with_fill(c)).draw(frame);
}

fn pill(r: Rectangle, c: Rgb888, frame: &mut Frame) {
    let radius = Size::new(r.size.height / 4, r.size.height / 4);
    let _ = RoundedRectangle::new(r, CornerRadii::new(radius)).into_styled(PrimitiveStyle::with_fill(c)).draw(frame);
}

fn frame_around(r: Rectangle, c: Rgb888, width: u32, frame: &mut Frame) {
    let style = PrimitiveStyleBuilder::new()
        .stroke_color(c)
        .stroke_width(width)
        .stroke_alignment(StrokeAlignment::Inside)
        .build();
    let _ = r.into_styled(style).draw(frame);
}

impl Compositor {
    /// A compositor for screens of `size` (even sides) in `layout`.
    pub fn new(size: Size, layout: Layout) -> Self {
        Compositor { canvas: Canvas::new(size), layout }
    }

    /// The screen size.
    pub fn size(&self) -> Size {
        self.canvas.size()
    }

    /// Height of the status strip.
    pub fn strip_height(&self) -> u32 {
        (self.size().height / 18).max(16) & !1
    }

    /// The screen above the strip.
    pub fn video_area(&self) -> Rectangle {
        let s = self.size();
        Rectangle::new(Point::zero(), Size::new(s.width, s.height - self.strip_height()))
    }

    /// Where the tiles of `rooms` rooms go (in order).
    pub fn tile_rects(&self, rooms: usize) -> Vec<Rectangle> {
        self.layout.tiles(rooms, self.video_area())
    }

    /// Where a `width` x `height` picture goes inside `tile` (aspect kept, centred).
    pub fn picture_rect(tile: Rectangle, width: u32, height: u32) -> Rectangle {
        let (w, h) = fit(width, height, tile.size.width, tile.size.height);
        let x = (tile.top_left.x + ((tile.size.width - w) / 2) as i32) & !1;
        let y = (tile.top_left.y + ((tile.size.height - h) / 2) as i32) & !1;
        Rectangle::new(Point::new(x, y), Size::new(w, h))
    }

    /// The self-view's place: a fifth of the screen's width, bottom right above the strip.
    pub fn self_view_rect(&self, width: u32, height: u32) -> Rectangle {
        let area = self.video_area();
        let margin = (area.size.height / 40).max(4) & !1;
        let (w, h) = fit(width, height, area.size.width / 5, area.size.height / 4);
        let x = (area.size.width - w - margin) as i32 & !1;
        let y = (area.size.height - h - margin) as i32 & !1;
        Rectangle::new(Point::new(x, y), Size::new(w, h))
    }

    /// Composes one screen: `tiles` in order (beyond the layout's capacity they are left out),
    /// the optional self-view and the status strip.
    pub fn compose(
        &mut self,
        tiles: &[Tile<'_>],
        self_view: Option<I420Planes<'_>>,
        status: &Status,
    ) -> Result<Frame, DisplayError> {
        let rects = self.tile_rects(tiles.len());
        self.canvas.clear(Yuv::BACKGROUND);
        let mut shown = Vec::with_capacity(rects.len());
        for (tile, &rect) in tiles.iter().zip(&rects) {
            self.canvas.fill(rect, Yuv::TILE);
            let ok = match tile.picture {
                Some(p) => match self.canvas.draw_picture(&p, Self::picture_rect(rect, p.width, p.height)) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(room = tile.name, error = %e, "screen: picture skipped");
                        false
                    }
                },
                None => false,
            };
            shown.push(ok);
        }
        let self_rect = match self_view {
            Some(p) => {
                let r = self.self_view_rect(p.width, p.height);
                self.canvas.draw_picture(&p, r).ok().map(|()| r)
            }
            None => None,
        };
        let mut frame = self.canvas.to_frame()?;
        for ((tile, &rect), ok) in tiles.iter().zip(&rects).zip(shown) {
            self.tile_overlay(tile, rect, ok, &mut frame);
        }
        if let Some(r) = self_rect {
            frame_around(r, WHITE, 2, &mut frame);
            let font = Font::new::<fonts::u8g2_font_helvB10_tf>();
            let pad = 4;
            let w = font.width("You") + 2 * pad;
            let h = font.height() + pad;
            pill(
                Rectangle::new(r.top_left + Point::new(pad, pad), Size::new(w as u32, h as u32)),
                CAPTION_BG,
                &mut frame,
            );
            font.draw(
                &mut frame,
                "You",
                r.top_left + Point::new(2 * pad, pad + pad / 2 + font.ascent()),
                Align::Left,
                WHITE,
            );
        }
        if tiles.is_empty() {
            let area = self.video_area();
            let font = font_for(area.size.height / 2);
            font.draw(&mut frame, "Waiting for the other rooms", area.center(), Align::Center, GREY);
        }
        let more = tiles.len().saturating_sub(rects.len());
        self.strip(status, tiles.len(), more, &mut frame);
        Ok(frame)
    }

    fn tile_overlay(&self, tile: &Tile<'_>, rect: Rectangle, has_picture: bool, frame: &mut Frame) {
        let font = font_for(rect.size.height);
        let pad = (rect.size.height as i32 / 40).max(4);
        if !has_picture {
            font.draw(frame, "waiting for video", rect.center(), Align::Center, GREY);
        }
        let mark = if tile.muted { "MUTED" } else { "" };
        let mark_w = if tile.muted { font.width(mark) + 2 * pad } else { 0 };
        let max_name = rect.size.width as i32 - 6 * pad - mark_w;
        let name = font.fit(tile.name, max_name);
        let box_h = font.height() + pad;
        let name_w = font.width(&name) + 2 * pad;
        let y = rect.top_left.y + rect.size.height as i32 - pad - box_h;
        let x = rect.top_left.x + pad;
        let baseline = y + pad / 2 + font.ascent();
        pill(Rectangle::new(Point::new(x, y), Size::new(name_w as u32, box_h as u32)), CAPTION_BG, frame);
        font.draw(frame, &name, Point::new(x + pad, baseline), Align::Left, WHITE);
        if tile.muted {
            let mx = x + name_w + pad;
            pill(Rectangle::new(Point::new(mx, y), Size::new(mark_w as u32, box_h as u32)), RED, frame);
            font.draw(frame, mark, Point::new(mx + pad, baseline), Align::Left, WHITE);
        }
        if tile.speaking {
            frame_around(rect, SPEAKER, (rect.size.height / 60).max(3), frame);
        }
    }

    fn strip(&self, status: &Status, rooms: usize, more: usize, frame: &mut Frame) {
        let s = self.size();
        let h = self.strip_height();
        let top = (s.height - h) as i32;
        filled(Rectangle::new(Point::new(0, top), Size::new(s.width, h)), STRIP_BG, frame);
        let (bold, regular) = if h >= 56 {
            (Font::new::<fonts::u8g2_font_helvB18_tf>(), Font::new::<fonts::u8g2_font_helvR18_tf>())
        } else if h >= 36 {
            (Font::new::<fonts::u8g2_font_helvB14_tf>(), Font::new::<fonts::u8g2_font_helvR14_tf>())
        } else {
            (Font::new::<fonts::u8g2_font_helvB08_tf>(), Font::new::<fonts::u8g2_font_helvR08_tf>())
        };
        let pad = (h as i32 / 3).max(4);
        let baseline = top + (h as i32 + bold.ascent() - bold.descent()) / 2;
        let rooms_text = match (rooms, more) {
            (1, _) => "1 other room".to_owned(),
            (n, 0) => format!("{n} other rooms"),
            (n, m) => format!("{n} other rooms ({m} not shown)"),
        };
        let right = format!(
            "{}   up {}  down {}   loss {}",
            status.encoder,
            kbps(status.send_kbps),
            kbps(status.recv_kbps),
            loss(status.loss_percent)
        );
        let right_w = regular.width(&right);
        let mut x = s.width as i32 - pad;
        regular.draw(frame, &right, Point::new(x, baseline), Align::Right, GREY);
        x -= right_w + pad;
        if status.muted {
            let w = bold.width("MUTED") + pad;
            pill(Rectangle::new(Point::new(x - w, top + h as i32 / 6), Size::new(w as u32, h * 2 / 3)), RED, frame);
            bold.draw(frame, "MUTED", Point::new(x - w / 2, baseline), Align::Center, WHITE);
            x -= w + pad;
        }
        let room_w =
            bold.draw(frame, &bold.fit(&status.room, (x - 2 * pad) / 2), Point::new(pad, baseline), Align::Left, WHITE);
        let left = format!("{}  ·  {rooms_text}", status.meeting);
        let room_end = pad + room_w + pad;
        regular.draw(frame, &regular.fit(&left, x - room_end - pad), Point::new(room_end, baseline), Align::Left, GREY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picture_rects_keep_the_aspect_inside_the_tile() {
        let tile = Rectangle::new(Point::new(10, 20), Size::new(640, 360));
        let r = Compositor::picture_rect(tile, 480, 480);
        assert_eq!(r.size, Size::new(360, 360));
        assert_eq!(r.top_left, Point::new(10 + 140, 20));
        assert_eq!(Compositor::picture_rect(tile, 1280, 720), tile);
    }

    #[test]
    fn strip_and_area_split_the_screen() {
        let c = Compositor::new(Size::new(1280, 720), Layout::Auto);
        assert_eq!(c.strip_height(), 40);
        assert_eq!(c.video_area().size, Size::new(1280, 680));
        let c = Compositor::new(Size::new(1920, 1080), Layout::Auto);
        assert_eq!(c.strip_height(), 60);
        let sv = c.self_view_rect(640, 360);
        assert!(sv.bottom_right().unwrap().y < 1020 && sv.size.width <= 384, "{sv:?}");
    }
}

//! The colour layout for small TFTs and framebuffers: a coloured header bar saying what the box
//! is doing (green in a meeting, blue on the way, red when something needs attention), the one
//! thing that matters in large type, a few labelled details, and a footer with the box's name and
//! IP address. The in-meeting screen is a dashboard: meeting name and roster on the left (who is
//! speaking highlighted), mic meter or MUTED, encoder, bitrates and loss on the right.
//!
//! Designed at 320x240; up to 479x359 it lays out with larger type, and on bigger screens (a
//! 1024x768 framebuffer, say) it renders at an integer fraction and scales up with square pixels,
//! so text stays legible from across the room whatever the framebuffer reports.

use super::summary::{kbps, loss, meter_fraction, summary, Severity};
use super::text::{largest_fitting, Align, Font};
use crate::{DisplayState, Frame, Meeting, Phase};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{DrawTarget, Point, Primitive, Size};
use embedded_graphics::primitives::{Circle, CornerRadii, PrimitiveStyle, Rectangle, RoundedRectangle};
use embedded_graphics::Drawable;
use std::time::Instant;
use u8g2_fonts::fonts;

const WHITE: Rgb888 = Rgb888::WHITE;
const GREY: Rgb888 = Rgb888::new(150, 150, 150);
const DIM: Rgb888 = Rgb888::new(90, 90, 90);
const FOOTER_BG: Rgb888 = Rgb888::new(32, 32, 36);
const GREEN: Rgb888 = Rgb888::new(30, 150, 70);
const BRIGHT_GREEN: Rgb888 = Rgb888::new(80, 220, 110);
const BLUE: Rgb888 = Rgb888::new(25, 100, 200);
const RED: Rgb888 = Rgb888::new(200, 40, 40);
const LIGHT_RED: Rgb888 = Rgb888::new(255, 105, 95);
const AMBER: Rgb888 = Rgb888::new(245, 175, 30);
const PURPLE: Rgb888 = Rgb888::new(120, 70, 190);

/// The designed size; larger screens scale up by whole multiples of it.
const BASE: Size = Size::new(320, 240);

/// Fonts and spacing for one logical screen height.
struct Theme {
    header: Font,
    headlines: [Font; 4],
    body: Font,
    bold: Font,
    small: Font,
    big_number: Font,
    pad: i32,
}

impl Theme {
    fn for_size(w: u32, h: u32) -> Theme {
        if w < 240 || h < 180 {
            // Small TFTs (160x128 and the like).
            return Theme {
                header: Font::new::<fonts::u8g2_font_helvB08_tf>(),
                headlines: [
                    Font::new::<fonts::u8g2_font_fub14_tf>(),
                    Font::new::<fonts::u8g2_font_fub11_tf>(),
                    Font::new::<fonts::u8g2_font_helvB10_tf>(),
                    Font::new::<fonts::u8g2_font_helvB08_tf>(),
                ],
                body: Font::new::<fonts::u8g2_font_helvR08_tf>(),
                bold: Font::new::<fonts::u8g2_font_helvB08_tf>(),
                small: Font::new::<fonts::u8g2_font_helvR08_tf>(),
                big_number: Font::new::<fonts::u8g2_font_fub14_tf>(),
                pad: 4,
            };
        }
        if h < 300 {
            Theme {
                header: Font::new::<fonts::u8g2_font_helvB10_tf>(),
                headlines: [
                    Font::new::<fonts::u8g2_font_fub25_tf>(),
                    Font::new::<fonts::u8g2_font_fub20_tf>(),
                    Font::new::<fonts::u8g2_font_fub17_tf>(),
                    Font::new::<fonts::u8g2_font_fub14_tf>(),
                ],
                body: Font::new::<fonts::u8g2_font_helvR14_tf>(),
                bold: Font::new::<fonts::u8g2_font_helvB14_tf>(),
                small: Font::new::<fonts::u8g2_font_helvR12_tf>(),
                big_number: Font::new::<fonts::u8g2_font_logisoso32_tf>(),
                pad: 8,
            }
        } else {
            Theme {
                header: Font::new::<fonts::u8g2_font_helvB14_tf>(),
                headlines: [
                    Font::new::<fonts::u8g2_font_fub25_tf>(),
                    Font::new::<fonts::u8g2_font_fub20_tf>(),
                    Font::new::<fonts::u8g2_font_fub17_tf>(),
                    Font::new::<fonts::u8g2_font_fub14_tf>(),
                ],
                body: Font::new::<fonts::u8g2_font_helvR18_tf>(),
                bold: Font::new::<fonts::u8g2_font_helvB18_tf>(),
                small: Font::new::<fonts::u8g2_font_helvR14_tf>(),
                big_number: Font::new::<fonts::u8g2_font_logisoso32_tf>(),
                pad: 12,
            }
        }
    }
}

/// Draws `state` onto a (cleared) colour screen of any size above the monochrome layout's.
pub fn draw(state: &DisplayState, now: Instant, target: &mut Frame) {
    let (w, h) = (target.width(), target.height());
    let scale = (w / BASE.width).min(h / BASE.height).max(1);
    if scale == 1 {
        draw_logical(state, now, target);
        return;
    }
    let mut small = Frame::new(Size::new(w / scale, h / scale));
    draw_logical(state, now, &mut small);
    upscale(&small, target, scale);
}

/// Copies `src` into `dst` with every pixel a `scale`x`scale` square, centred.
fn upscale(src: &Frame, dst: &mut Frame, scale: u32) {
    let ox = ((dst.width() - src.width() * scale) / 2) as usize;
    let oy = (dst.height() - src.height() * scale) / 2;
    let mut wide = Vec::with_capacity((src.width() * scale) as usize);
    for y in 0..src.height() {
        let Some(row) = src.row(y) else { break };
        wide.clear();
        for &c in row {
            wide.extend(std::iter::repeat(c).take(scale as usize));
        }
        for dy in 0..scale {
            if let Some(out) = dst.row_mut(oy + y * scale + dy) {
                if let Some(span) = out.get_mut(ox..ox + wide.len()) {
                    span.copy_from_slice(&wide);
                }
            }
        }
    }
}

fn draw_logical(state: &DisplayState, now: Instant, t: &mut Frame) {
    let w = t.width() as i32;
    let h = t.height() as i32;
    let th = Theme::for_size(w as u32, h as u32);
    let s = summary(&state.phase, now);

    // Header bar.
    let header_h = th.header.height() + 10;
    let bar = match s.severity {
        Severity::Ok => GREEN,
        Severity::Busy => BLUE,
        Severity::Error => RED,
    };
    fill(t, Rectangle::new(Point::zero(), Size::new(w as u32, header_h as u32)), bar);
    let base = header_h / 2 + th.header.ascent() / 2;
    let right = header_right(&state.phase);
    let rw = th.header.draw(t, &right, Point::new(w - th.pad, base), Align::Right, WHITE);
    th.header.draw(t, &th.header.fit(s.label, w - rw - 3 * th.pad), Point::new(th.pad, base), Align::Left, WHITE);

    // Footer bar: name and IP address.
    let footer_h = th.small.height() + 10;
    let fy = h - footer_h;
    fill(t, Rectangle::new(Point::new(0, fy), Size::new(w as u32, footer_h as u32)), FOOTER_BG);
    let fb = fy + footer_h / 2 + th.small.ascent() / 2;
    let ip = state.ip.map_or_else(|| "no IP address".to_owned(), |ip| ip.to_string());
    let ipw = th.small.draw(t, &th.small.fit(&ip, w - 2 * th.pad), Point::new(w - th.pad, fb), Align::Right, WHITE);
    let room = w - ipw - 3 * th.pad;
    if room > 20 {
        th.small.draw(t, &th.small.fit(&state.name, room), Point::new(th.pad, fb), Align::Left, GREY);
    }

    let body = Rectangle::new(
        Point::new(th.pad, header_h + th.pad),
        Size::new((w - 2 * th.pad) as u32, (fy - header_h - 2 * th.pad).max(0) as u32),
    );
    match &state.phase {
        Phase::InMeeting(m) => in_meeting(m, &th, t, body),
        _ => generic(state, now, &th, t, body, s.headline, s.severity),
    }
}

/// Short context at the right of the header.
fn header_right(phase: &Phase) -> String {
    match phase {
        Phase::Booting { percent, .. } => format!("{}%", percent.min(&100)),
        Phase::FindingRelay { attempt, .. } => format!("try {attempt}"),
        Phase::RelayLost { attempt, .. } => format!("retry {attempt}"),
        Phase::ConfigError { line: Some(l), .. } => format!("line {l}"),
        Phase::InMeeting(m) => format!("{} in call", m.participants.len() + 1),
        _ => String::new(),
    }
}

/// Every phase but the meeting: headline, then labelled details.
fn generic(
    state: &DisplayState,
    now: Instant,
    th: &Theme,
    t: &mut Frame,
    body: Rectangle,
    headline: String,
    severity: Severity,
) {
    let x = body.top_left.x;
    let w = body.size.width as i32;
    let f = largest_fitting(&th.headlines, &headline, w);
    let mut y = body.top_left.y + f.ascent();
    let colour = if severity == Severity::Error { LIGHT_RED } else { WHITE };
    f.draw(t, &f.fit(&headline, w), Point::new(x, y), Align::Left, colour);
    y += f.descent() + th.pad;

    let rows: Vec<(&str, String)> = match &state.phase {
        Phase::Booting { step, percent } => {
            y += th.body.ascent();
            th.body.draw(t, &th.body.fit(step, w), Point::new(x, y), Align::Left, WHITE);
            y += th.body.descent() + th.pad;
            let bar_h = th.body.height();
            progress(t, Rectangle::new(Point::new(x, y), Size::new(w as u32, bar_h as u32)), *percent);
            Vec::new()
        }
        Phase::NoNetwork { interface, problem } => vec![
            ("Interface", interface.clone()),
            ("Problem", problem.describe().to_owned()),
            ("Try", problem.fix().to_owned()),
        ],
        Phase::FindingRelay { relay, attempt } => {
            vec![("Relay", relay.clone()), ("Attempt", attempt.to_string())]
        }
        Phase::Joining { meeting, relay } => vec![("Meeting", meeting.clone()), ("Relay", relay.clone())],
        Phase::InMeeting(_) => Vec::new(),
        Phase::RelayLost { relay, reason, retry_at, .. } => {
            let secs = retry_at.remaining_secs_ceil(now);
            let label = "Retrying in";
            let n = format!("{secs}s");
            y += th.big_number.ascent();
            let lw = th.body.width(label);
            th.body.draw(t, label, Point::new(x, y), Align::Left, GREY);
            th.big_number.draw(t, &n, Point::new(x + lw + th.pad, y), Align::Left, AMBER);
            y += th.big_number.descent() + th.pad;
            vec![("Relay", relay.clone()), ("Reason", reason.clone())]
        }
        Phase::ConfigError { file, key, line, problem, fix } => vec![
            ("Key", key.clone()),
            (
                "Where",
                match line {
                    Some(l) => format!("{file}:{l}"),
                    None => file.clone(),
                },
            ),
            ("Problem", problem.clone()),
            ("Fix", fix.clone()),
        ],
        Phase::DeviceMissing { expected, fix, .. } => {
            vec![("Expected", expected.clone()), ("Fix", fix.clone())]
        }
        Phase::SetUp { file, place } => vec![
            ("Edit", format!("{file} {place}")),
            ("Set", "[meeting] server, id and token".to_owned()),
            ("Address", state.ip.map_or_else(|| "none yet".to_owned(), |ip| ip.to_string())),
        ],
        Phase::Leaving { meeting, done } => vec![
            ("Meeting", meeting.clone()),
            ("Status", if *done { "left; stopping" } else { "saying goodbye" }.to_owned()),
        ],
    };
    let label_w = rows.iter().map(|(l, _)| th.small.width(l)).max().unwrap_or(0) + th.pad;
    let pitch = th.body.height() + th.pad / 2;
    let bottom = body.top_left.y + body.size.height as i32;
    // Long values wrap onto more lines while the screen has room, what to do first.
    let spare = ((bottom - y) / pitch - rows.len() as i32).max(0);
    let font_of = |label: &str| if label == "Fix" || label == "Try" { &th.bold } else { &th.body };
    let mut extra = vec![0usize; rows.len()];
    let mut budget = spare as usize;
    let priority = |l: &str| match l {
        "Fix" | "Try" => 0,
        "Problem" => 1,
        _ => 2,
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| priority(rows[i].0));
    for i in order {
        let (label, value) = &rows[i];
        let need = font_of(label).wrap(value, w - label_w, 3).len().saturating_sub(1);
        let give = need.min(budget);
        extra[i] = give;
        budget -= give;
    }
    for (i, (label, value)) in rows.iter().enumerate() {
        if y + th.body.height() > bottom {
            break;
        }
        let vf = font_of(label);
        let lines = vf.wrap(value, w - label_w, 1 + extra[i]);
        y += th.body.ascent();
        th.small.draw(t, label, Point::new(x, y), Align::Left, GREY);
        for (j, line) in lines.iter().enumerate() {
            if j > 0 {
                y += pitch;
            }
            vf.draw(t, line, Point::new(x + label_w, y), Align::Left, WHITE);
        }
        y += pitch - th.body.ascent();
    }
}

/// The meeting dashboard.
fn in_meeting(m: &Meeting, th: &Theme, t: &mut Frame, body: Rectangle) {
    let x = body.top_left.x;
    let w = body.size.width as i32;
    let top = body.top_left.y;
    let bottom = top + body.size.height as i32;
    let right_w = (w * 2 / 5).max(60);
    let left_w = w - right_w - th.pad;
    let rx = x + left_w + th.pad;

    // Left: meeting name, then the roster.
    let f = largest_fitting(&th.headlines[1..], &m.name, left_w);
    let mut y = top + f.ascent();
    f.draw(t, &f.fit(&m.name, left_w), Point::new(x, y), Align::Left, WHITE);
    y += f.descent() + th.pad / 2;
    let pitch = th.body.height() + th.pad / 2;
    let dot = th.body.ascent() - 2;
    let n = m.participants.len();
    // Rows that fit; when not all do, the last row says "+N more" and whoever is speaking is
    // always among the rows shown.
    let fit = ((bottom - y) / pitch).max(0) as usize;
    let shown: Vec<usize> = if n <= fit {
        (0..n).collect()
    } else {
        let mut v: Vec<usize> = (0..fit.saturating_sub(1)).collect();
        if let Some(s) = m.participants.iter().position(|p| p.speaking) {
            if s >= v.len() && !v.is_empty() {
                v.pop();
                v.push(s);
            }
        }
        v
    };
    for &i in &shown {
        let Some(p) = m.participants.get(i) else { continue };
        let base = y + th.body.ascent();
        let c = Circle::new(Point::new(x, base - dot), dot as u32);
        let (font, colour) = if p.speaking {
            c.into_styled(PrimitiveStyle::with_fill(BRIGHT_GREEN)).draw(t).ok();
            (&th.bold, BRIGHT_GREEN)
        } else if p.muted {
            c.into_styled(PrimitiveStyle::with_stroke(DIM, 1)).draw(t).ok();
            (&th.body, GREY)
        } else {
            c.into_styled(PrimitiveStyle::with_stroke(GREY, 1)).draw(t).ok();
            (&th.body, WHITE)
        };
        let nx = x + dot + th.pad / 2;
        let tag = if p.muted { " muted" } else { "" };
        let tag_w = th.small.width(tag);
        let name = font.fit(&p.name, left_w - (nx - x) - tag_w);
        let nw = font.draw(t, &name, Point::new(nx, base), Align::Left, colour);
        if p.muted {
            th.small.draw(t, tag, Point::new(nx + nw, base), Align::Left, DIM);
        }
        y += pitch;
    }
    if shown.len() < n {
        let more = format!("+{} more", n - shown.len());
        th.small.draw(t, &more, Point::new(x + dot + th.pad / 2, y + th.body.ascent()), Align::Left, GREY);
    }

    // Right: mic, encoder, (reduced mode,) bitrates, loss.
    let mut y = top;
    let panel_h = th.bold.height() + th.pad + 4;
    let panel = Rectangle::new(Point::new(rx, y), Size::new(right_w as u32, panel_h as u32));
    let radii = CornerRadii::new(Size::new(4, 4));
    if m.muted {
        RoundedRectangle::new(panel, radii).into_styled(PrimitiveStyle::with_fill(RED)).draw(t).ok();
        let base = y + panel_h / 2 + th.bold.ascent() / 2;
        th.bold.draw(t, "MIC MUTED", Point::new(rx + right_w / 2, base), Align::Center, WHITE);
    } else {
        RoundedRectangle::new(panel, radii).into_styled(PrimitiveStyle::with_stroke(GREY, 1)).draw(t).ok();
        let base = y + panel_h / 2 + th.small.ascent() / 2;
        let lw = th.small.draw(t, "MIC", Point::new(rx + th.pad / 2, base), Align::Left, GREY);
        let mx = rx + th.pad / 2 + lw + th.pad / 2;
        let meter = Rectangle::new(
            Point::new(mx, y + 5),
            Size::new((rx + right_w - th.pad / 2 - mx).max(4) as u32, (panel_h - 10).max(2) as u32),
        );
        level_meter(t, meter, meter_fraction(m.mic_level_dbfs));
    }
    y += panel_h + th.pad;

    // Encoder chip.
    let chip_h = th.bold.height() + 6;
    let chip_c = match m.encoder {
        crate::Encoder::HwH264 => BLUE,
        crate::Encoder::SwAv1 => PURPLE,
        crate::Encoder::None => DIM,
    };
    let chip = Rectangle::new(Point::new(rx, y), Size::new(right_w as u32, chip_h as u32));
    RoundedRectangle::new(chip, radii).into_styled(PrimitiveStyle::with_fill(chip_c)).draw(t).ok();
    let base = y + chip_h / 2 + th.bold.ascent() / 2;
    th.bold.draw(t, m.encoder.label(), Point::new(rx + right_w / 2, base), Align::Center, WHITE);
    y += chip_h + th.pad;

    // Stats.
    let loss_c = match m.loss_percent {
        p if p >= 5.0 => LIGHT_RED,
        p if p >= 1.0 => AMBER,
        _ => BRIGHT_GREEN,
    };
    let mut rows = vec![
        ("Send", format!("{}b/s", kbps(m.send_kbps)), kbps(m.send_kbps), WHITE),
        ("Recv", format!("{}b/s", kbps(m.recv_kbps)), kbps(m.recv_kbps), WHITE),
        ("Loss", loss(m.loss_percent), loss(m.loss_percent), loss_c),
    ];
    // The sender's reduced mode, while it adapts (amber: the room is seen at less than full).
    if let Some(mode) = &m.video_mode {
        // Narrow: the frame rate alone (the mode's first word).
        let first = mode.split(' ').next().unwrap_or(mode).to_owned();
        rows.insert(0, ("Mode", mode.clone(), first, AMBER));
    }
    let pitch = th.body.height() + th.pad / 2;
    for (label, long, short, c) in rows {
        if y + th.body.height() > bottom {
            break;
        }
        let base = y + th.body.ascent();
        let lw = th.small.width(label) + th.pad / 2;
        // Narrow column: drop the unit, then shorten the value.
        let value = if lw + th.bold.width(&long) <= right_w { long } else { short };
        let value = th.bold.fit(&value, right_w - lw);
        th.small.draw(t, label, Point::new(rx, base), Align::Left, GREY);
        th.bold.draw(t, &value, Point::new(rx + right_w, base), Align::Right, c);
        y += pitch;
    }
}

/// A segmented level meter: green, then amber above -12 dBFS, red above -3 dBFS.
fn level_meter(t: &mut Frame, r: Rectangle, fraction: f32) {
    let seg = 4;
    let n = (r.size.width as i32 + 1) / seg;
    let lit = (fraction * n as f32).round() as i32;
    for i in 0..n {
        let pos = (i as f32 + 0.5) / n as f32;
        let c = if pos > 57.0 / 60.0 {
            RED
        } else if pos > 48.0 / 60.0 {
            AMBER
        } else {
            BRIGHT_GREEN
        };
        let c = if i < lit { c } else { Rgb888::new(45, 45, 45) };
        fill(t, Rectangle::new(r.top_left + Point::new(i * seg, 0), Size::new((seg - 1) as u32, r.size.height)), c);
    }
}

fn progress(t: &mut Frame, r: Rectangle, percent: u8) {
    let radii = CornerRadii::new(Size::new(3, 3));
    RoundedRectangle::new(r, radii).into_styled(PrimitiveStyle::with_stroke(GREY, 1)).draw(t).ok();
    let inner_w = (r.size.width.saturating_sub(6)) * u32::from(percent.min(100)) / 100;
    let inner = Rectangle::new(r.top_left + Point::new(3, 3), Size::new(inner_w, r.size.height.saturating_sub(6)));
    fill(t, inner, BLUE);
}

fn fill(t: &mut Frame, r: Rectangle, c: Rgb888) {
    let _ = t.fill_solid(&r, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{render, PhaseName};

    #[test]
    fn big_screens_get_the_base_layout_scaled_with_square_pixels() {
        let now = Instant::now();
        let state = DisplayState::sample(PhaseName::InMeeting, now);
        let base = render(&state, Size::new(320, 240), now);
        let big = render(&state, Size::new(640, 480), now);
        for y in 0..480 {
            for x in 0..640 {
                assert_eq!(big.pixel(x, y), base.pixel(x / 2, y / 2), "({x},{y})");
            }
        }
        // 1031x770: scale 3 of a 343x256 layout, centred with a 1-pixel black margin.
        let odd = render(&state, Size::new(1031, 770), now);
        let logical = render(&state, Size::new(343, 256), now);
        assert_eq!(odd.pixel(0, 0), Some(Rgb888::BLACK));
        assert_eq!(odd.pixel(1, 1), logical.pixel(0, 0));
        assert_eq!(odd.pixel(1 + 3 * 342 + 2, 1 + 3 * 255 + 2), logical.pixel(342, 255));
    }

    #[test]
    fn long_texts_and_many_participants_stay_inside_the_screen() {
        let now = Instant::now();
        let mut state = DisplayState::sample(PhaseName::InMeeting, now);
        if let Phase::InMeeting(m) = &mut state.phase {
            m.name = "A very long meeting name that cannot possibly fit on one line".into();
            let p = m.participants[0].clone();
            m.participants = (0..30)
                .map(|i| crate::Participant { name: format!("{} {i} with a long suffix", p.name), ..p.clone() })
                .collect();
            m.send_kbps = 123_456;
            m.loss_percent = 100.0;
        }
        state.name = "a-box-name-that-is-far-too-long-for-any-footer".into();
        state.ip = Some("2001:db8:1234:5678:9abc:def0:1234:5678".parse().unwrap());
        // The footer stays intact: its background spans the bottom row.
        let f = render(&state, Size::new(320, 240), now);
        assert_eq!(f.pixel(2, 239), Some(FOOTER_BG));
        // "+N more" shows instead of participants running into the footer.
        let footer_top = (0..240).rev().find(|&y| f.pixel(2, y) != Some(FOOTER_BG)).unwrap();
        let body_bottom = (0..footer_top).rev().find(|&y| (0..160).any(|x| f.pixel(x, y) != Some(Rgb888::BLACK)));
        assert!(body_bottom.is_some_and(|y| y < footer_top - 4), "{body_bottom:?} vs {footer_top}");
    }
}

//! The 128x64 monochrome OLED layout (SSD1306/SH1106): one large headline, up to three detail
//! lines, and a footer with the box's name and IP address. Problems show the headline inverted
//! (a white bar) so they stand out across the room.

use super::summary::{kbps, loss, meter_fraction, summary, Severity};
use super::text::{largest_fitting, Align, Font};
use crate::{DisplayState, Frame, Meeting, Phase};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{Point, Primitive, Size};
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, Rectangle, Triangle};
use embedded_graphics::Drawable;
use std::time::Instant;
use u8g2_fonts::fonts;

const ON: Rgb888 = Rgb888::WHITE;
const OFF: Rgb888 = Rgb888::BLACK;

fn headline_fonts() -> [Font; 3] {
    [
        Font::new::<fonts::u8g2_font_helvB14_tf>(),
        Font::new::<fonts::u8g2_font_helvB12_tf>(),
        Font::new::<fonts::u8g2_font_helvB10_tf>(),
    ]
}
fn body() -> Font {
    Font::new::<fonts::u8g2_font_helvR08_tf>()
}
fn bold() -> Font {
    Font::new::<fonts::u8g2_font_helvB08_tf>()
}
fn tiny() -> Font {
    Font::new::<fonts::u8g2_font_5x7_tf>()
}

/// Draws `state` onto a (cleared) monochrome screen of any size up to 160x80.
pub fn draw(state: &DisplayState, now: Instant, t: &mut Frame) {
    let w = t.width() as i32;
    let h = t.height() as i32;
    footer(state, t, w, h);
    if h < 48 {
        compact(state, now, t, w);
        return;
    }
    if let Phase::InMeeting(m) = &state.phase {
        in_meeting(m, t, w);
        return;
    }
    let s = summary(&state.phase, now);
    // Headline band: rows 0..18.
    let fonts = headline_fonts();
    let font = largest_fitting(&fonts, &s.headline, w - 4);
    let text = font.fit(&s.headline, w - 4);
    let colour = if s.severity == Severity::Error {
        fill(t, Rectangle::new(Point::zero(), Size::new(w as u32, 20)), ON);
        OFF
    } else {
        ON
    };
    font.draw(t, &text, Point::new(w / 2, 15 - (14 - font.ascent()) / 2), Align::Center, colour);

    let lines = details(state, now);
    let body = body();
    let mut y = 30;
    for (i, line) in lines.iter().enumerate() {
        let f = if i == 0 { bold() } else { body.clone() };
        match line {
            Detail::Text(s) => {
                f.draw(t, &f.fit(s, w - 2), Point::new(1, y), Align::Left, ON);
            }
            Detail::Progress(p) => {
                let bar = Rectangle::new(Point::new(1, y - 7), Size::new(w as u32 - 2, 8));
                stroke(t, bar);
                let inner = (i32::from((*p).min(100)) * (w - 6) / 100).max(0) as u32;
                fill(t, Rectangle::new(Point::new(3, y - 5), Size::new(inner, 4)), ON);
            }
        }
        y += 11;
    }
}

/// 128x32 and other short panels: the headline (inverted for problems) above the footer.
fn compact(state: &DisplayState, now: Instant, t: &mut Frame, w: i32) {
    let s = summary(&state.phase, now);
    let headline = match &state.phase {
        Phase::InMeeting(m) if !m.muted => match m.participants.iter().find(|p| p.speaking) {
            Some(p) => p.name.clone(),
            None => m.name.clone(),
        },
        Phase::InMeeting(_) => "MIC MUTED".to_owned(),
        Phase::RelayLost { retry_at, .. } => format!("Relay lost {}s", retry_at.remaining_secs_ceil(now)),
        _ => s.headline,
    };
    let fonts = headline_fonts();
    let f = largest_fitting(&fonts, &headline, w - 2);
    let inverted = s.severity == Severity::Error || matches!(&state.phase, Phase::InMeeting(m) if m.muted);
    let colour = if inverted {
        fill(t, Rectangle::new(Point::zero(), Size::new(w as u32, 21)), ON);
        OFF
    } else {
        ON
    };
    f.draw(t, &f.fit(&headline, w - 2), Point::new(w / 2, 15 - (14 - f.ascent()) / 2), Align::Center, colour);
}

enum Detail {
    Text(String),
    Progress(u8),
}

fn details(state: &DisplayState, now: Instant) -> Vec<Detail> {
    use Detail::Text;
    match &state.phase {
        Phase::Booting { step, percent } => vec![Text(step.clone()), Detail::Progress(*percent)],
        Phase::NoNetwork { interface, problem } => {
            vec![Text(format!("{interface}: {}", problem.describe())), Text(capitalise(problem.fix()))]
        }
        Phase::FindingRelay { relay, attempt } => {
            vec![Text(relay.clone()), Text(format!("attempt {attempt}"))]
        }
        Phase::Joining { meeting, relay } => vec![Text(meeting.clone()), Text(format!("via {relay}"))],
        Phase::InMeeting(_) => Vec::new(),
        Phase::RelayLost { relay, reason, attempt, retry_at } => vec![
            Text(format!("Retry {attempt} in {} s", retry_at.remaining_secs_ceil(now))),
            Text(reason.clone()),
            Text(relay.clone()),
        ],
        Phase::ConfigError { key, line, problem, fix, .. } => vec![
            Text(match line {
                Some(l) => format!("{key} (line {l})"),
                None => key.clone(),
            }),
            Text(problem.clone()),
            Text(capitalise(fix)),
        ],
        Phase::DeviceMissing { expected, fix, .. } => {
            vec![Text(expected.clone()), Text(capitalise(fix))]
        }
        Phase::SetUp { file, place } => vec![
            Text(format!("Edit {file}")),
            Text(place.clone()),
            Text(state.ip.map_or_else(|| "Waiting for an address".to_owned(), |ip| format!("IP {ip}"))),
        ],
        Phase::Leaving { meeting, done } => {
            vec![Text(meeting.clone()), Text(if *done { "Left; stopping" } else { "Saying goodbye" }.to_owned())]
        }
    }
}

/// The in-meeting screen: meeting name, who speaks (or MUTED), mic meter, encoder (and the
/// sender's reduced mode), bitrates, loss.
fn in_meeting(m: &Meeting, t: &mut Frame, w: i32) {
    let bold = bold();
    let tiny = tiny();
    // Row 1: meeting name, participant count at the right.
    let count = format!("{}", m.participants.len() + 1);
    let cw = tiny.width(&count);
    tiny.draw(t, &count, Point::new(w - 1, 7), Align::Right, ON);
    person(t, Point::new(w - cw - 7, 0));
    bold.draw(t, &bold.fit(&m.name, w - cw - 12), Point::new(0, 8), Align::Left, ON);

    // Row 2: the big line: MUTED (inverted) or who is speaking.
    let fonts = headline_fonts();
    let big_fonts = &fonts[1..];
    if m.muted {
        fill(t, Rectangle::new(Point::new(0, 11), Size::new(w as u32, 17)), ON);
        let f = &big_fonts[0];
        f.draw(t, "MIC MUTED", Point::new(w / 2, 19 + f.ascent() / 2), Align::Center, OFF);
    } else {
        let speaker = m.participants.iter().find(|p| p.speaking);
        let text = match speaker {
            Some(p) => p.name.clone(),
            None => "(quiet)".to_owned(),
        };
        speaking_icon(t, Point::new(0, 13), speaker.is_some());
        let f = largest_fitting(big_fonts, &text, w - 14);
        f.draw(t, &f.fit(&text, w - 14), Point::new(13, 19 + f.ascent() / 2), Align::Left, ON);
    }

    // Row 3: mic meter.
    tiny.draw(t, "MIC", Point::new(0, 37), Align::Left, ON);
    let x0 = 17;
    let bar_w = w - x0 - 1;
    stroke(t, Rectangle::new(Point::new(x0, 30), Size::new(bar_w as u32, 8)));
    if !m.muted {
        let lit = (meter_fraction(m.mic_level_dbfs) * (bar_w - 4) as f32) as i32;
        // Segmented: 3 px on, 1 px off.
        let mut x = 0;
        while x + 3 <= lit {
            fill(t, Rectangle::new(Point::new(x0 + 2 + x, 32), Size::new(3, 4)), ON);
            x += 4;
        }
    } else {
        Line::new(Point::new(x0, 37), Point::new(x0 + bar_w - 1, 30))
            .into_styled(PrimitiveStyle::with_stroke(ON, 1))
            .draw(t)
            .ok();
    }

    // Row 4: encoder (and its reduced mode), loss. Row 5: send / receive bitrates.
    let loss_w = tiny.draw(t, &format!("loss {}", loss(m.loss_percent)), Point::new(w - 1, 45), Align::Right, ON);
    let room = w - loss_w - 4;
    let encoder = match &m.video_mode {
        // All of it if it fits, else the frame rate alone (the mode's first word).
        Some(mode) => [
            format!("{} {mode}", m.encoder.label()),
            format!("{} {}", m.encoder.label(), mode.split(' ').next().unwrap_or(mode)),
        ]
        .into_iter()
        .find(|s| tiny.width(s) <= room)
        .unwrap_or_else(|| m.encoder.label().to_owned()),
        None => m.encoder.label().to_owned(),
    };
    tiny.draw(t, &tiny.fit(&encoder, room), Point::new(0, 45), Align::Left, ON);
    tiny.draw(t, &format!("TX {}", kbps(m.send_kbps)), Point::new(0, 53), Align::Left, ON);
    tiny.draw(t, &format!("RX {}", kbps(m.recv_kbps)), Point::new(w - 1, 53), Align::Right, ON);
}

/// Footer: a rule, then the box name (left) and IP address (right).
fn footer(state: &DisplayState, t: &mut Frame, w: i32, h: i32) {
    let tiny = tiny();
    let ip = state.ip.map_or_else(|| "no IP".to_owned(), |ip| ip.to_string());
    let base = h - 1;
    Line::new(Point::new(0, h - 9), Point::new(w - 1, h - 9))
        .into_styled(PrimitiveStyle::with_stroke(ON, 1))
        .draw(t)
        .ok();
    let ipw = tiny.draw(t, &tiny.fit(&ip, w), Point::new(w - 1, base), Align::Right, ON);
    let room = w - ipw - 5;
    if room > 10 {
        tiny.draw(t, &tiny.fit(&state.name, room), Point::new(0, base), Align::Left, ON);
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn fill(t: &mut Frame, r: Rectangle, c: Rgb888) {
    r.into_styled(PrimitiveStyle::with_fill(c)).draw(t).ok();
}

fn stroke(t: &mut Frame, r: Rectangle) {
    r.into_styled(PrimitiveStyle::with_stroke(ON, 1)).draw(t).ok();
}

/// A 6x8 person glyph with its top-left at `p`.
fn person(t: &mut Frame, p: Point) {
    Circle::new(p + Point::new(1, 0), 4).into_styled(PrimitiveStyle::with_fill(ON)).draw(t).ok();
    fill(t, Rectangle::new(p + Point::new(0, 4), Size::new(6, 3)), ON);
}

/// A speaker with sound waves (when `active`) at top-left `p`, 11x12.
fn speaking_icon(t: &mut Frame, p: Point, active: bool) {
    fill(t, Rectangle::new(p + Point::new(0, 4), Size::new(3, 4)), ON);
    Triangle::new(p + Point::new(2, 4), p + Point::new(6, 0), p + Point::new(6, 11))
        .into_styled(PrimitiveStyle::with_fill(ON))
        .draw(t)
        .ok();
    Triangle::new(p + Point::new(2, 7), p + Point::new(6, 0), p + Point::new(6, 11))
        .into_styled(PrimitiveStyle::with_fill(ON))
        .draw(t)
        .ok();
    if active {
        for x in [8, 10] {
            Line::new(p + Point::new(x, 6 - (x - 6)), p + Point::new(x, 5 + (x - 6)))
                .into_styled(PrimitiveStyle::with_stroke(ON, 1))
                .draw(t)
                .ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{render, DisplayState, PhaseName};
    use embedded_graphics::prelude::Size;
    use std::time::Instant;

    #[test]
    fn short_panels_get_headline_and_footer_without_overlap() {
        let now = Instant::now();
        for name in PhaseName::ALL {
            let f = render(&DisplayState::sample(name, now), Size::new(128, 32), now);
            // Row 22 separates the headline band (0..=21) from the footer rule at row 23.
            assert!((0..128).all(|x| !f.is_lit(x, 22)), "{name}: headline runs into the footer");
            assert!((0..128).all(|x| f.is_lit(x, 23)), "{name}: footer rule missing");
            assert!((0..128).any(|x| (0..21).any(|y| f.is_lit(x, y))), "{name}: no headline");
        }
    }
}

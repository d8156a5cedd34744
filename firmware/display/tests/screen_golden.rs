//! Golden screens of the far end: 1, 2 and 4 remote rooms at 1280x720 and 1920x1080, composed
//! from the test source's pattern, must match docs/screens/meeting-<n>-rooms-<size>.png. The
//! scaler's SIMD path may differ by a unit or two between CPUs, so a pixel counts as different
//! past 6 per channel, and at most 0.01 % may differ (a changed caption moves more).
//! Regenerate after an intended change with
//! `ROOMCAST_UPDATE_SCREENS=1 cargo test -p roomcast-display --test screen_golden` and look at them.
//!
//! Also: the pattern's corner blocks are found at each tile's picture corners (the picture is
//! scaled into its place), and the decode-and-compose chain works on a real AV1 stream.

#[path = "common/pattern.rs"]
mod pattern;

use std::path::PathBuf;
use std::time::Instant;

use embedded_graphics::pixelcolor::RgbColor;
use embedded_graphics::prelude::Size;
use roomcast_display::backend::png::{read_png, write_png};
use roomcast_display::screen::{Compositor, I420Planes, Layout, Status, Tile};
use roomcast_display::Frame;

const SIZES: [Size; 2] = [Size::new(1280, 720), Size::new(1920, 1080)];
const NAMES: [&str; 4] = ["Oslo - Fjord room", "Lisbon", "Nairobi board room with a long name", "Lab 3"];
const PIC: (u32, u32) = (640, 360);

fn status() -> Status {
    Status {
        room: "Blue room".into(),
        meeting: "Weekly sync".into(),
        encoder: "SW AV1".into(),
        send_kbps: 812,
        recv_kbps: 2430,
        loss_percent: 0.4,
        muted: false,
    }
}

fn compose(size: Size, rooms: usize, pictures: &[Vec<u8>], self_view: Option<&[u8]>) -> (Compositor, Frame) {
    let mut c = Compositor::new(size, Layout::Auto);
    let tiles: Vec<Tile<'_>> = (0..rooms)
        .map(|i| Tile {
            name: NAMES[i],
            muted: i == 1,
            speaking: i == 0,
            picture: pictures.get(i).and_then(|p| I420Planes::packed(PIC.0, PIC.1, p)),
        })
        .collect();
    let sv = self_view.and_then(|p| I420Planes::packed(PIC.0, PIC.1, p));
    let frame = c.compose(&tiles, sv, &status()).unwrap();
    (c, frame)
}

fn screens_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screens")
}

fn rgb(f: &Frame, x: u32, y: u32) -> pattern::Rgb {
    let p = f.pixel(x, y).unwrap();
    (p.r(), p.g(), p.b())
}

#[test]
fn layouts_match_their_golden_pngs() {
    let update = std::env::var_os("ROOMCAST_UPDATE_SCREENS").is_some();
    let review = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screens");
    let pictures: Vec<Vec<u8>> = (0..4).map(|i| pattern::picture(PIC.0, PIC.1, i, 10 + i as u64 * 7)).collect();
    // Room 4 has no picture yet in the 4-room screens ("waiting for video"); 4 rooms also show the self-view.
    let own = pattern::picture(PIC.0, PIC.1, 8, 3);
    let mut failures = Vec::new();
    for size in SIZES {
        for rooms in [1usize, 2, 4] {
            let (pics, sv) = if rooms == 4 { (&pictures[..3], Some(own.as_slice())) } else { (&pictures[..], None) };
            let (_, frame) = compose(size, rooms, pics, sv);
            let file = format!("meeting-{rooms}-rooms-{}x{}.png", size.width, size.height);
            let golden = screens_dir().join(&file);
            if update {
                write_png(&frame, &golden).unwrap();
                continue;
            }
            let problem = match read_png(&golden) {
                Ok(g) if !g.same_size(&frame) => format!("size {}x{}", g.width(), g.height()),
                Ok(g) => {
                    let differ = g
                        .pixels()
                        .iter()
                        .zip(frame.pixels())
                        .filter(|(a, b)| !pattern::near((a.r(), a.g(), a.b()), (b.r(), b.g(), b.b()), 6))
                        .count();
                    if differ * 10_000 <= g.pixels().len() {
                        continue;
                    }
                    format!("{differ} pixels differ")
                }
                Err(e) => e.to_string(),
            };
            std::fs::create_dir_all(&review).unwrap();
            let new = review.join(&file);
            write_png(&frame, &new).unwrap();
            failures.push(format!("{file}: {problem}; new render: {}", new.display()));
        }
    }
    assert!(failures.is_empty(), "screens differ from docs/screens:\n{}", failures.join("\n"));
}

/// The corner blocks of room `room`'s pattern at its tile's picture corners (the bottom-left
/// block is under the caption, so top left, top right and bottom right).
fn assert_pattern_in_tile(c: &Compositor, frame: &Frame, rooms: usize, room: usize, tol: u8) {
    let tile = c.tile_rects(rooms)[room];
    let r = Compositor::picture_rect(tile, PIC.0, PIC.1);
    let (x0, y0) = (r.top_left.x as u32, r.top_left.y as u32);
    let (w, h) = (r.size.width, r.size.height);
    // Inside the blocks, clear of the speaker frame and of the block edges.
    let (ix, iy) = (w / 12, h / 12);
    for (x, y, want, what) in [
        (x0 + ix, y0 + iy, pattern::RED, "red top left"),
        (x0 + w - ix, y0 + iy, pattern::GREEN, "green top right"),
        (x0 + w - ix, y0 + h - iy, pattern::WHITE, "white bottom right"),
        (x0 + w / 2, y0 + h / 3, pattern::ROOM_COLOURS[room], "the room's colour in the middle"),
    ] {
        let got = rgb(frame, x, y);
        assert!(pattern::near(got, want, tol), "{rooms} rooms, room {room}: {what} at ({x},{y}): {got:?} not {want:?}");
    }
}

#[test]
fn each_rooms_pattern_is_found_at_its_tiles_place() {
    let pictures: Vec<Vec<u8>> = (0..9).map(|i| pattern::picture(PIC.0, PIC.1, i, 0)).collect();
    for size in SIZES {
        for rooms in [1usize, 2, 3, 4, 5, 9] {
            let (c, frame) = compose_n(size, rooms, &pictures);
            for room in 0..rooms {
                assert_pattern_in_tile(&c, &frame, rooms, room, 12);
            }
        }
    }
}

fn compose_n(size: Size, rooms: usize, pictures: &[Vec<u8>]) -> (Compositor, Frame) {
    let mut c = Compositor::new(size, Layout::Auto);
    let names: Vec<String> = (0..rooms).map(|i| format!("Room {i}")).collect();
    let tiles: Vec<Tile<'_>> = (0..rooms)
        .map(|i| Tile {
            name: &names[i],
            muted: false,
            speaking: false,
            picture: I420Planes::packed(PIC.0, PIC.1, &pictures[i]),
        })
        .collect();
    let frame = c.compose(&tiles, None, &status()).unwrap();
    (c, frame)
}

#[test]
fn speaker_frame_caption_and_strip_are_drawn() {
    let pictures: Vec<Vec<u8>> = (0..2).map(|i| pattern::picture(PIC.0, PIC.1, i, 0)).collect();
    let (c, frame) = compose(Size::new(1280, 720), 2, &pictures, None);
    let tiles = c.tile_rects(2);
    // Room 0 speaks: its tile's top edge is the green frame, room 1's is not.
    let top = |t: &embedded_graphics::primitives::Rectangle| {
        rgb(&frame, t.top_left.x as u32 + t.size.width / 2, t.top_left.y as u32 + 1)
    };
    assert!(pattern::near(top(&tiles[0]), (80, 220, 110), 10), "{:?}", top(&tiles[0]));
    assert!(!pattern::near(top(&tiles[1]), (80, 220, 110), 40), "{:?}", top(&tiles[1]));
    // Room 1 is muted: red somewhere in its caption row.
    let t = tiles[1];
    let row = t.top_left.y as u32 + t.size.height - t.size.height / 40 - 4 - 6;
    let red = (t.top_left.x as u32..t.top_left.x as u32 + t.size.width / 2)
        .any(|x| pattern::near(rgb(&frame, x, row), (200, 40, 40), 10));
    assert!(red, "muted mark");
    // The strip at the bottom holds light text on dark.
    let strip_y = 720 - c.strip_height() / 2;
    let lit = (0..1280).filter(|&x| rgb(&frame, x, strip_y).0 > 120).count();
    assert!(lit > 50, "{lit} lit pixels in the strip");
}

#[test]
fn decoded_av1_lands_in_its_tile() {
    use roomcast_media::decode::av1::Av1Decoder;
    use roomcast_media::encoder::auto::SoftwareKind;
    use roomcast_media::encoder::EncoderConfig;
    use roomcast_media::frame::VideoFrame;

    let (w, h) = (320u32, 180u32);
    let mut cfg = EncoderConfig::new(w, h, 15);
    cfg.bitrate_bps = 800_000;
    let mut enc = SoftwareKind::DEFAULT.open(cfg).unwrap();
    let mut dec = Av1Decoder::new(1).unwrap();
    let mut last = None;
    for i in 0..6u64 {
        let f = VideoFrame {
            width: w,
            height: h,
            data: pattern::picture(w, h, 2, i),
            index: i,
            captured_at: Instant::now(),
        };
        let mut out = enc.encode(&f).unwrap();
        if i == 5 {
            out.extend(enc.flush().unwrap());
        }
        for e in out {
            dec.handle_frame(Instant::now(), e.index as u32 * 6000, &e.data).unwrap();
            while let Some(p) = dec.poll_picture() {
                last = Some(p);
            }
        }
    }
    let pic = last.expect("a decoded picture");
    let p = pic.planes();
    let planes = I420Planes {
        width: p.width,
        height: p.height,
        y: p.y,
        u: p.u,
        v: p.v,
        y_stride: p.y_stride,
        uv_stride: p.uv_stride,
    };
    let mut c = Compositor::new(Size::new(1280, 720), Layout::Auto);
    let tile = Tile { name: "Remote", muted: false, speaking: false, picture: Some(planes) };
    let frame = c.compose(&[tile], None, &status()).unwrap();
    let r = Compositor::picture_rect(c.tile_rects(1)[0], w, h);
    let (x0, y0, tw, th) = (r.top_left.x as u32, r.top_left.y as u32, r.size.width, r.size.height);
    for (x, y, want) in [(x0 + tw / 12, y0 + th / 12, pattern::RED), (x0 + tw - tw / 12, y0 + th / 12, pattern::GREEN)]
    {
        let got = rgb(&frame, x, y);
        assert!(pattern::near(got, want, 40), "({x},{y}): {got:?} not {want:?}");
    }
}

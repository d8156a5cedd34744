//! The far end on the room's screen, end to end on loopback: one `roomcast server` and two
//! `roomcast box` daemons with synthetic camera and microphone; box B has
//! `[screen] output = "png:…"`. Its PNG (rewritten about once a second) must show room A's
//! test pattern (the synthetic camera's colour bars: all six saturated hues) in A's tile, and
//! A's name as the tile's caption, pixel for pixel as the compositor draws it (checked against
//! a screen composed here with the name "A", and shown not to match one with another name).
//! B has `[screen] self_view = true`: its own camera's colour bars show in the self-view's
//! rect (bottom right, white frame). Then box A is muted (SIGUSR1, as the mute button): B's state names A muted and B's screen
//! shows the red MUTED mark beside A's name, as the compositor draws it.
//!
//! A second test does the same for a room that sends H.264 (as a box with a kernel M2M encoder
//! does; this machine has none, so the test is that room: OpenH264's encoder behind the box's
//! own `VideoChain`, SRTP and media seal): box B decodes it (OpenH264 in software, no M2M
//! decoder here) and shows its colour bars and name.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use roomcast_crypt::{Protector, SrtpKey};
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::clock::SystemClock;
use roomcast_media::encoder::{EncodedFrame, VideoCodec, VideoEncoder};
use roomcast_media::frame::VideoFrame;
use roomcast_media::pipeline::sender::{Outgoing, VideoChain};
use roomcast_media::pipeline::{H264_PROFILE_LEVEL_ID, PT_H264};
use roomcast_media::MediaError;
use roomcast_meeting::client;
use roomcast_meeting::media_auth::{MediaKey, Sealer};
use roomcast_meeting::roster::{Caps, JoinReply, VideoCaps};

use roomcast_display::backend::png::read_png;
use roomcast_display::screen::{output::PNG_SIZE, Compositor, Layout, Status, Tile};
use roomcast_display::Frame;

mod meeting_util;
use meeting_util::{box_config, read_state, spawn_box, spawn_server, wait_for, ServerPorts};

const MEETING: &str = "screen";
const TOKEN: &str = "screen-token";

/// An axis-aligned box in pixels: x, y, width, height.
type Area = (i32, i32, u32, u32);

fn rgb(bytes: &[u8], width: u32, x: i32, y: i32) -> (u8, u8, u8) {
    let i = (y as usize * width as usize + x as usize) * 3;
    (bytes[i], bytes[i + 1], bytes[i + 2])
}

/// The hue sector (0 red, 1 yellow, 2 green, 3 cyan, 4 blue, 5 magenta) of a saturated pixel.
fn hue_sector(p: (u8, u8, u8)) -> Option<usize> {
    let (r, g, b) = (i32::from(p.0), i32::from(p.1), i32::from(p.2));
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max - min < 90 {
        return None;
    }
    let d = f64::from(max - min);
    let h = if max == r {
        60.0 * ((f64::from(g - b) / d).rem_euclid(6.0))
    } else if max == g {
        60.0 * (f64::from(b - r) / d + 2.0)
    } else {
        60.0 * (f64::from(r - g) / d + 4.0)
    };
    Some((((h + 30.0) / 60.0) as usize) % 6)
}

/// How many pixels of each hue sector the band of `area` between 35 % and 65 % of its height holds.
fn hues_in(frame: &Frame, area: Area) -> [usize; 6] {
    let rgb = frame.to_rgb_bytes();
    let w = frame.width() as usize;
    let mut count = [0; 6];
    let (x0, y0, aw, ah) = area;
    for y in (y0 + ah as i32 * 35 / 100)..(y0 + ah as i32 * 65 / 100) {
        for x in (x0 + aw as i32 / 20)..(x0 + aw as i32 * 19 / 20) {
            let i = (y as usize * w + x as usize) * 3;
            if let Some(s) = hue_sector((rgb[i], rgb[i + 1], rgb[i + 2])) {
                count[s] += 1;
            }
        }
    }
    count
}

/// The share of the caption pixels (white text, its dark pill and the red MUTED pill in
/// `reference`, inside `tile`) that `actual` has exactly.
fn caption_match(actual: &Frame, reference: &Frame, tile: Area) -> (usize, usize) {
    let (x0, y0, w, h) = tile;
    let (a, r, width) = (actual.to_rgb_bytes(), reference.to_rgb_bytes(), actual.width());
    let (mut seen, mut same) = (0, 0);
    // The caption sits in the tile's bottom quarter, left half.
    for y in (y0 + h as i32 * 3 / 4)..(y0 + h as i32) {
        for x in x0..(x0 + w as i32 / 2) {
            let p = rgb(&r, width, x, y);
            if p == (255, 255, 255) || p == (16, 16, 20) || p == (200, 40, 40) {
                seen += 1;
                if rgb(&a, width, x, y) == p {
                    same += 1;
                }
            }
        }
    }
    (seen, same)
}

fn reference(name: &str, muted: bool) -> Frame {
    let mut c = Compositor::new(PNG_SIZE, Layout::Auto);
    let tiles = [Tile { name, muted, speaking: false, picture: None }];
    c.compose(&tiles, None, &Status::default()).unwrap()
}

fn check(png: &Path, tile: Area, name: &str, muted: bool) -> Result<String, String> {
    let frame = read_png(png).map_err(|e| e.to_string())?;
    if (frame.width(), frame.height()) != (PNG_SIZE.width, PNG_SIZE.height) {
        return Err(format!("size {}x{}", frame.width(), frame.height()));
    }
    let hues = hues_in(&frame, tile);
    if hues.iter().any(|&n| n < 200) {
        return Err(format!("the test pattern's six hues in {name}'s tile: {hues:?}"));
    }
    let (seen, same) = caption_match(&frame, &reference(name, muted), tile);
    if seen < 200 || same * 100 < seen * 99 {
        return Err(format!("caption \"{name}\" (muted {muted}): {same} of {seen} pixels as drawn"));
    }
    if !muted {
        let (seen_m, same_m) = caption_match(&frame, &reference(name, true), tile);
        if same_m * 100 >= seen_m * 99 {
            return Err(format!("an unmuted room's caption matches the muted one ({same_m} of {seen_m})"));
        }
    }
    let (seen_z, same_z) = caption_match(&frame, &reference("Zebra room", muted), tile);
    if same_z * 100 >= seen_z * 99 {
        return Err(format!("the caption also matches another name ({same_z} of {seen_z})"));
    }
    Ok(format!("hues {hues:?}, caption {same}/{seen}, other name {same_z}/{seen_z}"))
}

/// The only remote room's tile on a screen of [`PNG_SIZE`].
fn only_tile(c: &Compositor) -> Area {
    let t = c.tile_rects(1)[0];
    (t.top_left.x, t.top_left.y, t.size.width, t.size.height)
}

/// Waits (60 s at most) until `png` passes [`check`] for room `name`, printing each new reason it
/// does not yet and, at the end, how long it took.
fn wait_for_screen(png: &Path, tile: Area, name: &str, muted: bool) {
    let mut last = String::new();
    // Unoptimised (the test build), composing and writing one 1280x720 PNG takes seconds on a loaded machine.
    let what = format!("B's screen showing {name}'s pattern and name (muted {muted})");
    let took = wait_for(&what, Duration::from_secs(60), || match check(png, tile, name, muted) {
        Ok(found) => {
            last = found;
            (true, String::new())
        }
        Err(e) => {
            if e != last {
                eprintln!("B's screen not yet right: {e}");
                last = e.clone();
            }
            (false, e)
        }
    });
    eprintln!("B's screen right after {took:?}: {last}");
}

#[test]
fn the_other_room_is_on_the_screen_with_its_name() {
    let dir = std::env::temp_dir().join(format!("roomcast-screen-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let http = ports.http;
    let _server = spawn_server("server", &ports.server_args(5), &dir.join("server.log"), MEETING, TOKEN);

    let png = dir.join("screen-B.png");
    let server = format!("127.0.0.1:{http}");
    let mut boxes = Vec::new();
    for (room, output) in [("A", "none".to_string()), ("B", format!("png:{}", png.display()))] {
        let cfg = box_config(&dir, room, &server, MEETING, TOKEN, "");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!("\n[screen]\noutput = \"{output}\"\nself_view = {}\n", room == "B"));
        std::fs::write(&cfg, text).unwrap();
        boxes.push(spawn_box(&dir, room, &cfg));
    }

    wait_for("B receiving A's video", Duration::from_secs(40), || {
        let s = read_state(&dir, "B");
        let ok = s.as_ref().is_some_and(|s| {
            s["others"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["room"] == "A" && o["video_frames"].as_u64().unwrap_or(0) >= 5))
        });
        (ok, s)
    });

    let c = Compositor::new(PNG_SIZE, Layout::Auto);
    let tile = only_tile(&c);
    wait_for_screen(&png, tile, "A", false);

    // Outside A's tile (the status strip) there is no test pattern.
    let frame = read_png(&png).unwrap();
    let strip_top = (PNG_SIZE.height - c.strip_height()) as i32;
    let strip = hues_in(&frame, (0, strip_top, PNG_SIZE.width, c.strip_height()));
    assert!(strip.iter().filter(|&&n| n > 0).count() <= 1, "no colour bars in the status strip: {strip:?}");

    // B's own camera (160x90, the same synthetic bars) in the self-view rect, framed in white; A's
    // picture alone would show one or two bars there (the rect covers a fifth of its width).
    let sv = c.self_view_rect(160, 90);
    let sv_area: Area = (sv.top_left.x, sv.top_left.y, sv.size.width, sv.size.height);
    let hues = hues_in(&frame, sv_area);
    assert!(hues.iter().all(|&n| n >= 20), "B's own colour bars in the self-view {sv:?}: {hues:?}");
    let rgb_bytes = frame.to_rgb_bytes();
    let (right, mid) = (sv.top_left.x + sv.size.width as i32 - 1, sv.top_left.y + sv.size.height as i32 / 2);
    assert_eq!(rgb(&rgb_bytes, frame.width(), right, mid), (255, 255, 255), "the self-view's white frame");

    // A mutes (SIGUSR1 is the mute button): the service learns it from A's keepalive, B from the roster.
    boxes[0].signal(libc::SIGUSR1);
    wait_for("B's state naming A muted", Duration::from_secs(20), || {
        let s = read_state(&dir, "B");
        let ok = s.as_ref().is_some_and(|s| {
            s["others"].as_array().is_some_and(|o| o.iter().any(|o| o["room"] == "A" && o["muted"] == true))
        });
        (ok, s.map(|s| s["others"].clone()))
    });
    wait_for_screen(&png, tile, "A", true);
    drop(boxes);
    if std::env::var_os("ROOMCAST_KEEP_TEST_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// OpenH264's encoder as a [`VideoEncoder`], an IDR every [`H264_KEY_EVERY`] frames.
struct OpenH264 {
    encoder: openh264::encoder::Encoder,
}

/// Frames between two IDRs of the H.264 room (1 s at 10 fps).
const H264_KEY_EVERY: u64 = 10;

impl VideoEncoder for OpenH264 {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }
    fn describe(&self) -> String {
        "OpenH264 (the test's H.264 room)".into()
    }
    fn encode(&mut self, frame: &VideoFrame) -> roomcast_media::Result<Vec<EncodedFrame>> {
        let keyframe = frame.index % H264_KEY_EVERY == 0;
        if keyframe {
            self.encoder.force_intra_frame();
        }
        let yuv =
            openh264::formats::YUVBuffer::from_vec(frame.data.clone(), frame.width as usize, frame.height as usize);
        let data = self.encoder.encode(&yuv).map_err(|e| MediaError::encoder("openh264", e.to_string()))?.to_vec();
        Ok(vec![EncodedFrame {
            codec: VideoCodec::H264,
            data,
            keyframe,
            index: frame.index,
            captured_at: frame.captured_at,
        }])
    }
    fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }
    fn set_bitrate(&mut self, _bitrate_bps: u32) -> roomcast_media::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> roomcast_media::Result<Vec<EncodedFrame>> {
        Ok(Vec::new())
    }
}

/// The H.264 room "H": joins with its SRTP key and H.264 caps, then sends the synthetic camera's
/// colour bars at 320x180, 10 fps, until `stop` (60 s at most).
fn h264_room(http: u16, media: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let (w, h, fps) = (320u32, 180u32, 10u32);
    let caps = Caps {
        video: Some(VideoCaps {
            codec: "H264".into(),
            payload_type: PT_H264,
            width: w as u16,
            height: h as u16,
            fps: fps as u16,
            fmtp: Some(format!("packetization-mode=1;profile-level-id={H264_PROFILE_LEVEL_ID}")),
        }),
        audio: None,
    };
    let key = SrtpKey::from_os(0);
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.write_all(&client::Call::join_keyed(MEETING, "H", &caps, Some(&key)).encode("h", TOKEN, None)).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let join: JoinReply = client::decode_join(&client::parse_response(&reply).unwrap()).unwrap();
    std::thread::spawn(move || {
        let sealer = Sealer::new(MediaKey::from_secret(&join.secret), 1);
        let mut protector = Protector::new(key).unwrap();
        let encoder = OpenH264 { encoder: openh264::encoder::Encoder::new().unwrap() };
        let mut chain = VideoChain::new(encoder, join.ssrc.video, "H", 1200, &mut rand::rng(), Arc::new(SystemClock));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        let mut sent = 0u64;
        for index in 0u64.. {
            if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            let due = start + Duration::from_millis(index * 1000 / u64::from(fps));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let frame = SyntheticCamera::render(w, h, index, Instant::now());
            chain.handle_frame(Instant::now(), SystemTime::now(), &frame).unwrap();
            while let Some(o) = chain.poll_transmit() {
                let (Outgoing::VideoRtp(p) | Outgoing::VideoRtcp(p) | Outgoing::AudioRtp(p) | Outgoing::AudioRtcp(p)) =
                    o;
                let _ = sock.send_to(&sealer.seal(&protector.protect(&p).unwrap()), ("127.0.0.1", media));
                sent += 1;
            }
        }
        sent
    })
}

#[test]
fn a_room_sending_h264_is_on_the_screen_with_its_name() {
    let dir = std::env::temp_dir().join(format!("roomcast-screen-h264-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let _server = spawn_server("server", &ports.server_args(5), &dir.join("server.log"), MEETING, TOKEN);
    let png = dir.join("screen-B.png");
    let cfg = box_config(&dir, "B", &format!("127.0.0.1:{}", ports.http), MEETING, TOKEN, "");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[screen]\noutput = \"png:{}\"\n", png.display()));
    std::fs::write(&cfg, text).unwrap();
    let _b = spawn_box(&dir, "B", &cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let room = h264_room(ports.http, ports.media, stop.clone());

    wait_for("B decoding H's H.264", Duration::from_secs(40), || {
        let s = read_state(&dir, "B");
        let ok = s.as_ref().is_some_and(|s| {
            s["others"].as_array().is_some_and(|o| {
                o.iter().any(|o| {
                    o["room"] == "H" && o["video_codec"] == "H.264" && o["video_frames"].as_u64().unwrap_or(0) >= 5
                })
            })
        });
        (ok, s.map(|s| s["others"].clone()))
    });
    wait_for_screen(&png, only_tile(&Compositor::new(PNG_SIZE, Layout::Auto)), "H", false);
    let state = read_state(&dir, "B").unwrap();
    assert!(
        state["errors"].as_array().is_some_and(|e| e.iter().all(|e| !e.to_string().contains("H.264"))),
        "no H.264 decoding problem: {state:#}"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(room.join().unwrap() > 10, "H sent its stream");
    if std::env::var_os("ROOMCAST_KEEP_TEST_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

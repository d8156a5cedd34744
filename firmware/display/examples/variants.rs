//! Renders edge-case variants of the screens (muted, SW AV1, long names, IPv6, big loss) to
//! PNGs in the directory given as the first argument, for eyeballing layout changes:
//! `cargo run -p roomcast-display --example variants -- /tmp/screens`.

use embedded_graphics::prelude::Size;
use roomcast_display::backend::png::write_png;
use roomcast_display::{render, DisplayState, Encoder, Phase, PhaseName};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let now = Instant::now();
    let mut muted = DisplayState::sample(PhaseName::InMeeting, now);
    if let Phase::InMeeting(m) = &mut muted.phase {
        m.muted = true;
        m.encoder = Encoder::SwAv1;
        m.loss_percent = 7.5;
        for p in &mut m.participants {
            p.speaking = false;
        }
    }
    let mut long = DisplayState::sample(PhaseName::InMeeting, now);
    if let Phase::InMeeting(m) = &mut long.phase {
        m.name = "Quarterly all-hands with the whole engineering department".into();
        let p = m.participants[0].clone();
        m.participants = (0..12)
            .map(|i| roomcast_display::Participant {
                name: format!("Participant number {i} (東京)"),
                speaking: i == 3,
                ..p.clone()
            })
            .collect();
        m.send_kbps = 12_345;
        m.recv_kbps = 850;
    }
    long.name = "conference-room-on-the-fourth-floor".into();
    long.ip = Some("2001:db8:1234:5678:9abc:def0:1234:5678".parse().unwrap());
    let mut cfg = DisplayState::sample(PhaseName::ConfigError, now);
    if let Phase::ConfigError { key, problem, fix, line, .. } = &mut cfg.phase {
        *key = "media.camera.device_path_override".into();
        *problem = "no such device /dev/v4l/by-id/usb-Logitech_Webcam_C930e".into();
        *fix = "run roomcast probe and copy a camera path from its output".into();
        *line = None;
    }
    for (name, state) in [("muted", &muted), ("long", &long), ("config-long", &cfg)] {
        for size in [Size::new(128, 64), Size::new(320, 240), Size::new(480, 320)] {
            let path = dir.join(format!("{name}-{}x{}.png", size.width, size.height));
            write_png(&render(state, size, now), &path).unwrap();
            println!("{}", path.display());
        }
    }
}

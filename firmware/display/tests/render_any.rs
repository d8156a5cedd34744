//! Rendering never panics, whatever the daemon puts in the state (empty or huge strings, any
//! script, extreme numbers, NaN levels, hundreds of participants) and whatever size the screen
//! reports; and the footer's IP address is always drawn (the screen is never left blank).

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::Size;
use proptest::prelude::*;
use roomcast_display::{render, Deadline, Device, DisplayState, Encoder, Meeting, NetworkProblem, Participant, Phase};
use std::time::{Duration, Instant};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 .:/_-]{0,80}", "\\PC{0,40}", Just("W".repeat(500)),]
}

fn phase(now: Instant) -> impl Strategy<Value = Phase> {
    let participant = (text(), any::<bool>(), any::<bool>()).prop_map(|(name, speaking, muted)| Participant {
        name,
        speaking,
        muted,
    });
    let meeting = (
        text(),
        prop::collection::vec(participant, 0..200),
        prop_oneof![any::<f32>(), Just(f32::NAN), Just(f32::NEG_INFINITY), -80.0f32..5.0],
        any::<bool>(),
        (prop_oneof![Just(Encoder::HwH264), Just(Encoder::SwAv1), Just(Encoder::None)], prop::option::of(text())),
        any::<u32>(),
        any::<u32>(),
        prop_oneof![any::<f32>(), 0.0f32..100.0],
    )
        .prop_map(
            |(name, participants, mic_level_dbfs, muted, (encoder, video_mode), send_kbps, recv_kbps, loss_percent)| {
                Phase::InMeeting(Meeting {
                    name,
                    participants,
                    mic_level_dbfs,
                    muted,
                    encoder,
                    video_mode,
                    send_kbps,
                    recv_kbps,
                    loss_percent,
                })
            },
        );
    prop_oneof![
        (text(), any::<u8>()).prop_map(|(step, percent)| Phase::Booting { step, percent }),
        (text(), text()).prop_map(|(interface, o)| Phase::NoNetwork { interface, problem: NetworkProblem::Other(o) }),
        (text(), any::<u32>()).prop_map(|(relay, attempt)| Phase::FindingRelay { relay, attempt }),
        (text(), text()).prop_map(|(meeting, relay)| Phase::Joining { meeting, relay }),
        meeting,
        (text(), text(), any::<u32>(), 0u64..1_000_000_000).prop_map(move |(relay, reason, attempt, ms)| {
            Phase::RelayLost { relay, reason, attempt, retry_at: Deadline::after(now, Duration::from_millis(ms)) }
        }),
        (text(), text(), any::<Option<u32>>(), text(), text())
            .prop_map(|(file, key, line, problem, fix)| Phase::ConfigError { file, key, line, problem, fix }),
        (text(), text()).prop_map(|(expected, fix)| Phase::DeviceMissing {
            device: Device::CameraAndMicrophone,
            expected,
            fix
        }),
        (text(), text()).prop_map(|(file, place)| Phase::SetUp { file, place }),
        (text(), any::<bool>()).prop_map(|(meeting, done)| Phase::Leaving { meeting, done }),
    ]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        Just(Size::new(128, 64)),
        Just(Size::new(128, 32)),
        Just(Size::new(320, 240)),
        Just(Size::new(480, 320)),
        (16u32..1400, 16u32..1000).prop_map(|(w, h)| Size::new(w, h)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_state_renders_at_any_size(p in phase(Instant::now()), name in text(), size in size(), v6 in any::<bool>()) {
        let now = Instant::now();
        let ip = if v6 { "2001:db8::1".parse().unwrap() } else { "192.0.2.1".parse().unwrap() };
        let state = DisplayState { name, ip: Some(ip), phase: p };
        let f = render(&state, size, now);
        prop_assert_eq!((f.width(), f.height()), (size.width, size.height));
        prop_assert!(f.pixels().iter().any(|&p| p != Rgb888::new(0, 0, 0)), "blank screen");
    }
}

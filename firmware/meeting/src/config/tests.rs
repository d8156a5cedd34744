//! Tests of `roomcast.toml` reading: defaults, board defaults, and errors naming key and line.

use super::*;

const GOOD: &str = r#"
[room]
name = "Blue room"

[meeting]
server = "10.0.2.2:8470"
id = "demo"
token = "letmein"

[video]
source = "synthetic"
width = 320
height = 180
bitrate_kbps = 400
"#;

#[test]
fn good_config_reads_with_defaults() {
    let c = Config::parse(GOOD, &BoardDefaults::default()).unwrap();
    assert_eq!(c.room.name, "Blue room");
    assert_eq!(c.meeting.unwrap().server, "10.0.2.2:8470");
    assert_eq!(c.video.source, "synthetic");
    assert_eq!((c.video.width, c.video.height, c.video.fps), (320, 180, 15));
    assert_eq!(c.video.bitrate_kbps, 400);
    assert_eq!(c.audio.source, "auto");
    assert_eq!(c.amt.family, Family::Ipv4);
    assert_eq!(c.amt.relay, None);
    assert_eq!(c.amt.dns, None);
    assert!(!c.network.lan_multicast);
    assert_eq!(c.audio.mute_button, None);
}

#[test]
fn board_defaults_fill_gaps_and_config_wins() {
    let (board, errs) = BoardDefaults::parse(
        "[devices]\ncamera = \"/dev/video0\"\nvideo_fps = 5\nvideo_width = 160\nvideo_height = 90\ndisplay = \"framebuffer\"\n",
    );
    assert!(errs.is_empty());
    let c = Config::parse(GOOD, &board).unwrap();
    assert_eq!(c.video.fps, 5, "from the board");
    assert_eq!(c.video.width, 320, "roomcast.toml wins");
    assert_eq!(c.video.source, "synthetic", "roomcast.toml wins");
    assert_eq!(c.display.kind, "framebuffer");
}

fn errors(src: &str) -> Vec<ConfigError> {
    Config::parse(src, &BoardDefaults::default()).unwrap_err()
}

#[test]
fn every_error_names_key_and_line() {
    let src = r#"[room]
name = "Blue room"

[meeting]
server = "10.0.2.2"
id = "demo"
token = "t"

[video]
bitrate_kbps = "fast"
fps = 500
colour = "red"

[audio]
muted = "yes"
"#;
    let errs = errors(src);
    let got: Vec<(String, usize)> = errs.iter().map(|e| (e.key.clone(), e.line)).collect();
    assert_eq!(
        got,
        vec![
            ("meeting.server".to_string(), 5),
            ("video.bitrate_kbps".to_string(), 10),
            ("video.fps".to_string(), 11),
            ("video.colour".to_string(), 12),
            ("audio.muted".to_string(), 15),
        ],
        "{errs:#?}"
    );
    assert!(errs[0].message.contains("needs a port"), "{}", errs[0]);
    assert!(errs[1].message.contains("expected an integer"), "{}", errs[1]);
    assert!(errs[2].message.contains("out of range"), "{}", errs[2]);
    assert!(errs[3].message.contains("unknown setting"), "{}", errs[3]);
    assert_eq!(
        errs[4].to_string(),
        "line 15: audio.muted: expected true or false, found \"yes\": write muted = true or muted = false, without quotes"
    );
}

#[test]
fn missing_required_keys_are_reported() {
    let errs = errors("[room]\nname = \"x\"\n\n[meeting]\nid = \"demo\"\n");
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(keys, vec![("meeting.server", 4), ("meeting.token", 4)], "{errs:#?}");
    let errs = errors("");
    assert!(errs.iter().any(|e| e.key == "room.name" && e.message.contains("[room]")));
}

#[test]
fn a_board_without_a_meeting_server_is_valid_and_not_set_up() {
    let c = Config::parse("[room]\nname = \"x\"\n", &BoardDefaults::default()).unwrap();
    assert_eq!(c.meeting, None);
    let c = Config::parse("[room]\nname = \"x\"\n[meeting]\n# server = \"h:1\"\n", &BoardDefaults::default()).unwrap();
    assert_eq!(c.meeting, None);
    // Half a meeting is an error, not the set-up screen.
    let errs = errors("[room]\nname = \"x\"\n[meeting]\ntoken = \"t\"\n");
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(keys, vec![("meeting.server", 3), ("meeting.id", 3)], "{errs:#?}");
    let errs = errors("[room]\nname = \"x\"\n[meeting]\nserver = \"h\"\nid = \"d\"\ntoken = \"t\"\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "meeting.server");
    let errs = errors("[room]\nname = \"x\"\n[meeting]\nservr = \"h:1\"\n");
    assert_eq!(errs[0].key, "meeting.servr");
    assert!(errs[0].message.contains("server"), "{errs:#?}");
}

#[test]
fn syntax_errors_have_a_line() {
    let errs = errors("[room]\nname = \"x\"\n[meeting\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 3, "{:?}", errs[0]);
}

#[test]
fn amt_dns_takes_an_address_with_or_without_port() {
    let base = "[room]\nname=\"r\"\n[amt]\nrelay=\"auto\"\n";
    let c = Config::parse(&format!("{base}dns=\"127.0.0.1:5353\"\n"), &BoardDefaults::default()).unwrap();
    assert_eq!(c.amt.relay.as_deref(), Some("auto"));
    assert_eq!(c.amt.dns, Some("127.0.0.1:5353".parse().unwrap()));
    let c = Config::parse(&format!("{base}dns=\"2001:db8::53\"\n"), &BoardDefaults::default()).unwrap();
    assert_eq!(c.amt.dns, Some("[2001:db8::53]:53".parse().unwrap()));
    let errs = errors(&format!("{base}dns=\"resolver.example\"\n"));
    assert_eq!(errs.iter().map(|e| (e.key.as_str(), e.line)).collect::<Vec<_>>(), [("amt.dns", 5)], "{errs:#?}");
}

#[test]
fn choices_sections_and_dependencies() {
    let src = "[room]\nname=\"r\"\n[meeting]\nserver=\"h:1\"\nid=\"d\"\ntoken=\"t\"\n[amt]\nfamily=\"ipx\"\n[display]\nkind=\"png\"\n[network]\nmode=\"static\"\n[audio]\nmute_gpio_chip=\"/dev/gpiochip0\"\n[bogus]\n";
    let errs = errors(src);
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("amt.family", 8),
            ("display.png", 10),
            ("network.address", 12),
            ("audio.mute_gpio_line", 14),
            ("bogus", 15),
        ],
        "{errs:#?}"
    );
}

#[test]
fn shipped_configs_are_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/");
    for name in ["roomcast.toml", "roomcast.example.toml", "roomcast.setup.toml"] {
        let path = std::path::Path::new(root).join(name);
        let result = Config::load(&path, &BoardDefaults::default());
        assert!(result.is_ok(), "{name}: {:#?}", result.err());
    }
}

#[test]
fn system_and_ntp_defaults_and_overrides() {
    let c = Config::parse(GOOD, &BoardDefaults::default()).unwrap();
    assert_eq!(c.system.watchdog_timeout_s, 15);
    assert_eq!((c.system.log_size_kib, c.system.log_files), (1024, 3));
    assert!(c.network.ntp.is_empty());
    assert_eq!(c.network.ntp_default, DEFAULT_NTP.map(String::from).to_vec());

    let src = format!(
        "{GOOD}\n[network]\nntp = ['10.0.0.1', \"ntp.example\"]\nntp_default = []\n\n[system]\nwatchdog_timeout_s = 6\nlog_size_kib = 64\nlog_files = 5\n"
    );
    let c = Config::parse(&src, &BoardDefaults::default()).unwrap();
    assert_eq!(c.system.watchdog_timeout_s, 6);
    assert_eq!((c.system.log_size_kib, c.system.log_files), (64, 5));
    assert_eq!(c.network.ntp, ["10.0.0.1", "ntp.example"]);
    assert!(c.network.ntp_default.is_empty(), "an explicit empty list means no default servers");
}

#[test]
fn bad_watchdog_timeout_and_ntp_hosts_name_key_and_line() {
    let src = format!("{GOOD}\n[system]\nwatchdog_timeout_s = 1\n\n[network]\nntp_default = [\"bad host!\"]\n");
    let errs = Config::parse(&src, &BoardDefaults::default()).unwrap_err();
    let lines = GOOD.lines().count();
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("system.watchdog_timeout_s", lines + 3)), "{errs:?}");
    assert!(keys.contains(&("network.ntp_default", lines + 6)), "{errs:?}");
    let errs = Config::parse(&format!("{GOOD}\n[system]\nwatchdog = 3\n"), &BoardDefaults::default()).unwrap_err();
    assert_eq!(errs[0].key, "system.watchdog", "unknown keys of [system] are reported: {errs:?}");
}

#[test]
fn video_source_takes_a_y4m_file() {
    let src = GOOD.replace("source = \"synthetic\"", "source = \"y4m:/data/clip.y4m\"");
    assert_eq!(Config::parse(&src, &BoardDefaults::default()).unwrap().video.source, "y4m:/data/clip.y4m");
    for bad in ["y4m:", "clip.y4m"] {
        let src = GOOD.replace("source = \"synthetic\"", &format!("source = \"{bad}\""));
        let errs = Config::parse(&src, &BoardDefaults::default()).unwrap_err();
        assert!(errs.iter().any(|e| e.to_string().contains("y4m:FILE.y4m")), "{bad}: {errs:?}");
    }
}

#[test]
fn video_encoder_names_either_software_encoder() {
    for name in ["auto", "hardware", "software", "rav1e", "aom"] {
        let src = format!("{GOOD}encoder = \"{name}\"\n");
        assert_eq!(Config::parse(&src, &BoardDefaults::default()).unwrap().video.encoder, name);
    }
    assert!(Config::parse(&format!("{GOOD}encoder = \"x264\"\n"), &BoardDefaults::default()).is_err());
}

#[test]
fn software_encoder_comes_from_the_board_and_is_checked() {
    let (board, errs) = BoardDefaults::parse("[devices]\nsoftware_encoder = \"rav1e\"\n");
    assert!(errs.is_empty(), "{errs:?}");
    let c = Config::parse(GOOD, &board).unwrap();
    assert_eq!(c.video.software_encoder, "rav1e");
    assert_eq!(c.video.debug_slow_encoder_ms, 0);
    assert_eq!(Config::parse(GOOD, &BoardDefaults::default()).unwrap().video.software_encoder, "aom");
    let src = format!("{GOOD}software_encoder = \"aom\"\ndebug_slow_encoder_ms = 80\n");
    let c = Config::parse(&src, &board).unwrap();
    assert_eq!((c.video.software_encoder.as_str(), c.video.debug_slow_encoder_ms), ("aom", 80));
    let errs = Config::parse(&format!("{GOOD}software_encoder = \"svt\"\n"), &board).unwrap_err();
    assert_eq!(errs[0].key, "video.software_encoder", "{errs:?}");
}

#[test]
fn screen_section_is_parsed_and_checked() {
    let c = Config::parse(GOOD, &BoardDefaults::default()).unwrap();
    assert_eq!(c.screen, ScreenConfig { output: "auto".into(), layout: "auto".into(), self_view: false });
    let src = "[room]\nname = \"r\"\n[screen]\noutput = \"png:/tmp/screen.png\"\nlayout = \"2x2\"\nself_view = true\n";
    let c = Config::parse(src, &BoardDefaults::default()).unwrap();
    assert_eq!(c.screen, ScreenConfig { output: "png:/tmp/screen.png".into(), layout: "2x2".into(), self_view: true });
    for output in ["framebuffer", "drm", "none"] {
        let src = format!("[room]\nname = \"r\"\n[screen]\noutput = \"{output}\"\n");
        assert_eq!(Config::parse(&src, &BoardDefaults::default()).unwrap().screen.output, output);
    }
    let errs = errors("[room]\nname = \"r\"\n[screen]\noutput = \"png:\"\nlayout = \"4x4\"\nselfview = 1\n");
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(keys, vec![("screen.output", 4), ("screen.layout", 5), ("screen.selfview", 6)], "{errs:#?}");
}

#[test]
fn typos_get_a_did_you_mean_and_a_missing_section_has_no_line() {
    let errs = errors("[room]\nname = \"x\"\n[vidoe]\n[video]\nwdith = 320\n");
    assert_eq!(
        errs[0].to_string().split(" (").next().unwrap(),
        "line 3: vidoe: unknown section: did you mean [video]?"
    );
    assert_eq!(
        errs[1].to_string().split(" (").next().unwrap(),
        "line 5: video.wdith: unknown setting: did you mean width?"
    );
    let errs = errors("[video]\nwidth = 320\n");
    assert_eq!((errs[0].key.as_str(), errs[0].line), ("room.name", 0), "{errs:#?}");
    assert!(errs[0].to_string().starts_with("room.name: no [room] section: add one"), "{}", errs[0]);
    assert_eq!(check::did_you_mean("colour", &["enabled", "source"]), None);
}

#[test]
fn meeting_over_https_needs_a_pin_or_a_ca() {
    let fp = format!("sha256:{}", "ab".repeat(32));
    let src = |meeting: &str| format!("[room]\nname = \"R\"\n\n[meeting]\nid = \"demo\"\ntoken = \"t\"\n{meeting}");
    let c = Config::parse(
        &src(&format!("server = \"https://meet.example:8470\"\nfingerprint = \"{fp}\"\n")),
        &BoardDefaults::default(),
    )
    .unwrap();
    let m = c.meeting.unwrap();
    assert_eq!(m.fingerprint.as_deref(), Some(fp.as_str()));
    assert!(!format!("{m:?}").contains("token: \"t\""), "the token is not in Debug: {m:?}");
    assert!(!m.allow_plain_http);
    let c =
        Config::parse(&src("server = \"https://m\"\nca_file = \"/etc/ca.pem\"\n"), &BoardDefaults::default()).unwrap();
    assert_eq!(c.meeting.unwrap().ca_file.as_deref(), Some("/etc/ca.pem"));
    let c = Config::parse(&src("server = \"10.0.2.2:8470\"\nallow_plain_http = true\n"), &BoardDefaults::default())
        .unwrap();
    assert!(c.meeting.unwrap().allow_plain_http);

    let errs = errors(&src("server = \"https://m:8470\"\n"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!((errs[0].key.as_str(), errs[0].line), ("meeting.server", 7));
    assert!(errs[0].message.contains("fingerprint"), "{}", errs[0]);
    let errs = errors(&src("server = \"https://m\"\nfingerprint = \"sha256:12\"\n"));
    assert_eq!(errs[0].key, "meeting.fingerprint", "{errs:#?}");
    let errs = errors(&src(&format!("server = \"127.0.0.1:8470\"\nfingerprint = \"{fp}\"\n")));
    assert_eq!(errs[0].key, "meeting.fingerprint", "{errs:#?}");
    assert!(errs[0].message.contains("https"), "{}", errs[0]);
    let errs = errors(&src("server = \"ftp://m:1\"\n"));
    assert_eq!(errs[0].key, "meeting.server", "{errs:#?}");
}

#[test]
fn wifi_keys_are_read_and_checked_with_key_and_line() {
    let c = Config::parse(
        &format!("{GOOD}\n[network]\nwifi_ssid = \"Blue\"\nwifi_psk = \"longenough\"\nwifi_country = \"de\"\n"),
        &BoardDefaults::default(),
    )
    .unwrap();
    let w = c.network.wifi.unwrap();
    assert_eq!((w.ssid.as_str(), w.psk.as_deref(), w.country.as_str()), ("Blue", Some("longenough"), "DE"));
    assert_eq!(c.network.interface, "wlan0", "Wi-Fi on a board whose own interface is eth0");
    assert!(Config::parse(GOOD, &BoardDefaults::default()).unwrap().network.wifi.is_none());

    let lines = GOOD.lines().count();
    let errs =
        errors(&format!("{GOOD}\n[network]\nwifi_ssid = \"Blue\"\nwifi_psk = \"secret7\"\nwifi_country = \"XYZ\"\n"));
    let keys: Vec<(&str, usize)> = errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("network.wifi_psk", lines + 4)), "{errs:?}");
    assert!(keys.contains(&("network.wifi_country", lines + 5)), "{errs:?}");
    assert!(errs.iter().all(|e| !e.to_string().contains("secret7")), "{errs:?}");
    // A passphrase written without quotes is refused without being echoed.
    let errs =
        errors(&format!("{GOOD}\n[network]\nwifi_ssid = \"Blue\"\nwifi_psk = 123456789\nwifi_country = \"DE\"\n"));
    assert!(errs.iter().any(|e| e.key == "network.wifi_psk" && !e.to_string().contains("123456789")), "{errs:?}");
}

#[test]
fn audio_processing_is_on_by_default_and_each_stage_can_be_turned_off() {
    let c = Config::parse(GOOD, &BoardDefaults::default()).unwrap();
    assert!(c.audio.echo_cancellation && c.audio.noise_suppression && c.audio.auto_gain);
    let src = format!("{GOOD}\n[audio]\necho_cancellation = false\nauto_gain = false\n");
    let c = Config::parse(&src, &BoardDefaults::default()).unwrap();
    assert!(!c.audio.echo_cancellation && c.audio.noise_suppression && !c.audio.auto_gain);
    let errs = errors(&format!("{GOOD}\n[audio]\nnoise_suppression = 1\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "audio.noise_suppression");
}

#[test]
fn keyframe_requests_default_on_and_can_be_turned_off() {
    let board = BoardDefaults::default();
    assert!(Config::parse(GOOD, &board).unwrap().debug.keyframe_requests);
    let off = Config::parse(&format!("{GOOD}\n[debug]\nkeyframe_requests = false\n"), &board).unwrap();
    assert!(!off.debug.keyframe_requests);
    let errs = Config::parse(&format!("{GOOD}\n[debug]\nkeyframe_requests = \"no\"\n"), &board).unwrap_err();
    assert_eq!(errs[0].key, "debug.keyframe_requests", "{errs:?}");
}

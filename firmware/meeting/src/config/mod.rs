//! `roomcast.toml`, the box's configuration: typed settings with board defaults, read by a
//! checker that reports every problem with its key and line (see [`check`]).
//! `config/roomcast.example.toml` documents every setting.

pub mod board;
pub mod check;
pub mod get;
pub mod text;
pub mod wifi;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use toml_edit::Item;

pub use board::BoardDefaults;
pub use check::ConfigError;
use check::Reader;
pub use wifi::WifiConfig;

use crate::roster::Family;
use crate::MeetingError;

/// `[room]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// The room's name as others see it.
    pub name: String,
}

/// `[meeting]`, when it names a server (without one the box shows the set-up screen). Its
/// `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct MeetingConfig {
    /// The meeting service's control address: `https://HOST[:PORT]`, `http://HOST[:PORT]` or
    /// `HOST:PORT` (plain HTTP); see [`crate::endpoint::Endpoint`].
    pub server: String,
    /// Meeting id.
    pub id: String,
    /// Access token.
    pub token: String,
    /// With https: the service certificate's SHA-256, `sha256:HEX` (what `roomcast server` prints).
    pub fingerprint: Option<String>,
    /// With https: a PEM file of CA certificates to trust instead of a pinned fingerprint.
    pub ca_file: Option<String>,
    /// Plain http to a host that is not this machine's loopback (e.g. the QEMU demo's 10.0.2.2,
    /// the host's loopback through QEMU's user network): the token crosses the path in clear.
    pub allow_plain_http: bool,
}

impl std::fmt::Debug for MeetingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingConfig")
            .field("server", &self.server)
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .field("ca_file", &self.ca_file)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

/// `[amt]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmtConfig {
    /// AMT relay `HOST[:PORT]`; `None` = the relay the meeting service names.
    pub relay: Option<String>,
    /// Which family's groups to join through the tunnel.
    pub family: Family,
    /// DNS server for `relay = "auto"` (DRIAD) instead of the system's resolver (`IP` = port 53).
    pub dns: Option<SocketAddr>,
}

/// `[video]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Send video at all.
    pub enabled: bool,
    /// `auto`, `synthetic`, a V4L2 device path, or `y4m:PATH` (a looping Y4M file).
    pub source: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate.
    pub bitrate_kbps: u32,
    /// `auto`, `hardware`, `software` (the default software encoder), `rav1e`, `aom`.
    pub encoder: String,
    /// The software AV1 encoder behind `software`/`auto`: `aom` or `rav1e` (board default).
    pub software_encoder: String,
    /// Test hook: the software encoder is slowed by this many ms per frame (0 = off).
    pub debug_slow_encoder_ms: u32,
    /// rav1e speed preset (0..=10).
    pub software_speed: u8,
    /// Encoder threads (0 = encoder decides).
    pub threads: u8,
    /// Seconds between keyframes.
    pub keyframe_interval_s: u32,
}

/// `[audio]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Send audio at all.
    pub enabled: bool,
    /// `auto`, `synthetic`, or an ALSA PCM name.
    pub source: String,
    /// `auto`, `none`, `null`, or an ALSA PCM name.
    pub playback: String,
    /// Opus bitrate.
    pub bitrate_kbps: u32,
    /// Channels sent (1 or 2).
    pub channels: u8,
    /// Opus in-band FEC.
    pub fec: bool,
    /// Opus DTX.
    pub dtx: bool,
    /// Start muted.
    pub muted: bool,
    /// WebRTC echo cancellation (AEC3) of the microphone, the playback mix as the far end.
    pub echo_cancellation: bool,
    /// WebRTC noise suppression of the microphone.
    pub noise_suppression: bool,
    /// WebRTC automatic gain control (AGC2) of the microphone.
    pub auto_gain: bool,
    /// GPIO mute button: character device and line, if configured.
    pub mute_button: Option<GpioButton>,
}

/// A GPIO push button (gpio-cdev).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioButton {
    /// `/dev/gpiochipN`.
    pub chip: String,
    /// Line offset.
    pub line: u32,
    /// Pressed reads low.
    pub active_low: bool,
}

/// `[display]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayConfig {
    /// `auto`, `none`, `ssd1306`, `framebuffer`, `png`.
    pub kind: String,
    /// I2C bus device of the OLED.
    pub i2c_bus: String,
    /// OLED I2C address.
    pub i2c_address: u8,
    /// Framebuffer device.
    pub framebuffer: String,
    /// PNG file (kind = "png").
    pub png: Option<PathBuf>,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The interface init brings up (default: the board's; `wlan0` with `wifi_ssid` when the
    /// board's is wired).
    pub interface: String,
    /// `dhcp` or `static`.
    pub mode: String,
    /// Static address `ADDR/PREFIX`.
    pub address: Option<String>,
    /// Static default gateway.
    pub gateway: Option<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// NTP servers (init's ntpd uses them when DHCP names none).
    pub ntp: Vec<String>,
    /// NTP servers used when neither DHCP (option 42) nor `ntp` names any (default:
    /// [`DEFAULT_NTP`]; an empty list means no NTP then).
    pub ntp_default: Vec<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Re-send the meeting's streams as native multicast on the room LAN.
    pub lan_multicast: bool,
    /// Interface for the LAN re-send (default: `interface`).
    pub lan_interface: Option<String>,
    /// TTL of the LAN re-send.
    pub lan_ttl: u8,
    /// Wi-Fi network to join (init brings up `interface` with wpa_supplicant when set).
    pub wifi: Option<WifiConfig>,
}

/// `[system]`: how the box looks after itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Hardware watchdog timeout (WDIOC_SETTIMEOUT) in seconds; the daemon feeds it every third.
    pub watchdog_timeout_s: u32,
    /// Size (KiB) at which init rotates /var/log/roomcast.log.
    pub log_size_kib: u32,
    /// Rotated logs kept (roomcast.log.1 ..).
    pub log_files: u8,
}

/// Default of `[system] watchdog_timeout_s` (also the init's and the largest the Pi's bcm2835 watchdog takes).
pub const DEFAULT_WATCHDOG_TIMEOUT_S: u32 = 15;

/// Range of `[system] watchdog_timeout_s`.
pub const WATCHDOG_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 2..=600;

/// Default of `[network] ntp_default`: Debian's NTP pool.
pub const DEFAULT_NTP: [&str; 4] =
    ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org", "2.debian.pool.ntp.org", "3.debian.pool.ntp.org"];

/// `[screen]`: the far end on the room's screen (HDMI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenConfig {
    /// `auto`, `framebuffer`, `drm`, `none` or `png:PATH` (the composed screen about once a second).
    pub output: String,
    /// `auto` (follows the number of rooms), `1x1`, `2x1`, `2x2`, `3x3`.
    pub layout: String,
    /// Show this room's own camera in a corner.
    pub self_view: bool,
}

/// `[debug]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugConfig {
    /// The box writes its state as JSON here (display state, roster, bitrates).
    pub state_file: Option<PathBuf>,
    /// The box writes what it receives here (per participant `video.ivf`/`.h264`, `audio.opus`).
    pub record_dir: Option<PathBuf>,
    /// Keyframes on demand (default true): the receivers ask for them (RTCP PLI) at join and
    /// after loss, and the sender makes one when a room joins. False leaves the periodic
    /// keyframe only (the reference of the time-to-first-frame bench).
    pub keyframe_requests: bool,
}

/// The whole `roomcast.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[room]`.
    pub room: RoomConfig,
    /// `[meeting]`; `None` when no server is set (a fresh board: the box shows the set-up
    /// screen and waits for the file to name one).
    pub meeting: Option<MeetingConfig>,
    /// `[amt]`.
    pub amt: AmtConfig,
    /// `[video]`.
    pub video: VideoConfig,
    /// `[audio]`.
    pub audio: AudioConfig,
    /// `[display]`.
    pub display: DisplayConfig,
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[system]`.
    pub system: SystemConfig,
    /// `[screen]`.
    pub screen: ScreenConfig,
    /// `[debug]`.
    pub debug: DebugConfig,
}

/// `[amt] dns`: `IP` (port 53) or `IP:PORT`.
fn parse_dns(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| format!("{s:?} is not an IP address or IP:PORT (e.g. \"10.0.2.3:53\")"))
}

fn check_hostport(s: &str, port_required: bool) -> Result<(), String> {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ if s.parse::<IpAddr>().is_ok() && !port_required => return Ok(()),
        _ => (s, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{p:?} is not a port (1..65535)"));
        }
    } else if port_required {
        return Err(format!("{s:?} needs a port: HOST:PORT (e.g. \"10.0.2.2:8470\")"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || !(host.parse::<IpAddr>().is_ok()
            || host.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.'))
    {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(())
}

fn check_id(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.starts_with('.')
        || s.len() > 64
        || !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("use 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    Ok(())
}

fn check_cidr(s: &str) -> Result<(), String> {
    let (a, p) = s.split_once('/').ok_or("expected ADDRESS/PREFIX, e.g. \"192.168.1.50/24\"")?;
    let ip: IpAddr = a.parse().map_err(|_| format!("{a:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match p.parse::<u8>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(format!("{p:?} is not a prefix length 0..={max}")),
    }
}

impl Config {
    /// Reads `roomcast.toml` text; board defaults fill what it leaves out. Every problem is
    /// returned, each naming its key and line.
    pub fn parse(src: &str, board: &BoardDefaults) -> Result<Config, Vec<ConfigError>> {
        let doc = get::parse_document(src).map_err(|e| vec![e])?;
        let root = doc.as_table();
        let mut r = Reader::new(src);

        let mut s = r.section(root, "room");
        let name = s.req_str(&mut r, "name", "the room's name, e.g. \"Blue room\"");
        s.checked_str(&mut r, "name", &name, |n| {
            let c = n.chars().count();
            if c == 0 || c > 64 {
                Err("must be 1 to 64 characters".into())
            } else if n.chars().any(char::is_control) {
                Err("must not contain control characters".into())
            } else {
                Ok(())
            }
        });
        s.finish(&mut r);
        let room = RoomConfig { name };

        let mut s = r.section(root, "meeting");
        // None of server, id and token: a board not set up yet (the box shows the set-up screen).
        // Any one of them: all three are required.
        let meeting = if ["server", "id", "token"].iter().any(|k| s.has(k)) {
            let server = s.req_str(
                &mut r,
                "server",
                "the meeting service, https://HOST:PORT (or HOST:PORT); or remove id and token",
            );
            s.checked_str(&mut r, "server", &server, |v| {
                v.parse::<crate::endpoint::Endpoint>().map(|_| ()).map_err(|e| match e {
                    MeetingError::Invalid(m) => m,
                    e => e.to_string(),
                })
            });
            let id = s.req_str(&mut r, "id", "the meeting's id");
            s.checked_str(&mut r, "id", &id, check_id);
            let token = s.req_str(&mut r, "token", "the meeting's access token");
            s.checked_str(&mut r, "token", &token, |t| {
                if t.is_empty() || t.len() > 256 || t.chars().any(|c| c.is_control() || c == ' ') {
                    Err("must be 1 to 256 characters without spaces".into())
                } else {
                    Ok(())
                }
            });
            let fingerprint = s.opt_str(&mut r, "fingerprint");
            if let Some(f) = &fingerprint {
                s.checked_str(&mut r, "fingerprint", f, |f| {
                    f.parse::<crate::tls::Fingerprint>()
                        .map(|_| ())
                        .map_err(|_| "must be sha256: and 64 hex digits, as `roomcast server` prints it".to_string())
                });
            }
            let ca_file = s.opt_str(&mut r, "ca_file");
            let allow_plain_http = s.bool_or(&mut r, "allow_plain_http", false);
            let tls = server.parse::<crate::endpoint::Endpoint>().is_ok_and(|e| e.tls);
            let pinned = fingerprint.is_some() || ca_file.is_some();
            if tls && !pinned {
                let span = s.span_of("server");
                r.error(
                    "meeting.server",
                    span,
                    "https needs `fingerprint = \"sha256:...\"` (printed by `roomcast server`) or `ca_file = PATH`",
                );
            }
            if !tls && pinned && server.parse::<crate::endpoint::Endpoint>().is_ok() {
                let key = if fingerprint.is_some() { "fingerprint" } else { "ca_file" };
                let span = s.span_of(key);
                r.error(format!("meeting.{key}"), span, "only used with an https:// server");
            }
            Some(MeetingConfig { server, id, token, fingerprint, ca_file, allow_plain_http })
        } else {
            for key in ["server", "id", "token", "fingerprint", "ca_file", "allow_plain_http"] {
                s.opt_str(&mut r, key); // absent: only marks them known for `finish`
            }
            None
        };
        s.finish(&mut r);

        let mut s = r.section(root, "amt");
        let relay = s.opt_str(&mut r, "relay");
        if let Some(v) = &relay {
            s.checked_str(&mut r, "relay", v, |v| check_hostport(v, false));
        }
        let family = match s.choice(&mut r, "family", &["ipv4", "ipv6"], "ipv4").as_str() {
            "ipv6" => Family::Ipv6,
            _ => Family::Ipv4,
        };
        let dns = s.opt_str(&mut r, "dns");
        if let Some(v) = &dns {
            s.checked_str(&mut r, "dns", v, |v| parse_dns(v).map(|_| ()));
        }
        let dns = dns.as_deref().and_then(|v| parse_dns(v).ok());
        s.finish(&mut r);
        let amt = AmtConfig { relay, family, dns };

        let mut s = r.section(root, "video");
        let enabled = s.bool_or(&mut r, "enabled", true);
        let source = s.str_or(&mut r, "source", &board.camera);
        s.checked_str(&mut r, "source", &source, |v| {
            if v == "auto"
                || v == "synthetic"
                || v.starts_with('/')
                || v.strip_prefix("y4m:").is_some_and(|p| !p.is_empty())
            {
                Ok(())
            } else {
                Err(format!(
                    "{v:?}: use \"auto\", \"synthetic\", a device path like \"/dev/video0\" or \"y4m:FILE.y4m\""
                ))
            }
        });
        let width = s.int_or(&mut r, "width", 16..=3840, board.video_width.into()) as u32;
        let height = s.int_or(&mut r, "height", 16..=2160, board.video_height.into()) as u32;
        let fps = s.int_or(&mut r, "fps", 1..=60, board.video_fps.into()) as u32;
        let bitrate_kbps = s.int_or(&mut r, "bitrate_kbps", 50..=20_000, board.video_bitrate_kbps.into()) as u32;
        let encoder = s.choice(&mut r, "encoder", &["auto", "hardware", "software", "rav1e", "aom"], &board.encoder);
        let software_encoder = s.choice(&mut r, "software_encoder", &["aom", "rav1e"], &board.software_encoder);
        let debug_slow_encoder_ms = s.int_or(&mut r, "debug_slow_encoder_ms", 0..=10_000, 0) as u32;
        let software_speed = s.int_or(&mut r, "software_speed", 0..=10, board.software_speed.into()) as u8;
        let threads = s.int_or(&mut r, "threads", 0..=64, board.encoder_threads.into()) as u8;
        let keyframe_interval_s = s.int_or(&mut r, "keyframe_interval_s", 1..=60, 2) as u32;
        if width % 2 == 1 || height % 2 == 1 {
            let key = if width % 2 == 1 { "width" } else { "height" };
            r.error(format!("video.{key}"), s.span_of(key), "width and height must be even (4:2:0 video)");
        }
        s.finish(&mut r);
        let video = VideoConfig {
            enabled,
            source,
            width,
            height,
            fps,
            bitrate_kbps,
            encoder,
            software_encoder,
            debug_slow_encoder_ms,
            software_speed,
            threads,
            keyframe_interval_s,
        };

        let mut s = r.section(root, "audio");
        let enabled = s.bool_or(&mut r, "enabled", true);
        let source = s.str_or(&mut r, "source", &board.microphone);
        let playback = s.str_or(&mut r, "playback", &board.playback);
        let bitrate_kbps = s.int_or(&mut r, "bitrate_kbps", 6..=510, 32) as u32;
        let channels = s.int_or(&mut r, "channels", 1..=2, 1) as u8;
        let fec = s.bool_or(&mut r, "fec", true);
        let dtx = s.bool_or(&mut r, "dtx", false);
        let muted = s.bool_or(&mut r, "muted", false);
        let echo_cancellation = s.bool_or(&mut r, "echo_cancellation", true);
        let noise_suppression = s.bool_or(&mut r, "noise_suppression", true);
        let auto_gain = s.bool_or(&mut r, "auto_gain", true);
        let chip = s.opt_str(&mut r, "mute_gpio_chip");
        let line = s.opt_int(&mut r, "mute_gpio_line", 0..=1023);
        let active_low = s.bool_or(&mut r, "mute_gpio_active_low", true);
        let mute_button = match (chip, line) {
            (Some(chip), Some(line)) => Some(GpioButton { chip, line: line as u32, active_low }),
            (Some(_), None) => {
                r.error(
                    "audio.mute_gpio_line",
                    s.span_of("mute_gpio_chip"),
                    "mute_gpio_chip is set: also set mute_gpio_line (the line offset)",
                );
                None
            }
            (None, Some(_)) => {
                r.error(
                    "audio.mute_gpio_chip",
                    s.span_of("mute_gpio_line"),
                    "mute_gpio_line is set: also set mute_gpio_chip, e.g. \"/dev/gpiochip0\"",
                );
                None
            }
            (None, None) => None,
        };
        s.finish(&mut r);
        let audio = AudioConfig {
            enabled,
            source,
            playback,
            bitrate_kbps,
            channels,
            fec,
            dtx,
            muted,
            echo_cancellation,
            noise_suppression,
            auto_gain,
            mute_button,
        };

        let mut s = r.section(root, "display");
        let kind = s.choice(&mut r, "kind", &["auto", "none", "ssd1306", "framebuffer", "png"], &board.display);
        let i2c_bus = s.str_or(&mut r, "i2c_bus", &board.i2c_bus);
        let i2c_address = s.int_or(&mut r, "i2c_address", 0x3c..=0x3d, board.i2c_address.into()) as u8;
        let framebuffer = s.str_or(&mut r, "framebuffer", &board.framebuffer);
        let png = s.opt_str(&mut r, "png").map(PathBuf::from);
        if kind == "png" && png.is_none() {
            r.error("display.png", s.span_of("kind"), "kind = \"png\" needs png = \"/path/screen.png\"");
        }
        s.finish(&mut r);
        let display = DisplayConfig { kind, i2c_bus, i2c_address, framebuffer, png };

        let mut s = r.section(root, "network");
        let interface = s.opt_str(&mut r, "interface");
        let mode = s.choice(&mut r, "mode", &["dhcp", "static"], "dhcp");
        let address = s.opt_str(&mut r, "address");
        if let Some(a) = &address {
            s.checked_str(&mut r, "address", a, check_cidr);
        } else if mode == "static" {
            r.error("network.address", s.span_of("mode"), "mode = \"static\" needs address = \"ADDR/PREFIX\"");
        }
        let gateway = s.opt_str(&mut r, "gateway");
        if let Some(g) = &gateway {
            s.checked_str(&mut r, "gateway", g, |v| {
                v.parse::<IpAddr>().map(|_| ()).map_err(|_| format!("{v:?} is not an IP address"))
            });
        }
        let dns = s.str_list(&mut r, "dns");
        let ntp = s.str_list(&mut r, "ntp");
        let has_ntp_default =
            root.get("network").and_then(Item::as_table).is_some_and(|t| t.contains_key("ntp_default"));
        let listed = s.str_list(&mut r, "ntp_default");
        let ntp_default = if has_ntp_default { listed } else { DEFAULT_NTP.iter().map(|h| h.to_string()).collect() };
        for (key, list) in [("ntp", &ntp), ("ntp_default", &ntp_default)] {
            for host in list {
                if let Err(msg) = check_hostport(host, false) {
                    r.error(format!("network.{key}"), s.span_of(key), msg);
                }
            }
        }
        let hostname = s.opt_str(&mut r, "hostname");
        let lan_multicast = s.bool_or(&mut r, "lan_multicast", false);
        let lan_interface = s.opt_str(&mut r, "lan_interface");
        let lan_ttl = s.int_or(&mut r, "lan_ttl", 1..=255, 1) as u8;
        let wifi = wifi::read(&mut s, &mut r);
        // Wi-Fi without an interface named: the board's if it is a wireless one, else wlan0.
        let interface = interface.unwrap_or_else(|| match &wifi {
            Some(_) if !board.network_interface.starts_with("wl") => "wlan0".to_string(),
            _ => board.network_interface.clone(),
        });
        s.finish(&mut r);
        let network = NetworkConfig {
            interface,
            mode,
            address,
            gateway,
            dns,
            ntp,
            ntp_default,
            hostname,
            lan_multicast,
            lan_interface,
            lan_ttl,
            wifi,
        };

        let mut s = r.section(root, "system");
        let watchdog_timeout_s =
            s.int_or(&mut r, "watchdog_timeout_s", WATCHDOG_TIMEOUT_RANGE, DEFAULT_WATCHDOG_TIMEOUT_S.into()) as u32;
        let log_size_kib = s.int_or(&mut r, "log_size_kib", 64..=4096, 1024) as u32;
        let log_files = s.int_or(&mut r, "log_files", 1..=5, 3) as u8;
        s.finish(&mut r);
        let system = SystemConfig { watchdog_timeout_s, log_size_kib, log_files };

        let mut s = r.section(root, "screen");
        let output = s.str_or(&mut r, "output", "auto");
        s.checked_str(&mut r, "output", &output, |v| match v {
            "auto" | "framebuffer" | "drm" | "none" => Ok(()),
            _ if v.strip_prefix("png:").is_some_and(|p| !p.is_empty()) => Ok(()),
            _ => Err(format!("{v:?}: use \"auto\", \"framebuffer\", \"drm\", \"none\" or \"png:/path/screen.png\"")),
        });
        let layout = s.choice(&mut r, "layout", &["auto", "1x1", "2x1", "2x2", "3x3"], "auto");
        let self_view = s.bool_or(&mut r, "self_view", false);
        s.finish(&mut r);
        let screen = ScreenConfig { output, layout, self_view };

        let mut s = r.section(root, "debug");
        let state_file = s.opt_str(&mut r, "state_file").map(PathBuf::from);
        let record_dir = s.opt_str(&mut r, "record_dir").map(PathBuf::from);
        let keyframe_requests = s.bool_or(&mut r, "keyframe_requests", true);
        s.finish(&mut r);
        let debug = DebugConfig { state_file, record_dir, keyframe_requests };

        const SECTIONS: [&str; 10] =
            ["room", "meeting", "amt", "video", "audio", "display", "network", "system", "screen", "debug"];
        for (k, item) in root.iter() {
            if !SECTIONS.contains(&k) {
                let span = root.key(k).and_then(|key| key.span()).or_else(|| item.span());
                let sections = SECTIONS.join(", ");
                let message = match (item.is_table_like(), check::did_you_mean(k, &SECTIONS)) {
                    (true, Some(m)) => format!("unknown section: did you mean [{m}]? (sections: {sections})"),
                    (true, None) => format!("unknown section (sections: {sections})"),
                    (false, _) => format!("a key before the first [section]: move it under its section ({sections})"),
                };
                r.error(k, span, message);
            }
        }

        if r.errors.is_empty() {
            Ok(Config { room, meeting, amt, video, audio, display, network, system, screen, debug })
        } else {
            r.errors.sort_by_key(|e| e.line);
            Err(r.errors)
        }
    }

    /// Reads a file; a read error, or a file that is not UTF-8 text, is one [`ConfigError`]
    /// with an empty key (see [`text::decode`]).
    pub fn load(path: &std::path::Path, board: &BoardDefaults) -> Result<Config, Vec<ConfigError>> {
        let bytes = std::fs::read(path).map_err(|e| {
            vec![ConfigError { key: String::new(), line: 0, message: format!("cannot read the file: {e}") }]
        })?;
        Self::parse(text::decode(&bytes).map_err(|e| vec![e])?, board)
    }
}

#[cfg(test)]
mod tests;

//! `roomcast config get` (the init scripts' TOML reader) answers as check-config reads the
//! file, for the three files the old awk reader got wrong: `mode = 'static'`,
//! `hostname = 'blue'` and a multi-line `ntp = [...]`; missing keys exit 1 with one line,
//! a file that is not TOML exits 2 with check-config's key-and-line message.

use std::path::{Path, PathBuf};
use std::process::Command;

use roomcast_meeting::config::{BoardDefaults, Config};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn file(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("roomcast-config-get-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// (exit code, stdout lines, stderr).
fn config_get(key: &str, path: &Path) -> (i32, Vec<String>, String) {
    let out = Command::new(BIN).args(["config", "get", key, "--config"]).arg(path).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().map(String::from).collect(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const HEAD: &str = "[room]\nname = 'Blue'\n\n[meeting]\nserver = \"127.0.0.1:8470\"\nid = \"demo\"\ntoken = \"t\"\n\n";

#[test]
fn static_mode_in_single_quotes_reads_as_check_config_reads_it() {
    let text = format!("{HEAD}[network]\nmode = 'static'\naddress = '10.0.2.15/24'\ngateway = '10.0.2.2'\n");
    let path = file("static.toml", &text);
    let cfg = Config::parse(&text, &BoardDefaults::default()).unwrap();
    assert_eq!(cfg.network.mode, "static");
    assert_eq!(config_get("network.mode", &path), (0, vec![cfg.network.mode], String::new()));
    assert_eq!(config_get("network.address", &path).1, vec![cfg.network.address.unwrap()]);
    assert_eq!(config_get("network.gateway", &path).1, vec![cfg.network.gateway.unwrap()]);
}

#[test]
fn hostname_in_single_quotes_loses_its_quotes() {
    let text = format!("{HEAD}[network]\nhostname = 'blue' # the room\n");
    let path = file("hostname.toml", &text);
    let cfg = Config::parse(&text, &BoardDefaults::default()).unwrap();
    assert_eq!(cfg.network.hostname.as_deref(), Some("blue"));
    assert_eq!(config_get("network.hostname", &path), (0, vec!["blue".to_string()], String::new()));
}

#[test]
fn multi_line_ntp_array_gives_one_server_per_line() {
    let text = format!("{HEAD}[network]\nntp = [\n \"a\",\n \"b\",\n]\n");
    let path = file("ntp.toml", &text);
    let cfg = Config::parse(&text, &BoardDefaults::default()).unwrap();
    assert_eq!(cfg.network.ntp, ["a", "b"]);
    assert_eq!(config_get("network.ntp", &path), (0, cfg.network.ntp, String::new()));
}

#[test]
fn missing_key_section_or_file_exits_1_with_one_line() {
    let text = format!("{HEAD}[network]\nmode = \"dhcp\"\n");
    let path = file("missing.toml", &text);
    let (code, out, err) = config_get("network.address", &path);
    assert_eq!((code, out.len()), (1, 0));
    assert_eq!(err, format!("network.address: not set in {}\n", path.display()));
    let board = file("board.toml", "[board]\nname = \"qemu-virt\"\n[devices]\nwatchdog = \"/dev/watchdog\"\n");
    assert_eq!(config_get("devices.watchdog", &board).1, ["/dev/watchdog"]);
    let (code, _, err) = config_get("devices.watchdog", &path);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = config_get("network.mode", &path.with_extension("absent"));
    assert_eq!(code, 1);
    assert!(err.contains("network.mode") && err.lines().count() == 1, "{err}");
}

#[test]
fn a_toml_syntax_error_exits_2_with_check_configs_message() {
    let text = format!("{HEAD}[network]\nhostname = blue\n");
    let path = file("syntax.toml", &text);
    let (code, out, err) = config_get("network.mode", &path);
    assert_eq!((code, out.len()), (2, 0));
    let check = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let check_err = String::from_utf8_lossy(&check.stderr);
    let first = check_err.lines().next().unwrap();
    assert!(first.contains("line 10: toml:"), "{check_err}");
    assert_eq!(err.trim_end(), first);
}

#[test]
fn a_utf16_file_exits_2_with_check_configs_message_not_not_set() {
    let d = std::env::temp_dir().join(format!("roomcast-config-get-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("utf16.toml");
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(HEAD.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    std::fs::write(&path, utf16).unwrap();
    let (code, out, err) = config_get("room.name", &path);
    assert_eq!((code, out.len()), (2, 0), "{err}");
    let check = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("UTF-16") && err.trim_end() == check_err.lines().next().unwrap(), "{err} / {check_err}");
}

/// `roomcast config wifi-conf`: (exit code, the file written, stderr).
fn wifi_conf(path: &Path, out: &Path) -> (i32, Option<String>, String) {
    let o =
        Command::new(BIN).args(["config", "wifi-conf", "--config"]).arg(path).arg("--out").arg(out).output().unwrap();
    assert!(o.stdout.is_empty(), "wifi-conf prints nothing on stdout");
    (o.status.code().unwrap_or(-1), std::fs::read_to_string(out).ok(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn wifi_conf_writes_a_private_wpa_supplicant_conf_without_the_passphrase() {
    use std::os::unix::fs::PermissionsExt;
    let text = format!("{HEAD}[network]\ninterface = 'wlan0'\nwifi_ssid = 'Blue net'\nwifi_psk = 'correct horse'\nwifi_country = 'gb'\n");
    let path = file("wifi.toml", &text);
    let out = path.with_file_name("wpa_supplicant.conf");
    let (code, conf, err) = wifi_conf(&path, &out);
    assert_eq!(code, 0, "{err}");
    let conf = conf.unwrap();
    let wifi = Config::parse(&text, &BoardDefaults::default()).unwrap().network.wifi.unwrap();
    assert_eq!(conf, wifi.wpa_supplicant_conf("/run/wpa_supplicant"));
    assert!(conf.contains("country=GB") && !conf.contains("horse"), "{conf}");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);

    // No ssid: exit 1, nothing written; a bad passphrase: exit 2, named, not echoed.
    let _ = std::fs::remove_file(&out);
    let (code, conf, _) = wifi_conf(&file("nowifi.toml", HEAD), &out);
    assert_eq!((code, conf), (1, None));
    let bad =
        file("badpsk.toml", &format!("{HEAD}[network]\nwifi_ssid = 'n'\nwifi_psk = 'seven77'\nwifi_country = 'GB'\n"));
    let (code, conf, err) = wifi_conf(&bad, &out);
    assert_eq!((code, conf), (2, None));
    assert!(err.contains("network.wifi_psk") && !err.contains("seven77"), "{err}");
}

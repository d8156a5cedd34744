//! `[network] wifi_ssid`, `wifi_psk`, `wifi_country` (the keys Raspberry Pi OS's custom.toml has):
//! checked as the box reads them, and turned into the wpa_supplicant.conf init writes in RAM. The
//! passphrase is never echoed in an error, a `Debug` or the file: the file gets the 256-bit PSK
//! derived from it (PBKDF2-HMAC-SHA1, 4096 rounds, salted with the SSID, as IEEE 802.11i says).

use std::num::NonZeroU32;

use super::check::{Reader, Section};

/// A Wi-Fi network to join.
#[derive(Clone, PartialEq, Eq)]
pub struct WifiConfig {
    /// The network's name (1..=32 bytes).
    pub ssid: String,
    /// WPA2 passphrase (8..=63 printable ASCII characters) or the 64-hex-digit PSK; `None` for an
    /// open network.
    pub psk: Option<String>,
    /// Regulatory country, ISO 3166 alpha-2, upper case (e.g. "GB").
    pub country: String,
}

impl std::fmt::Debug for WifiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WifiConfig")
            .field("ssid", &self.ssid)
            .field("psk", &self.psk.as_ref().map(|_| "(set)"))
            .field("country", &self.country)
            .finish()
    }
}

/// A problem with one of the keys: (`wifi_ssid`|`wifi_psk`|`wifi_country`, message).
pub type Problem = (&'static str, String);

/// Checks the three values as given (None = not set). `Ok(None)`: no Wi-Fi configured.
pub fn validate(
    ssid: Option<&str>,
    psk: Option<&str>,
    country: Option<&str>,
) -> Result<Option<WifiConfig>, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(ssid) = ssid else {
        for (key, set) in [("wifi_psk", psk.is_some()), ("wifi_country", country.is_some())] {
            if set {
                problems.push((key, "set, but wifi_ssid is not: add wifi_ssid = \"NETWORK NAME\"".to_string()));
            }
        }
        return if problems.is_empty() { Ok(None) } else { Err(problems) };
    };
    if ssid.is_empty() || ssid.len() > 32 {
        problems.push(("wifi_ssid", format!("must be 1 to 32 bytes long (it is {})", ssid.len())));
    }
    if let Some(psk) = psk {
        if let Err(msg) = check_psk(psk) {
            problems.push(("wifi_psk", msg));
        }
    }
    let country = match country {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
        Some(c) => {
            problems
                .push(("wifi_country", format!("{c:?} is not a two-letter country code (such as \"GB\" or \"US\")")));
            String::new()
        }
        None => {
            let msg = "missing: Wi-Fi needs the country it is used in, wifi_country = \"GB\" (two letters)";
            problems.push(("wifi_country", msg.to_string()));
            String::new()
        }
    };
    if problems.is_empty() {
        Ok(Some(WifiConfig { ssid: ssid.to_string(), psk: psk.map(str::to_string), country }))
    } else {
        Err(problems)
    }
}

/// 8..=63 printable ASCII characters, or exactly 64 hex digits. The message never quotes the value.
fn check_psk(psk: &str) -> Result<(), String> {
    let printable = psk.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if psk.len() == 64 {
        return if psk.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err("64 characters long but not all hex digits: a passphrase has 8 to 63 characters".into())
        };
    }
    if !printable {
        return Err("may only have printable ASCII characters (no accents, tabs or line breaks)".into());
    }
    if !(8..=63).contains(&psk.len()) {
        return Err(format!("must be 8 to 63 characters (or 64 hex digits); it has {}", psk.len()));
    }
    Ok(())
}

/// Reads the keys from `[network]` into `r`'s errors (called by [`super::Config::parse`]).
pub(super) fn read(s: &mut Section<'_>, r: &mut Reader<'_>) -> Option<WifiConfig> {
    let ssid = s.opt_str(r, "wifi_ssid");
    let psk = s.secret_str(r, "wifi_psk");
    let country = s.opt_str(r, "wifi_country");
    match validate(ssid.as_deref(), psk.as_deref(), country.as_deref()) {
        Ok(w) => w,
        Err(problems) => {
            for (key, msg) in problems {
                r.error(format!("network.{key}"), s.span_of(key), msg);
            }
            None
        }
    }
}

impl WifiConfig {
    /// The 256-bit pre-shared key as 64 lower-case hex digits (None for an open network).
    pub fn psk_hex(&self) -> Option<String> {
        let psk = self.psk.as_deref()?;
        if psk.len() == 64 {
            return Some(psk.to_ascii_lowercase());
        }
        let mut key = [0u8; 32];
        let rounds = NonZeroU32::new(4096).expect("4096 is not zero");
        ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA1, rounds, self.ssid.as_bytes(), psk.as_bytes(), &mut key);
        Some(hex(&key))
    }

    /// wpa_supplicant.conf for this network (control socket in `ctrl_dir`). The SSID goes in as hex,
    /// so that no character of it needs quoting.
    pub fn wpa_supplicant_conf(&self, ctrl_dir: &str) -> String {
        let security = match self.psk_hex() {
            Some(k) => format!("\tkey_mgmt=WPA-PSK\n\tpsk={k}\n"),
            None => "\tkey_mgmt=NONE\n".to_string(),
        };
        format!(
            "# Written at boot from roomcast.toml [network] (RAM only).\nctrl_interface={ctrl_dir}\n\
             update_config=0\ncountry={}\nnetwork={{\n\tssid={}\n\tscan_ssid=1\n{security}}}\n",
            self.country,
            hex(self.ssid.as_bytes())
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wifi(ssid: &str, psk: Option<&str>) -> WifiConfig {
        validate(Some(ssid), psk, Some("gb")).unwrap().unwrap()
    }

    #[test]
    fn the_psk_is_derived_as_ieee_802_11i_says() {
        // IEEE 802.11i-2004, annex H.4.1 test vectors.
        let w = wifi("IEEE", Some("password"));
        assert_eq!(w.psk_hex().unwrap(), "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e");
        let w = wifi("ThisIsASSID", Some("ThisIsAPassword"));
        assert_eq!(w.psk_hex().unwrap(), "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af");
        let hexkey = "F42C6FC52DF0EBEF9EBB4B90B38A5F902E83FE1B135A70E23AED762E9710A12E";
        assert_eq!(wifi("x", Some(hexkey)).psk_hex().unwrap(), hexkey.to_ascii_lowercase());
    }

    #[test]
    fn the_conf_has_the_hex_ssid_and_key_and_never_the_passphrase() {
        let w = wifi("Blue \"room\"", Some("correct horse battery"));
        let conf = w.wpa_supplicant_conf("/run/wpa_supplicant");
        assert!(conf.contains("country=GB\n"), "{conf}");
        assert!(conf.contains(&format!("\tssid={}\n", hex(b"Blue \"room\""))), "{conf}");
        assert!(conf.contains(&format!("\tpsk={}\n", w.psk_hex().unwrap())), "{conf}");
        assert!(!conf.contains("horse"), "{conf}");
        assert!(!format!("{w:?}").contains("horse"));
        let open = wifi("cafe", None).wpa_supplicant_conf("/run/w");
        assert!(open.contains("key_mgmt=NONE") && !open.contains("psk="), "{open}");
    }

    #[test]
    fn bad_values_are_named_without_echoing_the_passphrase() {
        let e = validate(Some("n"), Some("short"), Some("GB")).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "wifi_psk");
        assert!(e[0].1.contains("8 to 63") && !e[0].1.contains("short"), "{e:?}");
        let e = validate(Some("n"), Some("pässwörter"), Some("GB")).unwrap_err();
        assert!(e[0].1.contains("printable ASCII"), "{e:?}");
        let e = validate(Some("n"), Some(&"g".repeat(64)), Some("GB")).unwrap_err();
        assert!(e[0].1.contains("hex"), "{e:?}");
        let e = validate(Some("n"), Some("longenough"), Some("GBR")).unwrap_err();
        assert_eq!(e[0].0, "wifi_country");
        let e = validate(Some("n"), Some("longenough"), None).unwrap_err();
        assert!(e[0].0 == "wifi_country" && e[0].1.contains("missing"), "{e:?}");
        let e = validate(Some(&"s".repeat(33)), None, Some("US")).unwrap_err();
        assert_eq!(e[0].0, "wifi_ssid");
        let e = validate(None, Some("longenough"), Some("US")).unwrap_err();
        assert_eq!(e.iter().map(|p| p.0).collect::<Vec<_>>(), ["wifi_psk", "wifi_country"]);
        assert_eq!(validate(None, None, None), Ok(None));
    }
}

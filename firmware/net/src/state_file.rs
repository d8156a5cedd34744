//! The relay's state file (`roomcast relay --state FILE`): its MAC secrets and membership table
//! ([`RelaySnapshot`]) kept across a restart, so gateways that refresh only every query interval
//! (125 s for a standard gateway) keep receiving right after the relay is back.
//!
//! JSON through serde (small, inspectable, versioned). Written atomically: a private temporary
//! file (mode 0600, the file holds secrets) in the same directory, synced, then renamed over the
//! old one, so a crash leaves the old or the new state, never half of one. The relay driver
//! writes it shortly after a change (coalesced) and on shutdown, and reads it at start; the wall
//! clock time it was saved at tells how long the relay was down.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roomcast_amt::RelaySnapshot;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Version of the file layout; other versions are ignored (the relay starts fresh).
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// Wall clock time of the write, milliseconds since the Unix epoch.
    saved_unix_ms: u64,
    relay: RelaySnapshot,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> NetError {
    NetError::StateFile { path: path.to_owned(), reason: reason.to_string() }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads the state saved at `path`: the snapshot and how long ago it was written (by the wall
/// clock; zero if the clock went backwards). `Ok(None)` if there is no file yet.
pub fn load(path: &Path, now: SystemTime) -> Result<Option<(RelaySnapshot, Duration)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(path, e)),
    };
    // serde_json's messages name a line and column, never the content.
    let f: StateFile = serde_json::from_slice(&bytes).map_err(|e| err(path, format!("not a relay state: {e}")))?;
    if f.version != VERSION {
        return Err(err(path, format!("version {} (this relay reads {VERSION})", f.version)));
    }
    let elapsed = Duration::from_millis(unix_ms(now).saturating_sub(f.saved_unix_ms));
    Ok(Some((f.relay, elapsed)))
}

/// The temporary file next to `path` that [`save`] renames into place.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `snapshot` to `path` atomically with mode 0600.
pub fn save(path: &Path, snapshot: &RelaySnapshot, now: SystemTime) -> Result<()> {
    let f = StateFile { version: VERSION, saved_unix_ms: unix_ms(now), relay: snapshot.clone() };
    let bytes = serde_json::to_vec(&f).map_err(|e| err(path, e))?;
    let tmp = temporary(path);
    // A leftover from a crash may have other permissions: start from a new file.
    let _ = std::fs::remove_file(&tmp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| err(&tmp, e))?;
    file.write_all(&bytes).and_then(|()| file.sync_data()).map_err(|e| err(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn snap() -> RelaySnapshot {
        RelaySnapshot {
            secret: [7; 32],
            previous_secret: Some([9; 32]),
            rotate_in: Duration::from_secs(100),
            tunnels: vec![roomcast_amt::TunnelSnapshot {
                gateway: "198.51.100.9:40000".parse().unwrap(),
                nonce: 5,
                previous_nonce: None,
                groups: vec![roomcast_amt::MembershipSnapshot {
                    source: "10.0.0.1".parse().unwrap(),
                    group: "232.1.1.1".parse().unwrap(),
                    expires_in: Duration::from_millis(259_500),
                }],
            }],
        }
    }

    #[test]
    fn round_trip_private_atomic_and_aged() {
        let dir = std::env::temp_dir().join(format!("roomcast-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("relay.state");
        let t0 = SystemTime::now();
        assert!(load(&path, t0).unwrap().is_none(), "no file yet");
        save(&path, &snap(), t0).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the file holds secrets");
        assert!(!temporary(&path).exists());
        let (back, age) = load(&path, t0 + Duration::from_secs(3)).unwrap().unwrap();
        assert_eq!(back, snap());
        assert!(age >= Duration::from_millis(2990) && age <= Duration::from_millis(3010), "{age:?}");
        // A later save replaces it; garbage and other versions are errors that name no content.
        let mut s2 = snap();
        s2.tunnels.clear();
        save(&path, &s2, t0).unwrap();
        assert_eq!(load(&path, t0).unwrap().unwrap().0, s2);
        std::fs::write(&path, b"{\"version\":1,\"secret\":").unwrap();
        let e = load(&path, t0).unwrap_err().to_string();
        assert!(e.contains("not a relay state"), "{e}");
        let mut v = serde_json::to_value(StateFile { version: 1, saved_unix_ms: 0, relay: snap() }).unwrap();
        v["version"] = 99.into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = load(&path, t0).unwrap_err().to_string();
        assert!(e.contains("version 99") && !e.contains("[7,"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

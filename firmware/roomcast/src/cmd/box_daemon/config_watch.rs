//! What wakes the set-up and configuration-error screens: the configuration file changing
//! (inotify on its directory, so an editor's rename-over and `roomcast config set` count) and
//! the box's addresses or routes changing (rtnetlink's address and route multicast groups, so
//! the set-up screen shows the address DHCP just gave). Nothing is polled; only if the kernel
//! refuses both watches does it fall back to reading again every [`FALLBACK_POLL`], and says so.
//! [`FileWatch`] is the one-file part on its own: the box also follows init's Wi-Fi status
//! file (/run/roomcast/wifi) with it.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use futures_core::Stream;
use inotify::{EventStream, Inotify, WatchMask};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

/// How often the configuration is read again when neither watch could be set up.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// The file and network watches.
pub struct ConfigWatch {
    files: Option<FileWatch>,
    net: Option<TokioSocket>,
}

/// One file's changes, from inotify on its directory: a write, a rename over it (how init's
/// scripts and editors replace a file), its creation or removal. Other files in the
/// directory (a script's `wifi.new` before its rename) do not count.
pub struct FileWatch {
    events: EventStream<Vec<u8>>,
    name: OsString,
}

impl FileWatch {
    /// Watches `path`'s directory (which must exist) for events naming `path`'s file.
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().map(OsString::from).unwrap_or_default();
        let inotify = Inotify::init()?;
        inotify.watches().add(
            dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM,
        )?;
        Ok(Self { events: inotify.into_event_stream(vec![0u8; 4096])?, name })
    }

    /// Resolves when the file may have changed (an event naming it, or one without a name such
    /// as the queue's overflow). `Err` when the watch itself ended: read once more and drop it.
    pub async fn changed(&mut self) -> std::io::Result<()> {
        loop {
            match std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.events).poll_next(cx)).await {
                Some(Ok(ev)) if ev.name.as_ref().is_none_or(|n| *n == self.name) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(std::io::Error::other("the inotify stream ended")),
            }
        }
    }
}

impl ConfigWatch {
    /// Watches `path`'s directory and the kernel's address/route changes; a watch the kernel
    /// refuses is logged and left out.
    pub fn new(path: &Path) -> Self {
        let files = match FileWatch::new(path) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot watch the configuration file ({e})");
                None
            }
        };
        let net = match watch_addresses() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot watch address changes ({e}); the set-up screen's address may be stale");
                None
            }
        };
        if files.is_none() && net.is_none() {
            tracing::warn!("reading the configuration again every {} s instead", FALLBACK_POLL.as_secs());
        }
        Self { files, net }
    }

    /// Resolves when something may have changed: an event for the configuration file, an
    /// address or route change, or (without any watch) after [`FALLBACK_POLL`].
    pub async fn changed(&mut self) {
        let watching = self.files.is_some() || self.net.is_some();
        let Self { files, net } = self;
        let file_changed = async {
            match files {
                Some(w) => {
                    // A failed watch: read again to be safe, and stop watching.
                    if w.changed().await.is_err() {
                        *files = None;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let address_changed = async {
            match net {
                Some(sock) => {
                    let mut buf = Vec::with_capacity(16 * 1024);
                    if sock.recv(&mut buf).await.is_err() {
                        *net = None;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let fallback = async {
            if !watching {
                tokio::time::sleep(FALLBACK_POLL).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = file_changed => {}
            _ = address_changed => {}
            _ = fallback => {}
        }
    }
}

fn watch_addresses() -> std::io::Result<TokioSocket> {
    let mut sock = TokioSocket::new(NETLINK_ROUTE)?;
    let groups =
        libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR | libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_ROUTE;
    sock.socket_mut().bind(&SocketAddr::new(0, groups as u32))?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_to_the_file_wakes_the_watch_and_other_files_do_not() {
        let dir = std::env::temp_dir().join(format!("roomcast-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roomcast.toml");
        let mut watch = ConfigWatch::new(&path);
        assert!(watch.files.is_some(), "inotify is available here");
        watch.net = None; // only the file watch in this test
        std::fs::write(dir.join("other.txt"), "x").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
        assert!(quiet.is_err(), "another file in the directory is no reason to read again");
        std::fs::write(&path, "[room]\n").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.expect("the write wakes the watch");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_rename_over_the_file_wakes_its_watch_and_the_temporary_file_does_not() {
        let dir = std::env::temp_dir().join(format!("roomcast-filewatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wifi");
        let mut watch = FileWatch::new(&path).unwrap();
        // As init's `say`: write wifi.new, then rename it over wifi.
        std::fs::write(dir.join("wifi.new"), "wrong-psk\n").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
        assert!(quiet.is_err(), "the temporary file is no reason to read again");
        std::fs::rename(dir.join("wifi.new"), &path).unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await;
        assert!(matches!(woke, Ok(Ok(()))), "the rename wakes the watch: {woke:?}");
        std::fs::remove_file(&path).unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await;
        assert!(matches!(woke, Ok(Ok(()))), "the removal wakes the watch: {woke:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

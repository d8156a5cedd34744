//! What wakes the set-up and configuration-error screens: the configuration file changing
//! (inotify on its directory, so an editor's rename-over and `roomcast config set` count) and
//! the box's addresses or routes changing (rtnetlink's address and route multicast groups, so
//! the set-up screen shows the address DHCP just gave). Nothing is polled; only if the kernel
//! refuses both watches does it fall back to reading again every [`FALLBACK_POLL`], and says so.

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
    files: Option<(EventStream<Vec<u8>>, OsString)>,
    net: Option<TokioSocket>,
}

impl ConfigWatch {
    /// Watches `path`'s directory and the kernel's address/route changes; a watch the kernel
    /// refuses is logged and left out.
    pub fn new(path: &Path) -> Self {
        let files = match watch_dir(path) {
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
                Some((events, name)) => loop {
                    match std::future::poll_fn(|cx| std::pin::Pin::new(&mut *events).poll_next(cx)).await {
                        Some(Ok(ev)) if ev.name.as_ref().is_none_or(|n| n == name) => return,
                        Some(Ok(_)) => {}
                        // An overflowed or failed watch: read again to be safe, and stop watching.
                        Some(Err(_)) | None => {
                            *files = None;
                            return;
                        }
                    }
                },
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

fn watch_dir(path: &Path) -> std::io::Result<(EventStream<Vec<u8>>, OsString)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(OsString::from).unwrap_or_default();
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_FROM,
    )?;
    Ok((inotify.into_event_stream(vec![0u8; 4096])?, name))
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
}

//! `roomcast box`: the meeting-room box daemon.
//!
//! It reads `roomcast.toml` (a bad file keeps it running and showing the error until the file
//! is fixed; a file without a meeting server shows the set-up screen until one is set), opens the camera, microphone and encoder, joins the meeting at the meeting
//! service, sends its streams there, subscribes through its AMT gateway to every other
//! participant's (S,G) as the roster changes, decodes and mixes their audio to the playback
//! device, optionally re-sends everything as native multicast on the room LAN, keeps the
//! display and `[debug] state_file` up to date, and leaves in order on SIGTERM (RTCP BYE, a
//! leave request, AMT teardown). SIGUSR1 toggles mute, as a configured GPIO button does.
//!
//! Parts: [`box_daemon::status`] (state shown and written), [`super::meeting_client`] (control
//! client, shared with `roomcast gateway`), [`box_daemon::send`], [`box_daemon::receive`],
//! [`box_daemon::devices`], [`box_daemon::mute_button`], [`box_daemon::session`] (the driver
//! of `roomcast_session::BoxSession`),
//! [`box_daemon::watchdog`] (the hardware watchdog, fed from the main loop: `[devices] watchdog`
//! of the board, `[system] watchdog_timeout_s`).

mod config_watch;
mod devices;
mod feedback;
mod keys;
mod mute_button;
mod receive;
mod screen;
mod self_view;
mod send;
mod session;
mod status;
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use roomcast_display::{BackendChoice, Display};
use roomcast_meeting::config::{BoardDefaults, Config, MeetingConfig};
use tokio::sync::{mpsc, watch};

use status::{BoxPhase, ConfigProblem, Status, StatusTx};
use watchdog::Watchdog;

/// The longest one step of the main loop (a join request, a DNS lookup, a pause, the leave
/// sequence) may take while the watchdog is still fed; longer counts as hung.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Takes the board's watchdog over from the init's feeder (which releases it just before the
/// daemon starts); none when the board names no device or it cannot be opened.
fn open_watchdog(board: &BoardDefaults, cfg: Option<&Config>) -> (Watchdog, Option<String>) {
    if board.watchdog.is_empty() {
        tracing::info!("watchdog: the board names none ([devices] watchdog)");
        return (Watchdog::none(), None);
    }
    let timeout = cfg.map_or(roomcast_meeting::config::DEFAULT_WATCHDOG_TIMEOUT_S, |c| c.system.watchdog_timeout_s);
    match Watchdog::open(Path::new(&board.watchdog), timeout, Duration::from_secs(3)) {
        Ok(wd) => (wd, None),
        Err(e) => {
            tracing::error!(device = %board.watchdog, "watchdog: cannot open: {e}");
            (Watchdog::none(), Some(format!("watchdog {}: {e}", board.watchdog)))
        }
    }
}

/// Default board file (the image installs it).
pub const DEFAULT_BOARD: &str = "/etc/roomcast/board.toml";

/// Command-line arguments of `roomcast box`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The box's configuration.
    #[arg(long, value_name = "FILE", default_value = "/boot/roomcast.toml")]
    pub config: PathBuf,
    /// Board defaults (default: $ROOMCAST_BOARD, else /etc/roomcast/board.toml; a missing file
    /// means no board defaults).
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
    /// Write the state JSON here even before the configuration is valid (overrides
    /// `[debug] state_file`).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
}

fn load_board(args: &Args) -> BoardDefaults {
    let path = args
        .board
        .clone()
        .or_else(|| std::env::var_os("ROOMCAST_BOARD").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BOARD));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (board, errors) = BoardDefaults::parse(&text);
            for e in errors {
                tracing::warn!(file = %path.display(), "board defaults: {e}");
            }
            tracing::info!(file = %path.display(), board = %board.name, "board defaults");
            board
        }
        Err(e) => {
            if args.board.is_some() {
                tracing::warn!(file = %path.display(), "cannot read board file: {e}; no board defaults");
            }
            BoardDefaults::default()
        }
    }
}

/// The display the configuration (or the board, while the configuration is bad) asks for.
fn display_choice(cfg: Option<&Config>, board: &BoardDefaults) -> BackendChoice {
    let (kind, bus, addr, fb, png) = match cfg {
        Some(c) => (
            c.display.kind.clone(),
            c.display.i2c_bus.clone(),
            c.display.i2c_address,
            c.display.framebuffer.clone(),
            c.display.png.clone(),
        ),
        None => (board.display.clone(), board.i2c_bus.clone(), board.i2c_address, board.framebuffer.clone(), None),
    };
    match kind.as_str() {
        "none" => BackendChoice::None,
        "ssd1306" => BackendChoice::Ssd1306 { bus: bus.into(), address: addr },
        "framebuffer" => BackendChoice::Framebuffer { device: fb.into() },
        "png" => match png {
            Some(path) => BackendChoice::Png { path, width: 320, height: 240 },
            None => BackendChoice::None,
        },
        _ => BackendChoice::Auto {
            i2c_bus: (!bus.is_empty()).then(|| bus.into()),
            framebuffer: (!fb.is_empty()).then(|| fb.into()),
        },
    }
}

/// How often the state file is rewritten at most while the status changes.
const STATE_FILE_EVERY: Duration = Duration::from_millis(250);

/// Shows the status on the display and writes the state file (`None`: none) whenever the
/// status changes, at most every [`STATE_FILE_EVERY`], and when the screen changes by itself
/// (the display's countdown, the missing-device notice); once more when the status channel
/// closes. The display's writes are short (an I2C frame, a framebuffer copy): done in place.
async fn show_status(
    mut status: watch::Receiver<Status>,
    choice: BackendChoice,
    mut state_file: watch::Receiver<Option<PathBuf>>,
) {
    let start = Instant::now();
    let mut display = Display::new(choice);
    let mut last_write = None::<Instant>;
    let mut unwritten = true;
    let mut open = true;
    loop {
        let now = Instant::now();
        let snapshot = status.borrow_and_update().clone();
        let ds = snapshot.display_state(now, now - start);
        tokio::task::block_in_place(|| display.handle_state(now, &ds));
        let write_at = last_write.map_or(now, |t| t + STATE_FILE_EVERY);
        if unwritten && (write_at <= now || !open) {
            unwritten = false;
            last_write = Some(now);
            if let Some(path) = state_file.borrow_and_update().clone() {
                let doc = status::StateFile { status: &snapshot, display: &ds };
                if let Err(e) = tokio::task::block_in_place(|| status::write_json(&path, &doc)) {
                    tracing::debug!(file = %path.display(), "state file: {e}");
                }
            }
        }
        if !open {
            return;
        }
        let deadline = [
            display.poll_timeout(now, &ds),
            snapshot.next_change(now, now - start),
            unwritten.then_some(write_at),
            // The state file's `retry_in_ms` counts down.
            matches!(snapshot.phase, BoxPhase::RelayLost { .. }).then(|| now + STATE_FILE_EVERY),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            r = status.changed() => {
                unwritten = true;
                open = r.is_ok();
            }
            Ok(()) = state_file.changed() => unwritten = true,
            _ = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                if matches!(snapshot.phase, BoxPhase::RelayLost { .. }) {
                    unwritten = true;
                }
            }
        }
    }
}

/// The box's own address while it has no meeting server to ask the way: the source address of
/// the default route (no packet is sent), else a static `[network] address`.
fn replace_if_changed<T: PartialEq>(slot: &mut T, value: T) -> bool {
    let changed = *slot != value;
    *slot = value;
    changed
}

fn own_ip(cfg: &Config) -> Option<std::net::IpAddr> {
    let probe_v4: std::net::SocketAddr = ([192, 0, 2, 1], 9).into();
    let probe_v6: std::net::SocketAddr = ("2001:db8::1".parse::<std::net::Ipv6Addr>().ok()?, 9).into();
    session::local_ip_towards(probe_v4)
        .or_else(|| session::local_ip_towards(probe_v6))
        .or_else(|| cfg.network.address.as_deref()?.split('/').next()?.parse().ok())
}

/// Waits for a valid configuration that names a meeting server, showing every error or the
/// set-up screen meanwhile; `None` on shutdown.
async fn wait_for_config(
    path: &Path,
    board: &BoardDefaults,
    status: &StatusTx,
    state_file: &watch::Sender<Option<PathBuf>>,
    state_file_fixed: bool,
    shutdown: &mut watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> Option<(Config, MeetingConfig)> {
    let mut last_errors = None;
    let mut announced = false;
    let mut watch = config_watch::ConfigWatch::new(path);
    loop {
        match Config::load(path, board) {
            Ok(cfg) if cfg.meeting.is_some() => {
                let meeting = cfg.meeting.clone()?;
                return Some((cfg, meeting));
            }
            Ok(cfg) => {
                last_errors = None;
                if !announced {
                    tracing::warn!(
                        "no meeting server in {}: showing the set-up screen; set [meeting] server, id and \
                         token there (read again when it changes)",
                        path.display(),
                    );
                    announced = true;
                }
                if !state_file_fixed {
                    state_file.send_if_modified(|f| replace_if_changed(f, cfg.debug.state_file.clone()));
                }
                let ip = own_ip(&cfg);
                let phase = BoxPhase::SetUp { file: path.display().to_string() };
                status.send_if_modified(|s| {
                    let changed = s.room != cfg.room.name || s.ip != ip || s.phase != phase;
                    s.room = cfg.room.name.clone();
                    s.ip = ip;
                    s.phase = phase;
                    changed
                });
            }
            Err(errors) => {
                announced = false;
                if last_errors.as_ref() != Some(&errors) {
                    for e in &errors {
                        tracing::error!(file = %path.display(), "configuration: {e}");
                    }
                    tracing::error!("the box keeps running and reads {} again when it changes", path.display());
                    status.send_modify(|s| {
                        s.phase = BoxPhase::ConfigError {
                            file: path.display().to_string(),
                            errors: errors
                                .iter()
                                .map(|e| ConfigProblem { key: e.key.clone(), line: e.line, message: e.message.clone() })
                                .collect(),
                        }
                    });
                    last_errors = Some(errors);
                }
            }
        }
        let stop = wd
            .idle(async {
                tokio::select! {
                    _ = watch.changed() => false,
                    _ = shutdown.changed() => true,
                }
            })
            .await;
        if stop {
            return None;
        }
    }
}

/// Where init's Wi-Fi bring-up writes how the link is doing (see image/rootfs/etc/init.d/wifi).
const WIFI_STATUS_FILE: &str = "/run/roomcast/wifi";

/// Copies init's Wi-Fi status into the box's status whenever init replaces the file (inotify
/// through [`config_watch::FileWatch`]; the screen names a wrong password or a missing network
/// while the meeting service cannot be reached). Ends when the status has no receiver left.
async fn watch_wifi(status: watch::Sender<Status>, file: PathBuf, interface: String, ssid: String) {
    // init makes /run/roomcast before the daemon starts; make it here too so the watch holds.
    let mut watch = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| config_watch::FileWatch::new(&file))
        .map_err(|e| tracing::warn!(file = %file.display(), "cannot watch the Wi-Fi status ({e}): shown once only"))
        .ok();
    let mut last = None;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default(); // a tmpfs file of a few bytes
        let wifi = status::WifiStatus::parse(&text, &interface, &ssid);
        if last.as_ref() != Some(&wifi) {
            tracing::info!(interface = %interface, state = %wifi.state, problem = ?wifi.problem, "Wi-Fi");
            last = Some(wifi.clone());
        }
        status.send_if_modified(|s| {
            let changed = s.wifi.as_ref() != Some(&wifi);
            s.wifi = Some(wifi.clone());
            changed
        });
        let Some(w) = watch.as_mut() else {
            status.closed().await;
            return;
        };
        tokio::select! {
            r = w.changed() => if let Err(e) = r {
                tracing::warn!(file = %file.display(), "the Wi-Fi status watch ended ({e}): reading it once more");
                watch = None;
            },
            _ = status.closed() => return,
        }
    }
}

/// Runs `roomcast box`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let board = load_board(&args);
    let first = Config::load(&args.config, &board).ok();
    // Before anything else: the init's feeder has released the device and it is armed.
    let (mut wd, wd_error) = open_watchdog(&board, first.as_ref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let (shutdown_tx, mut shutdown) = tokio::sync::watch::channel(false);
        let mute_gate = send::MicGate::new(false);
        let (press_tx, presses) = mpsc::unbounded_channel::<()>();
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
            let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
            let press = press_tx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = term.recv() => { tracing::info!("SIGTERM: leaving the meeting"); break; }
                        _ = int.recv() => { tracing::info!("SIGINT: leaving the meeting"); break; }
                        _ = usr1.recv() => {
                            tracing::info!("SIGUSR1: toggling mute");
                            let _ = press.send(());
                        }
                    }
                }
                let _ = shutdown_tx.send(true);
            });
        }

        let (status, status_rx) = watch::channel(Status::new("roomcast", ""));
        if let Some(e) = wd_error {
            status.send_modify(|s| s.error(e));
        }
        let (state_file, state_file_rx) = watch::channel(args.state_file.clone());
        let display = tokio::spawn(show_status(status_rx, display_choice(first.as_ref(), &board), state_file_rx));

        if let Some(w) = first.as_ref().and_then(|c| c.network.wifi.as_ref().map(|w| (c, w))) {
            let (iface, ssid) = (w.0.network.interface.clone(), w.1.ssid.clone());
            tokio::spawn(watch_wifi(status.clone(), PathBuf::from(WIFI_STATUS_FILE), iface, ssid));
        }
        let fixed = args.state_file.is_some();
        let configured =
            wait_for_config(&args.config, &board, &status, &state_file, fixed, &mut shutdown, &mut wd).await;
        let result = match configured {
            None => {
                drop(status);
                Ok(())
            }
            Some((cfg, meeting)) => {
                wd.set_timeout(cfg.system.watchdog_timeout_s, tokio::time::Instant::now());
                if args.state_file.is_none() {
                    state_file.send_replace(cfg.debug.state_file.clone());
                }
                status.send_modify(|s| {
                    let (errors, ip, wifi) = (std::mem::take(&mut s.errors), s.ip, s.wifi.take());
                    *s = Status::new(&cfg.room.name, &meeting.id);
                    s.errors = errors;
                    s.ip = ip;
                    s.wifi = wifi;
                    s.muted = cfg.audio.muted;
                });
                mute_gate.muted.store(cfg.audio.muted, Ordering::Relaxed);
                let _button = cfg.audio.mute_button.as_ref().and_then(|b| {
                    mute_button::spawn(b, press_tx.clone())
                        .map_err(|e| status.send_modify(|s| s.error(format!("mute button: {e}"))))
                        .ok()
                });
                session::run(cfg, meeting, board, status, mute_gate, presses, shutdown, &mut wd).await
            }
        };
        // Orderly SIGTERM/SIGINT: the meeting was left; stop the watchdog (see watchdog.rs for
        // why). An error return drops it without the magic close: it stays armed.
        if result.is_ok() {
            wd.disarm();
        }
        // The status sender is gone (moved into the session and dropped, or dropped here):
        // the display shows the last status and writes the state file once more.
        let _ = display.await;
        result
    })
}

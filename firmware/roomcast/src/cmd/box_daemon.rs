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
//! Parts: [`box_daemon::status`] (state shown and written), [`box_daemon::http`] (control
//! client), [`box_daemon::send`], [`box_daemon::receive`], [`box_daemon::playback`],
//! [`box_daemon::devices`], [`box_daemon::mute_button`], [`box_daemon::session`],
//! [`box_daemon::watchdog`] (the hardware watchdog, fed from the main loop: `[devices] watchdog`
//! of the board, `[system] watchdog_timeout_s`).

mod devices;
mod http;
mod mute_button;
mod playback;
mod receive;
mod send;
mod session;
mod status;
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use roomcast_display::{BackendChoice, Display};
use roomcast_meeting::config::{BoardDefaults, Config, MeetingConfig};

use status::{lock, BoxPhase, ConfigProblem, SharedStatus, Status};
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

/// Shows the status on the display and writes the state file, a few times a second, until
/// `stop` (then once more).
fn spawn_status_thread(
    status: SharedStatus,
    choice: BackendChoice,
    state_file: Arc<std::sync::Mutex<Option<PathBuf>>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("status".into()).spawn(move || {
        let start = Instant::now();
        let mut display = Display::new(choice);
        let mut last_write = None::<Instant>;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let now = Instant::now();
            let snapshot = lock(&status).clone();
            let ds = snapshot.display_state(now, now - start);
            display.update(&ds, now);
            if stopping || last_write.map_or(true, |t| now - t >= Duration::from_millis(250)) {
                last_write = Some(now);
                let path = state_file.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(path) = path {
                    let doc = status::StateFile { status: &snapshot, display: &ds };
                    if let Err(e) = status::write_json(&path, &doc) {
                        tracing::debug!(file = %path.display(), "state file: {e}");
                    }
                }
            }
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// How often a bad or not-set-up configuration is read again (and the set-up screen's address
/// refreshed).
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// The box's own address while it has no meeting server to ask the way: the source address of
/// the default route (no packet is sent), else a static `[network] address`.
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
    status: &SharedStatus,
    state_file: &std::sync::Mutex<Option<PathBuf>>,
    state_file_fixed: bool,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> Option<(Config, MeetingConfig)> {
    let mut last_errors = None;
    let mut announced = false;
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
                         token there (read again every {} s)",
                        path.display(),
                        CONFIG_POLL.as_secs()
                    );
                    announced = true;
                }
                if !state_file_fixed {
                    *state_file.lock().unwrap_or_else(|e| e.into_inner()) = cfg.debug.state_file.clone();
                }
                let ip = own_ip(&cfg);
                let mut s = lock(status);
                s.room = cfg.room.name.clone();
                s.ip = ip;
                s.phase = BoxPhase::SetUp { file: path.display().to_string() };
            }
            Err(errors) => {
                announced = false;
                if last_errors.as_ref() != Some(&errors) {
                    for e in &errors {
                        tracing::error!(file = %path.display(), "configuration: {e}");
                    }
                    tracing::error!(
                        "the box keeps running and reads {} again every {} s",
                        path.display(),
                        CONFIG_POLL.as_secs()
                    );
                    lock(status).phase = BoxPhase::ConfigError {
                        file: path.display().to_string(),
                        errors: errors
                            .iter()
                            .map(|e| ConfigProblem { key: e.key.clone(), line: e.line, message: e.message.clone() })
                            .collect(),
                    };
                    last_errors = Some(errors);
                }
            }
        }
        let stop = wd
            .drive(STEP_LIMIT, async {
                tokio::select! {
                    _ = tokio::time::sleep(CONFIG_POLL) => false,
                    _ = shutdown.changed() => true,
                }
            })
            .await;
        if stop {
            return None;
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
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
            let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
            let gate = mute_gate.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = term.recv() => { tracing::info!("SIGTERM: leaving the meeting"); break; }
                        _ = int.recv() => { tracing::info!("SIGINT: leaving the meeting"); break; }
                        _ = usr1.recv() => {
                            let now_muted = !gate.muted.fetch_xor(true, Ordering::Relaxed);
                            tracing::info!(muted = now_muted, "SIGUSR1: mute toggled");
                        }
                    }
                }
                let _ = shutdown_tx.send(true);
            });
        }

        let status: SharedStatus = Arc::new(std::sync::Mutex::new(Status::new("roomcast", "")));
        if let Some(e) = wd_error {
            lock(&status).error(e);
        }
        let state_file = Arc::new(std::sync::Mutex::new(args.state_file.clone()));
        let stop_status = Arc::new(AtomicBool::new(false));
        let status_thread = spawn_status_thread(
            status.clone(),
            display_choice(first.as_ref(), &board),
            state_file.clone(),
            stop_status.clone(),
        )
        .context("starting the status thread")?;

        let fixed = args.state_file.is_some();
        let result =
            match wait_for_config(&args.config, &board, &status, &state_file, fixed, &mut shutdown, &mut wd).await {
                None => Ok(()),
                Some((cfg, meeting)) => {
                    wd.set_timeout(cfg.system.watchdog_timeout_s, tokio::time::Instant::now());
                    if args.state_file.is_none() {
                        *state_file.lock().unwrap_or_else(|e| e.into_inner()) = cfg.debug.state_file.clone();
                    }
                    {
                        let mut s = lock(&status);
                        *s = Status::new(&cfg.room.name, &meeting.id);
                        s.muted = cfg.audio.muted;
                    }
                    mute_gate.muted.store(cfg.audio.muted, Ordering::Relaxed);
                    let _button = cfg.audio.mute_button.as_ref().and_then(|b| {
                        mute_button::spawn(b, mute_gate.clone())
                            .map_err(|e| lock(&status).error(format!("mute button: {e}")))
                            .ok()
                    });
                    session::run(cfg, meeting, board, status.clone(), mute_gate, shutdown, &mut wd).await
                }
            };
        // Orderly SIGTERM/SIGINT: the meeting was left; stop the watchdog (see watchdog.rs for
        // why). An error return drops it without the magic close: it stays armed.
        if result.is_ok() {
            wd.disarm();
        }
        stop_status.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || status_thread.join()).await;
        result
    })
}

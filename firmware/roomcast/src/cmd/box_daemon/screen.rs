//! The room's screen: the other rooms' video decoded and composed with their names and the
//! box's status (`[screen]`), on a thread of its own so decoding never blocks the session
//! driver.
//!
//! [`ScreenCore`] is the sans-IO part: fed received frames with `handle_frame(now, …)` (one
//! `Av1Decoder` per remote room, created on its first frame) and the status with
//! `handle_status(now, …)`; `poll_screen(now)` composes when something changed and the pacing
//! allows it. [`Screen::spawn`] is the thin driver: a bounded channel from the receive path
//! ([`ScreenFeed::handle_video`] never waits: a full queue drops the frame and the decoder heals
//! on the next keyframe), the output ([`ScreenSink`]) and its failures, which go to the status
//! as problems (a missing or failing output never stops the daemon).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roomcast_display::screen::{self as scr, Compositor, Layout, ScreenOutput, ScreenSink, Tile};
use roomcast_display::{Frame, FrameSize};
use roomcast_media::decode::av1::{Av1Decoder, DecodedPicture};
use roomcast_media::encoder::VideoCodec;
use roomcast_meeting::config::{DisplayConfig, ScreenConfig};
use tokio::sync::{mpsc, watch};

use super::status::Status;

/// Frames queued between the receive path and the screen thread.
pub const QUEUE: usize = 64;
/// Fastest recomposition (about 30 screens a second). Nothing is recomposed without a change:
/// the thread sleeps until a frame, a status change or a paced change's deadline.
pub const MIN_INTERVAL: Duration = Duration::from_millis(33);
/// A decoder not fed for this long, for a room no longer in the status, is dropped.
pub const FORGET_AFTER: Duration = Duration::from_secs(5);

/// Tile threads per decoder (libdav1d).
const DECODER_THREADS: u32 = 2;

struct RemoteVideo {
    decoder: Option<Av1Decoder>,
    picture: Option<DecodedPicture>,
    last_frame: Instant,
    reported: bool,
}

/// The screen's state: decoders, the latest picture of each room, the status to show.
pub struct ScreenCore {
    compositor: Compositor,
    remotes: HashMap<String, RemoteVideo>,
    /// (participant id, room name, speaking) in the status's order.
    rooms: Vec<(String, String, bool)>,
    status: scr::Status,
    dirty: bool,
    last: Option<Instant>,
    /// When the core started (its first screen is due then).
    start: Instant,
    problems: Vec<String>,
}

impl ScreenCore {
    /// Screens of `size` in `layout`, starting at `now` (the first screen is due at once).
    pub fn new(now: Instant, size: FrameSize, layout: Layout) -> Self {
        ScreenCore {
            compositor: Compositor::new(size, layout),
            remotes: HashMap::new(),
            rooms: Vec::new(),
            status: scr::Status::default(),
            dirty: true,
            last: None,
            start: now,
            problems: Vec::new(),
        }
    }

    /// One received frame of participant `id`.
    pub fn handle_frame(&mut self, now: Instant, id: &str, codec: VideoCodec, timestamp: u32, data: &[u8]) {
        let r = self.remotes.entry(id.to_string()).or_insert_with(|| {
            tracing::info!(%id, ?codec, "screen: first frame");
            RemoteVideo { decoder: None, picture: None, last_frame: now, reported: false }
        });
        r.last_frame = now;
        if codec != VideoCodec::Av1 {
            if !r.reported {
                r.reported = true;
                self.problems.push(format!("screen: {id} sends {}, which the screen does not decode", codec.name()));
            }
            return;
        }
        if r.decoder.is_none() {
            match Av1Decoder::new(DECODER_THREADS) {
                Ok(d) => r.decoder = Some(d),
                Err(e) => {
                    if !r.reported {
                        r.reported = true;
                        self.problems.push(format!("screen: AV1 decoder: {e}"));
                    }
                    return;
                }
            }
        }
        let Some(dec) = r.decoder.as_mut() else { return };
        if let Err(e) = dec.handle_frame(now, timestamp, data) {
            tracing::debug!(%id, "screen: frame not decoded: {e}");
        }
        while let Some(p) = dec.poll_picture() {
            if r.picture.is_none() {
                tracing::info!(%id, width = p.width(), height = p.height(), "screen: first picture");
            }
            r.picture = Some(p);
            self.dirty = true;
        }
    }

    /// The box's status: the rooms, their names and who speaks, and the strip.
    pub fn handle_status(&mut self, now: Instant, s: &Status) {
        let rooms: Vec<(String, String, bool)> =
            s.others.iter().map(|o| (o.id.clone(), o.room.clone(), o.speaking)).collect();
        let status = scr::Status {
            room: s.room.clone(),
            meeting: s.meeting.clone(),
            encoder: s.encoder.clone(),
            send_kbps: s.send_kbps,
            recv_kbps: s.recv_kbps,
            loss_percent: s.loss_percent,
            muted: s.muted,
        };
        if rooms != self.rooms || status != self.status {
            self.dirty = true;
        }
        self.remotes.retain(|id, r| {
            rooms.iter().any(|(i, _, _)| i == id) || now.saturating_duration_since(r.last_frame) < FORGET_AFTER
        });
        self.rooms = rooms;
        self.status = status;
    }

    /// Problems since the last call (each reported once).
    pub fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    /// When [`ScreenCore::poll_screen`] may have a screen next (the output may want it later).
    /// `None`: at once.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(self.last.map_or(self.start, |t| t + MIN_INTERVAL))
    }

    /// A composed screen when one is due at `now`.
    pub fn poll_screen(&mut self, now: Instant) -> Option<Frame> {
        let due = self.dirty && self.last.is_none_or(|t| now.saturating_duration_since(t) >= MIN_INTERVAL);
        if !due {
            return None;
        }
        self.last = Some(now);
        self.dirty = false;
        let tiles: Vec<Tile<'_>> = self
            .rooms
            .iter()
            .map(|(id, name, speaking)| Tile {
                name,
                // The roster does not carry the other rooms' mute state yet.
                muted: false,
                speaking: *speaking,
                picture: self.remotes.get(id).and_then(|r| r.picture.as_ref()).map(DecodedPicture::planes),
            })
            .collect();
        match self.compositor.compose(&tiles, None, &self.status) {
            Ok(f) => Some(f),
            Err(e) => {
                self.problems.push(format!("screen: composing: {e}"));
                None
            }
        }
    }
}

enum Input {
    Frame {
        id: String,
        codec: VideoCodec,
        timestamp: u32,
        data: Vec<u8>,
    },
    /// The status watch changed (a wake-up: the thread reads the watch itself).
    Status,
}

/// The receive path's end of the screen's queue.
#[derive(Clone)]
pub struct ScreenFeed {
    tx: SyncSender<Input>,
}

impl ScreenFeed {
    /// Hands a received frame over; never waits (a full queue drops it).
    pub fn handle_video(&self, id: &str, codec: VideoCodec, timestamp: u32, data: Vec<u8>) {
        match self.tx.try_send(Input::Frame { id: id.to_string(), codec, timestamp, data }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!(%id, "screen: busy, frame dropped"),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The screen thread.
pub struct Screen {
    feed: Option<ScreenFeed>,
    thread: Option<JoinHandle<()>>,
    /// The task that wakes the thread on status changes (it holds a sender: aborted on drop).
    forward: tokio::task::JoinHandle<()>,
}

/// The framebuffer for the screen: the first /dev/fbN the status display does not use.
fn free_framebuffer(display: &DisplayConfig) -> Option<PathBuf> {
    let taken = matches!(display.kind.as_str(), "framebuffer" | "auto").then_some(display.framebuffer.as_str());
    (0..4).map(|n| format!("/dev/fb{n}")).find(|p| Some(p.as_str()) != taken && Path::new(p).exists()).map(Into::into)
}

/// True when the status display is (or, with `kind = "auto"` and no I2C bus for an OLED, will
/// be) a framebuffer that a DRM driver provides (its fbdev emulation, e.g. virtio-gpu or
/// simpledrm): then that card is the status display's screen and `auto` must not modeset it for
/// the far end.
fn status_display_is_on_drm(display: &DisplayConfig) -> bool {
    let on_framebuffer = match display.kind.as_str() {
        "framebuffer" => true,
        "auto" => !Path::new(&display.i2c_bus).exists(),
        _ => false,
    };
    if !on_framebuffer {
        return false;
    }
    let Some(name) = Path::new(&display.framebuffer).file_name() else { return false };
    Path::new("/sys/class/graphics").join(name).join("device/drm").exists()
}

impl Screen {
    /// Opens `[screen] output` and starts the thread; `None` when the output is `none` (or
    /// unusable: then the problem is reported and nothing is shown).
    pub fn spawn(
        cfg: &ScreenConfig,
        display: &DisplayConfig,
        status: watch::Receiver<Status>,
        problems: mpsc::UnboundedSender<String>,
    ) -> Option<Screen> {
        let output: ScreenOutput = match cfg.output.parse() {
            Ok(o) => o,
            Err(e) => {
                let _ = problems.send(format!("screen: {e}"));
                return None;
            }
        };
        let layout: Layout = cfg.layout.parse().unwrap_or_else(|e| {
            let _ = problems.send(format!("screen: {e}; using auto"));
            Layout::Auto
        });
        let framebuffer = free_framebuffer(display);
        let output = match output {
            ScreenOutput::Auto if status_display_is_on_drm(display) => {
                let status_fb = display.framebuffer.as_str();
                tracing::info!(
                    framebuffer = status_fb,
                    "screen: the status display is on the DRM card; the far end only on another framebuffer"
                );
                if framebuffer.is_none() {
                    return None;
                }
                ScreenOutput::Framebuffer
            }
            o => o,
        };
        // No free framebuffer: a path that does not open (`framebuffer` then fails, `auto` moves on).
        let framebuffer = framebuffer.unwrap_or_else(|| "/dev/null/no-free-framebuffer".into());
        let sink = match ScreenSink::open(&output, &framebuffer, scr::output::PNG_SIZE) {
            Ok(s) if s.shows_anything() => s,
            Ok(s) => {
                tracing::info!(output = s.describe(), "screen: nothing to show on");
                return None;
            }
            Err(e) => {
                tracing::warn!("screen: {e}");
                let _ = problems.send(format!("screen: {e}; not showing the other rooms"));
                return None;
            }
        };
        tracing::info!(output = sink.describe(), "screen");
        let (tx, rx) = sync_channel(QUEUE);
        // Status changes wake the thread through its queue (a full queue means it is busy and
        // reads the watch when it composes next anyway).
        let (wake, mut changes) = (tx.clone(), status.clone());
        let forward = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if let Err(TrySendError::Disconnected(_)) = wake.try_send(Input::Status) {
                    return;
                }
            }
        });
        let thread = std::thread::Builder::new()
            .name("screen".into())
            .spawn(move || run(rx, sink, layout, status, problems))
            .map_err(|e| tracing::warn!("screen thread: {e}"))
            .ok()?;
        Some(Screen { feed: Some(ScreenFeed { tx }), thread: Some(thread), forward })
    }

    /// The receive path's end.
    pub fn feed(&self) -> Option<ScreenFeed> {
        self.feed.clone()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // The thread ends when every feed is gone; the receivers hold clones, so only wait
        // briefly here (bounded) and leave it otherwise.
        self.feed = None;
        self.forward.abort();
        if let Some(t) = self.thread.take() {
            for _ in 0..20 {
                if t.is_finished() {
                    let _ = t.join();
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn run(
    rx: Receiver<Input>,
    mut sink: ScreenSink,
    layout: Layout,
    mut status: watch::Receiver<Status>,
    problems: mpsc::UnboundedSender<String>,
) {
    let mut core = ScreenCore::new(Instant::now(), sink.size(), layout);
    let first = status.borrow_and_update().clone();
    core.handle_status(Instant::now(), &first);
    let mut failed = false;
    loop {
        let now = Instant::now();
        // Sleep until a frame or a status change, or until a pending change may be shown (the
        // pacing, the PNG's interval); with nothing pending, until the next input.
        let input = match core.poll_timeout() {
            Some(at) => rx.recv_timeout(at.max(sink.poll_timeout(now)).saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut handle = |input: Input| {
            if let Input::Frame { id, codec, timestamp, data } = input {
                core.handle_frame(Instant::now(), &id, codec, timestamp, &data);
            }
        };
        match input {
            Ok(i) => {
                handle(i);
                // Take what else is queued before composing (bounded by the queue's size).
                rx.try_iter().take(QUEUE).for_each(&mut handle);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if status.has_changed().unwrap_or(false) {
            let s = status.borrow_and_update().clone();
            core.handle_status(now, &s);
        }
        if sink.wants_frame(now) {
            if let Some(frame) = core.poll_screen(now) {
                match sink.handle_frame(now, &frame) {
                    Ok(_) => failed = false,
                    Err(e) if !failed => {
                        failed = true;
                        tracing::warn!(output = sink.describe(), "screen: {e}");
                        let _ = problems.send(format!("screen {}: {e}", sink.describe()));
                    }
                    Err(_) => {}
                }
            }
        }
        for p in core.take_problems() {
            let _ = problems.send(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_only_when_something_changed_paced() {
        let t0 = Instant::now();
        let mut core = ScreenCore::new(t0, FrameSize::new(320, 180), Layout::Auto);
        assert_eq!(core.poll_timeout(), Some(t0), "the first screen is due at once");
        assert!(core.poll_screen(t0).is_some(), "the first screen at once");
        assert_eq!(core.poll_timeout(), None, "nothing pending: no deadline, the thread sleeps");
        assert!(core.poll_screen(t0 + Duration::from_secs(10)).is_none(), "nothing changed: nothing composed");
        let t1 = t0 + Duration::from_secs(10);
        let s = Status::new("Here", "m");
        core.handle_status(t1, &s);
        assert!(core.poll_screen(t1).is_some(), "a change long after the last screen: at once");
        core.handle_status(t1 + Duration::from_millis(5), &Status::new("Elsewhere", "m"));
        assert_eq!(core.poll_timeout(), Some(t1 + MIN_INTERVAL));
        assert!(core.poll_screen(t1 + Duration::from_millis(10)).is_none(), "paced");
        assert!(core.poll_screen(t1 + MIN_INTERVAL).is_some(), "changed status");
        core.handle_status(t1 + MIN_INTERVAL, &Status::new("Elsewhere", "m"));
        assert_eq!(core.poll_timeout(), None, "the same status again changes nothing");
    }

    #[test]
    fn h264_and_bad_bytes_are_reported_not_fatal() {
        let now = Instant::now();
        let mut core = ScreenCore::new(now, FrameSize::new(320, 180), Layout::Auto);
        core.handle_frame(now, "p1", VideoCodec::H264, 0, &[0, 0, 0, 1, 0x65]);
        core.handle_frame(now, "p1", VideoCodec::H264, 1, &[0, 0, 0, 1, 0x65]);
        core.handle_frame(now, "p2", VideoCodec::Av1, 0, &[0xff; 40]);
        let p = core.take_problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("H.264") || p[0].contains("H264"), "{p:?}");
        assert!(core.remotes["p2"].picture.is_none());
    }
}

//! The room's screen: the other rooms' video decoded and composed with their names and the
//! box's status (`[screen]`), on a thread of its own so decoding never blocks the session
//! driver.
//!
//! [`ScreenCore`] is the sans-IO part: fed received frames with `handle_frame(now, …)` (one
//! decoder per remote room, created on its first frame: `Av1Decoder` for AV1, `H264Decoder` for
//! H.264, the kernel's M2M decoder when there is one, else OpenH264) and the status with
//! `handle_status(now, …)`, and (`[screen] self_view`) this room's own camera picture with
//! `handle_self_view(now, …)`; `poll_screen(now)` composes when something changed and the pacing
//! allows it. [`Screen::spawn`] is the thin driver: a bounded channel from the receive path
//! ([`ScreenFeed::handle_video`] never waits: a full queue drops the frame and the decoder heals
//! on the next keyframe), the output ([`ScreenSink`]) and its failures, which go to the status
//! as problems (a missing or failing output never stops the daemon).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roomcast_display::screen::{self as scr, Compositor, I420Planes, Layout, ScreenOutput, ScreenSink, Tile};
use roomcast_display::{Frame, FrameSize};
use roomcast_media::decode::av1::{Av1Decoder, DecodedPicture};
use roomcast_media::decode::h264::{H264Decoder, H264Picture};
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
/// The M2M H.264 decoder's coded-buffer size hint (it learns the real size from the stream).
const H264_SIZE_HINT: (u32, u32) = (1280, 720);

enum Decoder {
    Av1(Av1Decoder),
    H264(Box<H264Decoder>),
}

enum Picture {
    Av1(DecodedPicture),
    H264(H264Picture),
}

impl Picture {
    fn planes(&self) -> I420Planes<'_> {
        match self {
            Picture::Av1(p) => p.planes(),
            Picture::H264(p) => p.planes(),
        }
    }
    fn size(&self) -> (u32, u32) {
        match self {
            Picture::Av1(p) => (p.width(), p.height()),
            Picture::H264(p) => (p.width(), p.height()),
        }
    }
}

impl Decoder {
    fn open(codec: VideoCodec) -> roomcast_media::Result<Decoder> {
        Ok(match codec {
            VideoCodec::Av1 => Decoder::Av1(Av1Decoder::new(DECODER_THREADS)?),
            VideoCodec::H264 => Decoder::H264(Box::new(H264Decoder::open(H264_SIZE_HINT.0, H264_SIZE_HINT.1)?)),
        })
    }
    fn codec(&self) -> VideoCodec {
        match self {
            Decoder::Av1(_) => VideoCodec::Av1,
            Decoder::H264(_) => VideoCodec::H264,
        }
    }
    fn handle_frame(&mut self, now: Instant, timestamp: u32, data: &[u8]) -> roomcast_media::Result<()> {
        match self {
            Decoder::Av1(d) => d.handle_frame(now, timestamp, data),
            Decoder::H264(d) => d.handle_frame(now, timestamp, data),
        }
    }
    fn poll_picture(&mut self) -> Option<Picture> {
        match self {
            Decoder::Av1(d) => d.poll_picture().map(Picture::Av1),
            Decoder::H264(d) => d.poll_picture().map(Picture::H264),
        }
    }
}

struct RemoteVideo {
    decoder: Option<Decoder>,
    picture: Option<Picture>,
    last_frame: Instant,
    reported: bool,
}

/// One other room as the status names it.
#[derive(Debug, Clone, PartialEq)]
struct Room {
    id: String,
    name: String,
    speaking: bool,
    muted: bool,
}

/// The screen's state: decoders, the latest picture of each room, the status to show.
pub struct ScreenCore {
    compositor: Compositor,
    remotes: HashMap<String, RemoteVideo>,
    /// The other rooms in the status's order.
    rooms: Vec<Room>,
    status: scr::Status,
    /// This room's camera picture (packed I420: width, height, bytes), with `[screen] self_view`.
    self_view: Option<(u32, u32, Vec<u8>)>,
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
            self_view: None,
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
        // A sender may switch codecs (its encoder fell back): a new decoder then.
        if r.decoder.as_ref().is_some_and(|d| d.codec() != codec) {
            r.decoder = None;
            r.reported = false;
        }
        if r.decoder.is_none() {
            match Decoder::open(codec) {
                Ok(d) => {
                    if let Decoder::H264(h) = &d {
                        tracing::info!(%id, decoder = h.describe(), "screen: H.264");
                    }
                    r.decoder = Some(d)
                }
                Err(e) => {
                    if !r.reported {
                        r.reported = true;
                        self.problems.push(format!("screen: {} decoder for {id}: {e}", codec.name()));
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
                let (width, height) = p.size();
                tracing::info!(%id, width, height, "screen: first picture");
            }
            r.picture = Some(p);
            self.dirty = true;
        }
    }

    /// This room's own camera picture (packed I420) for the self-view; a picture whose bytes do
    /// not match its size is ignored.
    pub fn handle_self_view(&mut self, _now: Instant, width: u32, height: u32, data: Vec<u8>) {
        if I420Planes::packed(width, height, &data).is_none() || width < 2 || height < 2 {
            tracing::debug!(width, height, len = data.len(), "screen: self-view picture of the wrong size");
            return;
        }
        self.self_view = Some((width, height, data));
        self.dirty = true;
    }

    /// The box's status: the rooms, their names and who speaks, and the strip.
    pub fn handle_status(&mut self, now: Instant, s: &Status) {
        let rooms: Vec<Room> = s
            .others
            .iter()
            .map(|o| Room { id: o.id.clone(), name: o.room.clone(), speaking: o.speaking, muted: o.muted })
            .collect();
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
            rooms.iter().any(|room| room.id == *id) || now.saturating_duration_since(r.last_frame) < FORGET_AFTER
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
            .map(|room| Tile {
                name: &room.name,
                muted: room.muted,
                speaking: room.speaking,
                picture: self.remotes.get(&room.id).and_then(|r| r.picture.as_ref()).map(Picture::planes),
            })
            .collect();
        let self_view = self.self_view.as_ref().and_then(|(w, h, data)| I420Planes::packed(*w, *h, data));
        match self.compositor.compose(&tiles, self_view, &self.status) {
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
    /// This room's camera picture (packed I420).
    SelfView {
        width: u32,
        height: u32,
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

    /// Hands this room's camera picture (packed I420) to the self-view; never waits.
    pub fn handle_self_view(&self, width: u32, height: u32, data: Vec<u8>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Input::SelfView { width, height, data }) {
            tracing::debug!("screen: busy, self-view picture dropped");
        }
    }

    /// A feed whose queue a test reads.
    #[cfg(test)]
    pub fn for_test(capacity: usize) -> (ScreenFeed, TestQueue) {
        let (tx, rx) = sync_channel(capacity);
        (ScreenFeed { tx }, TestQueue(rx))
    }
}

/// The screen thread's end of a test feed.
#[cfg(test)]
pub struct TestQueue(Receiver<Input>);

#[cfg(test)]
impl TestQueue {
    /// The self-view pictures queued so far (width, height, bytes).
    pub fn self_views(&self) -> Vec<(u32, u32, Vec<u8>)> {
        self.0
            .try_iter()
            .filter_map(|i| match i {
                Input::SelfView { width, height, data } => Some((width, height, data)),
                _ => None,
            })
            .collect()
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
        let mut handle = |input: Input| match input {
            Input::Frame { id, codec, timestamp, data } => {
                core.handle_frame(Instant::now(), &id, codec, timestamp, &data)
            }
            Input::SelfView { width, height, data } => core.handle_self_view(Instant::now(), width, height, data),
            Input::Status => {}
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
    fn the_self_view_shows_the_local_picture_in_its_rect() {
        let t0 = Instant::now();
        let size = FrameSize::new(640, 360);
        let mut core = ScreenCore::new(t0, size, Layout::Auto);
        let rect = Compositor::new(size, Layout::Auto).self_view_rect(64, 36);
        let centre = rect.center();
        let rgb = |f: &Frame, x: i32, y: i32| {
            let (b, i) = (f.to_rgb_bytes(), (y as usize * f.width() as usize + x as usize) * 3);
            (b[i], b[i + 1], b[i + 2])
        };
        let at = |f: &Frame| rgb(f, centre.x, centre.y);
        let without = core.poll_screen(t0).unwrap();
        // A flat blue picture (BT.601 limited: Y 41, U 240, V 110).
        let (w, h) = (64u32, 36u32);
        let mut data = vec![41u8; (w * h) as usize];
        data.extend(std::iter::repeat_n(240u8, (w * h / 4) as usize));
        data.extend(std::iter::repeat_n(110u8, (w * h / 4) as usize));
        core.handle_self_view(t0, w, h, data.clone());
        let t1 = t0 + MIN_INTERVAL;
        let with = core.poll_screen(t1).expect("a new self-view picture is a change");
        let (c, c0) = (at(&with), at(&without));
        assert!(c.2 > 200 && c.0 < 60 && c.1 < 60, "blue in the self-view rect: {c:?}");
        assert!(c0.2 < 100, "not there without a self-view: {c0:?}");
        let edge = rgb(&with, rect.top_left.x + rect.size.width as i32 - 1, rect.top_left.y + 20);
        assert_eq!(edge, (255, 255, 255), "its white frame");
        core.handle_self_view(t1, w, h + 2, data);
        assert_eq!(core.poll_timeout(), None, "a picture of the wrong size is ignored");
    }

    #[test]
    fn bad_bytes_are_no_picture_and_no_problem() {
        let now = Instant::now();
        let mut core = ScreenCore::new(now, FrameSize::new(320, 180), Layout::Auto);
        core.handle_frame(now, "p1", VideoCodec::H264, 0, &[0, 0, 0, 1, 0x65]);
        core.handle_frame(now, "p1", VideoCodec::H264, 1, &[0, 0, 0, 1, 0x65, 0x88, 0x80]);
        core.handle_frame(now, "p2", VideoCodec::Av1, 0, &[0xff; 40]);
        assert_eq!(core.take_problems(), Vec::<String>::new(), "both decoders open; a bad frame is only skipped");
        assert!(core.remotes["p1"].picture.is_none() && core.remotes["p2"].picture.is_none());
    }

    /// A flat picture of luma `y`, chroma `u`, `v` (packed I420).
    fn flat(w: u32, h: u32, (y, u, v): (u8, u8, u8)) -> Vec<u8> {
        let mut data = vec![y; (w * h) as usize];
        data.extend(std::iter::repeat_n(u, (w * h / 4) as usize));
        data.extend(std::iter::repeat_n(v, (w * h / 4) as usize));
        data
    }

    #[test]
    fn an_h264_room_is_decoded_into_its_tile() {
        use openh264::formats::YUVBuffer;
        let t0 = Instant::now();
        let size = FrameSize::new(640, 360);
        let mut core = ScreenCore::new(t0, size, Layout::Auto);
        let mut s = Status::new("Here", "m");
        s.others.push(super::super::status::OtherStatus { id: "p1".into(), room: "Far".into(), ..Default::default() });
        core.handle_status(t0, &s);
        let (w, h) = (160u32, 90u32);
        let mut enc = openh264::encoder::Encoder::new().unwrap();
        let blue = YUVBuffer::from_vec(flat(w, h, (41, 240, 110)), w as usize, h as usize);
        for n in 0..3u32 {
            let au = enc.encode(&blue).unwrap().to_vec();
            core.handle_frame(t0, "p1", VideoCodec::H264, n * 6000, &au);
        }
        assert_eq!(core.take_problems(), Vec::<String>::new());
        let f = core.poll_screen(t0).expect("a screen");
        let tile = Compositor::new(size, Layout::Auto).tile_rects(1)[0];
        let c = tile.center();
        let b = f.to_rgb_bytes();
        let i = (c.y as usize * f.width() as usize + c.x as usize) * 3;
        let px = (b[i], b[i + 1], b[i + 2]);
        assert!(px.2 > 200 && px.0 < 60 && px.1 < 60, "the H.264 room's blue picture in its tile: {px:?}");
    }
}

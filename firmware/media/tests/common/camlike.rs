//! Camera-like test content made with ffmpeg and cached under `target/tmp/camlike/`: a slow
//! pan and zoom over a detailed still (ffmpeg's mandelbrot source, deep in the seahorse
//! valley: fine filigree beside smooth gradients, like a photograph's texture and sky) with
//! light temporal noise (sensor grain). Shared by the tests and the benchmark
//! (`#[path]`-included); `None` when ffmpeg is missing outside CI.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Container of the generated clip.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YUV4MPEG2 (the camera's `y4m:` source reads it).
    Y4m,
    /// Raw I420 frames back to back.
    Raw,
}

/// Path of a `frames`-long `width`x`height` camera-like clip at `fps`, made on first use.
pub fn clip(width: u32, height: u32, fps: u32, frames: u32, format: Format) -> Option<PathBuf> {
    let ffmpeg = roomcast_test_support::require_tool("ffmpeg")?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("camlike");
    std::fs::create_dir_all(&dir).expect("creating the clip cache");
    let ext = if format == Format::Y4m { "y4m" } else { "yuv" };
    let path = dir.join(format!("camlike_{width}x{height}_{fps}fps_{frames}.{ext}"));
    if path.exists() {
        return Some(path);
    }
    let still = dir.join("still_2560x1440.png");
    if !still.exists() {
        let tmp = dir.join(format!("still.{}.png", unique()));
        let src = "mandelbrot=size=2560x1440:rate=1:maxiter=600:start_scale=0.004:start_x=-0.743643887:\
                   start_y=0.131825904:inner=period:outer=normalized_iteration_count";
        run(ffmpeg_cmd(&ffmpeg).args(["-f", "lavfi", "-i", src, "-frames:v", "1"]).arg(&tmp));
        std::fs::rename(&tmp, &still).expect("caching the still");
    }
    // Zoom from 1.25x to ~1.5x while panning right: every frame moves, as a handheld camera would.
    let filter = format!(
        "zoompan=z='1.25+0.003*on':x='iw/2-(iw/zoom/2)+on*3':y='ih/2-(ih/zoom/2)+on':d=1:s={width}x{height}:fps={fps},\
         noise=alls=6:allf=t,format=yuv420p"
    );
    let tmp = dir.join(format!("clip.{}.{ext}", unique()));
    let container = if format == Format::Y4m { "yuv4mpegpipe" } else { "rawvideo" };
    run(ffmpeg_cmd(&ffmpeg)
        .args(["-loop", "1", "-i"])
        .arg(&still)
        .args(["-vf", &filter, "-frames:v", &frames.to_string(), "-f", container])
        .arg(&tmp));
    std::fs::rename(&tmp, &path).expect("caching the clip");
    Some(path)
}

/// The clip as raw I420 frames.
pub fn raw_frames(width: u32, height: u32, fps: u32, frames: u32) -> Option<Vec<Vec<u8>>> {
    let path = clip(width, height, fps, frames, Format::Raw)?;
    let data = std::fs::read(path).expect("reading the clip");
    let len = (width * height * 3 / 2) as usize;
    assert_eq!(data.len(), len * frames as usize, "clip has the wrong size");
    Some(data.chunks_exact(len).map(<[u8]>::to_vec).collect())
}

fn ffmpeg_cmd(ffmpeg: &std::path::Path) -> Command {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"]);
    cmd
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("running ffmpeg");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A name part no other test (thread or process) uses at the same time: tests that share a clip
/// make it side by side, each in its own temporary file, and the last rename wins.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

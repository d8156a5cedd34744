//! A camera that plays a YUV4MPEG2 (`.y4m`) file: 8-bit 4:2:0 frames, looping at the end,
//! paced on a [`Clock`] at the file's frame rate (`F` header parameter), so benchmarks and
//! tests can feed real-looking content through the same [`Camera`] seam as a webcam.
//!
//! The parser ([`Y4mHeader::parse`], [`Y4mReader`]) takes untrusted bytes: it never panics,
//! bounds every line and frame size, and reports a typed [`Y4mFault`].

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Camera, CaptureFormat};
use crate::clock::Clock;
use crate::convert::PixelFormat;
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// Largest header or `FRAME` line accepted (bytes, with its newline).
pub const MAX_LINE: usize = 1024;
/// Largest width or height accepted.
pub const MAX_SIDE: u32 = 4096;

const MAGIC: &[u8] = b"YUV4MPEG2";

/// What is wrong with a Y4M stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Y4mFault {
    /// The stream does not start with `YUV4MPEG2 `.
    NotY4m,
    /// A header or frame line has no newline within [`MAX_LINE`] bytes.
    LineTooLong,
    /// A header parameter is malformed (the parameter's letter).
    BadParameter(char),
    /// `W` or `H` is missing.
    MissingSize,
    /// Width or height is 0, odd or above [`MAX_SIDE`].
    BadSize(u32, u32),
    /// The frame rate is missing, zero or above 240 fps.
    BadFrameRate(u32, u32),
    /// The colour space is not 8-bit 4:2:0 (`C420`, `C420jpeg`, `C420paldv`, `C420mpeg2`).
    UnsupportedColorspace(String),
    /// A frame does not start with `FRAME`.
    BadFrameHeader,
    /// The data ends inside a frame.
    TruncatedFrame,
    /// The stream has no frame at all (nothing to loop over).
    NoFrames,
}

impl fmt::Display for Y4mFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Y4mFault::NotY4m => write!(f, "not a YUV4MPEG2 stream"),
            Y4mFault::LineTooLong => write!(f, "header line longer than {MAX_LINE} bytes or unterminated"),
            Y4mFault::BadParameter(c) => write!(f, "malformed header parameter `{c}`"),
            Y4mFault::MissingSize => write!(f, "header has no W or H"),
            Y4mFault::BadSize(w, h) => write!(f, "size {w}x{h}: must be even, 2..={MAX_SIDE}"),
            Y4mFault::BadFrameRate(n, d) => write!(f, "frame rate {n}:{d}: must be 1..=240 fps"),
            Y4mFault::UnsupportedColorspace(c) => write!(f, "colour space {c}: only 8-bit 4:2:0 is supported"),
            Y4mFault::BadFrameHeader => write!(f, "frame does not start with FRAME"),
            Y4mFault::TruncatedFrame => write!(f, "data ends inside a frame"),
            Y4mFault::NoFrames => write!(f, "no frames"),
        }
    }
}

/// The stream header: size and frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate numerator.
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
}

impl Y4mHeader {
    /// Parses the header line (without or with its trailing newline).
    pub fn parse(line: &[u8]) -> std::result::Result<Self, Y4mFault> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        if words.next() != Some(MAGIC) {
            return Err(Y4mFault::NotY4m);
        }
        let (mut width, mut height, mut rate) = (None, None, (30, 1));
        for word in words {
            let (&key, value) = word.split_first().ok_or(Y4mFault::NotY4m)?;
            let key = key as char;
            let text = std::str::from_utf8(value).map_err(|_| Y4mFault::BadParameter(key))?;
            match key {
                'W' => width = Some(text.parse::<u32>().map_err(|_| Y4mFault::BadParameter(key))?),
                'H' => height = Some(text.parse::<u32>().map_err(|_| Y4mFault::BadParameter(key))?),
                'F' => rate = ratio(text).ok_or(Y4mFault::BadParameter(key))?,
                'C' if !matches!(text, "420" | "420jpeg" | "420paldv" | "420mpeg2") => {
                    return Err(Y4mFault::UnsupportedColorspace(text.chars().take(32).collect()))
                }
                // Interlacing, aspect ratio, colour space (4:2:0 above) and extensions (X) do not
                // change the frame layout.
                _ => {}
            }
        }
        let (Some(width), Some(height)) = (width, height) else { return Err(Y4mFault::MissingSize) };
        if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Y4mFault::BadSize(width, height));
        }
        let (fps_num, fps_den) = rate;
        if fps_num == 0
            || fps_den == 0
            || fps_num / fps_den > 240
            || (fps_num / fps_den == 240 && fps_num % fps_den != 0)
        {
            return Err(Y4mFault::BadFrameRate(fps_num, fps_den));
        }
        Ok(Y4mHeader { width, height, fps_num, fps_den })
    }

    /// Bytes of one frame's picture (I420).
    pub fn frame_len(&self) -> usize {
        VideoFrame::i420_len(self.width, self.height)
    }

    /// The frame rate rounded to whole frames per second (at least 1).
    pub fn fps(&self) -> u32 {
        ((self.fps_num as u64 + self.fps_den as u64 / 2) / self.fps_den as u64).max(1) as u32
    }

    /// When frame `index` is due, counted from the first frame.
    pub fn due(&self, index: u64) -> Duration {
        let nanos = index as u128 * 1_000_000_000 * self.fps_den as u128 / self.fps_num as u128;
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }
}

fn ratio(text: &str) -> Option<(u32, u32)> {
    let (n, d) = text.split_once(':')?;
    Some((n.parse().ok()?, d.parse().ok()?))
}

/// Reads frames from a Y4M stream, starting over at the first frame at the end.
#[derive(Debug)]
pub struct Y4mReader<R> {
    input: BufReader<R>,
    header: Y4mHeader,
    /// Offset of the first `FRAME`.
    data_start: u64,
    /// Frames read since the last rewind.
    in_pass: u64,
}

impl<R: Read + Seek> Y4mReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<Self> {
        let mut input = BufReader::new(input);
        let line = read_line(&mut input)?.ok_or(MediaError::Y4m(Y4mFault::NotY4m))?;
        let header = Y4mHeader::parse(&line).map_err(MediaError::Y4m)?;
        Ok(Y4mReader { input, header, data_start: line.len() as u64, in_pass: 0 })
    }

    /// The header.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// The next frame's I420 bytes, looping to the first frame at the end of the data.
    pub fn next_frame(&mut self) -> Result<Vec<u8>> {
        for _attempt in 0..2 {
            match self.read_frame()? {
                Some(frame) => {
                    self.in_pass += 1;
                    return Ok(frame);
                }
                None if self.in_pass == 0 => break,
                None => {
                    self.input.seek(SeekFrom::Start(self.data_start)).map_err(|e| MediaError::io("Y4M rewind", e))?;
                    self.in_pass = 0;
                }
            }
        }
        Err(MediaError::Y4m(Y4mFault::NoFrames))
    }

    /// One frame, or `None` at a clean end of data.
    fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(line) = read_line(&mut self.input)? else { return Ok(None) };
        if !(line.starts_with(b"FRAME") && matches!(line.get(5), Some(b' ' | b'\n'))) {
            return Err(MediaError::Y4m(Y4mFault::BadFrameHeader));
        }
        let len = self.header.frame_len();
        // Grows with the data actually there: a huge declared size with little data behind it
        // costs no more memory than the data.
        let mut frame = Vec::new();
        (&mut self.input).take(len as u64).read_to_end(&mut frame).map_err(|e| MediaError::io("Y4M read", e))?;
        if frame.len() != len {
            return Err(MediaError::Y4m(Y4mFault::TruncatedFrame));
        }
        Ok(Some(frame))
    }
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes; `None` at end of data.
fn read_line<R: Read>(input: &mut BufReader<R>) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = input.take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(|e| MediaError::io("Y4M read", e))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        let fault = if line.len() >= MAX_LINE { Y4mFault::LineTooLong } else { Y4mFault::TruncatedFrame };
        return Err(MediaError::Y4m(fault));
    }
    Ok(Some(line))
}

/// A camera playing a Y4M file in a loop at its frame rate.
pub struct Y4mCamera {
    path: PathBuf,
    reader: Y4mReader<File>,
    clock: Arc<dyn Clock>,
    next_index: u64,
    start: Option<Instant>,
}

impl Y4mCamera {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self> {
        let file = File::open(path).map_err(|e| MediaError::io(format!("opening {}", path.display()), e))?;
        let reader = Y4mReader::new(file)?;
        tracing::info!(path = %path.display(), header = ?reader.header(), "Y4M camera opened");
        Ok(Y4mCamera { path: path.to_owned(), reader, clock, next_index: 0, start: None })
    }
}

impl Camera for Y4mCamera {
    fn describe(&self) -> String {
        let h = self.reader.header();
        format!("y4m: {} {}x{}@{}:{}", self.path.display(), h.width, h.height, h.fps_num, h.fps_den)
    }
    fn format(&self) -> CaptureFormat {
        let h = self.reader.header();
        CaptureFormat { width: h.width, height: h.height, fps: h.fps(), pixel_format: PixelFormat::Yu12 }
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        let header = self.reader.header();
        let start = *self.start.get_or_insert_with(|| self.clock.now());
        self.clock.sleep_until(start + header.due(self.next_index));
        let data = self.reader.next_frame()?;
        let index = self.next_index;
        self.next_index += 1;
        Ok(VideoFrame { width: header.width, height: header.height, data, index, captured_at: self.clock.now() })
    }
}

#[cfg(test)]
mod tests;

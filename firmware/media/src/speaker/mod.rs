//! Where the mixed audio goes: a [`Speaker`] plays 48 kHz mono S16 frames, the ALSA playback
//! device ([`alsa::AlsaSpeaker`], with xrun recovery and reopen after device loss) or a
//! [`NullSpeaker`] that keeps the pace and plays nothing; [`Playback`] is the thread (ALSA
//! writes block) that owns the [`Mixer`], takes the decoded audio from a channel
//! ([`PlaybackTx`]) and plays 20 ms of the mix at a time, until stopped.

pub mod alsa;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{MediaError, Result};
use crate::mixer::Mixer;

/// Somewhere to play 48 kHz mono S16 frames.
pub trait Speaker: Send {
    /// What it is.
    fn describe(&self) -> String;
    /// Plays one frame; blocks about as long as the frame lasts.
    fn play(&mut self, frame: &[i16]) -> Result<()>;
}

/// Plays nothing, at the real pace.
pub struct NullSpeaker {
    next: Option<Instant>,
}

impl NullSpeaker {
    /// A null sink.
    pub fn new() -> Self {
        Self { next: None }
    }
}

impl Speaker for NullSpeaker {
    fn describe(&self) -> String {
        "none (decoded and mixed, not played)".into()
    }
    fn play(&mut self, frame: &[i16]) -> Result<()> {
        let now = Instant::now();
        let next = self.next.unwrap_or(now) + Duration::from_micros(frame.len() as u64 * 1_000_000 / 48_000);
        if next > now {
            std::thread::sleep(next - now);
        }
        self.next = Some(next.max(now - Duration::from_millis(100)));
        Ok(())
    }
}

impl Default for NullSpeaker {
    fn default() -> Self {
        Self::new()
    }
}

/// Decoded audio frames queued for the playback thread (about 2.5 s of one room's audio).
const QUEUE: usize = 128;

enum Input {
    Pcm(String, Vec<i16>),
    Remove(String),
}

/// Hands decoded audio to the [`Playback`] thread.
#[derive(Clone)]
pub struct PlaybackTx(SyncSender<Input>);

impl PlaybackTx {
    /// Queues one decoded frame of participant `id`; false (the frame dropped) when the thread
    /// is behind or gone.
    pub fn pcm(&self, id: &str, pcm: Vec<i16>) -> bool {
        self.0.try_send(Input::Pcm(id.to_string(), pcm)).is_ok()
    }

    /// Forgets participant `id` (what it had queued is not played).
    pub fn remove(&self, id: &str) {
        if let Err(TrySendError::Full(i)) = self.0.try_send(Input::Remove(id.to_string())) {
            let _ = self.0.send(i);
        }
    }
}

fn take_inputs(rx: &Receiver<Input>, mixer: &mut Mixer) -> bool {
    loop {
        match rx.try_recv() {
            Ok(Input::Pcm(id, pcm)) => mixer.push(&id, &pcm),
            Ok(Input::Remove(id)) => mixer.remove(&id),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// The playback thread; stopping it (or dropping it) ends it after the frame being played.
pub struct Playback {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Playback {
    /// Starts playing the mix of what arrives on the returned [`PlaybackTx`] to `speaker`, 20 ms
    /// at a time; `on_error` hears each new problem (a repeat of the last one is not reported
    /// again). The thread also ends when every `PlaybackTx` is gone.
    pub fn spawn(
        mut speaker: Box<dyn Speaker>,
        on_error: impl Fn(MediaError) + Send + 'static,
    ) -> Result<(Self, PlaybackTx)> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("playback".into())
            .spawn(move || {
                let mut mixer = Mixer::default();
                let mut last_error = None::<String>;
                while !stopped.load(Ordering::Relaxed) {
                    if !take_inputs(&rx, &mut mixer) {
                        return;
                    }
                    let frame = mixer.mix();
                    if let Err(e) = speaker.play(&frame) {
                        let text = e.to_string();
                        if last_error.as_ref() != Some(&text) {
                            on_error(e);
                            last_error = Some(text);
                        }
                    }
                }
            })
            .map_err(|e| MediaError::io("starting the playback thread", e))?;
        Ok((Self { stop, thread: Some(thread) }, PlaybackTx(tx)))
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixer::FRAME;

    #[test]
    fn null_speaker_keeps_the_pace() {
        let mut s = NullSpeaker::new();
        let start = Instant::now();
        for _ in 0..5 {
            s.play(&[0; FRAME]).unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(80), "{:?}", start.elapsed());
    }

    use std::sync::Mutex;

    struct Counting(Arc<Mutex<Vec<i16>>>);
    impl Speaker for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn play(&mut self, frame: &[i16]) -> Result<()> {
            self.0.lock().unwrap().push(frame[0]);
            std::thread::sleep(Duration::from_millis(5));
            Err(MediaError::Config("always the same problem".into()))
        }
    }

    #[test]
    fn playback_plays_the_mix_reports_a_problem_once_and_stops() {
        let played = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0));
        let e = errors.clone();
        let (p, tx) = Playback::spawn(Box::new(Counting(played.clone())), move |_| *e.lock().unwrap() += 1).unwrap();
        assert!(tx.pcm("a", vec![7; FRAME]));
        let until = Instant::now() + Duration::from_secs(2);
        while played.lock().unwrap().len() < 3 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        p.stop();
        let played = played.lock().unwrap().clone();
        assert!(played.len() >= 3, "{played:?}");
        assert!(played.contains(&7), "the mix reached the speaker: {played:?}");
        assert_eq!(*errors.lock().unwrap(), 1, "a repeated problem is reported once");
        let n = played.len();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(n, played.len(), "nothing plays after stop");
        assert!(!tx.pcm("a", vec![1; FRAME]), "a stopped thread takes nothing");
    }
}

//! Opus encoding and decoding (libopus through audiopus, linked statically): 20 ms frames of
//! 48 kHz 16-bit PCM, bitrate, in-band FEC and DTX options on the encoder; the decoder conceals
//! lost frames and can recover one from the next packet's FEC.

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};

use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, AUDIO_FRAME_SAMPLES};

/// Largest Opus packet we produce (RFC 6716 allows up to 1275 bytes per frame).
pub const MAX_OPUS_PACKET: usize = 1275;

/// Encoder options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// 1 or 2.
    pub channels: u8,
    /// Target bitrate in bit/s.
    pub bitrate_bps: u32,
    /// In-band forward error correction (LBRR); costs bitrate, recovers single losses.
    pub fec: bool,
    /// Expected packet loss in percent (tunes FEC).
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: near-silent frames become 1-2 byte packets.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig { channels: 1, bitrate_bps: 32_000, fec: true, expected_loss_percent: 5, dtx: false }
    }
}

fn channels(n: u8) -> Result<Channels> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(MediaError::Opus(format!("{n} channels: Opus here is mono or stereo"))),
    }
}

fn opus_err(what: &str) -> impl Fn(audiopus::Error) -> MediaError + '_ {
    move |e| MediaError::Opus(format!("{what}: {e}"))
}

/// An Opus encoder for 20 ms frames.
pub struct OpusEncoder {
    inner: Encoder,
    config: OpusConfig,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// A VoIP-tuned encoder.
    pub fn new(config: OpusConfig) -> Result<Self> {
        let mut inner = Encoder::new(SampleRate::Hz48000, channels(config.channels)?, Application::Voip)
            .map_err(opus_err("create encoder"))?;
        inner.set_bitrate(Bitrate::BitsPerSecond(config.bitrate_bps as i32)).map_err(opus_err("bitrate"))?;
        inner.set_inband_fec(config.fec).map_err(opus_err("FEC"))?;
        inner.set_packet_loss_perc(config.expected_loss_percent.min(100)).map_err(opus_err("loss"))?;
        inner.set_dtx(config.dtx).map_err(opus_err("DTX"))?;
        Ok(OpusEncoder { inner, config, buf: vec![0; MAX_OPUS_PACKET] })
    }
    /// The configuration.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }
    /// Changes the bitrate while running.
    pub fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        self.inner.set_bitrate(Bitrate::BitsPerSecond(bitrate_bps as i32)).map_err(opus_err("bitrate"))?;
        self.config.bitrate_bps = bitrate_bps;
        Ok(())
    }
    /// Encodes exactly one 20 ms frame into one Opus packet.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Vec<u8>> {
        if frame.channels != self.config.channels {
            return Err(MediaError::Opus(format!(
                "frame has {} channel(s), encoder {}",
                frame.channels, self.config.channels
            )));
        }
        self.encode_pcm(&frame.samples)
    }
    /// Encodes interleaved PCM of exactly 960 samples per channel.
    pub fn encode_pcm(&mut self, samples: &[i16]) -> Result<Vec<u8>> {
        let want = AUDIO_FRAME_SAMPLES * self.config.channels as usize;
        if samples.len() != want {
            return Err(MediaError::Opus(format!("{} samples, a 20 ms frame is {want}", samples.len())));
        }
        let n = self.inner.encode(samples, &mut self.buf).map_err(opus_err("encode"))?;
        Ok(self.buf[..n].to_vec())
    }
}

/// An Opus decoder producing 48 kHz interleaved PCM.
pub struct OpusDecoder {
    inner: Decoder,
    channels: u8,
    pcm: Vec<i16>,
}

impl OpusDecoder {
    /// A decoder with 1 or 2 output channels (Opus converts streams as needed).
    pub fn new(channels_out: u8) -> Result<Self> {
        let inner = Decoder::new(SampleRate::Hz48000, channels(channels_out)?).map_err(opus_err("create decoder"))?;
        // 120 ms is the longest Opus packet.
        Ok(OpusDecoder { inner, channels: channels_out, pcm: vec![0; 5760 * channels_out as usize] })
    }
    /// Output channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }
    /// Decodes one packet; returns interleaved samples (960 per channel for a 20 ms packet).
    /// Untrusted input: a malformed packet is an error, never a panic.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>> {
        let p = Packet::try_from(packet).map_err(opus_err("packet"))?;
        let out = MutSignals::try_from(&mut self.pcm[..]).map_err(opus_err("buffer"))?;
        let n = self.inner.decode(Some(p), out, false).map_err(opus_err("decode"))?;
        Ok(self.pcm[..n * self.channels as usize].to_vec())
    }
    /// Conceals one lost 20 ms frame. With `next_packet` (the packet after the loss) its
    /// in-band FEC data recovers the lost frame when the sender had FEC on.
    pub fn conceal(&mut self, next_packet: Option<&[u8]>) -> Result<Vec<i16>> {
        let want = AUDIO_FRAME_SAMPLES * self.channels as usize;
        let out = MutSignals::try_from(&mut self.pcm[..want]).map_err(opus_err("buffer"))?;
        let n = match next_packet {
            Some(p) => {
                let p = Packet::try_from(p).map_err(opus_err("packet"))?;
                self.inner.decode(Some(p), out, true).map_err(opus_err("FEC decode"))?
            }
            None => self.inner.decode(None, out, false).map_err(opus_err("PLC"))?,
        };
        Ok(self.pcm[..n * self.channels as usize].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mic::synthetic::SyntheticMic;

    fn tone(first: u64, channels: usize) -> Vec<i16> {
        (0..960u64).flat_map(|i| std::iter::repeat(SyntheticMic::sample(first + i)).take(channels)).collect()
    }

    #[test]
    fn roundtrip_keeps_the_tone() {
        let mut enc = OpusEncoder::new(OpusConfig { bitrate_bps: 64_000, ..OpusConfig::default() }).unwrap();
        let mut dec = OpusDecoder::new(1).unwrap();
        let mut input = Vec::new();
        let mut output = Vec::new();
        for f in 0..50u64 {
            let pcm = tone(f * 960, 1);
            let packet = enc.encode_pcm(&pcm).unwrap();
            assert!(packet.len() > 10 && packet.len() < 400, "{} bytes", packet.len());
            input.extend_from_slice(&pcm);
            output.extend(dec.decode(&packet).unwrap());
        }
        assert_eq!(output.len(), input.len());
        // Opus delays by its lookahead (6.5 ms = 312 samples); compare energy after settling.
        let energy = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len() as f64;
        let (ei, eo) = (energy(&input[9600..]), energy(&output[9600..]));
        assert!((eo / ei - 1.0).abs() < 0.25, "energy in {ei} out {eo}");
    }

    #[test]
    fn dtx_shrinks_silence_and_fec_recovers_a_loss() {
        let mut enc = OpusEncoder::new(OpusConfig { dtx: true, ..OpusConfig::default() }).unwrap();
        let silence = vec![0i16; 960];
        let sizes: Vec<usize> = (0..30).map(|_| enc.encode_pcm(&silence).unwrap().len()).collect();
        assert!(sizes[20..].iter().all(|&s| s <= 3), "DTX packets {sizes:?}");

        let mut enc =
            OpusEncoder::new(OpusConfig { fec: true, expected_loss_percent: 20, ..OpusConfig::default() }).unwrap();
        let packets: Vec<Vec<u8>> = (0..10u64).map(|f| enc.encode_pcm(&tone(f * 960, 1)).unwrap()).collect();
        let mut dec = OpusDecoder::new(1).unwrap();
        for p in &packets[..5] {
            dec.decode(p).unwrap();
        }
        // Packet 5 lost: recover it from packet 6's FEC.
        let recovered = dec.conceal(Some(&packets[6])).unwrap();
        assert_eq!(recovered.len(), 960);
        assert!(recovered.iter().any(|&s| s.unsigned_abs() > 1000), "FEC gives signal, not silence");
        assert_eq!(dec.conceal(None).unwrap().len(), 960);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut enc = OpusEncoder::new(OpusConfig::default()).unwrap();
        assert!(enc.encode_pcm(&[0; 100]).is_err());
        assert!(OpusEncoder::new(OpusConfig { channels: 3, ..OpusConfig::default() }).is_err());
        let mut dec = OpusDecoder::new(2).unwrap();
        assert!(dec.decode(&[]).is_err());
        // Garbage may decode to something or fail, but must not panic.
        let _ = dec.decode(&[0xff; 40]);
        let frame =
            AudioFrame { channels: 2, samples: vec![0; 1920], first_sample: 0, captured_at: std::time::Instant::now() };
        assert!(enc.encode(&frame).is_err(), "channel mismatch");
    }
}

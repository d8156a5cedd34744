//! End-to-end encrypted media seen from the path, with the real binaries on loopback (issue 13
//! item 3). One `roomcast server` and one `roomcast box` A (synthetic AV1 camera, a 440 Hz Opus
//! tone). The test joins the meeting itself twice, watch-only, as "old" and "stay" (their join
//! replies and rosters carry A's SRTP key), and captures A's video and audio channels through an
//! uncredentialed `roomcast gateway --relay … --join …` (what anyone on the path gets):
//! 1. the capture is SRTP: A's SSRCs in clear, and none of the plain payloads (the same packets
//!    decrypted with A's key, a control that must succeed) appears in it;
//! 2. the captured payloads do not decode: as AV1 (IVF, dav1d) they give no picture, as Opus (Ogg,
//!    ffmpeg) no 440 Hz tone, where the decrypted packets give both; with the meeting's
//!    credentials, ffmpeg plays the tone through `roomcast gateway --meeting-server … --forward`
//!    from the SDP the service writes;
//! 3. "old" leaves and keeps its keys: A rekeys; of the packets captured after the rekey none
//!    decrypts with old's keys, and they do with the key "stay" got from its roster.

mod meeting_util;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use meeting_util::*;
use roomcast_crypt::{SrtpKey, Unprotector, SRTP_OVERHEAD};
use roomcast_meeting::client::{self, Call};
use roomcast_meeting::roster::{Caps, JoinReply, ParticipantInfo, Roster};
use roomcast_rtp::ivf::{IvfHeader, IvfWriter};
use roomcast_rtp::ogg_opus::OggOpusWriter;
use roomcast_rtp::{parse_rtp, Av1Depacketizer, Depacketizer};
use roomcast_test_support::require_tool;

const MEETING: &str = "crypt";
const TOKEN: &str = "crypt-token-5mQe";

/// One control request over plain HTTP on loopback (the service allows it there).
fn call(http: u16, c: &Call, secret: Option<&str>) -> client::Response {
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&c.encode("127.0.0.1", TOKEN, secret)).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    client::parse_response(&buf).unwrap()
}

fn roster_as(http: u16, me: &JoinReply) -> Roster {
    let resp = call(http, &Call::roster_as(MEETING, None, &me.participant), Some(&me.secret));
    client::decode_roster(&resp).unwrap().expect("a roster")
}

fn room_a(r: &Roster) -> ParticipantInfo {
    r.by_room("A").cloned().unwrap_or_else(|| panic!("no room A in {}", r.room_names()))
}

/// Datagrams from `sock` for `dur` (at most `max`).
fn capture(sock: &UdpSocket, dur: Duration, max: usize) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while start.elapsed() < dur && got.len() < max {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

fn ssrc(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

/// `packets` (RTP of one SSRC) as an IVF file: each payload a frame as it is (`depacketize`
/// false: what a naive player would try) or the AV1 depacketizer's temporal units.
fn write_ivf(path: &Path, packets: &[Vec<u8>], depacketize: bool) -> u32 {
    let file = std::fs::File::create(path).unwrap();
    let mut ivf = IvfWriter::new(file, IvfHeader::av1_90khz(160, 90)).unwrap();
    let mut depack = Av1Depacketizer::new();
    let mut sorted: Vec<_> = packets.iter().filter_map(|p| parse_rtp(p).ok()).collect();
    sorted.sort_by_key(|p| p.header.sequence_number);
    for p in &sorted {
        if depacketize {
            if let Ok(Some(frame)) = depack.depacketize(p) {
                ivf.write_frame(u64::from(frame.timestamp), &frame.data).unwrap();
            }
        } else {
            ivf.write_frame(u64::from(p.header.timestamp), p.payload).unwrap();
        }
    }
    let frames = ivf.frames();
    ivf.finish_seekable().unwrap();
    frames
}

/// The pictures dav1d decodes from `ivf` into `y4m`: their size and count ((0, 0), 0 when it
/// outputs none). Random bytes can pass for a tiny AV1 frame, so callers compare the size too.
fn dav1d_pictures(dav1d: &Path, ivf: &Path, y4m: &Path) -> ((u32, u32), usize, String) {
    let _ = std::fs::remove_file(y4m);
    let out = Command::new(dav1d).arg("-i").arg(ivf).arg("-o").arg(y4m).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let data = std::fs::read(y4m).unwrap_or_default();
    let Some(eol) = data.iter().position(|b| *b == b'\n') else { return ((0, 0), 0, log) };
    let header = String::from_utf8_lossy(&data[..eol]).into_owned();
    let field = |tag: char| header.split(' ').find_map(|f| f.strip_prefix(tag).and_then(|v| v.parse::<u32>().ok()));
    let (w, h) = (field('W').unwrap_or(0), field('H').unwrap_or(0));
    let (cw, ch) = ((w as usize).div_ceil(2), (h as usize).div_ceil(2));
    let chroma = if header.contains(" C444") { 2 * w as usize * h as usize } else { 2 * cw * ch };
    let frame_len = "FRAME\n".len() + w as usize * h as usize + chroma;
    let mut at = eol + 1;
    let mut pictures = 0;
    while at + frame_len <= data.len() && data[at..].starts_with(b"FRAME") {
        pictures += 1;
        at += frame_len;
    }
    ((w, h), pictures, log)
}

/// The payloads of `packets` as an Ogg Opus file (those whose first byte passes for an Opus TOC:
/// the writer needs their duration); how many went in.
fn write_ogg(path: &Path, packets: &[Vec<u8>]) -> usize {
    let file = std::fs::File::create(path).unwrap();
    let mut ogg = OggOpusWriter::new(file, 1, 1, 312).unwrap();
    let mut sorted: Vec<_> = packets.iter().filter_map(|p| parse_rtp(p).ok()).collect();
    sorted.sort_by_key(|p| p.header.sequence_number);
    let written = sorted.iter().filter(|p| ogg.write_packet(p.payload).is_ok()).count();
    ogg.finish().unwrap();
    written
}

/// How much of the audio ffmpeg decodes from `input` (its input options and `-i FILE`) is the
/// 440 Hz tone: the share of the signal's power in a 430..450 Hz band (Goertzel at 5 Hz steps
/// over 100 ms windows); 0 when ffmpeg decodes nothing. ffmpeg is killed after 30 s.
fn tone_share(ffmpeg: &Path, input: &[&str]) -> (f64, usize) {
    let mut child = Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error"])
        .args(input)
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = reader.join().unwrap();
    let pcm: Vec<f64> = out.chunks_exact(2).map(|s| f64::from(i16::from_le_bytes([s[0], s[1]]))).collect();
    let (mut tone, mut total) = (0.0, 0.0);
    for w in pcm.chunks_exact(4800) {
        let energy: f64 = w.iter().map(|x| x * x).sum();
        let band: f64 = (0..5)
            .map(|i| {
                let f = 430.0 + 5.0 * f64::from(i);
                let k = 2.0 * (2.0 * std::f64::consts::PI * f / 48_000.0).cos();
                let (mut s1, mut s2) = (0.0, 0.0);
                for x in w {
                    let s0 = x + k * s1 - s2;
                    s2 = s1;
                    s1 = s0;
                }
                // |X(f)|^2 scaled to the window's energy share of a pure sine (N/2 * A^2/2 ... ).
                (s1 * s1 + s2 * s2 - k * s1 * s2) * 2.0 / w.len() as f64
            })
            .fold(0.0, f64::max);
        tone += band;
        total += energy;
    }
    (if total > 0.0 { tone / total } else { 0.0 }, pcm.len())
}

/// Decrypts every packet with `rx`; the plain ones.
fn decrypt_all(rx: &mut Unprotector, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    packets.iter().filter_map(|p| rx.unprotect(Instant::now(), p).ok()).collect()
}

#[test]
fn the_path_sees_only_ciphertext_and_a_departed_participant_cannot_decrypt_after_the_rekey() {
    let (Some(dav1d), Some(ffmpeg)) = (require_tool("dav1d"), require_tool("ffmpeg")) else { return };
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-crypt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let _server = spawn_server("server", &ports.server_args(2), &dir.join("server.log"), MEETING, TOKEN);
    let cfg = box_config(&dir, "A", &format!("127.0.0.1:{}", ports.http), MEETING, TOKEN, "");
    // A clean tone: no audio processing between the synthetic mic and the encoder.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "playback = \"null\"",
        "playback = \"null\"\necho_cancellation = false\nnoise_suppression = false\nauto_gain = false",
    );
    std::fs::write(&cfg, text).unwrap();
    let _a = spawn_box(&dir, "A", &cfg);
    wait_for("box A in the meeting", Duration::from_secs(20), || {
        let s = read_state(&dir, "A");
        (s.as_ref().is_some_and(|s| s["phase"]["name"] == "in-meeting"), s)
    });

    // The test's own watch-only participants: their join replies carry A's key.
    let join = |name: &str| {
        client::decode_join(&call(ports.http, &Call::join(MEETING, name, &Caps::default()), None)).unwrap()
    };
    let old = join("old");
    let stay = join("stay");
    // Keepalives for both (the service drops a silent participant after 10 s); bounded: 90 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keepalive = {
        let (stop, http) = (stop.clone(), ports.http);
        let members: Vec<(String, String)> =
            [&old, &stay].iter().map(|j| (j.participant.clone(), j.secret.clone())).collect();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90) {
                for (id, secret) in &members {
                    let _ = call(http, &Call::keepalive(MEETING, id), Some(secret));
                    // 404 once old left
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let a = room_a(&old.roster);
    let key0: SrtpKey = a.key.clone().expect("A's key in old's join reply");
    assert_eq!(room_a(&stay.roster).key.as_ref(), Some(&key0), "every participant gets the same key of A");
    let stranger_roster =
        client::decode_roster(&call(ports.http, &Call::roster(MEETING, None), None)).unwrap().unwrap();
    assert!(room_a(&stranger_roster).key.is_none(), "a roster asked without a participant's secret has no keys");

    // The capture on the path: an uncredentialed gateway on A's video and audio channels.
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sg = a.groups.ipv4;
    let _gateway = Proc::spawn(
        "gateway",
        &[
            "gateway".into(),
            "--relay".into(),
            format!("127.0.0.1:{}", ports.relay),
            "--join".into(),
            format!("{sg}:{}", a.ports.video),
            "--join".into(),
            format!("{sg}:{}", a.ports.audio),
            "--forward".into(),
            out.local_addr().unwrap().to_string(),
        ],
        &dir.join("gateway.log"),
    );
    let captured = capture(&out, Duration::from_secs(5), 5000);
    let video: Vec<Vec<u8>> = captured.iter().filter(|p| p.len() > 12 && ssrc(p) == a.ssrc.video).cloned().collect();
    let audio: Vec<Vec<u8>> = captured.iter().filter(|p| p.len() > 12 && ssrc(p) == a.ssrc.audio).cloned().collect();
    eprintln!("captured {} datagrams: {} of A's video, {} of A's audio", captured.len(), video.len(), audio.len());
    assert!(
        video.len() >= 20 && audio.len() >= 100,
        "the capture got A's media: {} video, {} audio",
        video.len(),
        audio.len()
    );

    // 1. SRTP: the decrypted packets (control) are found nowhere in the capture.
    let mut old_rx = Unprotector::new(key0.clone()).unwrap();
    let plain_video = decrypt_all(&mut old_rx, &video);
    let plain_audio = decrypt_all(&mut old_rx, &audio);
    assert!(
        plain_video.len() * 10 >= video.len() * 9,
        "A's key decrypts its video: {} of {}",
        plain_video.len(),
        video.len()
    );
    assert!(
        plain_audio.len() * 10 >= audio.len() * 9,
        "A's key decrypts its audio: {} of {}",
        plain_audio.len(),
        audio.len()
    );
    for (plain, sent) in plain_video.iter().zip(&video).chain(plain_audio.iter().zip(&audio)) {
        assert_eq!(plain.len() + SRTP_OVERHEAD, sent.len(), "SRTP adds its tag and nothing else");
    }
    let mut leaked = 0;
    for p in plain_video.iter().chain(&plain_audio) {
        let payload = parse_rtp(p).unwrap().payload;
        // Any 16 payload bytes in clear anywhere in the capture would be a leak.
        for window in payload.chunks_exact(16) {
            if captured.iter().any(|c| c.windows(16).any(|w| w == window)) {
                leaked += 1;
                break;
            }
        }
    }
    assert_eq!(leaked, 0, "no plain payload of A's test pattern in the capture");

    // 2. Decoding: nothing from the capture, a picture and the tone from the decrypted packets.
    let (cipher_ivf, plain_ivf) = (dir.join("captured.ivf"), dir.join("decrypted.ivf"));
    // Each captured payload as a frame, and what the AV1 depacketizer makes of them.
    write_ivf(&cipher_ivf, &video, false);
    let cipher_depacketized = dir.join("captured-depacketized.ivf");
    let cipher_units = write_ivf(&cipher_depacketized, &video, true);
    let plain_frames = write_ivf(&plain_ivf, &plain_video, true);
    let y4m = dir.join("out.y4m");
    let (cipher_size, cipher_pictures, cipher_log) = dav1d_pictures(&dav1d, &cipher_ivf, &y4m);
    let (units_size, units_pictures, units_log) = dav1d_pictures(&dav1d, &cipher_depacketized, &y4m);
    let (plain_size, plain_pictures, plain_log) = dav1d_pictures(&dav1d, &plain_ivf, &y4m);
    eprintln!(
        "dav1d: {cipher_pictures} pictures of {cipher_size:?} from the {} captured payloads, {units_pictures} of \
         {units_size:?} from the {cipher_units} units depacketized from them, {plain_pictures} of {plain_size:?} \
         from the {plain_frames} decrypted",
        video.len()
    );
    assert_eq!(plain_size, (160, 90), "dav1d decodes the decrypted video (control): {plain_log}");
    assert!(plain_pictures >= 5, "dav1d decodes the decrypted video (control): {plain_log}");
    let stream = |size, pictures| if size == plain_size { pictures } else { 0 };
    assert_eq!(stream(cipher_size, cipher_pictures), 0, "no picture of A's video from the capture: {cipher_log}");
    assert_eq!(stream(units_size, units_pictures), 0, "none from the depacketized capture either: {units_log}");
    let (cipher_ogg, plain_ogg) = (dir.join("captured.opus"), dir.join("decrypted.opus"));
    let cipher_packets = write_ogg(&cipher_ogg, &audio);
    assert_eq!(write_ogg(&plain_ogg, &plain_audio), plain_audio.len(), "every decrypted payload is Opus");
    let (cipher_tone, cipher_samples) = tone_share(&ffmpeg, &["-i", &cipher_ogg.display().to_string()]);
    let (plain_tone, plain_samples) = tone_share(&ffmpeg, &["-i", &plain_ogg.display().to_string()]);
    eprintln!(
        "440 Hz share: {:.1}% of {cipher_samples} samples from {cipher_packets} of the {} captured payloads, \
         {:.1}% of {plain_samples} decrypted",
        cipher_tone * 100.0,
        audio.len(),
        plain_tone * 100.0
    );
    assert!(plain_tone > 0.5 && plain_samples > 48_000, "ffmpeg decodes the decrypted tone (control)");
    assert!(cipher_tone < 0.05, "no tone in what ffmpeg makes of the capture");

    // 2b. With the meeting's credentials, ffmpeg plays A's audio through `roomcast gateway
    // --forward` from the SDP the service writes (the gateway stays until the end: its leave
    // would rekey A during step 3).
    let forward = format!("127.0.0.1:{}", free_udp_port());
    let _member = Proc::spawn_env(
        "member",
        &[
            "gateway".into(),
            "--meeting-server".into(),
            format!("127.0.0.1:{}", ports.http),
            "--meeting".into(),
            MEETING.into(),
            "--room".into(),
            "A".into(),
            "--media".into(),
            "audio".into(),
            "--listener-name".into(),
            "member".into(),
            "--forward".into(),
            forward.clone(),
        ],
        &dir.join("member.log"),
        &[("ROOMCAST_TOKEN", TOKEN)],
    );
    let (status, sdp) =
        http_get(ports.http, &format!("/v1/meetings/{MEETING}/rooms/A/sdp?forward={forward}&media=audio"), TOKEN);
    assert_eq!(status, 200, "the service writes A's SDP for {forward}: {sdp}");
    let sdp_file = dir.join("A.sdp");
    std::fs::write(&sdp_file, &sdp).unwrap();
    let (played_tone, played_samples) =
        tone_share(&ffmpeg, &["-protocol_whitelist", "file,udp,rtp", "-i", &sdp_file.display().to_string(), "-t", "4"]);
    eprintln!(
        "ffmpeg through the credentialed gateway: {:.1}% at 440 Hz of {played_samples} samples",
        played_tone * 100.0
    );
    let member_log = std::fs::read_to_string(dir.join("member.log")).unwrap_or_default();
    assert!(
        played_samples >= 3 * 48_000 && played_tone > 0.5,
        "ffmpeg plays A's tone through the gateway:\n{member_log}"
    );

    // 3. "old" leaves; A rekeys; "stay" gets the new key from its roster.
    let left = Instant::now();
    let resp = call(ports.http, &Call::leave(MEETING, &old.participant), Some(&old.secret));
    assert_eq!(resp.status, 200, "old's leave");
    let mut key1 = None;
    let took = wait_for("A's new key in stay's roster", Duration::from_secs(5), || {
        key1 = room_a(&roster_as(ports.http, &stay)).key.filter(|k| k.id() > key0.id());
        (key1.is_some(), key1.as_ref().map(SrtpKey::id))
    });
    let key1 = key1.unwrap();
    eprintln!("A's rekey reached stay's roster {took:?} after old's leave (key id {})", key1.id());
    // Past A's switch delay and the receivers' overlap for the old key.
    std::thread::sleep(
        (left + roomcast_crypt::OVERLAP + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    );
    let _ = capture(&out, Duration::from_millis(50), 100_000); // drain what queued meanwhile
    let after: Vec<Vec<u8>> = capture(&out, Duration::from_secs(3), 3000)
        .into_iter()
        .filter(|p| p.len() > 12 && (ssrc(p) == a.ssrc.video || ssrc(p) == a.ssrc.audio))
        .collect();
    assert!(after.len() >= 50, "A still sends after the rekey: {}", after.len());
    let by_old = decrypt_all(&mut old_rx, &after).len();
    let mut fresh_old = Unprotector::new(key0).unwrap();
    let by_old_fresh = decrypt_all(&mut fresh_old, &after).len();
    let mut stay_rx = Unprotector::new(key1).unwrap();
    let by_stay = decrypt_all(&mut stay_rx, &after).len();
    eprintln!(
        "after the rekey: {} packets, old's keys decrypt {by_old} ({by_old_fresh} fresh), stay's {by_stay}",
        after.len()
    );
    assert_eq!((by_old, by_old_fresh), (0, 0), "the departed participant's keys decrypt nothing sent after the rekey");
    assert!(by_stay * 10 >= after.len() * 9, "the new key decrypts them (control): {by_stay} of {}", after.len());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    keepalive.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

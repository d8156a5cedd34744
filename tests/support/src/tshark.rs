//! Captures with dumpcap and dissection of AMT traffic with tshark, for the tests whose claim is
//! "tshark dissects every AMT message with nothing malformed": a bounded [`Capture`] (a
//! duration and a packet limit, stopped with SIGINT so the file is complete) and
//! [`dissect_amt`], which counts what tshark reads as AMT on the given UDP ports and lists every
//! datagram on them it did not read as AMT, every malformed frame and every expert warning or error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dumpcap, stopped (SIGINT, then reaped) by [`Capture::stop`] or on drop.
pub struct Capture {
    child: Option<Child>,
    /// The capture file (pcapng).
    pub file: PathBuf,
    log: PathBuf,
}

impl Capture {
    /// Starts `dumpcap` on `interfaces` (in the network namespace of the calling thread) with
    /// the capture `filter`, into `file`; at most `max_secs` seconds and `max_packets` packets.
    /// Waits (at most 10 s) until it captures; panics if it does not.
    pub fn start(
        dumpcap: &Path,
        interfaces: &[&str],
        filter: &str,
        file: &Path,
        max_secs: u32,
        max_packets: u32,
    ) -> Capture {
        let log = file.with_extension("dumpcap.log");
        let err = std::fs::File::create(&log).expect("dumpcap log");
        let mut cmd = Command::new(dumpcap);
        for i in interfaces {
            cmd.args(["-i", i]);
        }
        cmd.args(["-f", filter, "-w"]).arg(file);
        cmd.args(["-a", &format!("duration:{max_secs}"), "-c", &max_packets.to_string()]);
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err).spawn().expect("dumpcap");
        let c = Capture { child: Some(child), file: file.to_path_buf(), log };
        let end = Instant::now() + Duration::from_secs(10);
        while !c.log_text().contains("Capturing on") {
            assert!(Instant::now() < end, "dumpcap did not start: {}", c.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the capture (SIGINT: dumpcap closes the file properly) and waits for it (at most
    /// 5 s, then SIGKILL). Returns dumpcap's log.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            // Our own child, not reaped yet (so its pid is still its own).
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let end = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > end {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.log_text()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What tshark read in a capture.
#[derive(Debug, Default)]
pub struct AmtDissection {
    /// AMT messages by AMT type (1 Discovery ... 7 Teardown).
    pub by_type: BTreeMap<u8, usize>,
    /// UDP datagrams on the AMT ports that tshark did not dissect as AMT (frame numbers).
    pub not_amt: Vec<String>,
    /// Frames tshark marked malformed (its one-line summaries).
    pub malformed: Vec<String>,
    /// Frames with an expert warning or error (frame number, severities).
    pub expert: Vec<String>,
}

impl AmtDissection {
    /// AMT messages of `amt_type`.
    pub fn count(&self, amt_type: u8) -> usize {
        self.by_type.get(&amt_type).copied().unwrap_or(0)
    }

    /// Panics unless every datagram on the AMT ports is AMT, nothing is malformed and there is
    /// no expert warning or error.
    pub fn assert_clean(&self) {
        assert!(self.not_amt.is_empty(), "datagrams on the AMT port that are not AMT: {self:#?}");
        assert!(self.malformed.is_empty(), "tshark found malformed packets: {self:#?}");
        assert!(self.expert.is_empty(), "tshark expert warnings or errors: {self:#?}");
    }
}

/// tshark's expert severity of a warning (`PI_WARN`); errors (`PI_ERROR`) are above.
const PI_WARN: u32 = 0x0060_0000;

/// Dissects `pcap` with `tshark`, decoding UDP `amt_ports` as AMT (2268 is AMT already).
pub fn dissect_amt(tshark: &Path, pcap: &Path, amt_ports: &[u16]) -> AmtDissection {
    let decode: Vec<String> = amt_ports.iter().map(|p| format!("udp.port=={p},amt")).collect();
    let ports: Vec<String> = amt_ports.iter().map(|p| format!("udp.port=={p}")).collect();
    let on_ports = format!("({})", ports.join(" || "));
    let run = |filter: &str, fields: &[&str]| -> String {
        let mut cmd = Command::new(tshark);
        cmd.arg("-r").arg(pcap).arg("-n");
        for d in &decode {
            cmd.args(["-d", d]);
        }
        cmd.args(["-Y", filter]);
        if !fields.is_empty() {
            cmd.args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]);
            for f in fields {
                cmd.args(["-e", f]);
            }
        }
        let out = cmd.output().expect("tshark runs");
        assert!(out.status.success(), "tshark -Y {filter}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut d = AmtDissection::default();
    let fields = run(&format!("{on_ports} && amt"), &["frame.number", "amt.type", "_ws.expert.severity"]);
    for line in fields.lines() {
        let f: Vec<&str> = line.split('|').collect();
        // An AMT message inside an AMT message does not exist, but a frame may carry several
        // AMT types when tshark nests (it does not for AMT); the first is the message's.
        if let Some(t) = f.get(1).and_then(|t| t.split(',').next()).and_then(|t| t.parse::<u8>().ok()) {
            *d.by_type.entry(t).or_default() += 1;
        }
        let severities = f.get(2).copied().unwrap_or("");
        let worst = severities
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).or_else(|_| s.parse()).unwrap_or(u32::MAX))
            .max()
            .unwrap_or(0);
        if worst >= PI_WARN {
            d.expert.push(format!("frame {}: severities {severities}", f[0]));
        }
    }
    // ICMP errors quoting an AMT datagram (a killed relay's port unreachable) are not AMT messages.
    d.not_amt = run(&format!("{on_ports} && !amt && !icmp"), &["frame.number"]).lines().map(String::from).collect();
    d.malformed = run("_ws.malformed", &[]).lines().map(String::from).collect();
    d
}

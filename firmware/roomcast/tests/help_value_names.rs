//! Every subcommand's `--help` names values by what they are (`--to <ADDR:PORT>`, `--size
//! <WxH>`, `--sdp <FILE>`), not by clap's default, the option's own name in capitals (`<TO>`,
//! `<BITRATE_KBPS>`), so the subcommands read alike.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

const SUBCOMMANDS: [&[&str]; 11] = [
    &["relay"],
    &["gateway"],
    &["stream"],
    &["record"],
    &["probe"],
    &["display"],
    &["server"],
    &["box"],
    &["check-config"],
    &["config", "get"],
    &["codec-check"],
];

/// (option, placeholder) pairs of a help text: `--to <ADDR:PORT>` gives ("to", "ADDR:PORT").
fn placeholders(help: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("--") else { continue };
        let (opt, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some(v) = rest.strip_prefix('<').and_then(|r| r.split_once('>')).map(|(v, _)| v) {
            out.push((opt.to_string(), v.to_string()));
        }
    }
    out
}

#[test]
fn value_names_say_what_the_value_is() {
    // A placeholder that is just the option's name is fine when it is the unit itself.
    const SAME_NAME_OK: [&str; 1] = ["SECONDS"];
    let mut bad = Vec::new();
    for sub in SUBCOMMANDS {
        let out = Command::new(BIN).args(sub).arg("--help").output().unwrap();
        assert!(out.status.success(), "{sub:?} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        for (opt, value) in placeholders(&help) {
            let derived = opt.to_uppercase().replace('-', "_");
            if (value == derived && !SAME_NAME_OK.contains(&value.as_str())) || value.contains('_') {
                bad.push(format!("roomcast {} --{opt} <{value}>", sub.join(" ")));
            }
        }
    }
    assert!(bad.is_empty(), "value names that only repeat the option's name:\n{}", bad.join("\n"));
}

#[test]
fn stream_names_its_destination_as_the_others_do() {
    let out = Command::new(BIN).args(["stream", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let p = placeholders(&help);
    for (opt, want) in [("to", "ADDR:PORT"), ("sdp", "FILE"), ("size", "WxH"), ("camera", "DEVICE")] {
        assert!(p.iter().any(|(o, v)| o == opt && v == want), "--{opt} <{want}> in:\n{help}");
    }
}

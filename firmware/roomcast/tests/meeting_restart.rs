//! The meeting service killed with SIGKILL and restarted on the same addresses (issue 13
//! item 6): the new instance has another epoch and knows nobody; every box must be back in
//! its roster within 5 s (boxes rejoin on a changed epoch, a lower roster version or a
//! keepalive 404).

mod meeting_util;

use std::time::{Duration, Instant};

use meeting_util::*;

const MEETING: &str = "restart";
const TOKEN: &str = "restart-token-0123456789";

fn roster(http: u16) -> (u16, String) {
    http_get(http, &format!("/v1/meetings/{MEETING}/roster"), TOKEN)
}

#[test]
fn boxes_rejoin_a_restarted_service_within_5_s() {
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let http = ports.http;
    let log = dir.join("server.log");
    let mut server = spawn_server("server", &ports.server_args(5), &log, MEETING, TOKEN);

    let rooms = ["A", "B"];
    let _boxes: Vec<Proc> = rooms
        .iter()
        .map(|r| {
            let cfg = box_config(&dir, r, &format!("127.0.0.1:{http}"), MEETING, TOKEN, "");
            spawn_box(&dir, r, &cfg)
        })
        .collect();
    wait_for("both boxes in the roster", Duration::from_secs(30), || {
        let (_, body) = roster(http);
        (rooms_in(&body) == ["A", "B"], body)
    });
    let (_, before) = roster(http);
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();

    server.kill();
    let restarted = Instant::now();
    let _server = Proc::spawn_env(
        "server (restarted)",
        &ports.server_args(5),
        &log,
        &[("ROOMCAST_MEETINGS", &format!("{MEETING} {TOKEN}"))],
    );
    let took = wait_for("both boxes back in the restarted service's roster", Duration::from_secs(15), || {
        let (_, body) = roster(http);
        (rooms_in(&body) == ["A", "B"], body)
    });
    let (_, after) = roster(http);
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_ne!(after["epoch"], before["epoch"], "a restarted service has another epoch");
    assert!(after["epoch"].as_u64().unwrap_or(0) != 0, "the epoch is drawn, not 0: {after}");
    eprintln!("both boxes back {took:?} after the restart began ({:?} since the kill)", restarted.elapsed());
    assert!(took < Duration::from_secs(5), "boxes took {took:?} to rejoin (limit 5 s)");
}

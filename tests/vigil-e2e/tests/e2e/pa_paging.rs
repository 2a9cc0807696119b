//! The pa-paging plugin through the real vigild: the demo camera raises an
//! incident, the automatic Secure is dispatched, and the plugin pages the PA.
//! SIPp is the paging extension (`vigil_peers::sipp`); the test itself is the
//! RTP sink the extension's SDP answer points at, so it checks the audio
//! byte for byte against the message the plugin embeds (`plugins/pa-paging/audio/`).
//! The plugin's answer must reach `alerts/actions` and the audit trail.
//!
//! The package is signed with a test key and its manifest is the plugin's own
//! `manifest.json` with the network endpoints replaced by SIPp's and the sink's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vigil_peers::sipp::{self, RtpSink, Scenario, Sipp, check_pcmu_stream};

use crate::daemon::deduplicated;
use crate::harness::WAIT;
use crate::plugin_site::{PluginSite, shipped_manifest};

/// The plugin's folder in the repository.
fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/pa-paging")
}

/// A message as the plugin embeds it.
fn message(name: &str) -> Vec<u8> {
    let path = plugin_dir().join("audio").join(format!("{name}.ul"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `message` `repeat` times with `pause_ms` of µ-law silence between, padded
/// with silence to whole 20 ms packets: what the PA must have received.
fn expected_audio(message: &[u8], repeat: usize, pause_ms: usize) -> Vec<u8> {
    let mut audio = Vec::new();
    for i in 0..repeat {
        if i > 0 {
            audio.extend(std::iter::repeat_n(0xFF, pause_ms * 8));
        }
        audio.extend_from_slice(message);
    }
    audio.resize(audio.len().div_ceil(160) * 160, 0xFF);
    audio
}

/// One run: vigild with the pa-paging package, granted SIPp's and the sink's addresses.
fn start(sipp: &Sipp, sink: &RtpSink, config: &str, drill: bool) -> PluginSite {
    let network = [sipp.addr().to_string(), sink.addr().to_string()];
    let grant = format!(
        "network = [\"{}\", \"{}\"]\n\
         # A page of a few seconds, played twice, does not fit the default 2 s.\ncall_timeout_ms = 40000\n\
         config = {{ server = \"{}\", extension = \"page\", {config} }}\n",
        network[0],
        network[1],
        sipp.addr(),
    );
    PluginSite::start(&shipped_manifest("pa-paging", &network), &grant, drill)
}

/// The plugin's answer to the automatic Secure, from `alerts/actions`.
fn answer(run: &PluginSite, within: Duration) -> Value {
    run.district().wait_alerts("the raise", WAIT * 2, |a| !deduplicated(a).is_empty());
    let m = run.district().wait_for("pa-paging's answer on alerts/actions", within, |m| {
        m.topic.ends_with("/alerts/actions")
            && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["plugin"] == "pa-paging")
    });
    serde_json::from_slice(&m.payload).unwrap()
}

#[test]
fn the_automatic_secure_is_paged_with_digest_auth_and_reaches_the_district() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Auth, sink.addr()).unwrap();
    let run = start(
        &sipp,
        &sink,
        &format!(
            "user = \"{}\", password = \"{}\", repeat = 2, pause_ms = 500, retries = 0",
            sipp::USER,
            sipp::PASSWORD
        ),
        false,
    );
    let result = answer(&run, WAIT * 3);
    sipp.wait_success(WAIT).unwrap_or_else(|e| panic!("{e}\nvigild:\n{}", run.log()));

    let audio = expected_audio(&message("secure"), 2, 500);
    let packets = audio.len() / 160;
    assert_eq!(
        (result["action"].as_str(), result["result"].as_str()),
        (Some("activate:secure"), Some("done")),
        "{result}\nvigild:\n{}",
        run.log()
    );
    let detail = result["detail"].as_str().unwrap();
    let seconds = message("secure").len() as f64 / 8000.0;
    assert_eq!(
        detail,
        format!(
            "paged secure to {}: 2 x {seconds:.1} s, {packets} RTP packets to {}, authenticated",
            sipp.uri(),
            sink.addr()
        )
    );
    let received = check_pcmu_stream(&sink.packets()).unwrap_or_else(|e| panic!("{e}\n{}", sipp.log()));
    assert!(
        received == audio,
        "the PA did not receive the Secure message twice ({} bytes, expected {})",
        received.len(),
        audio.len()
    );
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK", "INVITE", "ACK", "BYE"], "{}", sipp.log());

    let status = run.status("pa-paging's last page", |s| !s["last"].is_null());
    assert_eq!((status["calls"].as_u64(), status["failures"].as_u64()), (Some(1), Some(0)), "{status}");
    let last = &status["last"];
    assert_eq!(
        (last["directive"].as_str(), last["message"].as_str(), last["result"].as_str(), last["sip_status"].as_u64()),
        (Some("activate:secure"), Some("secure"), Some("done"), Some(200)),
        "{status}"
    );
    assert_eq!(last["detail"], detail);

    let audit = run.audit();
    assert!(
        audit.iter().any(|e| e.actor == "plugin:pa-paging"
            && e.event == "action-result"
            && e.reason == format!("done: {detail}")),
        "the answer is not in the audit trail: {audit:#?}"
    );
}

#[test]
fn a_drill_plays_the_drill_message() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Answer, sink.addr()).unwrap();
    let run = start(&sipp, &sink, "repeat = 1, retries = 0", true);
    let result = answer(&run, WAIT * 3);
    sipp.wait_success(WAIT).unwrap_or_else(|e| panic!("{e}\nvigild:\n{}", run.log()));

    assert_eq!(result["result"], "done", "{result}\nvigild:\n{}", run.log());
    let detail = result["detail"].as_str().unwrap();
    assert!(detail.starts_with(&format!("paged drill-secure to {}: 1 x ", sipp.uri())), "{detail}");
    // The drill message ("This is a drill. Secure. …"), not the real one, byte for byte.
    let received = check_pcmu_stream(&sink.packets()).unwrap_or_else(|e| panic!("{e}\n{}", sipp.log()));
    let drill = expected_audio(&message("drill-secure"), 1, 0);
    assert_ne!(drill, expected_audio(&message("secure"), 1, 0));
    assert!(
        received == drill,
        "the PA did not receive the drill message ({} bytes, expected {})",
        received.len(),
        drill.len()
    );
    assert!(
        run.audit().iter().any(|e| e.actor == "plugin:pa-paging" && e.reason == format!("done: {detail}")),
        "the answer is not in the audit trail"
    );
}

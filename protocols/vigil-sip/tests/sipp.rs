//! The paging agent against a real SIP peer: SIPp running the scenarios in
//! `tests/peers/sipp/` (answer, digest authentication right and wrong, busy,
//! no answer), with the test itself receiving the RTP (`vigil_peers::sipp`).
//! A dead port stands in for a server that is not there (ICMP refused).

use std::net::SocketAddr;
use std::time::Duration;

use vigil_peers::sipp::{self, RtpSink, Scenario, Sipp, check_pcmu_stream};
use vigil_sip::{Credentials, Page, PageError, g711, page};

/// Generous: the machine is shared and SIPp answers at its own pace.
const WAIT: Duration = Duration::from_secs(30);

/// Half a second of a 440 Hz tone and a little over 20 ms of silence: 26
/// packets, the last one padded.
fn tone() -> Vec<u8> {
    let mut audio: Vec<u8> = (0..4000)
        .map(|i| g711::encode((8000.0 * (i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin()) as i16))
        .collect();
    audio.extend(std::iter::repeat_n(g711::SILENCE, 100));
    audio
}

fn credentials(password: &str) -> Credentials {
    Credentials { username: sipp::USER.into(), password: password.into() }
}

fn call(sipp: &Sipp, audio: &[u8], credentials: Option<&Credentials>) -> Result<vigil_sip::PageReport, PageError> {
    let target = sipp.uri();
    page(
        &Page {
            server: sipp.addr(),
            target: &target,
            from_user: "vigil",
            credentials,
            audio,
            answer_timeout: Duration::from_secs(5),
            hangup_timeout: Duration::from_secs(5),
        },
        vigil_sip::random_seed(),
    )
}

/// Checks the stream the sink got is `audio`, padded to whole packets.
fn assert_audio_arrived(sink: &RtpSink, audio: &[u8], sipp: &Sipp) {
    let packets = sink.packets();
    let received = check_pcmu_stream(&packets).unwrap_or_else(|e| panic!("{e}\n{}", sipp.log()));
    assert_eq!(packets.len(), audio.len().div_ceil(160), "packets");
    assert_eq!(&received[..audio.len()], audio, "the audio arrived changed");
    assert!(received[audio.len()..].iter().all(|&b| b == g711::SILENCE), "the last packet is padded with silence");
    assert!(sink.malformed().is_empty(), "non-RTP datagrams: {:?}", sink.malformed());
}

#[test]
fn an_answered_page_streams_the_audio_and_hangs_up() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Answer, sink.addr()).unwrap();
    let audio = tone();
    let report = call(&sipp, &audio, None).unwrap_or_else(|e| panic!("{e}\n{}", sipp.log()));
    sipp.wait_success(WAIT).unwrap();

    assert_eq!(report.media, sink.addr());
    assert_eq!(report.packets, 26);
    assert!(!report.authenticated);
    assert_eq!(report.bye_status, Some(200));
    assert_audio_arrived(&sink, &audio, &sipp);
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK", "BYE"], "{}", sipp.log());
    let invite = sipp.received_request("INVITE", 0).unwrap();
    for line in ["m=audio ", "a=rtpmap:0 PCMU/8000", "a=sendonly", "Content-Type: application/sdp"] {
        assert!(invite.contains(line), "the INVITE lacks {line:?}:\n{invite}");
    }
    let bye = sipp.received_request("BYE", 0).unwrap();
    assert!(bye.starts_with(&format!("BYE sip:page@{} SIP/2.0", sipp.addr())), "BYE goes to the Contact:\n{bye}");
}

#[test]
fn a_challenged_page_answers_with_digest_credentials() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Auth, sink.addr()).unwrap();
    let audio = tone();
    let report =
        call(&sipp, &audio, Some(&credentials(sipp::PASSWORD))).unwrap_or_else(|e| panic!("{e}\n{}", sipp.log()));
    sipp.wait_success(WAIT).unwrap();

    assert!(report.authenticated);
    assert_eq!(report.bye_status, Some(200));
    assert_audio_arrived(&sink, &audio, &sipp);
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK", "INVITE", "ACK", "BYE"], "{}", sipp.log());
    let second = sipp.received_request("INVITE", 1).unwrap();
    for part in [
        "Authorization: Digest username=\"vigil\"",
        "realm=\"vigil-test\"",
        "qop=auth",
        "nc=00000001",
        "cnonce=",
        "opaque=",
    ] {
        assert!(second.contains(part), "the second INVITE lacks {part:?}:\n{second}");
    }
}

#[test]
fn a_wrong_password_fails_with_the_servers_status() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Auth, sink.addr()).unwrap();
    let error = call(&sipp, &tone(), Some(&credentials("not-the-password"))).unwrap_err();
    sipp.wait_success(WAIT).unwrap();
    assert_eq!(error.to_string(), format!("SIP 403 Forbidden from {}", sipp.uri()));
    assert_eq!(error.status(), Some(403));
    assert!(!error.is_retryable());
    assert!(sink.packets().is_empty(), "audio was sent to a call that was refused");
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK", "INVITE", "ACK"], "{}", sipp.log());
}

#[test]
fn a_challenge_without_credentials_configured_says_so() {
    let sink = RtpSink::start().unwrap();
    let sipp = Sipp::start(Scenario::Auth, sink.addr()).unwrap();
    let error = call(&sipp, &tone(), None).unwrap_err();
    assert!(matches!(error, PageError::CredentialsMissing { status: 401, .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("SIP 401 Unauthorized from {}: it asks for a user and password and none are configured", sipp.uri())
    );
    // The challenge was acknowledged; SIPp then waits for an INVITE that never comes.
    sipp.wait_for_request("ACK", WAIT).unwrap();
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK"], "{}", sipp.log());
}

#[test]
fn a_busy_extension_fails_with_486() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::Busy, sink.addr()).unwrap();
    let error = call(&sipp, &tone(), None).unwrap_err();
    sipp.wait_success(WAIT).unwrap();
    assert_eq!(error.to_string(), format!("SIP 486 Busy Here from {}", sipp.uri()));
    assert!(error.is_retryable());
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK"], "the 486 is acknowledged:\n{}", sipp.log());
}

#[test]
fn an_unanswered_page_is_cancelled_after_the_answer_timeout() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::NoAnswer, sink.addr()).unwrap();
    let target = sipp.uri();
    let audio = tone();
    let error = page(
        &Page {
            server: sipp.addr(),
            target: &target,
            from_user: "vigil",
            credentials: None,
            audio: &audio,
            answer_timeout: Duration::from_millis(1500),
            hangup_timeout: Duration::from_secs(2),
        },
        7,
    )
    .unwrap_err();
    sipp.wait_success(WAIT).unwrap();
    assert_eq!(
        error.to_string(),
        format!("no answer from {target} within 1500 ms (last heard 180 Ringing; cancelled)")
    );
    assert!(error.is_retryable());
    assert_eq!(sipp.received_methods(), ["INVITE", "CANCEL", "ACK"], "{}", sipp.log());
}

#[test]
fn a_page_cut_short_by_the_far_end_answers_its_bye_and_says_so() {
    let sink = RtpSink::start().unwrap();
    let mut sipp = Sipp::start(Scenario::HangUp, sink.addr()).unwrap();
    // Three seconds of audio; SIPp hangs up half a second after the ACK.
    let audio = vec![g711::SILENCE; 24_000];
    let error = call(&sipp, &audio, None).unwrap_err();
    // The scenario ends by receiving the 200 OK to its BYE: success means it was answered.
    sipp.wait_success(WAIT).unwrap();
    let PageError::HungUp { sent, total, .. } = &error else { panic!("{error}\n{}", sipp.log()) };
    assert_eq!(total.as_millis(), 3000);
    assert!(sent < total, "{error}");
    assert!(error.to_string().starts_with(&format!("{} hung up after ", sipp.uri())), "{error}");
    assert!(error.is_retryable());
    assert_eq!(sipp.received_methods(), ["INVITE", "ACK"], "no BYE of our own after theirs:\n{}", sipp.log());
}

#[test]
fn a_server_that_is_not_there_is_reported_as_unreachable() {
    let port = sipp::free_udp_port().unwrap();
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let target = format!("sip:page@{server}");
    let error = page(
        &Page {
            server,
            target: &target,
            from_user: "vigil",
            credentials: None,
            audio: &tone(),
            answer_timeout: Duration::from_secs(5),
            hangup_timeout: Duration::from_secs(1),
        },
        1,
    )
    .unwrap_err();
    assert_eq!(error.to_string(), format!("nothing answers SIP at {server} (ICMP port unreachable)"));
    assert!(error.is_retryable());
}

//! SDP (RFC 4566) for a one-way page: the offer this agent sends (G.711 µ-law,
//! `sendonly`) and what it needs from the answer (RFC 3264): where to send the
//! audio, and whether the far end accepted it.

use std::net::{IpAddr, SocketAddr};

/// RTP/AVP payload type 0: PCMU, G.711 µ-law at 8 kHz (RFC 3551).
pub const PCMU: u8 = 0;

/// The offer: one audio stream, PCMU only, 20 ms packets, send-only.
/// `addr` and `port` are where this agent's RTP comes from.
pub fn offer(addr: IpAddr, port: u16, session_id: u64) -> String {
    let family = family(addr);
    format!(
        "v=0\r\no=vigil {session_id} {session_id} IN {family} {addr}\r\ns=Vigil page\r\n\
         c=IN {family} {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP {PCMU}\r\n\
         a=rtpmap:{PCMU} PCMU/8000\r\na=ptime:20\r\na=sendonly\r\n"
    )
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "IP4" } else { "IP6" }
}

/// What the answer says about the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Where to send RTP: the audio stream's `c=` address and `m=` port.
    pub media: SocketAddr,
    /// The payload types the far end accepted.
    pub payload_types: Vec<u8>,
}

/// Why an answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("no audio stream (m=audio) in the answer")]
    NoAudio,
    /// `m=audio 0`: the stream was refused.
    #[error("the audio stream was refused (port 0)")]
    Refused,
    /// PCMU is not among the accepted payload types.
    #[error("PCMU (payload type 0) was not accepted; the answer offers {0:?}")]
    NoPcmu(Vec<u8>),
    /// `a=inactive` or `a=sendonly`: the far end will not play what is sent.
    #[error("the far end will not receive audio (a={0})")]
    NotReceiving(String),
    /// No usable `c=` line for the stream.
    #[error("no connection address (c=) for the audio stream")]
    NoAddress,
    /// A line that does not parse.
    #[error("unreadable SDP line {0:?}")]
    Malformed(String),
}

/// Reads the answer to [`offer`].
pub fn parse_answer(sdp: &str) -> Result<Answer, SdpError> {
    let mut session_addr = None;
    let mut session_direction = None;
    let mut audio: Option<AudioStream> = None;
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (kind, value) = line.split_once('=').ok_or_else(|| SdpError::Malformed(line.to_string()))?;
        match kind {
            "m" => {
                in_audio = audio.is_none() && value.starts_with("audio ");
                if in_audio {
                    let mut fields = value.split_whitespace().skip(1);
                    let port = fields.next().and_then(|p| p.split('/').next()?.parse::<u16>().ok());
                    let port = port.ok_or_else(|| SdpError::Malformed(line.to_string()))?;
                    let _proto = fields.next();
                    let pts = fields.filter_map(|p| p.parse::<u8>().ok()).collect();
                    audio = Some(AudioStream { port, payload_types: pts, addr: None, direction: None });
                }
            }
            "c" => {
                let addr = connection(value).ok_or_else(|| SdpError::Malformed(line.to_string()))?;
                match (&mut audio, in_audio) {
                    (Some(a), true) => a.addr = Some(addr),
                    (None, _) => session_addr = Some(addr),
                    _ => {}
                }
            }
            "a" if matches!(value, "sendrecv" | "sendonly" | "recvonly" | "inactive") => match (&mut audio, in_audio) {
                (Some(a), true) => a.direction = Some(value.to_string()),
                (None, _) => session_direction = Some(value.to_string()),
                _ => {}
            },
            _ => {}
        }
    }
    let AudioStream { port, payload_types, addr, direction } = audio.ok_or(SdpError::NoAudio)?;
    if port == 0 {
        return Err(SdpError::Refused);
    }
    if !payload_types.contains(&PCMU) {
        return Err(SdpError::NoPcmu(payload_types));
    }
    if let Some(d) = direction.or(session_direction).filter(|d| d == "inactive" || d == "sendonly") {
        return Err(SdpError::NotReceiving(d));
    }
    let ip = addr.or(session_addr).ok_or(SdpError::NoAddress)?;
    if ip.is_unspecified() {
        // 0.0.0.0 is the old way of putting a stream on hold (RFC 3264 §8.4).
        return Err(SdpError::NotReceiving("0.0.0.0 (on hold)".into()));
    }
    Ok(Answer { media: SocketAddr::new(ip, port), payload_types })
}

/// The first audio stream of an answer, as read so far.
struct AudioStream {
    port: u16,
    payload_types: Vec<u8>,
    /// Its own `c=`, which overrides the session's.
    addr: Option<IpAddr>,
    /// Its own direction attribute, which overrides the session's.
    direction: Option<String>,
}

/// The address of a `c=IN IP4 10.0.0.5` value (a multicast TTL suffix is dropped).
fn connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_whitespace();
    let (net, family, addr) = (fields.next()?, fields.next()?, fields.next()?);
    let addr: IpAddr = addr.split('/').next()?.parse().ok()?;
    (net == "IN" && (family == "IP4") == addr.is_ipv4() && matches!(family, "IP4" | "IP6")).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_is_pcmu_sendonly() {
        let o = offer("10.0.0.2".parse().unwrap(), 40000, 7);
        for line in [
            "c=IN IP4 10.0.0.2",
            "m=audio 40000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=sendonly",
            "o=vigil 7 7 IN IP4 10.0.0.2",
        ] {
            assert!(o.contains(&format!("{line}\r\n")), "{line} missing from {o}");
        }
    }

    #[test]
    fn reads_the_media_address_with_the_stream_level_c_line_winning() {
        let a = parse_answer(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0 101\r\nc=IN IP4 10.0.0.6\r\na=recvonly\r\n",
        )
        .unwrap();
        assert_eq!(a, Answer { media: "10.0.0.6:4000".parse().unwrap(), payload_types: vec![0, 101] });
        let a = parse_answer("v=0\nc=IN IP6 ::1\nm=audio 4002 RTP/AVP 0\n").unwrap();
        assert_eq!(a.media, "[::1]:4002".parse().unwrap());
    }

    #[test]
    fn refuses_an_answer_that_will_not_play_the_page() {
        let cases = [
            ("v=0\r\nc=IN IP4 10.0.0.5\r\n", SdpError::NoAudio),
            ("c=IN IP4 10.0.0.5\r\nm=audio 0 RTP/AVP 0\r\n", SdpError::Refused),
            ("c=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 8\r\n", SdpError::NoPcmu(vec![8])),
            (
                "c=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n",
                SdpError::NotReceiving("inactive".into()),
            ),
            (
                "a=sendonly\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n",
                SdpError::NotReceiving("sendonly".into()),
            ),
            ("m=audio 4000 RTP/AVP 0\r\n", SdpError::NoAddress),
            ("c=IN IP4 nowhere\r\n", SdpError::Malformed("c=IN IP4 nowhere".into())),
        ];
        for (sdp, expected) in cases {
            assert_eq!(parse_answer(sdp), Err(expected), "{sdp:?}");
        }
        assert!(matches!(
            parse_answer("c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::NotReceiving(_))
        ));
    }
}

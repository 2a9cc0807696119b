//! One outgoing call as pure state, without any network operation: it writes
//! the requests (INVITE, ACK, CANCEL, BYE, a 200 to the far end's BYE) and
//! says what each received message means. [`crate::ua`] does the sending,
//! receiving, retransmitting and timing.
//!
//! RFC 3261: the INVITE client transaction (§17.1.1), ACK for non-2xx (same
//! branch) and for 2xx (new branch, to the Contact), digest challenges
//! (§22.2, §22.3), CANCEL (§9.1) and BYE (§15.1).

use std::net::SocketAddr;

use crate::digest::{AuthError, Challenge, Credentials};
use crate::message::{self, Message, uri_of};
use crate::sdp::{self, SdpError};

/// RFC 3261's magic cookie: branches that start with it are unique per transaction.
const BRANCH_COOKIE: &str = "z9hG4bK";
/// How many challenges one call answers before giving up (a server that keeps
/// challenging fresh credentials is refusing them).
const MAX_CHALLENGES: u32 = 3;
/// Sent as `User-Agent`.
const USER_AGENT: &str = "vigil-sip";

/// Who calls whom, from where, with what.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The Request-URI and `To`: the paging extension, `sip:page@10.0.0.5`.
    pub target: String,
    /// The user part of `From` and `Contact`.
    pub from_user: String,
    /// This agent's SIP address, for `Via`, `From` and `Contact`.
    pub local: SocketAddr,
    /// The SDP offer sent with the INVITE.
    pub offer: String,
    /// Used when the server challenges.
    pub credentials: Option<Credentials>,
}

/// A source of tags, branches, Call-IDs and nonces: xorshift64* from a
/// caller-supplied seed, so tests are deterministic and the agent needs no
/// random-number crate.
#[derive(Debug, Clone)]
pub struct Ids(u64);

impl Ids {
    /// A generator seeded with `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Ids {
        Ids(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 16 hexadecimal digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// Why a call did not get up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// A final non-2xx response (other than a challenge this agent answered).
    Rejected {
        /// The status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// Challenged again after sending credentials: they are wrong.
    CredentialsRefused {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// Challenged, and no credentials are configured.
    CredentialsMissing {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A challenge this agent cannot answer.
    Auth {
        /// 401 or 407.
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// What is wrong with it.
        error: AuthError,
    },
}

/// What a received message means for the call.
#[derive(Debug)]
pub enum Step {
    /// Not for this transaction (a stray, a late retransmission, a response to CANCEL).
    Ignore,
    /// 1xx: the server has it; stop retransmitting the INVITE.
    Provisional(u16, String),
    /// 401/407 answered: send `ack`, then the new `invite` with credentials.
    Challenged {
        /// ACK for the challenge.
        ack: String,
        /// The INVITE again, with credentials, a new branch and the next CSeq.
        invite: String,
    },
    /// 2xx: send the dialog's ACK; the answer says where the audio goes.
    Answered {
        /// The established dialog (boxed: it dwarfs the other steps).
        dialog: Box<Dialog>,
        /// The SDP answer, or why it is unusable (then hang up).
        answer: Result<sdp::Answer, SdpError>,
    },
    /// A final failure: send `ack` (non-2xx finals are acknowledged) and stop.
    Failed {
        /// ACK for the final response.
        ack: String,
        /// What went wrong.
        error: CallError,
    },
}

/// The INVITE client transaction, across digest challenges.
#[derive(Debug, Clone)]
pub struct Invite {
    spec: CallSpec,
    ids: Ids,
    call_id: String,
    from: String,
    cseq: u32,
    branch: String,
    /// `(header name, value)` of the credentials sent with the current INVITE.
    authorization: Option<(&'static str, String)>,
    challenges: u32,
}

impl Invite {
    /// A new call: fresh Call-ID, From tag and branch.
    pub fn new(spec: CallSpec, mut ids: Ids) -> Invite {
        let call_id = format!("{}@vigil", ids.token());
        let from = format!("<sip:{}@{}>;tag={}", spec.from_user, host(spec.local), ids.token());
        let branch = format!("{BRANCH_COOKIE}{}", ids.token());
        let cseq = 1 + (ids.next_u64() % 1000) as u32;
        Invite { spec, ids, call_id, from, cseq, branch, authorization: None, challenges: 0 }
    }

    /// The current INVITE, for the first send and retransmissions.
    pub fn request(&self) -> String {
        let mut headers = self.common(&self.branch, format!("<{}>", self.spec.target), "INVITE");
        headers.push(("Contact", contact(&self.spec)));
        if let Some((name, value)) = &self.authorization {
            headers.push((name, value.clone()));
        }
        headers.push(("User-Agent", USER_AGENT.into()));
        headers.push(("Content-Type", "application/sdp".into()));
        message::request("INVITE", &self.spec.target, &headers, &self.spec.offer)
    }

    /// CANCEL for the current INVITE (§9.1): same Request-URI, branch, Call-ID, From, To and CSeq number.
    pub fn cancel(&self) -> String {
        let headers = self.common(&self.branch, format!("<{}>", self.spec.target), "CANCEL");
        message::request("CANCEL", &self.spec.target, &headers, "")
    }

    /// Whether credentials went with the current INVITE.
    pub fn authenticated(&self) -> bool {
        self.authorization.is_some()
    }

    /// What `response` means for the call.
    pub fn on_response(&mut self, response: &Message) -> Step {
        let Some(status) = response.status() else { return Step::Ignore };
        let ours = response.header("call-id") == Some(self.call_id.as_str())
            && response.cseq() == Some((self.cseq, "INVITE"))
            && response.via_branch() == Some(self.branch.as_str());
        if !ours {
            return Step::Ignore;
        }
        let reason = match &response.start {
            message::StartLine::Status { reason, .. } => reason.clone(),
            message::StartLine::Request { .. } => String::new(),
        };
        match status {
            100..=199 => Step::Provisional(status, reason),
            200..=299 => {
                Step::Answered { dialog: Box::new(self.dialog(response)), answer: sdp::parse_answer(&response.body) }
            }
            401 | 407 => self.on_challenge(response, status, reason),
            _ => Step::Failed { ack: self.ack_failure(response), error: CallError::Rejected { status, reason } },
        }
    }

    fn on_challenge(&mut self, response: &Message, status: u16, reason: String) -> Step {
        let ack = self.ack_failure(response);
        let fail = |error| Step::Failed { ack: ack.clone(), error };
        let (challenge_header, answer_header) = if status == 401 {
            ("www-authenticate", "Authorization")
        } else {
            ("proxy-authenticate", "Proxy-Authorization")
        };
        let Some(credentials) = self.spec.credentials.clone() else {
            return fail(CallError::CredentialsMissing { status, reason });
        };
        let Some(value) = response.header(challenge_header) else {
            let error = AuthError::Malformed(format!("no {challenge_header} header"));
            return fail(CallError::Auth { status, reason, error });
        };
        let challenge = match Challenge::parse(value) {
            Ok(c) => c,
            Err(error) => return fail(CallError::Auth { status, reason, error }),
        };
        self.challenges += 1;
        if (self.authorization.is_some() && !challenge.stale) || self.challenges > MAX_CHALLENGES {
            return fail(CallError::CredentialsRefused { status, reason });
        }
        let cnonce = self.ids.token();
        match challenge.answer(&credentials, "INVITE", &self.spec.target, 1, &cnonce) {
            Ok(value) => self.authorization = Some((answer_header, value)),
            Err(error) => return fail(CallError::Auth { status, reason, error }),
        }
        // A new transaction in the same call: same Call-ID and From tag, next CSeq, new branch.
        self.cseq += 1;
        self.branch = format!("{BRANCH_COOKIE}{}", self.ids.token());
        Step::Challenged { ack, invite: self.request() }
    }

    /// ACK for a non-2xx final response (§17.1.1.3): part of the INVITE's transaction.
    fn ack_failure(&self, response: &Message) -> String {
        let to = response.header("to").map_or_else(|| format!("<{}>", self.spec.target), str::to_string);
        let headers = self.common(&self.branch, to, "ACK");
        message::request("ACK", &self.spec.target, &headers, "")
    }

    fn dialog(&mut self, response: &Message) -> Dialog {
        let remote_target = response.contact_uri().unwrap_or(&self.spec.target).to_string();
        let to = response.header("to").map_or_else(|| format!("<{}>", self.spec.target), str::to_string);
        let mut dialog = Dialog {
            spec: self.spec.clone(),
            ids: Ids::new(self.ids.next_u64()),
            call_id: self.call_id.clone(),
            from: self.from.clone(),
            to,
            remote_target,
            invite_cseq: self.cseq,
            ack: String::new(),
            bye: None,
        };
        dialog.ack = dialog.request("ACK", self.cseq);
        dialog
    }

    /// Via, Max-Forwards, From, To, Call-ID and CSeq (this INVITE's number with `method`).
    fn common(&self, branch: &str, to: String, method: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Via", via(self.spec.local, branch)),
            ("Max-Forwards", "70".into()),
            ("From", self.from.clone()),
            ("To", to),
            ("Call-ID", self.call_id.clone()),
            ("CSeq", format!("{} {method}", self.cseq)),
        ]
    }
}

/// An established call: what this side needs to acknowledge, hang up and
/// answer the far end's BYE.
#[derive(Debug, Clone)]
pub struct Dialog {
    spec: CallSpec,
    ids: Ids,
    call_id: String,
    from: String,
    to: String,
    remote_target: String,
    invite_cseq: u32,
    ack: String,
    /// The BYE sent, with its CSeq number and branch.
    bye: Option<(String, u32, String)>,
}

impl Dialog {
    /// The ACK for the 2xx (resent whenever the 2xx is retransmitted).
    pub fn ack(&self) -> &str {
        &self.ack
    }

    /// The far end's Contact (or the target if it sent none): where in-dialog requests go.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// Whether `message` is the 2xx to the INVITE again (the ACK was lost).
    pub fn is_answer_retransmission(&self, message: &Message) -> bool {
        matches!(message.status(), Some(200..=299))
            && message.header("call-id") == Some(self.call_id.as_str())
            && message.cseq() == Some((self.invite_cseq, "INVITE"))
    }

    /// The BYE (written once; later calls return the same text for retransmission).
    pub fn bye(&mut self) -> String {
        if let Some((text, _, _)) = &self.bye {
            return text.clone();
        }
        let cseq = self.invite_cseq + 1;
        let branch = format!("{BRANCH_COOKIE}{}", self.ids.token());
        let text = self.request_with_branch("BYE", cseq, &branch);
        self.bye = Some((text.clone(), cseq, branch));
        text
    }

    /// The status of `message` if it is a final response to the BYE.
    pub fn bye_status(&self, message: &Message) -> Option<u16> {
        let (_, cseq, branch) = self.bye.as_ref()?;
        let status = message.status().filter(|s| *s >= 200)?;
        (message.header("call-id") == Some(self.call_id.as_str())
            && message.cseq() == Some((*cseq, "BYE"))
            && message.via_branch() == Some(branch.as_str()))
        .then_some(status)
    }

    /// The 200 OK to `request` if it is the far end's BYE in this dialog.
    pub fn answer_remote_bye(&self, request: &Message) -> Option<String> {
        if request.method() != Some("BYE") || request.header("call-id") != Some(self.call_id.as_str()) {
            return None;
        }
        // §8.2.6.2: the response copies Via (all of them), From, To, Call-ID and CSeq.
        let copied = ["via", "from", "to", "call-id", "cseq"];
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .filter(|(name, _)| copied.contains(&message::canonical(name).as_str()))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        Some(message::response(200, "OK", &headers, ""))
    }

    fn request(&mut self, method: &str, cseq: u32) -> String {
        let branch = format!("{BRANCH_COOKIE}{}", self.ids.token());
        self.request_with_branch(method, cseq, &branch)
    }

    fn request_with_branch(&self, method: &str, cseq: u32, branch: &str) -> String {
        let via = via(self.spec.local, branch);
        let cseq = format!("{cseq} {method}");
        let headers = [
            ("Via", via.as_str()),
            ("Max-Forwards", "70"),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
            ("Call-ID", self.call_id.as_str()),
            ("CSeq", cseq.as_str()),
            ("User-Agent", USER_AGENT),
        ];
        message::request(method, uri_of(&self.remote_target), &headers, "")
    }
}

/// `SIP/2.0/UDP 10.0.0.2:5060;rport;branch=…`; `rport` (RFC 3581) asks for
/// answers to the address the request came from, which a NAT may change.
fn via(local: SocketAddr, branch: &str) -> String {
    format!("SIP/2.0/UDP {local};rport;branch={branch}")
}

fn contact(spec: &CallSpec) -> String {
    format!("<sip:{}@{}>", spec.from_user, spec.local)
}

/// The host part of a SIP URI for `addr`: IPv6 in brackets.
fn host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(credentials: Option<Credentials>) -> CallSpec {
        CallSpec {
            target: "sip:page@10.0.0.5".into(),
            from_user: "vigil".into(),
            local: "10.0.0.2:5062".parse().unwrap(),
            offer: crate::sdp::offer("10.0.0.2".parse().unwrap(), 40000, 1),
            credentials,
        }
    }

    fn creds() -> Credentials {
        Credentials { username: "vigil".into(), password: "secret".into() }
    }

    fn parse(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap_or_else(|| panic!("unparsable: {text}"))
    }

    /// The server's response to `request`, as a UAS writes it (§8.2.6).
    fn reply(request: &str, code: u16, reason: &str, extra: &[(&str, &str)], body: &str) -> Message {
        let request = parse(request);
        let to = format!("{};tag=pa1", request.header("to").unwrap());
        let mut headers: Vec<(&str, &str)> = vec![
            ("Via", request.header("via").unwrap()),
            ("From", request.header("from").unwrap()),
            ("To", &to),
            ("Call-ID", request.header("call-id").unwrap()),
            ("CSeq", request.header("cseq").unwrap()),
        ];
        headers.extend_from_slice(extra);
        parse(&message::response(code, reason, &headers, body))
    }

    const ANSWER: &str = "v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\n";

    #[test]
    fn a_challenge_is_acknowledged_and_answered_with_a_new_transaction() {
        let mut invite = Invite::new(spec(Some(creds())), Ids::new(1));
        let first = invite.request();
        let challenge = "Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"";
        let Step::Challenged { ack, invite: second } =
            invite.on_response(&reply(&first, 401, "Unauthorized", &[("WWW-Authenticate", challenge)], ""))
        else {
            panic!("not challenged")
        };
        let (first, ack, second) = (parse(&first), parse(&ack), parse(&second));
        let (n, _) = first.cseq().unwrap();
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.via_branch(), first.via_branch(), "a non-2xx ACK belongs to the INVITE's transaction");
        assert_eq!(ack.cseq(), Some((n, "ACK")));
        assert_eq!(ack.to_tag(), Some("pa1"));
        assert_eq!(second.cseq(), Some((n + 1, "INVITE")));
        assert_ne!(second.via_branch(), first.via_branch());
        assert_eq!((second.header("call-id"), second.header("from")), (first.header("call-id"), first.header("from")));
        assert_eq!(second.to_tag(), None);
        let authorization = second.header("authorization").unwrap();
        assert!(
            authorization
                .starts_with("Digest username=\"vigil\", realm=\"pbx\", nonce=\"abc\", uri=\"sip:page@10.0.0.5\"")
        );
        assert!(invite.authenticated());

        // The same challenge again: the credentials are wrong.
        let third = invite.request();
        match invite.on_response(&reply(&third, 401, "Unauthorized", &[("WWW-Authenticate", challenge)], "")) {
            Step::Failed { error: CallError::CredentialsRefused { status: 401, .. }, .. } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_proxy_challenge_gets_proxy_authorization_and_a_stale_nonce_is_retried() {
        let mut invite = Invite::new(spec(Some(creds())), Ids::new(2));
        let challenge = "Digest realm=\"proxy\", nonce=\"n1\"";
        let r =
            reply(&invite.request(), 407, "Proxy Authentication Required", &[("Proxy-Authenticate", challenge)], "");
        let Step::Challenged { invite: second, .. } = invite.on_response(&r) else { panic!("not challenged") };
        assert!(parse(&second).header("proxy-authorization").is_some_and(|v| v.contains("nonce=\"n1\"")));
        let stale = "Digest realm=\"proxy\", nonce=\"n2\", stale=true";
        let r = reply(&second, 407, "Proxy Authentication Required", &[("Proxy-Authenticate", stale)], "");
        let Step::Challenged { invite: third, .. } = invite.on_response(&r) else { panic!("a stale nonce is retried") };
        assert!(parse(&third).header("proxy-authorization").is_some_and(|v| v.contains("nonce=\"n2\"")));
    }

    #[test]
    fn a_challenge_without_credentials_fails_and_is_acknowledged() {
        let mut invite = Invite::new(spec(None), Ids::new(3));
        let r = reply(
            &invite.request(),
            401,
            "Unauthorized",
            &[("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\"")],
            "",
        );
        match invite.on_response(&r) {
            Step::Failed { ack, error: CallError::CredentialsMissing { status: 401, .. } } => {
                assert!(ack.starts_with("ACK sip:page@10.0.0.5 SIP/2.0\r\n"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn responses_of_other_transactions_are_ignored() {
        let mut invite = Invite::new(spec(None), Ids::new(4));
        let request = invite.request();
        let other_call = request.replace(parse(&request).header("call-id").unwrap(), "someone-else");
        assert!(matches!(invite.on_response(&reply(&other_call, 486, "Busy Here", &[], "")), Step::Ignore));
        let other_branch = request.replace(parse(&request).via_branch().unwrap(), "z9hG4bKother");
        assert!(matches!(invite.on_response(&reply(&other_branch, 486, "Busy Here", &[], "")), Step::Ignore));
        assert!(matches!(invite.on_response(&parse(&request)), Step::Ignore), "a request is not a response");
        assert!(matches!(invite.on_response(&reply(&request, 180, "Ringing", &[], "")), Step::Provisional(180, _)));
        match invite.on_response(&reply(&request, 486, "Busy Here", &[], "")) {
            Step::Failed { error: CallError::Rejected { status: 486, reason }, .. } => assert_eq!(reason, "Busy Here"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_sets_up_a_dialog_with_the_remote_contact() {
        let mut invite = Invite::new(spec(None), Ids::new(5));
        let request = invite.request();
        let ok = reply(
            &request,
            200,
            "OK",
            &[("Contact", "<sip:pa@10.0.0.9:5070>"), ("Content-Type", "application/sdp")],
            ANSWER,
        );
        let Step::Answered { mut dialog, answer } = invite.on_response(&ok) else { panic!("not answered") };
        assert_eq!(answer.unwrap().media, "10.0.0.5:4000".parse().unwrap());
        let (n, _) = parse(&request).cseq().unwrap();
        let ack = parse(dialog.ack());
        assert_eq!(ack.start, message::StartLine::Request { method: "ACK".into(), uri: "sip:pa@10.0.0.9:5070".into() });
        assert_eq!(ack.cseq(), Some((n, "ACK")));
        assert_ne!(ack.via_branch(), parse(&request).via_branch(), "a 2xx ACK is a transaction of its own");
        assert_eq!(ack.to_tag(), Some("pa1"));
        assert!(dialog.is_answer_retransmission(&ok));

        let bye_text = dialog.bye();
        assert_eq!(dialog.bye(), bye_text, "retransmissions are the same request");
        let bye = parse(&bye_text);
        assert_eq!(bye.cseq(), Some((n + 1, "BYE")));
        assert_eq!(dialog.bye_status(&reply(&bye_text, 200, "OK", &[], "")), Some(200));
        assert_eq!(dialog.bye_status(&ok), None);

        // The far end hangs up first: its BYE is answered 200 with its own headers.
        let theirs = format!(
            "BYE sip:vigil@10.0.0.2:5062 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKpa\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            ok.header("to").unwrap(),
            ok.header("from").unwrap(),
            ok.header("call-id").unwrap()
        );
        let answer = parse(&dialog.answer_remote_bye(&parse(&theirs)).unwrap());
        assert_eq!(
            (answer.status(), answer.cseq(), answer.via_branch()),
            (Some(200), Some((1, "BYE")), Some("z9hG4bKpa"))
        );
        assert!(dialog.answer_remote_bye(&parse(&theirs.replace(ok.header("call-id").unwrap(), "x"))).is_none());
    }

    #[test]
    fn cancel_matches_the_invite() {
        let invite = Invite::new(spec(None), Ids::new(6));
        let (request, cancel) = (parse(&invite.request()), parse(&invite.cancel()));
        assert_eq!(cancel.method(), Some("CANCEL"));
        assert_eq!(cancel.via_branch(), request.via_branch());
        assert_eq!(cancel.cseq().map(|c| c.0), request.cseq().map(|c| c.0));
        assert_eq!(cancel.header("to"), request.header("to"));
    }
}

//! SIP messages (RFC 3261 §7): parsing what arrives, writing what leaves.
//!
//! Only what a paging user agent needs: a start line, headers looked up by
//! name (case-insensitive, compact forms understood, folded lines joined) and
//! a body. Parsing never panics on hostile input; it answers `None`.

use std::fmt::Write as _;

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`.
    Request {
        /// `INVITE`, `BYE`, …
        method: String,
        /// The Request-URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Status {
        /// The status code, 100 to 699.
        code: u16,
        /// The reason phrase (`Busy Here`).
        reason: String,
    },
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Headers in order, names as written.
    pub headers: Vec<(String, String)>,
    /// The body (an SDP here), as text.
    pub body: String,
}

/// RFC 3261 §7.3.3 compact header names and their full forms.
const COMPACT: [(&str, &str); 7] = [
    ("v", "via"),
    ("f", "from"),
    ("t", "to"),
    ("i", "call-id"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
];

/// The full, lower-case form of a header name.
pub(crate) fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    COMPACT.iter().find(|(short, _)| *short == lower).map_or(lower, |(_, full)| (*full).to_string())
}

impl Message {
    /// Parses one datagram; `None` if it is not a SIP/2.0 message.
    pub fn parse(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => match text.find("\n\n") {
                Some(i) => (&text[..i], &text[i + 2..]),
                None => (text, ""),
            },
        };
        let mut lines = head.lines();
        let start = parse_start(lines.next()?.trim_end())?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // A folded continuation of the previous header (§7.3.1).
                let (_, value) = headers.last_mut()?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut message = Message { start, headers, body: String::new() };
        let length = match message.header("content-length") {
            Some(l) => l.parse::<usize>().ok()?,
            None => body.len(),
        };
        message.body = body.get(..length.min(body.len()))?.to_string();
        Some(message)
    }

    /// The first value of header `name` (any case, compact or full form).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Every value of header `name`, in order; comma-separated values are not split.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let wanted = canonical(name);
        self.headers.iter().filter(move |(n, _)| canonical(n) == wanted).map(|(_, v)| v.as_str())
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Status { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Status { .. } => None,
        }
    }

    /// `CSeq`: its number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (number, method) = self.header("cseq")?.split_once(char::is_whitespace)?;
        Some((number.parse().ok()?, method.trim()))
    }

    /// The `branch` parameter of the top `Via`.
    pub fn via_branch(&self) -> Option<&str> {
        let top = self.header("via")?.split(',').next()?;
        param(top, "branch")
    }

    /// The `tag` parameter of `To`.
    pub fn to_tag(&self) -> Option<&str> {
        param(self.header("to")?, "tag")
    }

    /// The URI of the first `Contact`.
    pub fn contact_uri(&self) -> Option<&str> {
        Some(uri_of(self.header("contact")?))
    }

    /// `code reason`, e.g. `486 Busy Here`, for a response; the method for a request.
    pub fn describe(&self) -> String {
        match &self.start {
            StartLine::Status { code, reason } => format!("{code} {reason}"),
            StartLine::Request { method, .. } => method.clone(),
        }
    }
}

fn parse_start(line: &str) -> Option<StartLine> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().ok()?;
        return (100..=699).contains(&code).then(|| StartLine::Status { code, reason: reason.trim().to_string() });
    }
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    (version == "SIP/2.0" && parts.next().is_none() && !method.is_empty())
        .then(|| StartLine::Request { method: method.to_string(), uri: uri.to_string() })
}

/// The value of parameter `name` in a header value such as
/// `<sip:a@b;lr>;tag=x;branch=y`, looking only after the URI's closing `>`.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value.split_once(';').map_or("", |(_, p)| p),
    };
    params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// The URI in a name-addr (`"Page" <sip:page@host>;tag=1`) or addr-spec (`sip:page@host;tag=1`).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// Writes a request: start line, headers in the given order, `Content-Length`, body.
pub fn request<V: AsRef<str>>(method: &str, uri: &str, headers: &[(&str, V)], body: &str) -> String {
    let mut out = format!("{method} {uri} SIP/2.0\r\n");
    write_rest(&mut out, headers, body);
    out
}

/// Writes a response: status line, headers in the given order, `Content-Length`, body.
pub fn response<V: AsRef<str>>(code: u16, reason: &str, headers: &[(&str, V)], body: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    write_rest(&mut out, headers, body);
    out
}

fn write_rest<V: AsRef<str>>(out: &mut String, headers: &[(&str, V)], body: &str) {
    for (name, value) in headers {
        let _ = write!(out, "{name}: {}\r\n", value.as_ref());
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n{body}", body.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response_with_compact_and_folded_headers() {
        let text = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport=5060\r\n\
            f: <sip:vigil@10.0.0.2>;tag=a\r\nTo: \"Page\" <sip:page@10.0.0.5>\r\n ;tag=b\r\n\
            i: call-1\r\nCSeq: 2 INVITE\r\nm: <sip:page@10.0.0.5:5070;transport=udp>\r\n\
            c: application/sdp\r\nl: 4\r\n\r\nv=0\r\nextra";
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.cseq(), Some((2, "INVITE")));
        assert_eq!(m.via_branch(), Some("z9hG4bK1"));
        assert_eq!(m.to_tag(), Some("b"));
        assert_eq!(m.header("call-id"), Some("call-1"));
        assert_eq!(m.contact_uri(), Some("sip:page@10.0.0.5:5070;transport=udp"));
        assert_eq!(m.body, "v=0\r");
        assert_eq!(m.describe(), "200 OK");
    }

    #[test]
    fn parses_a_request() {
        let m = Message::parse(b"BYE sip:vigil@10.0.0.2:40000 SIP/2.0\r\nCSeq: 7 BYE\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some("BYE"));
        assert_eq!(m.status(), None);
        assert_eq!(m.cseq(), Some((7, "BYE")));
    }

    #[test]
    fn refuses_what_is_not_sip() {
        for bad in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SIP/2.0 99 Low\r\n\r\n",
            b"\xff\xfe",
            b"SIP/2.0 200 OK\r\nl: x\r\n\r\n",
        ] {
            assert_eq!(Message::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_parameter_inside_the_uri_is_not_a_header_parameter() {
        assert_eq!(param("<sip:page@h;tag=inside>;tag=outside", "tag"), Some("outside"));
        assert_eq!(param("<sip:page@h;tag=inside>", "tag"), None);
        assert_eq!(param("sip:page@h;tag=x", "tag"), Some("x"));
        assert_eq!(uri_of("\"Page\" <sip:page@h>;tag=1"), "sip:page@h");
        assert_eq!(uri_of("sip:page@h;tag=1"), "sip:page@h");
    }

    #[test]
    fn writes_content_length() {
        let r = request("BYE", "sip:page@h", &[("CSeq", "3 BYE")], "");
        assert_eq!(r, "BYE sip:page@h SIP/2.0\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n");
        let r = response::<&str>(200, "OK", &[], "abc");
        assert_eq!(r, "SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    }
}

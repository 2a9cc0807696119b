//! Camera URLs: credentials taken out before GStreamer ever sees the URL,
//! and hidden wherever the URL is shown.

/// A camera URL split into what GStreamer may see and the credentials it must not.
/// Deliberately not `Debug`, so it cannot be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CameraUrl {
    /// The URL with any `user:pass@` removed, for rtspsrc's `location`.
    pub(crate) location: String,
    /// The URL as logs and errors show it.
    pub(crate) redacted: String,
    /// The user name from the URL, percent-decoded.
    pub(crate) username: Option<String>,
    /// The password from the URL, percent-decoded.
    pub(crate) password: Option<String>,
}

impl CameraUrl {
    /// Splits `url`, which must be `rtsp://` or `rtsps://` with a host.
    pub(crate) fn parse(url: &str) -> Result<CameraUrl, String> {
        let redacted = redact(url);
        let Some((scheme, rest)) = url.split_once("://") else {
            // Not echoed: without a scheme there is no telling what part is secret.
            return Err("the camera URL is not a URL; expected rtsp://host[:port]/path".to_string());
        };
        if !scheme.eq_ignore_ascii_case("rtsp") && !scheme.eq_ignore_ascii_case("rtsps") {
            return Err(format!("{redacted} is a {scheme} URL; expected rtsp:// or rtsps://"));
        }
        let (userinfo, hostpath) = split_userinfo(rest);
        if hostpath.is_empty() || hostpath.starts_with('/') {
            return Err(format!("{redacted} has no host"));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                (Some(percent_decode(user)).filter(|u| !u.is_empty()), pass.map(percent_decode))
            }
        };
        Ok(CameraUrl { location: format!("{scheme}://{hostpath}"), redacted, username, password })
    }
}

pub use vigil_core::url::redact_url as redact;
use vigil_core::url::split_userinfo;

/// `text` with every occurrence of each non-empty secret replaced by `***`;
/// for text that came from GStreamer, which may echo what it was given.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    // Longest first, so a user name inside the password cannot leave the rest of it showing.
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(text.to_string(), |t, s| t.replace(s, "***"))
}

/// Decodes `%XX` escapes; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_credentials_out_of_the_location() {
        let u = CameraUrl::parse("rtsp://admin:p%40ss:w0rd@192.168.1.9:554/Streaming/Channels/101").unwrap();
        assert_eq!(u.location, "rtsp://192.168.1.9:554/Streaming/Channels/101");
        assert_eq!(u.redacted, "rtsp://***@192.168.1.9:554/Streaming/Channels/101");
        assert_eq!(u.username.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w0rd"));
    }

    #[test]
    fn parse_without_credentials() {
        let u = CameraUrl::parse("rtsp://[::1]:8554/h264").unwrap();
        assert_eq!(u.location, "rtsp://[::1]:8554/h264");
        assert_eq!((u.username, u.password), (None, None));
    }

    #[test]
    fn parse_rejects_what_is_not_an_rtsp_url_without_echoing_secrets() {
        for bad in ["http://u:hunter2@host/x", "hunter2", "rtsp://u:hunter2@/x", "rtsp://"] {
            let Err(err) = CameraUrl::parse(bad) else { panic!("accepted {bad}") };
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn scrub_replaces_every_secret() {
        assert_eq!(
            scrub("user bob said pw bob-secret", &["bob".into(), "bob-secret".into(), String::new()]),
            "user *** said pw ***"
        );
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}

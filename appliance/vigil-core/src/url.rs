//! Showing camera URLs without their credentials, the one way every crate does it.

/// The user info before the host, if any, and the rest (`host[:port]/path`).
///
/// The split is at the last `@`, not at the end of the authority: a password
/// pasted with a raw `/` or `@` in it then still counts as password (and is
/// hidden) rather than spilling into the host or path. The price is that an
/// `@` in a path must be percent-encoded as `%40`.
pub fn split_userinfo(after_scheme: &str) -> (Option<&str>, &str) {
    match after_scheme.rsplit_once('@') {
        Some((info, hostpath)) => (Some(info), hostpath),
        None => (None, after_scheme),
    }
}

/// `url` with any user name and password replaced by `***`, for logs, errors
/// and status: `rtsp://user:pass@host/x` becomes `rtsp://***@host/x`.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match split_userinfo(rest) {
            (Some(_), hostpath) => format!("{scheme}://***@{hostpath}"),
            (None, _) => url.to_string(),
        },
        // Not a URL at all, but it may still hold credentials.
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact_url("rtsp://user:pass@host/x"), "rtsp://***@host/x");
        assert_eq!(redact_url("rtsp://user@host:554/x"), "rtsp://***@host:554/x");
        assert_eq!(redact_url("rtsp://host:554/x?a=1"), "rtsp://host:554/x?a=1");
        // A password with a raw '/' or '@' is still hidden whole.
        assert_eq!(redact_url("rtsp://u:p/w@d@10.0.0.2/cam"), "rtsp://***@10.0.0.2/cam");
        assert_eq!(redact_url("u:p@host"), "***@host");
        assert_eq!(redact_url(""), "");
    }
}

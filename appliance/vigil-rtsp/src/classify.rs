//! What went wrong, in [`SourceErrorKind`]s and words: GStreamer's bus
//! errors and our own timeouts, turned into errors that name the camera's
//! (redacted) URL and say what to do, with no credential in them.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use vigil_sources::{SourceError, SourceErrorKind};

use crate::url::scrub;

/// What the error messages need to know about the camera.
pub(crate) struct Camera<'a> {
    /// The URL as errors show it.
    pub(crate) url: &'a str,
    /// Strings that must never appear in an error (user name, password).
    pub(crate) secrets: &'a [String],
    /// Whether any credentials were given, which changes what a 401 means.
    pub(crate) has_credentials: bool,
    /// Whether UDP was allowed, for the firewall hint.
    pub(crate) udp: bool,
}

impl Camera<'_> {
    /// An error of `kind` saying `what` about this camera.
    pub(crate) fn error(&self, kind: SourceErrorKind, what: &str) -> SourceError {
        SourceError::new(kind, scrub(&format!("{}: {what}", self.url), self.secrets))
    }
}

/// An error message from the pipeline's bus, taken apart.
pub(crate) struct BusError<'a> {
    /// GStreamer's error: domain, code and a human message.
    pub(crate) error: &'a glib::Error,
    /// The developer detail, which carries e.g. "not-negotiated".
    pub(crate) debug: Option<&'a str>,
    /// The RTSP status code, which rtspsrc puts in the message's details.
    pub(crate) rtsp_status: Option<u32>,
    /// Whether rtspsrc (or one of its internal elements) posted it, rather than the decoding branch.
    pub(crate) from_network: bool,
}

/// The error to return for `e`.
pub(crate) fn bus_error(camera: &Camera, e: &BusError) -> SourceError {
    use SourceErrorKind::*;
    let said = e.error.message().trim_end_matches('.').to_string();
    let resource = e.error.kind::<gst::ResourceError>();
    let refused = || {
        if camera.has_credentials {
            camera.error(Unauthorized, "the camera refused the credentials (401); check the username and password")
        } else {
            camera.error(
                Unauthorized,
                "the camera wants credentials (401) and none are configured; set a username and password",
            )
        }
    };
    match e.rtsp_status.filter(|&s| s >= 300) {
        Some(401) => refused(),
        Some(403) => {
            camera.error(Unauthorized, "the camera denied access (403); check the user's rights on the camera")
        }
        Some(404) => camera.error(Unreachable, "the camera has no stream at this path (404); check the URL's path"),
        Some(code) => camera.error(Unreachable, &format!("the camera answered RTSP status {code} ({said})")),
        None if resource == Some(gst::ResourceError::NotAuthorized) => refused(),
        None if e.error.matches(gst::CoreError::MissingPlugin) || e.error.matches(gst::StreamError::CodecNotFound) => {
            camera.error(
                Unsupported,
                &format!("no installed GStreamer element can handle the stream ({said}); install gstreamer1.0-libav"),
            )
        }
        None if e.debug.is_some_and(|d| d.contains("not-negotiated")) => {
            camera.error(BadStream, "the decoded pictures cannot be converted to RGB (not-negotiated)")
        }
        None if e.from_network && resource.is_some() => {
            let hint = if camera.udp && resource == Some(gst::ResourceError::Read) {
                "if a firewall drops UDP, use transport tcp"
            } else {
                "check the address and that the camera is on"
            };
            camera.error(Unreachable, &format!("cannot stream from the camera ({said}); {hint}"))
        }
        None => camera.error(BadStream, &format!("the stream cannot be decoded ({said})")),
    }
}

/// How far a stream had got when it ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reached {
    /// No RTSP answer (no session description) yet.
    Nothing,
    /// The camera described its streams, but no video came.
    Described,
    /// Packets came, but no picture decoded from them.
    Packets,
}

/// The error for no first picture within `waited` of opening.
pub(crate) fn connect_timeout(camera: &Camera, reached: Reached, waited: Duration) -> SourceError {
    let secs = waited.as_secs_f32();
    match reached {
        Reached::Nothing => camera.error(
            SourceErrorKind::Unreachable,
            &format!("no answer from the camera within {secs:.1} s; check the address and that the camera is on"),
        ),
        Reached::Described => {
            let hint = if camera.udp { "; if a firewall drops UDP, use transport tcp" } else { "" };
            camera.error(
                SourceErrorKind::Unreachable,
                &format!("the camera answered but sent no video within {secs:.1} s{hint}"),
            )
        }
        Reached::Packets => camera.error(
            SourceErrorKind::BadStream,
            &format!("the camera sends video but none of it decoded within {secs:.1} s; check its codec settings"),
        ),
    }
}

/// The error for no picture within `waited` while streaming; `coming` says whether packets still came.
pub(crate) fn stall(camera: &Camera, coming: bool, waited: Duration) -> SourceError {
    let secs = waited.as_secs_f32();
    if coming {
        camera.error(SourceErrorKind::BadStream, &format!("video still arrives but none of it decoded for {secs:.1} s"))
    } else {
        camera.error(SourceErrorKind::Stalled, &format!("no video from the camera for {secs:.1} s"))
    }
}

/// The error for a camera that offers video only in encodings this crate does not decode.
pub(crate) fn unsupported_encodings(camera: &Camera, offered: &[String]) -> SourceError {
    camera.error(
        SourceErrorKind::Unsupported,
        &format!("the camera offers only {} video; set it to H.264 or H.265", offered.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2";

    fn secrets() -> Vec<String> {
        vec![SECRET.into(), "admin".into()]
    }

    fn camera(secrets: &[String], has_credentials: bool) -> Camera<'_> {
        Camera { url: "rtsp://***@10.0.0.9/cam", secrets, has_credentials, udp: true }
    }

    fn classify(error: glib::Error, debug: Option<&str>, rtsp_status: Option<u32>, from_network: bool) -> SourceError {
        bus_error(&camera(&secrets(), true), &BusError { error: &error, debug, rtsp_status, from_network })
    }

    #[test]
    fn refused_credentials_are_unauthorized() {
        let e = classify(glib::Error::new(gst::ResourceError::NotAuthorized, "Unauthorized"), None, Some(401), true);
        assert_eq!(e.kind(), SourceErrorKind::Unauthorized);
        assert_eq!(
            e.to_string(),
            "rtsp://***@10.0.0.9/cam: the camera refused the credentials (401); check the username and password"
        );
        let none = bus_error(
            &camera(&secrets(), false),
            &BusError {
                error: &glib::Error::new(gst::ResourceError::NotAuthorized, "Unauthorized"),
                debug: None,
                rtsp_status: None,
                from_network: true,
            },
        );
        assert!(none.to_string().contains("none are configured"), "{none}");
    }

    #[test]
    fn missing_path_and_refused_connection_are_unreachable() {
        let e = classify(glib::Error::new(gst::ResourceError::NotFound, "Not found"), None, Some(404), true);
        assert_eq!(e.kind(), SourceErrorKind::Unreachable);
        assert!(e.to_string().contains("(404)"));
        let e = classify(
            glib::Error::new(gst::ResourceError::OpenReadWrite, "Could not open resource for reading and writing."),
            Some("Failed to connect. (Generic error)"),
            None,
            true,
        );
        assert_eq!(e.kind(), SourceErrorKind::Unreachable);
        assert!(e.to_string().ends_with("writing); check the address and that the camera is on"), "{e}");
    }

    #[test]
    fn decoding_trouble_is_a_bad_stream() {
        let e = classify(glib::Error::new(gst::StreamError::Decode, "Could not decode stream."), None, None, false);
        assert_eq!(e.kind(), SourceErrorKind::BadStream);
        let e = classify(
            glib::Error::new(gst::StreamError::Failed, "Internal data stream error."),
            Some("streaming stopped, reason not-negotiated (-4)"),
            None,
            true,
        );
        assert_eq!(e.kind(), SourceErrorKind::BadStream);
        assert!(e.to_string().contains("not-negotiated"));
    }

    #[test]
    fn missing_plugins_are_unsupported() {
        let e = classify(glib::Error::new(gst::CoreError::MissingPlugin, "no decoder"), None, None, false);
        assert_eq!(e.kind(), SourceErrorKind::Unsupported);
    }

    #[test]
    fn secrets_echoed_by_gstreamer_are_scrubbed() {
        let e = classify(glib::Error::new(gst::ResourceError::Read, "bad admin:hunter2 here"), None, None, true);
        assert!(!e.to_string().contains(SECRET) && !e.to_string().contains("admin"), "{e}");
    }

    #[test]
    fn timeouts_say_how_far_the_stream_got() {
        let s = secrets();
        let c = camera(&s, false);
        let t = Duration::from_secs(5);
        assert_eq!(connect_timeout(&c, Reached::Nothing, t).kind(), SourceErrorKind::Unreachable);
        assert!(connect_timeout(&c, Reached::Described, t).to_string().contains("use transport tcp"));
        assert_eq!(connect_timeout(&c, Reached::Packets, t).kind(), SourceErrorKind::BadStream);
        assert_eq!(stall(&c, false, t).kind(), SourceErrorKind::Stalled);
        assert_eq!(stall(&c, true, t).kind(), SourceErrorKind::BadStream);
    }
}

//! Topic filters for one device or for all of them (the `+` wildcard in the
//! device level), and the device and kind of a topic received on one.
//!
//! The layout itself stays in `vigil_uplink::Topics`: filters are built from
//! its topics with the device level replaced, and a received topic is
//! recognised by building that device's topics and comparing.

use vigil_uplink::Topics;
use vigil_uplink::topics::ROOT;

/// The per-device topics `vigilctl` subscribes to with a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `status`: birth and death.
    Status,
    /// `telemetry`.
    Telemetry,
    /// `config/reported`.
    Reported,
    /// `config/desired`.
    Desired,
    /// `alerts` (JSON).
    Alerts,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Status, Kind::Telemetry, Kind::Reported, Kind::Desired, Kind::Alerts];

    /// What the topic carries, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Telemetry => "telemetry",
            Kind::Reported => "config report",
            Kind::Desired => "desired config",
            Kind::Alerts => "alert",
        }
    }

    fn of(self, t: &Topics) -> String {
        match self {
            Kind::Status => t.status(),
            Kind::Telemetry => t.telemetry(),
            Kind::Reported => t.config_reported(),
            Kind::Desired => t.config_desired(),
            Kind::Alerts => t.alerts(),
        }
    }
}

/// The filter for `kind` of `device`, or of every device.
pub fn filter(device: Option<&Topics>, kind: Kind) -> String {
    match device {
        Some(t) => kind.of(t),
        None => {
            let placeholder = Topics::new("x").expect("a valid device id");
            let topic = kind.of(&placeholder);
            format!("{ROOT}/+{}", &topic[placeholder.prefix().len()..])
        }
    }
}

/// The device and kind of `topic`, or `None` if it is not one of [`Kind`]'s topics.
pub fn parse(topic: &str) -> Option<(Topics, Kind)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let device = rest.split('/').next()?;
    let topics = Topics::new(device).ok()?;
    let kind = Kind::ALL.into_iter().find(|k| k.of(&topics) == topic)?;
    Some((topics, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_for_one_device_or_all() {
        let t = Topics::new("lincoln-hs").unwrap();
        assert_eq!(filter(Some(&t), Kind::Status), "vigil/v1/lincoln-hs/status");
        assert_eq!(filter(None, Kind::Status), "vigil/v1/+/status");
        assert_eq!(filter(None, Kind::Telemetry), "vigil/v1/+/telemetry");
        assert_eq!(filter(None, Kind::Reported), "vigil/v1/+/config/reported");
        assert_eq!(filter(None, Kind::Desired), "vigil/v1/+/config/desired");
        assert_eq!(filter(None, Kind::Alerts), "vigil/v1/+/alerts");
    }

    #[test]
    fn received_topics_name_their_device() {
        for kind in Kind::ALL {
            let t = Topics::new("lincoln-hs.01").unwrap();
            let (device, parsed) = parse(&kind.of(&t)).unwrap();
            assert_eq!((device.device(), parsed), ("lincoln-hs.01", kind));
        }
        for other in [
            "vigil/v1/d/alerts/cap",
            "vigil/v1/d/alerts/7/snapshot",
            "vigil/v1/d/config",
            "vigil/v1/d",
            "vigil/v1/a b/status",
            "vigil/v2/d/status",
            "vigil/v1status",
            "",
        ] {
            assert_eq!(parse(other).map(|(t, k)| (t.device().to_string(), k)), None, "{other}");
        }
    }
}

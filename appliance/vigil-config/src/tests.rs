use super::*;

const MINIMAL: &str = r#"
[device]
id = "school-7"
data_dir = "/var/lib/vigil"

[detector]
model = "models/demo-yolo.xml"
labels = ["handgun", "phone"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/vigil/vigil.toml"), Path::new("/etc/vigil"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn with_camera(extra: &str) -> String {
    format!("{MINIMAL}\n[[camera]]\nid = \"hall-1\"\nsource = {{ kind = \"demo\" }}\n{extra}\n")
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.device.id, "school-7");
    assert!(!c.device.drill);
    assert_eq!(c.detector.model, Path::new("/etc/vigil/models/demo-yolo.xml"));
    assert_eq!(c.detector.device, "AUTO:NPU,GPU,CPU");
    assert_eq!(c.detector.cache_dir, Path::new("/var/lib/vigil/model-cache"));
    assert_eq!(c.detector.layout, OutputLayout::Auto);
    assert_eq!(c.detector.performance_hint, PerformanceHint::Throughput);
    assert_eq!(c.detector.infer_requests, None);
    assert_eq!((c.detector.confidence, c.detector.iou), (0.25, 0.45));
    assert_eq!(c.playbook, Playbook::default());
    assert_eq!(c.evidence.jpeg_quality, 85);
    assert!(c.cameras.is_empty());
}

#[test]
fn full_camera_with_zones_and_overrides() {
    let text = format!(
        "{MINIMAL}
[confirmation]
min_score = 0.6
hits = 4
window = 6

[[camera]]
id = \"gym-2\"
name = \"Gym north\"
location = {{ building = \"B\", floor = \"1\", zone = \"gym\" }}
fps = 5
source = {{ kind = \"file\", path = \"clips/gym.y4m\", loop = false }}
confirmation = {{ hits = 2, track_timeout_ms = 500 }}

[[camera.zones]]
name = \"floor\"
points = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
"
    );
    let c = parse(&text).unwrap();
    let cam = &c.cameras[0];
    assert_eq!(cam.id.as_str(), "gym-2");
    assert_eq!(cam.name, "Gym north");
    assert_eq!(cam.location.zone, "gym");
    assert_eq!(cam.fps, 5.0);
    assert_eq!(cam.source, SourceConfig::File { path: "/etc/vigil/clips/gym.y4m".into(), looped: false });
    assert_eq!((cam.confirm.min_score, cam.confirm.hits, cam.confirm.window), (0.6, 2, 6));
    assert_eq!(cam.confirm.track_timeout, Duration::from_millis(500));
    assert_eq!(cam.confirm.zones.len(), 1);
    assert!(cam.confirm.zones[0].contains(Point { x: 0.5, y: 0.75 }));
}

#[test]
fn unknown_field_is_refused_with_its_line() {
    let err = error(&format!("{MINIMAL}cache = \"x\"\n"));
    assert!(err.starts_with("/etc/vigil/vigil.toml:9: unknown field `cache`"), "{err}");
}

#[test]
fn syntax_error_names_the_line() {
    let err = error("[device]\nid = \"a\"\ndata_dir = \n");
    assert!(err.starts_with("/etc/vigil/vigil.toml:3:"), "{err}");
}

#[test]
fn missing_sections_are_named() {
    let err = error("[device]\nid = \"a\"\ndata_dir = \"/d\"\n");
    assert!(err.contains("missing field `detector`"), "{err}");
}

#[test]
fn bad_zone_names_the_camera_line_and_zone() {
    let err = error(&with_camera("[[camera.zones]]\nname = \"door\"\npoints = [[0.0, 0.0], [0.5, 0.5]]"));
    assert!(
        err.starts_with(
            "/etc/vigil/vigil.toml:10: camera \"hall-1\": zones[0] \"door\": a zone needs at least 3 points"
        ),
        "{err}"
    );
}

#[test]
fn duplicate_camera_ids_are_refused() {
    let text = format!("{}\n[[camera]]\nid = \"hall-1\"\nsource = {{ kind = \"demo\" }}\n", with_camera(""));
    let err = error(&text);
    assert!(err.contains(":15: camera id \"hall-1\" is used twice"), "{err}");
}

#[test]
fn ids_must_be_plain() {
    let err = error(&MINIMAL.replace("school-7", "school/7"));
    assert!(err.contains("device.id \"school/7\" is not a valid id"), "{err}");
    let err = error(&with_camera("").replace("hall-1", "hall#1"));
    assert!(err.contains("camera \"hall#1\": id \"hall#1\" is not a valid id"), "{err}");
}

#[test]
fn threat_labels_must_meet_the_model() {
    let err = error(&format!("{MINIMAL}[confirmation]\nthreat_labels = [\"rifle\"]\n"));
    assert!(err.contains("none of rifle is a label of the model (handgun, phone)"), "{err}");
}

#[test]
fn unsafe_playbook_is_refused() {
    let err = error(&format!("{MINIMAL}[playbook]\non_detection = [\"evacuate\"]\n"));
    assert!(err.contains(":9: playbook: on_detection may not contain evacuate"), "{err}");
    let err = error(&format!("{MINIMAL}[playbook]\non_verification = [\"all-clear\"]\n"));
    assert!(err.contains("playbook.on_verification: unknown action \"all-clear\""), "{err}");
}

#[test]
fn devices_are_checked() {
    for ok in ["CPU", "GPU.1", "NPU", "AUTO", "AUTO:NPU,GPU,CPU"] {
        assert!(check_device(ok).is_ok(), "{ok}");
    }
    for bad in ["TPU", "AUTO:", "AUTO:CPU,FPGA", "GPU.x", "cpu", ""] {
        assert!(check_device(bad).is_err(), "{bad}");
    }
    let err = error(&MINIMAL.replace("labels = [", "device = \"MYRIAD\"\nlabels = ["));
    assert!(err.contains("detector.device \"MYRIAD\" is not a device"), "{err}");
}

#[test]
fn detector_numbers_are_checked() {
    let err = error(&MINIMAL.replace("labels = [", "confidence = 1.5\nlabels = ["));
    assert!(err.contains("detector.confidence is 1.5"), "{err}");
    let err = error(&MINIMAL.replace("demo-yolo.xml", "demo.pt"));
    assert!(err.contains("expected an OpenVINO IR .xml or an .onnx file"), "{err}");
}

#[test]
fn labels_exactly_once() {
    let err = error(&MINIMAL.replace("labels = [\"handgun\", \"phone\"]", ""));
    assert!(err.contains("give the model's class names"), "{err}");
    let err = error(&MINIMAL.replace("labels = [", "labels_file = \"x.txt\"\nlabels = ["));
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn labels_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metadata.yaml"), "names:\n  0: handgun\n  1: knife\n").unwrap();
    let text = MINIMAL.replace("labels = [\"handgun\", \"phone\"]", "labels_file = \"metadata.yaml\"");
    let path = dir.path().join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.detector.labels, [Arc::from("handgun"), Arc::from("knife")]);
}

#[test]
fn camera_confirmation_overrides_are_checked() {
    let err = error(&with_camera("confirmation = { hits = 9 }"));
    assert!(err.contains("camera \"hall-1\": confirmation.hits is 9: use 1 up to window (5)"), "{err}");
    let err = error(&with_camera("fps = 0"));
    assert!(err.contains("fps is 0"), "{err}");
}

#[test]
fn sources_are_checked() {
    let err = error(&with_camera("").replace("kind = \"demo\"", "kind = \"demo\", scenario = \"riot\""));
    assert!(err.contains("source.scenario \"riot\": expected one of hallway, quiet, armed"), "{err}");
    let err = error(&with_camera("").replace("kind = \"demo\"", "kind = \"file\", path = \"a.mp4\""));
    assert!(err.contains("file sources read YUV4MPEG2"), "{err}");
    let err = error(&with_camera("").replace("kind = \"demo\"", "kind = \"rtmp\""));
    assert!(err.contains("unknown variant `rtmp`"), "{err}");
}

#[test]
fn unreadable_file_says_so() {
    let err = Config::load(Path::new("/nonexistent/vigil.toml")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/vigil.toml: cannot read the config file"), "{err}");
}

#[test]
fn the_shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for name in ["demo.toml", "reference.toml", "rtsp-demo.toml"] {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Config::parse(&text, &path, &root) {
            panic!("{e}");
        }
    }
}

#[test]
fn rtsp_cameras_with_credentials_that_never_print() {
    let text = with_camera("").replace(
        "source = { kind = \"demo\" }",
        "source = { kind = \"rtsp\", detect_url = \"rtsp://10.1.2.3:554/stream2\", record_url = \"rtsp://10.1.2.3/stream1\", username = \"vigil\", password = \"hunter2\", transport = \"udp\" }\nstall_timeout_ms = 3000",
    );
    let c = parse(&text).unwrap();
    let cam = &c.cameras[0];
    assert_eq!(cam.stall_timeout, Duration::from_secs(3));
    match &cam.source {
        SourceConfig::Rtsp { detect_url, record_url, username, password, transport, hw_decode } => {
            assert_eq!(detect_url, "rtsp://10.1.2.3:554/stream2");
            assert_eq!(record_url.as_deref(), Some("rtsp://10.1.2.3/stream1"));
            assert_eq!(username.as_deref(), Some("vigil"));
            assert_eq!(password.as_ref().map(Secret::expose), Some("hunter2"));
            assert_eq!(*transport, RtspTransport::Udp);
            assert!(*hw_decode);
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("hunter2"), "the password leaks through Debug");
}

#[test]
fn rtsp_urls_are_checked_and_errors_hide_credentials() {
    let bad = |url: &str| {
        error(&with_camera("").replace("kind = \"demo\"", &format!("kind = \"rtsp\", detect_url = \"{url}\"")))
    };
    let err = bad("http://cam/stream");
    assert!(err.contains("source.detect_url \"http://cam/stream\": expected an rtsp:// or rtsps:// URL"), "{err}");
    let err = bad("rtsp://admin:pa55@/stream");
    assert!(err.contains("the URL has no host") && !err.contains("pa55"), "{err}");
    let err = error(
        &with_camera("").replace("kind = \"demo\"", "kind = \"rtsp\", detect_url = \"rtsp://c/s\", password = \"x\""),
    );
    assert!(err.contains("source.password is set but source.username is not"), "{err}");
}

#[test]
fn v4l2_cameras() {
    let c = parse(&with_camera("").replace(
        "kind = \"demo\"",
        "kind = \"v4l2\", device = \"/dev/video2\", format = \"yuyv\", width = 640, height = 480",
    ))
    .unwrap();
    assert_eq!(
        c.cameras[0].source,
        SourceConfig::V4l2 { device: "/dev/video2".into(), width: 640, height: 480, format: Some(V4l2Format::Yuyv) }
    );
    let err = error(&with_camera("").replace("kind = \"demo\"", "kind = \"v4l2\", device = \"video0\""));
    assert!(err.contains("expected a device path such as /dev/video0"), "{err}");
}

#[test]
fn a_password_with_a_slash_never_leaks_into_an_error() {
    // Regression: the config's own redaction split at the first '/', so
    // "p/w" was taken for a path and printed.
    let err = error(&with_camera("").replace("kind = \"demo\"", "kind = \"rtsp\", detect_url = \"rtsp://u:p/w@/x\""));
    assert!(err.contains("the URL has no host") && !err.contains("p/w"), "{err}");
}

#[test]
fn uplink_defaults_to_the_embedded_broker_on_loopback() {
    let c = parse(MINIMAL).unwrap();
    let u = &c.uplink;
    assert_eq!(u.broker, Broker::Embedded { listen: DEFAULT_EMBEDDED_LISTEN.parse().unwrap() });
    assert_eq!(u.client_id, "school-7");
    assert_eq!(u.ack, AckPolicy::Broker, "a standalone school has no district to acknowledge alerts");
    assert_eq!((u.keep_alive, u.telemetry_interval), (Duration::from_secs(30), Duration::from_secs(30)));
    assert_eq!(u.outbox_max, 100_000);
    assert!(u.files().is_empty());
}

#[test]
fn uplink_to_a_district_broker_with_mutual_tls() {
    let c = parse(&format!(
        "{MINIMAL}\n[uplink]\nbroker = \"mqtts://mqtt.district.example\"\nca = \"pki/ca.pem\"\ncert = \"pki/device.pem\"\nkey = \"/secure/device.key\"\nusername = \"school-7\"\npassword = \"s3cret\"\n"
    ))
    .unwrap();
    let Broker::Remote(r) = &c.uplink.broker else { panic!("{:?}", c.uplink.broker) };
    assert_eq!((r.host.as_str(), r.port), ("mqtt.district.example", 8883));
    let tls = r.tls.as_ref().unwrap();
    assert_eq!(tls.ca.as_deref(), Some(Path::new("/etc/vigil/pki/ca.pem")));
    assert_eq!(tls.client, Some((PathBuf::from("/etc/vigil/pki/device.pem"), PathBuf::from("/secure/device.key"))));
    assert_eq!(c.uplink.ack, AckPolicy::District);
    assert_eq!(c.uplink.files().len(), 3);
    assert!(!format!("{c:?}").contains("s3cret"), "the broker password leaks through Debug");

    let plain = parse(&format!("{MINIMAL}\n[uplink]\nbroker = \"mqtt://[::1]:2883\"\nack = \"broker\"\n")).unwrap();
    let Broker::Remote(r) = &plain.uplink.broker else { panic!() };
    assert_eq!((r.host.as_str(), r.port, r.tls.is_none()), ("::1", 2883, true));
    assert_eq!(plain.uplink.ack, AckPolicy::Broker);
}

#[test]
fn uplink_mistakes_are_named() {
    let bad = |body: &str| error(&format!("{MINIMAL}\n[uplink]\n{body}\n"));
    for (body, expected) in [
        ("broker = \"http://x\"", "expected \"embedded\", \"none\", or a URL mqtts://host[:port]"),
        ("broker = \"mqtts://user:pw@x\"", "credentials go in uplink.username"),
        ("broker = \"mqtts://x:99999\"", "the port is not a number"),
        ("broker = \"mqtts://:8883\"", "the URL has no host"),
        ("listen = \"0.0.0.0:1883\"", "listens on loopback only"),
        ("listen = \"localhost\"", "expected an address with a port"),
        ("broker = \"none\"\nlisten = \"127.0.0.1:1\"", "uplink.listen applies only to the embedded broker"),
        ("ca = \"ca.pem\"", "uplink.ca applies only to a district broker"),
        ("broker = \"mqtt://x\"\nca = \"ca.pem\"", "need TLS: write the broker as mqtts://x"),
        ("broker = \"mqtts://x\"\ncert = \"c.pem\"", "uplink.cert and uplink.key go together"),
        ("broker = \"mqtts://x\"\npassword = \"pw\"", "uplink.password is set without uplink.username"),
        ("ack = \"maybe\"", "uplink.ack \"maybe\""),
        ("keep_alive_s = 1", "uplink.keep_alive_s is 1: use 5 to 3600 seconds"),
        ("outbox_max = 5", "uplink.outbox_max is 5"),
        ("brokr = \"none\"", "unknown field `brokr`"),
    ] {
        let err = bad(body);
        assert!(err.contains(expected), "{body}: {err}");
        assert!(err.starts_with("/etc/vigil/vigil.toml:"), "{body}: the error does not name the file and line: {err}");
    }
}

mod fuzz {
    //! Remote configs arrive over MQTT from the district: no input may panic
    //! the parser, and every refusal must name the document and say why.
    use super::*;
    use proptest::prelude::*;

    fn full() -> String {
        format!(
            "{MINIMAL}\n[uplink]\nbroker = \"mqtts://mqtt.example:8883\"\nca = \"ca.pem\"\n\n[playbook]\non_detection = [\"secure\"]\n\n\
             [[camera]]\nid = \"hall-1\"\nfps = 5\nsource = {{ kind = \"rtsp\", detect_url = \"rtsp://cam/s\", username = \"u\", password = \"p\" }}\n\
             zones = [{{ name = \"z\", points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]] }}]\n"
        )
    }

    fn check(text: &str) {
        if let Err(e) = Config::parse(text, Path::new("config/desired v9"), Path::new("/etc/vigil")) {
            let shown = e.to_string();
            assert!(shown.starts_with("config/desired v9"), "the error does not name the document: {shown}");
            assert!(shown.len() > "config/desired v9: ".len(), "an empty error: {shown}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            check(&text);
        }

        #[test]
        fn a_mutated_valid_config_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = full().into_bytes();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            check(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn cut_short_anywhere_never_panics(at in any::<prop::sample::Index>()) {
            let text = full();
            let mut end = at.index(text.len() + 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            check(&text[..end]);
        }
    }

    #[test]
    fn the_unmutated_document_is_valid() {
        Config::parse(&full(), Path::new("config/desired v9"), Path::new("/etc/vigil")).unwrap();
    }
}

#[test]
fn plugins_trust_keys_and_grants() {
    let key = "ed25519:".to_string() + &"ab".repeat(32);
    let c = parse(&format!(
        "{MINIMAL}\n[plugins]\ntrusted_keys = [\"{key}\"]\ninstall_dir = \"packages\"\ncall_timeout_ms = 500\n\n\
         [plugins.grant.door-lock]\nnetwork = [\"10.0.0.5:502\"]\nserial = {{ osdp = \"/dev/ttyUSB0\" }}\ndata = \"door-data\"\n\
         config = {{ doors = [{{ name = \"front\", coil = 1 }}] }}\n"
    ))
    .unwrap();
    let p = &c.plugins;
    assert_eq!(p.trusted_keys, vec![[0xab; 32]]);
    assert_eq!(p.install_dir.as_deref(), Some(Path::new("/etc/vigil/packages")));
    assert_eq!(p.call_timeout, Duration::from_millis(500));
    let g = &p.grants["door-lock"];
    assert_eq!(g.network, ["10.0.0.5:502"]);
    assert_eq!(g.serial["osdp"], Path::new("/dev/ttyUSB0"));
    assert_eq!(g.data.as_deref(), Some(Path::new("/etc/vigil/door-data")));
    assert_eq!(g.config["doors"][0]["coil"], 1);
    assert!(g.enabled);
    assert_eq!(parse(MINIMAL).unwrap().plugins, PluginsConfig::default());

    let bad = |body: &str| error(&format!("{MINIMAL}\n[plugins]\n{body}\n"));
    assert!(bad("trusted_keys = [\"abc\"]").contains("plugins.trusted_keys[0]: \"abc\" is not an ed25519 public key"));
    assert!(bad("[plugins.grant.Door]").contains("plugins.grant.Door: plugin names are"));
    assert!(bad("[plugins.grant.x]\nnetwork = [\"10.0.0.5\"]").contains("\"10.0.0.5\" is not host:port"));
    assert!(bad("memory_mib = 1").contains("plugins.memory_mib is 1"));
}

#[test]
fn os_updates_and_how_to_reboot() {
    let c = parse(&format!(
        "{MINIMAL}\n[os]\nupdates = false\nreboot_command = [\"/usr/local/bin/reboot-into\", \"B\"]\nboot_id_file = \"boot-id\"\n"
    ))
    .unwrap();
    assert!(!c.os.updates);
    assert_eq!(c.os.reboot_command, ["/usr/local/bin/reboot-into", "B"]);
    assert_eq!(c.os.boot_id_file, Path::new("/etc/vigil/boot-id"));
    assert_eq!(parse(MINIMAL).unwrap().os, crate::OsConfig::default());
    let bad = |body: &str| error(&format!("{MINIMAL}\n[os]\n{body}\n"));
    assert!(bad("reboot_command = []").contains("os.reboot_command is empty"), "{}", bad("reboot_command = []"));
    assert!(bad("rebooot = 1").contains("rebooot"));
    assert!(bad("health_timeout_s = 5").contains("os.health_timeout_s is 5: use 10 to 3600"));
}

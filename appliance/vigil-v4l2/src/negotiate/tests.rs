//! Negotiation against made-up devices.

use std::time::Duration;

use super::*;

fn fps(n: u32) -> Interval {
    Interval { num: 1, den: n }
}

fn discrete(width: u32, height: u32, rates: &[u32]) -> SizeOffer {
    SizeOffer {
        sizes: Sizes::Discrete { width, height },
        rates: Rates::Discrete(rates.iter().map(|&r| fps(r)).collect()),
    }
}

fn format(code: &[u8; 4], sizes: Vec<SizeOffer>) -> FormatOffer {
    FormatOffer { fourcc: FourCc(*code), sizes }
}

/// A typical UVC webcam: MJPEG up to 1080p at 30, YUYV up to 720p but slow at sizes above VGA.
fn webcam() -> Vec<FormatOffer> {
    vec![
        format(
            b"MJPG",
            vec![
                discrete(640, 480, &[30, 15]),
                discrete(1280, 720, &[30, 15]),
                discrete(1920, 1080, &[30, 15]),
                discrete(1280, 960, &[30]),
            ],
        ),
        format(b"YUYV", vec![discrete(640, 480, &[30, 15]), discrete(1280, 720, &[10, 5])]),
    ]
}

fn want(width: u32, height: u32, fps: f32) -> V4l2Options {
    V4l2Options {
        device: "/dev/video0".into(),
        width,
        height,
        fps,
        format: None,
        fit: None,
        stall_timeout: Duration::from_secs(5),
    }
}

fn chosen(offers: &[FormatOffer], options: &V4l2Options) -> (PixelFormat, u32, u32, Interval) {
    let r = choose(offers, options).unwrap();
    (r.format, r.width, r.height, r.interval)
}

#[test]
fn an_exact_offer_is_taken_as_is() {
    let r = choose(&webcam(), &want(1280, 720, 15.0)).unwrap();
    assert_eq!((r.format, r.width, r.height, r.interval), (PixelFormat::Mjpeg, 1280, 720, fps(15)));
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn without_an_exact_size_the_smallest_larger_one_is_taken() {
    let r = choose(&webcam(), &want(1000, 700, 30.0)).unwrap();
    assert_eq!((r.width, r.height), (1280, 720));
    assert_eq!(r.notes, ["/dev/video0 offers no 1000x700 MJPG; asking for 1280x720"]);
    // Taller than 720 rules out 1280x720; 1280x960 is smaller than 1920x1080.
    let (_, w, h, _) = chosen(&webcam(), &want(1200, 900, 30.0));
    assert_eq!((w, h), (1280, 960));
}

#[test]
fn without_a_larger_size_the_largest_is_taken() {
    assert_eq!(chosen(&webcam(), &want(3840, 2160, 30.0)), (PixelFormat::Mjpeg, 1920, 1080, fps(30)));
}

#[test]
fn mjpeg_is_preferred_above_vga_and_yuyv_up_to_it() {
    assert_eq!(chosen(&webcam(), &want(1280, 720, 30.0)).0, PixelFormat::Mjpeg);
    assert_eq!(chosen(&webcam(), &want(640, 480, 30.0)).0, PixelFormat::Yuyv);
    assert_eq!(chosen(&webcam(), &want(320, 240, 30.0)), (PixelFormat::Yuyv, 640, 480, fps(30)));
}

#[test]
fn an_explicit_format_overrides_the_preference() {
    let options = V4l2Options { format: Some(PixelFormat::Yuyv), ..want(1280, 720, 30.0) };
    let r = choose(&webcam(), &options).unwrap();
    assert_eq!((r.format, r.width, r.height, r.interval), (PixelFormat::Yuyv, 1280, 720, fps(10)));
    assert_eq!(r.notes, ["/dev/video0 offers no 30 fps at 1280x720 YUYV; asking for 10.00 fps"]);
}

#[test]
fn a_device_with_only_yuyv_is_used_for_hd_too() {
    let offers = vec![format(b"YUYV", vec![discrete(640, 480, &[30]), discrete(1280, 720, &[10])])];
    let r = choose(&offers, &want(1280, 720, 10.0)).unwrap();
    assert_eq!((r.format, r.width, r.height), (PixelFormat::Yuyv, 1280, 720));
    assert_eq!(r.notes, ["/dev/video0 does not offer MJPG; using YUYV"]);
}

#[test]
fn a_device_with_only_mjpeg_is_used_for_vga_too() {
    let offers = vec![format(b"MJPG", vec![discrete(640, 480, &[30])])];
    let r = choose(&offers, &want(640, 480, 30.0)).unwrap();
    assert_eq!((r.format, r.width, r.height), (PixelFormat::Mjpeg, 640, 480));
    assert_eq!(r.notes, ["/dev/video0 does not offer YUYV; using MJPG"]);
}

#[test]
fn a_device_with_neither_format_is_refused_listing_what_it_offers() {
    let offers =
        vec![format(b"NV12", vec![]), format(b"GREY", vec![]), format(b"Y16 ", vec![]), format(b"H\x00\xff4", vec![])];
    let err = choose(&offers, &want(640, 480, 30.0)).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        "/dev/video0 offers neither MJPG nor YUYV, the formats Vigil decodes; it offers NV12, GREY, Y16, H\\x00\\xff4"
    );
    let err = choose(&[], &want(640, 480, 30.0)).unwrap_err();
    assert!(err.to_string().ends_with("it offers no capture formats at all"), "{err}");
}

#[test]
fn an_explicit_format_the_device_lacks_is_refused() {
    let offers = vec![format(b"YUYV", vec![discrete(640, 480, &[30])]), format(b"NV12", vec![])];
    let options = V4l2Options { format: Some(PixelFormat::Mjpeg), ..want(640, 480, 30.0) };
    let err = choose(&offers, &options).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        "/dev/video0 does not offer MJPG, which the format option asks for; it offers YUYV, NV12"
    );
}

#[test]
fn stepwise_sizes_round_up_to_a_step_within_range() {
    let range = StepRange {
        min_width: 160,
        max_width: 1920,
        step_width: 16,
        min_height: 120,
        max_height: 1080,
        step_height: 8,
    };
    assert_eq!(range.nearest(640, 480), (640, 480));
    assert_eq!(range.nearest(1000, 700), (1008, 704));
    assert_eq!(range.nearest(4000, 3000), (1920, 1080));
    assert_eq!(range.nearest(100, 50), (160, 120));
    // Rounding up would leave the range: the last step inside it instead.
    assert_eq!(nearest_step(9, 0, 10, 4), 8);
    assert_eq!(nearest_step(7, 3, 3, 0), 3);

    let offers = vec![format(b"YUYV", vec![SizeOffer { sizes: Sizes::Stepwise(range), rates: Rates::Unknown }])];
    assert_eq!(chosen(&offers, &want(1000, 700, 25.0)), (PixelFormat::Yuyv, 1008, 704, fps(25)));
}

#[test]
fn a_driver_that_enumerates_no_sizes_is_asked_for_the_wanted_one() {
    let offers = vec![format(b"YUYV", vec![])];
    let r = choose(&offers, &want(720, 576, 25.0)).unwrap();
    assert_eq!((r.width, r.height, r.interval), (720, 576, fps(25)));
    assert_eq!(r.notes, ["/dev/video0 does not offer MJPG; using YUYV"]);
}

#[test]
fn the_rate_is_the_fastest_not_above_the_wanted_else_the_slowest() {
    let rates = Rates::Discrete(vec![fps(60), fps(30), fps(15), fps(5), Interval { num: 0, den: 0 }]);
    assert_eq!(pick_rate(&rates, 30.0), fps(30));
    assert_eq!(pick_rate(&rates, 25.0), fps(15));
    assert_eq!(pick_rate(&rates, 100.0), fps(60));
    assert_eq!(pick_rate(&rates, 2.0), fps(5));
    // NTSC's 29.97 is below 30, so it is the closest not above.
    let ntsc = Interval { num: 1001, den: 30000 };
    assert_eq!(pick_rate(&Rates::Discrete(vec![ntsc, fps(60)]), 30.0), ntsc);
    assert_eq!(pick_rate(&Rates::Discrete(vec![]), 12.5), Interval { num: 1000, den: 12500 });
    assert_eq!(pick_rate(&Rates::Unknown, 7.0), fps(7));
}

#[test]
fn stepwise_rates_step_towards_the_slower_side() {
    let rates = Rates::Stepwise { min: fps(30), max: fps(1), step: Some(fps(30)) };
    // 12 fps is 2.5 steps of 1/30 s; the third step is 10 fps.
    assert_eq!(pick_rate(&rates, 12.0), fps(10));
    assert_eq!(pick_rate(&rates, 15.0), fps(15));
    assert_eq!(pick_rate(&rates, 60.0), fps(30));
    assert_eq!(pick_rate(&rates, 0.5), fps(1));
    let continuous = Rates::Stepwise { min: fps(30), max: fps(1), step: None };
    assert_eq!(pick_rate(&continuous, 12.0), fps(12));
    assert_eq!(pick_rate(&continuous, 7.5), Interval { num: 1000, den: 7500 });
    // An odd step ends between representable fractions: rounded to 100 ns, never faster than asked.
    let odd = Rates::Stepwise { min: fps(30), max: fps(1), step: Some(Interval { num: 1, den: 70 }) };
    let got = pick_rate(&odd, 12.0).fps().unwrap();
    assert!(got <= 12.0 && got > 11.0, "{got}");
}

fn request(format: PixelFormat, width: u32, height: u32, rate: u32) -> Request {
    Request { format, width, height, interval: fps(rate), notes: vec![] }
}

fn set(code: &[u8; 4], width: u32, height: u32, bytes_per_line: u32, rate: Option<u32>) -> Applied {
    Applied { fourcc: FourCc(*code), width, height, bytes_per_line, interval: rate.map(fps) }
}

#[test]
fn a_driver_that_sets_what_was_asked_needs_no_notes() {
    let options = want(1280, 720, 30.0);
    let n =
        applied(&options, &request(PixelFormat::Mjpeg, 1280, 720, 30), set(b"MJPG", 1280, 720, 0, Some(30))).unwrap();
    assert_eq!(
        n.mode,
        Mode { format: PixelFormat::Mjpeg, width: 1280, height: 720, bytes_per_line: 0, fps: Some(30.0) }
    );
    assert!(n.notes.is_empty());
    assert_eq!(n.mode.to_string(), "1280x720 MJPG at 30.00 fps");
}

#[test]
fn a_driver_adjusting_the_request_is_followed_and_reported() {
    let options = want(1280, 720, 30.0);
    let mut asked = request(PixelFormat::Mjpeg, 1280, 720, 30);
    asked.notes.push("from choose".to_string());
    let n = applied(&options, &asked, set(b"YUYV", 640, 480, 1312, Some(15))).unwrap();
    assert_eq!(
        n.mode,
        Mode { format: PixelFormat::Yuyv, width: 640, height: 480, bytes_per_line: 1312, fps: Some(15.0) }
    );
    assert_eq!(
        n.notes,
        [
            "from choose",
            "the driver of /dev/video0 chose YUYV instead of MJPG",
            "the driver of /dev/video0 chose 640x480 instead of 1280x720",
            "the driver of /dev/video0 chose 15.00 fps instead of 30.00",
        ]
    );
}

#[test]
fn a_driver_that_gives_no_stride_or_rate_gets_the_obvious_ones() {
    let options = want(640, 480, 30.0);
    let n = applied(&options, &request(PixelFormat::Yuyv, 640, 480, 30), set(b"YUYV", 640, 480, 0, None)).unwrap();
    assert_eq!((n.mode.bytes_per_line, n.mode.fps), (1280, None));
    assert_eq!(n.mode.to_string(), "640x480 YUYV at the driver's default rate");
}

#[test]
fn a_driver_setting_something_unusable_is_refused() {
    let options = want(640, 480, 30.0);
    let asked = request(PixelFormat::Yuyv, 640, 480, 30);
    let err = applied(&options, &asked, set(b"NV12", 640, 480, 640, Some(30))).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        "the driver of /dev/video0 set NV12 when asked for YUYV; Vigil decodes only MJPG and YUYV"
    );
    let err = applied(&options, &asked, set(b"YUYV", 640, 480, 1000, Some(30))).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::BadFormat);
    assert!(err.to_string().contains("1000 bytes per line for 640 pixels of YUYV, which need 1280"), "{err}");
    let err = applied(&options, &asked, set(b"YUYV", 0, 480, 0, Some(30))).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::BadFormat);
}

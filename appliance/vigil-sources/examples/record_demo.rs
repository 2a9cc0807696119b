//! Records the synthetic hallway to a .y4m, so it can be served as a real
//! RTSP camera (`cargo xtask camera`) or played as a file source.
//!
//! `cargo run --release -p vigil-sources --example record_demo -- OUT.y4m [SECONDS] [hallway|quiet|armed]`

use std::sync::Arc;

use vigil_core::{CameraId, SystemClock};
use vigil_sources::{DemoOptions, DemoScene, FrameRate, FrameSource, Scenario, Y4mWriter};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: record_demo OUT.y4m [SECONDS] [hallway|quiet|armed]";
    let out = args.first().ok_or(usage)?;
    let seconds: u32 = args.get(1).map_or(Ok(20), |s| s.parse()).map_err(|_| usage.to_string())?;
    let scenario = match args.get(2).map(String::as_str) {
        None | Some("hallway") => Scenario::Hallway,
        Some("quiet") => Scenario::Quiet,
        Some("armed") => Scenario::Armed,
        Some(other) => return Err(format!("unknown scenario {other:?}; {usage}")),
    };
    let options = DemoOptions { scenario, pace: false, ..DemoOptions::default() };
    let mut scene =
        DemoScene::new(CameraId::new("recorder"), Arc::new(SystemClock::new()), options).map_err(|e| e.to_string())?;
    let fps = options.fps as u32;
    let mut writer =
        Y4mWriter::create(out, options.width, options.height, FrameRate::per_second(fps)).map_err(|e| e.to_string())?;
    for _ in 0..seconds * fps {
        let frame = scene.next_frame().map_err(|e| e.to_string())?.ok_or("the demo scene ended")?;
        writer.write_frame(&frame).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    println!("wrote {seconds} s of the {scenario:?} scene to {out}");
    Ok(())
}

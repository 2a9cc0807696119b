//! Recording frames to a .y4m file, for tests and the repository's tools.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use vigil_core::Frame;

use super::colour;
use super::header::{FrameRate, MAGIC, MAX_DIMENSION};
use crate::error::SourceError;

/// Writes RGB frames as a 4:2:0 (`C420jpeg`) YUV4MPEG2 stream.
#[derive(Debug)]
pub struct Y4mWriter<W: Write> {
    out: W,
    /// What to call the output in error messages.
    name: String,
    width: u32,
    height: u32,
    frames: u64,
    planes: Vec<u8>,
}

impl Y4mWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the stream header.
    pub fn create(path: impl AsRef<Path>, width: u32, height: u32, rate: FrameRate) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| SourceError::io(format!("creating {}", path.display()), e))?;
        Y4mWriter::with_name(BufWriter::new(file), path.display().to_string(), width, height, rate)
    }
}

impl<W: Write> Y4mWriter<W> {
    /// Writes the stream header to `out`; every frame must then be `width` x `height`.
    pub fn new(out: W, width: u32, height: u32, rate: FrameRate) -> Result<Self, SourceError> {
        Y4mWriter::with_name(out, "the y4m output".to_owned(), width, height, rate)
    }

    fn with_name(mut out: W, name: String, width: u32, height: u32, rate: FrameRate) -> Result<Self, SourceError> {
        for (field, value) in [("width", width), ("height", height)] {
            if value == 0 || value > MAX_DIMENSION {
                return Err(SourceError::invalid_options(format!(
                    "writing {name}: {field} must be 1 to {MAX_DIMENSION} pixels, got {value}"
                )));
            }
        }
        if rate.num == 0 || rate.den == 0 {
            return Err(SourceError::invalid_options(format!(
                "writing {name}: frame rate must be positive in both parts, got {rate}"
            )));
        }
        let header = format!(" W{width} H{height} F{rate} Ip A1:1 C420jpeg\n");
        out.write_all(MAGIC)
            .and_then(|()| out.write_all(header.as_bytes()))
            .map_err(|e| SourceError::io(format!("writing the stream header of {name}"), e))?;
        Ok(Y4mWriter { out, name, width, height, frames: 0, planes: Vec::new() })
    }

    /// Appends one frame, which must have the size given at creation.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), SourceError> {
        let n = self.frames;
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(SourceError::invalid_options(format!(
                "writing frame {n} to {}: the frame is {}x{} but the stream is {}x{}",
                self.name, frame.width, frame.height, self.width, self.height
            )));
        }
        colour::rgb_to_yuv420(self.width as usize, self.height as usize, &frame.rgb, &mut self.planes);
        self.out
            .write_all(b"FRAME\n")
            .and_then(|()| self.out.write_all(&self.planes))
            .map_err(|e| SourceError::io(format!("writing frame {n} to {}", self.name), e))?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes everything written and hands back the output.
    pub fn finish(mut self) -> Result<W, SourceError> {
        self.out.flush().map_err(|e| SourceError::io(format!("flushing {}", self.name), e))?;
        Ok(self.out)
    }
}

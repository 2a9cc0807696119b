//! YUV4MPEG2 (.y4m) files: uncompressed video that ffmpeg and GStreamer
//! read and write, used for recorded test footage.

mod colour;
mod header;
mod writer;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::iter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_core::{CameraId, Clock, Frame};

use crate::FrameSource;
use crate::error::SourceError;
use crate::pace::Pacer;
use header::{Header, MAX_HEADER_LEN};

pub use header::FrameRate;
pub use writer::Y4mWriter;

/// The longest FRAME line accepted (it may carry parameters).
const MAX_FRAME_HEADER_LEN: u64 = 256;

/// Big enough that a 640x360 4:2:0 frame is a handful of reads.
const READ_BUFFER: usize = 1 << 18;

/// How a [`Y4mSource`] plays its file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Y4mOptions {
    /// Start again from the first frame at the end of the file, numbering on.
    pub loop_at_end: bool,
    /// Sleep so frames come out at the file's frame rate, like a live camera.
    pub pace: bool,
    /// Hand out at most this many frames per second of the file's time,
    /// skipping the rest; applies whether or not the source is paced.
    pub fps_cap: Option<f32>,
}

/// Frames from a .y4m file, converted to RGB.
///
/// Error messages name frames by their index in the file, counting from 0,
/// and give byte offsets from the start of the file.
pub struct Y4mSource {
    path: PathBuf,
    reader: BufReader<File>,
    camera: CameraId,
    clock: Arc<dyn Clock>,
    header: Header,
    loop_at_end: bool,
    pacer: Pacer,
    /// Where the first FRAME line starts, for looping.
    data_start: u64,
    /// Where the reader is, for error messages.
    offset: u64,
    /// Index of the next frame within the file, counting from 0 (restarts on a loop).
    file_frame: u64,
    /// Index of the next frame in the played stream (keeps counting over loops); its time in the stream.
    stream_frame: u64,
    /// The next `seq` to hand out.
    seq: u64,
    planes: Vec<u8>,
}

impl Y4mSource {
    /// Opens `path` and reads its stream header.
    pub fn open(
        path: impl AsRef<Path>,
        camera: CameraId,
        clock: Arc<dyn Clock>,
        options: Y4mOptions,
    ) -> Result<Y4mSource, SourceError> {
        let path = path.as_ref().to_path_buf();
        let pacer = Pacer::new(options.pace, options.fps_cap)?;
        let file = File::open(&path).map_err(|e| SourceError::io(format!("opening {}", path.display()), e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        let mut line = Vec::new();
        (&mut reader)
            .take(MAX_HEADER_LEN)
            .read_until(b'\n', &mut line)
            .map_err(|e| SourceError::io(format!("reading the stream header of {}", path.display()), e))?;
        let Some(fields) = line.strip_suffix(b"\n") else {
            let why = if line.len() as u64 == MAX_HEADER_LEN {
                format!("its first line is longer than {MAX_HEADER_LEN} bytes")
            } else {
                format!("the file ends at byte offset {} before the stream header does", line.len())
            };
            return Err(SourceError::bad_format(format!("{} is not a usable YUV4MPEG2 file: {why}", path.display())));
        };
        let header = header::parse(fields, &path)?;
        let data_start = line.len() as u64;
        Ok(Y4mSource {
            path,
            reader,
            camera,
            clock,
            header,
            loop_at_end: options.loop_at_end,
            pacer,
            data_start,
            offset: data_start,
            file_frame: 0,
            stream_frame: 0,
            seq: 0,
            planes: Vec::new(),
        })
    }

    /// Width of every frame in pixels.
    pub fn width(&self) -> u32 {
        self.header.width
    }

    /// Height of every frame in pixels.
    pub fn height(&self) -> u32 {
        self.header.height
    }

    /// The frame rate the file declares.
    pub fn frame_rate(&self) -> FrameRate {
        self.header.rate
    }

    /// Reads the next FRAME line; `false` at a clean end of file.
    fn read_frame_line(&mut self) -> Result<bool, SourceError> {
        let mut line = Vec::new();
        let n = (&mut self.reader).take(MAX_FRAME_HEADER_LEN).read_until(b'\n', &mut line).map_err(|e| {
            SourceError::io(
                format!(
                    "reading the header of frame {} of {} at byte offset {}",
                    self.file_frame,
                    self.path.display(),
                    self.offset
                ),
                e,
            )
        })?;
        if n == 0 {
            return Ok(false);
        }
        let at = format!("frame {} of {} at byte offset {}", self.file_frame, self.path.display(), self.offset);
        let well_formed =
            line.ends_with(b"\n") && line.starts_with(b"FRAME") && matches!(line.get(5), Some(b' ' | b'\n'));
        if !well_formed {
            let why = if !line.ends_with(b"\n") && n as u64 == MAX_FRAME_HEADER_LEN {
                format!("is longer than {MAX_FRAME_HEADER_LEN} bytes")
            } else if !line.ends_with(b"\n") && b"FRAME".starts_with(&line[..n.min(5)]) {
                "is cut short by the end of the file".to_owned()
            } else {
                let shown = String::from_utf8_lossy(&line[..n.min(16)]);
                format!("should start with \"FRAME\" but starts with {shown:?}")
            };
            return Err(SourceError::bad_format(format!("the header line of {at} {why}")));
        }
        self.offset += n as u64;
        Ok(true)
    }

    /// Reads the picture data after a FRAME line into `self.planes`.
    fn read_planes(&mut self) -> Result<(), SourceError> {
        let len = self.header.chroma.frame_len(self.header.width as usize, self.header.height as usize);
        self.planes.clear();
        self.planes.reserve_exact(len);
        let got = (&mut self.reader).take(len as u64).read_to_end(&mut self.planes).map_err(|e| {
            SourceError::io(
                format!(
                    "reading the picture of frame {} of {} at byte offset {}",
                    self.file_frame,
                    self.path.display(),
                    self.offset
                ),
                e,
            )
        })?;
        if got < len {
            return Err(SourceError::bad_format(format!(
                "frame {} of {} is truncated: its picture needs {len} bytes from byte offset {}, \
                 but the file ends {got} bytes in",
                self.file_frame,
                self.path.display(),
                self.offset
            )));
        }
        self.offset += len as u64;
        Ok(())
    }

    /// Converts the frame just read, waits until it is due and stamps it.
    fn hand_out(&mut self, t: f64) -> Result<Frame, SourceError> {
        let Header { width, height, chroma, .. } = self.header;
        let mut rgb: Arc<[u8]> = iter::repeat_n(0, width as usize * height as usize * 3).collect();
        colour::yuv_to_rgb(chroma, width as usize, height as usize, &self.planes, Arc::make_mut(&mut rgb));
        self.pacer.wait(t);
        let frame = Frame::new(self.camera.clone(), self.seq, self.clock.now(), width, height, rgb)
            .map_err(|e| SourceError::bad_format(format!("{}: {e}", self.path.display())))?;
        self.seq += 1;
        Ok(frame)
    }

    /// Goes back to the first frame.
    fn rewind(&mut self) -> Result<(), SourceError> {
        if self.file_frame == 0 {
            return Err(SourceError::bad_format(format!(
                "{} has no frames, so there is nothing to loop",
                self.path.display()
            )));
        }
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|e| SourceError::io(format!("seeking back to the first frame of {}", self.path.display()), e))?;
        self.offset = self.data_start;
        self.file_frame = 0;
        Ok(())
    }
}

impl FrameSource for Y4mSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            if !self.read_frame_line()? {
                if !self.loop_at_end {
                    return Ok(None);
                }
                self.rewind()?;
                continue;
            }
            self.read_planes()?;
            let t = self.stream_frame as f64 / self.header.rate.fps();
            self.file_frame += 1;
            self.stream_frame += 1;
            // Skipped frames are still read in full so truncation is noticed,
            // but not converted, which is where the time goes.
            if self.pacer.admit(t) {
                return self.hand_out(t).map(Some);
            }
        }
    }
}

impl fmt::Debug for Y4mSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Y4mSource")
            .field("path", &self.path)
            .field("camera", &self.camera)
            .field("header", &self.header)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

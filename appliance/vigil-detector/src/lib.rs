//! Weapon detection on OpenVINO.
//!
//! The only crate that knows OpenVINO. It loads and checks a model (IR or
//! ONNX), compiles it for the configured device with a model cache, and runs
//! a [`Pool`] of asynchronous infer requests fed from a [`FrameQueue`].
//! Letterboxing, output decoding and NMS are pure and tested without OpenVINO.

pub mod decode;
pub mod letterbox;
mod model;
mod pool;
mod runtime;

use std::path::PathBuf;

pub use model::{Detector, ModelInfo};
pub use pool::{DetectorStats, FrameQueue, Inference, Pool};

/// A model that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("model {}: {message}", path.display())]
pub struct DetectorError {
    /// The model file.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What is wrong and what to do.
    pub message: String,
}

/// The kinds of [`DetectorError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The OpenVINO runtime could not be loaded or started.
    Runtime,
    /// The model or its weights are missing.
    Missing,
    /// OpenVINO could not read the model.
    Read,
    /// The input is not an image input Vigil can feed.
    Input,
    /// The output is not a layout Vigil can decode.
    Output,
    /// The device is not present.
    Device,
    /// Compilation for the device failed.
    Compile,
    /// An inference failed.
    Infer,
}

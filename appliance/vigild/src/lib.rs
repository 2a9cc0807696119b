//! vigild, Vigil's supervisor, as a library so tests and benchmarks run the
//! real pipeline in-process. See ARCHITECTURE.md for the bird's-eye view.

pub mod actions;
pub mod backoff;
pub mod cameras;
pub mod console;
pub mod pipeline;
pub mod scheduler;
pub mod stats;
pub mod supervisor;

pub use pipeline::{Parts, Running, Status, start};
pub use supervisor::{CommandRequest, Notice};

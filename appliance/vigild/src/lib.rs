//! vigild, Vigil's supervisor, as a library so tests and benchmarks run the
//! real pipeline in-process. See ARCHITECTURE.md for the bird's-eye view.

pub mod actions;
pub mod cameras;
pub mod console;
pub mod district;
mod files;
pub mod journal;
pub mod pipeline;
pub mod plugins;
pub mod scheduler;
pub mod stats;
pub mod supervisor;
pub mod system;
mod uploads;

pub use files::check_files;
pub use pipeline::{Parts, Running, Status, start};
pub use supervisor::{CommandRequest, Notice};

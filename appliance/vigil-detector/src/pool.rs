//! The inference pool: one OS thread per infer request, each taking the next
//! frame from a shared queue, so as many requests are in flight as the
//! device wants and preparing one frame overlaps inference of the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use openvino::InferRequest;
use vigil_core::{Clock, Frame, FrameResult};

use crate::Detector;
use crate::model::{Decoder, describe};

/// Where the pool takes frames from.
pub trait FrameQueue: Send + Sync {
    /// Blocks until a frame should be inferred; `None` once the pipeline is shutting down.
    fn take(&self) -> Option<Frame>;
}

/// A frame and what the detector found in it. The frame travels along so the
/// confirming frame can become evidence without a copy.
#[derive(Clone, Debug)]
pub struct Inference {
    /// The frame.
    pub frame: Frame,
    /// The detections and stage times.
    pub result: FrameResult,
}

/// Counters for status and benchmarks.
#[derive(Debug, Default)]
pub struct DetectorStats {
    /// Frames inferred.
    pub inferences: AtomicU64,
    /// Inferences that failed.
    pub errors: AtomicU64,
    /// Nanoseconds requests spent in flight, summed over requests.
    busy_ns: AtomicU64,
}

impl DetectorStats {
    /// Time requests spent in flight, summed over requests. Divided by wall
    /// time and the number of requests it is the device's utilization: 1.0
    /// means every request always had a frame in flight.
    pub fn busy_time(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    fn add_busy(&self, d: Duration) {
        self.busy_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Running inference threads.
pub struct Pool {
    threads: Vec<JoinHandle<()>>,
    stats: Arc<DetectorStats>,
}

impl Pool {
    /// Starts one thread per infer request of `detector`. Results go to
    /// `results` with a blocking send: a result is never dropped, and a stuck
    /// consumer backs up into the frame queue, which drops stale frames instead.
    pub fn start(
        detector: Detector,
        queue: Arc<dyn FrameQueue>,
        results: Sender<Inference>,
        clock: Arc<dyn Clock>,
    ) -> Pool {
        let stats = Arc::new(DetectorStats::default());
        let Detector { _compiled: compiled, requests, decoder, info } = detector;
        // The compiled model outlives every request: the last thread to finish drops it.
        // (The Mutex only makes the Send-but-not-Sync model shareable; nobody locks it.)
        let compiled = Arc::new(Mutex::new(compiled));
        let threads = requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| {
                let worker = Worker {
                    request,
                    decoder: decoder.clone(),
                    queue: queue.clone(),
                    results: results.clone(),
                    clock: clock.clone(),
                    stats: stats.clone(),
                    model: info.path.display().to_string(),
                };
                let compiled = compiled.clone();
                std::thread::Builder::new()
                    .name(format!("infer-{i}"))
                    .spawn(move || {
                        worker.run();
                        drop(compiled);
                    })
                    .expect("spawning an inference thread")
            })
            .collect();
        Pool { threads, stats }
    }

    /// The pool's counters.
    pub fn stats(&self) -> Arc<DetectorStats> {
        self.stats.clone()
    }

    /// Waits for every thread; they end once the queue returns `None`.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("an inference thread panicked");
            }
        }
    }
}

struct Worker {
    request: InferRequest,
    decoder: Arc<Decoder>,
    queue: Arc<dyn FrameQueue>,
    results: Sender<Inference>,
    clock: Arc<dyn Clock>,
    stats: Arc<DetectorStats>,
    model: String,
}

/// Longest wait for one inference before it is counted as failed.
const INFER_TIMEOUT_MS: i64 = 30_000;

impl Worker {
    fn run(mut self) {
        while let Some(frame) = self.queue.take() {
            let started = Instant::now();
            let outcome = self.infer(&frame);
            self.stats.add_busy(started.elapsed());
            match outcome {
                Ok(detections) => {
                    self.stats.inferences.fetch_add(1, Ordering::Relaxed);
                    let result = FrameResult {
                        camera: frame.camera.clone(),
                        seq: frame.seq,
                        width: frame.width,
                        height: frame.height,
                        captured: frame.captured,
                        inferred: self.clock.now(),
                        detections,
                    };
                    if self.results.send(Inference { frame, result }).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let n = self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    // The first failures say what is wrong; after that, one line per hundred.
                    if n < 5 || n.is_multiple_of(100) {
                        tracing::error!(model = %self.model, camera = %frame.camera, error = %describe(&e), failures = n + 1, "inference failed");
                    }
                }
            }
        }
    }

    fn infer(&mut self, frame: &Frame) -> Result<Vec<vigil_core::Detection>, openvino::InferenceError> {
        let lb = self.decoder.prepare(&mut self.request, frame)?;
        self.request.infer_async()?;
        self.request.wait(INFER_TIMEOUT_MS)?;
        self.decoder.finish(&self.request, &lb, frame)
    }
}

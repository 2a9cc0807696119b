//! Loading, checking and compiling a detection model on OpenVINO.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, PartialShape, PropertyKey, RwPropertyKey};
use vigil_config::{DetectorConfig, OutputLayout, PerformanceHint};
use vigil_core::{Detection, Frame};

use crate::decode::{self, Family, Layout};
use crate::letterbox::Letterbox;
use crate::{DetectorError, ErrorKind};

/// Input size used when a model's spatial dimensions are dynamic.
const DEFAULT_INPUT: i64 = 640;

/// What was loaded, for logs and status.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// The OpenVINO library in use.
    pub library: String,
    /// The device string from the config.
    pub device: String,
    /// The devices OpenVINO actually chose (`EXECUTION_DEVICES`).
    pub execution_devices: String,
    /// Input width and height.
    pub input: (u32, u32),
    /// The decoded output layout.
    pub layout: Layout,
    /// Infer requests in flight.
    pub requests: usize,
    /// Time to read and compile (a warm model cache makes this short).
    pub load_ms: u128,
}

/// Everything needed to turn an output tensor into detections; shared by all requests.
#[derive(Debug)]
pub(crate) struct Decoder {
    pub(crate) input_w: u32,
    pub(crate) input_h: u32,
    pub(crate) layout: Layout,
    pub(crate) labels: Vec<Arc<str>>,
    pub(crate) confidence: f32,
    pub(crate) iou: f32,
}

impl Decoder {
    /// Letterboxes `frame` into the request's input tensor.
    pub(crate) fn prepare(
        &self,
        request: &mut InferRequest,
        frame: &Frame,
    ) -> Result<Letterbox, openvino::InferenceError> {
        let lb = Letterbox::new(frame.width, frame.height, self.input_w, self.input_h);
        let mut input = request.get_input_tensor()?;
        lb.fill_nchw(frame, input.get_data_mut::<f32>()?);
        Ok(lb)
    }

    /// Decodes the request's output for a frame prepared with `lb`.
    pub(crate) fn finish(
        &self,
        request: &InferRequest,
        lb: &Letterbox,
        frame: &Frame,
    ) -> Result<Vec<Detection>, openvino::InferenceError> {
        let output = request.get_output_tensor_by_index(0)?;
        let data = output.get_data::<f32>()?;
        let candidates = decode::decode(self.layout, data, self.confidence, self.input_w, self.input_h);
        Ok(decode::nms(candidates, self.iou)
            .into_iter()
            .map(|c| Detection {
                class: c.class,
                label: self
                    .labels
                    .get(c.class as usize)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(format!("class-{}", c.class))),
                score: c.score,
                bbox: lb.to_frame(c.bbox, frame.width, frame.height),
            })
            .collect())
    }
}

/// A compiled model and its infer requests, ready to start a pool or to run one frame.
pub struct Detector {
    // Kept so the requests' compiled model provably outlives them.
    pub(crate) _compiled: CompiledModel,
    pub(crate) requests: Vec<InferRequest>,
    pub(crate) decoder: Arc<Decoder>,
    pub(crate) info: ModelInfo,
}

impl Detector {
    /// Loads, checks and compiles the model `cfg` names. Any problem (no
    /// runtime, missing file, wrong shapes, unknown layout, unavailable device)
    /// is an error naming the file and what is wrong.
    pub fn load(cfg: &DetectorConfig) -> Result<Detector, DetectorError> {
        Detector::load_for_cameras(cfg, 0)
    }

    /// [`Detector::load`], telling OpenVINO that about `cameras` frames will be
    /// in flight (its `PERFORMANCE_HINT_NUM_REQUESTS`): with one camera the
    /// device runs one stream on every core, for the lowest glass-to-alert
    /// latency; with many it splits into as many streams as pay off. 0 leaves
    /// the choice to the device.
    pub fn load_for_cameras(cfg: &DetectorConfig, cameras: usize) -> Result<Detector, DetectorError> {
        let started = Instant::now();
        let fail = |kind, message: String| DetectorError { path: cfg.model.clone(), kind, message };
        let library = crate::runtime::load(cfg.openvino_lib.as_deref()).map_err(|m| fail(ErrorKind::Runtime, m))?;
        let weights = check_files(&cfg.model).map_err(|m| fail(ErrorKind::Missing, m))?;
        let ov = |kind| move |e: openvino::InferenceError| fail(kind, describe(&e));

        let mut core = Core::new().map_err(|e| fail(ErrorKind::Runtime, format!("cannot start OpenVINO: {e}")))?;
        let mut model = core
            .read_model_from_file(&cfg.model.to_string_lossy(), &weights)
            .map_err(|e| fail(ErrorKind::Read, format!("OpenVINO cannot read it: {}", describe(&e))))?;

        if model.get_inputs_len().map_err(ov(ErrorKind::Input))? != 1 {
            return Err(fail(ErrorKind::Input, "the model must have exactly one input (an image)".into()));
        }
        let outputs = model.get_outputs_len().map_err(ov(ErrorKind::Output))?;
        if outputs != 1 {
            return Err(fail(
                ErrorKind::Output,
                format!(
                    "the model has {outputs} outputs; a detection model has one (segmentation and pose models are not supported)"
                ),
            ));
        }
        let input = model.get_input_by_index(0).map_err(ov(ErrorKind::Input))?;
        let (input_w, input_h) = input_size(&input.get_partial_shape().map_err(ov(ErrorKind::Input))?)
            .map_err(|m| fail(ErrorKind::Input, m))?;
        if model.is_dynamic() {
            let name = input.get_name().map_err(ov(ErrorKind::Input))?;
            let shape = PartialShape::new_static(4, &[1, 3, i64::from(input_h), i64::from(input_w)])
                .map_err(ov(ErrorKind::Input))?;
            model.reshape_input_by_name(&name, &shape).map_err(ov(ErrorKind::Input))?;
        }
        let element = input.get_element_type().map_err(ov(ErrorKind::Input))?;
        if element != ElementType::F32 {
            return Err(fail(ErrorKind::Input, format!("the input is {element}, expected f32 (RGB scaled to 0..1)")));
        }

        let targets = check_device(&core, &cfg.device).map_err(|m| fail(ErrorKind::Device, m))?;
        let hint = match cfg.performance_hint {
            PerformanceHint::Throughput => "THROUGHPUT",
            PerformanceHint::Latency => "LATENCY",
        };
        let cache = std::fs::create_dir_all(&cfg.cache_dir).map(|()| cfg.cache_dir.to_string_lossy().into_owned());
        if let Err(e) = &cache {
            tracing::warn!(dir = %cfg.cache_dir.display(), error = %e, "model cache unavailable; the model will be compiled at every start");
        }
        for target in targets.iter().map(String::as_str).chain(cfg.device.starts_with("AUTO").then_some("AUTO")) {
            let device = DeviceType::from(target);
            core.set_property(&device, &RwPropertyKey::HintPerformanceMode, hint).map_err(ov(ErrorKind::Device))?;
            if cameras > 0 && target != "AUTO" {
                core.set_property(&device, &RwPropertyKey::HintNumRequests, &cameras.to_string())
                    .map_err(ov(ErrorKind::Device))?;
            }
            if let Ok(dir) = &cache {
                core.set_property(&device, &RwPropertyKey::CacheDir, dir).map_err(ov(ErrorKind::Device))?;
            }
        }

        // AUTO gets only the devices present: naming an absent one makes
        // OpenVINO load its plugin anyway, and the GPU plugin fails without OpenCL.
        let compile_for =
            if cfg.device.starts_with("AUTO") { format!("AUTO:{}", targets.join(",")) } else { cfg.device.clone() };
        let mut compiled = core
            .compile_model(&model, DeviceType::from(compile_for.as_str()))
            .map_err(|e| fail(ErrorKind::Compile, format!("cannot compile it for {}: {}", cfg.device, describe(&e))))?;
        let output = compiled.get_output_by_index(0).map_err(ov(ErrorKind::Output))?;
        if output.get_element_type().map_err(ov(ErrorKind::Output))? != ElementType::F32 {
            return Err(fail(ErrorKind::Output, "the output is not f32".into()));
        }
        let dims = output.get_shape().map_err(ov(ErrorKind::Output))?.get_dimensions().to_vec();
        let forced = match cfg.layout {
            OutputLayout::Auto => None,
            OutputLayout::Yolo => Some(Family::Yolo),
            OutputLayout::Ssd => Some(Family::Ssd),
        };
        let layout = decode::detect_layout(&dims, cfg.labels.len(), forced).map_err(|m| fail(ErrorKind::Output, m))?;

        let optimal = compiled
            .get_property(&PropertyKey::OptimalNumberOfInferRequests)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let wanted = cfg.infer_requests.map_or(optimal, |n| n as usize).max(1);
        let requests = (0..wanted)
            .map(|_| compiled.create_infer_request())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ov(ErrorKind::Compile))?;
        let execution_devices = compiled
            .get_property(&PropertyKey::Other("EXECUTION_DEVICES".into()))
            .map(|d| d.into_owned())
            .unwrap_or_else(|_| cfg.device.clone());

        let info = ModelInfo {
            path: cfg.model.clone(),
            library,
            device: cfg.device.clone(),
            execution_devices,
            input: (input_w, input_h),
            layout,
            requests: requests.len(),
            load_ms: started.elapsed().as_millis(),
        };
        let decoder = Arc::new(Decoder {
            input_w,
            input_h,
            layout,
            labels: cfg.labels.clone(),
            confidence: cfg.confidence,
            iou: cfg.iou,
        });
        Ok(Detector { _compiled: compiled, requests, decoder, info })
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs one frame synchronously on the first request: for health checks and tests.
    pub fn detect(&mut self, frame: &Frame) -> Result<Vec<Detection>, DetectorError> {
        let fail = |e: openvino::InferenceError| DetectorError {
            path: self.info.path.clone(),
            kind: ErrorKind::Infer,
            message: format!("inference failed: {}", describe(&e)),
        };
        let request = &mut self.requests[0];
        let lb = self.decoder.prepare(request, frame).map_err(fail)?;
        request.infer().map_err(fail)?;
        self.decoder.finish(request, &lb, frame).map_err(fail)
    }
}

/// The weights path to pass with the model: the `.bin` beside an `.xml`, none for ONNX.
fn check_files(model: &Path) -> Result<String, String> {
    if !model.is_file() {
        return Err("the model file does not exist or is not a file".into());
    }
    if model.extension().and_then(|e| e.to_str()) == Some("xml") {
        let bin = model.with_extension("bin");
        if !bin.is_file() {
            return Err(format!(
                "its weights {} are missing: an OpenVINO IR needs the .bin beside the .xml",
                bin.display()
            ));
        }
        return Ok(bin.to_string_lossy().into_owned());
    }
    Ok(String::new())
}

/// `[1, 3, H, W]`, with dynamic H and W taken as 640.
fn input_size(shape: &PartialShape) -> Result<(u32, u32), String> {
    let dims = shape.get_dimensions();
    let text = dims
        .iter()
        .map(|d| if d.is_dynamic() { "?".to_string() } else { d.get_min().to_string() })
        .collect::<Vec<_>>()
        .join(", ");
    let fixed = |i: usize| (!dims[i].is_dynamic()).then(|| dims[i].get_min());
    if dims.len() != 4 || fixed(1) != Some(3) || fixed(0).is_some_and(|n| n != 1) {
        return Err(format!("the input is [{text}], expected [1, 3, height, width] (NCHW RGB)"));
    }
    let side = |i: usize| fixed(i).unwrap_or(DEFAULT_INPUT);
    let (h, w) = (side(2), side(3));
    if !(32..=4096).contains(&h) || !(32..=4096).contains(&w) {
        return Err(format!("the input is [{text}]: {w}x{h} is not a plausible image size"));
    }
    Ok((w as u32, h as u32))
}

/// The devices a device string will use, checked against what this machine has.
fn check_device(core: &Core, device: &str) -> Result<Vec<String>, String> {
    let available: Vec<String> = core
        .available_devices()
        .map_err(|e| format!("cannot list OpenVINO devices: {}", describe(&e)))?
        .iter()
        .map(|d| d.as_ref().to_string())
        .collect();
    let present = |d: &str| available.iter().any(|a| a == d || a.split('.').next() == Some(d));
    let wanted: Vec<String> = match device.strip_prefix("AUTO") {
        Some(list) => {
            let list = list.trim_start_matches(':');
            let all: Vec<String> =
                if list.is_empty() { available.clone() } else { list.split(',').map(String::from).collect() };
            let usable: Vec<String> = all.into_iter().filter(|d| present(d.split('.').next().unwrap_or(d))).collect();
            if usable.is_empty() {
                return Err(format!(
                    "none of the devices in {device} is present (available: {})",
                    available.join(", ")
                ));
            }
            usable
        }
        None if present(device.split('.').next().unwrap_or(device)) => vec![device.to_string()],
        None => {
            return Err(format!(
                "device {device} is not present on this machine (available: {}); use AUTO:NPU,GPU,CPU to fall back",
                available.join(", ")
            ));
        }
    };
    Ok(wanted)
}

/// OpenVINO's own message where it has one.
pub(crate) fn describe(e: &openvino::InferenceError) -> String {
    match &e.message {
        Some(m) => format!("{:?}: {}", e.kind, m.trim()),
        None => format!("{:?}", e.kind),
    }
}

#!/usr/bin/env python3
"""Build Vigil's detection models from scratch with the onnx and openvino Python APIs.

  demo  : demo-yolo.onnx/.xml/.bin, demo-ssd.xml/.bin, demo.labels
          A hand-built (untrained) detector for SYNTHETIC MARKERS: a solid magenta
          rectangle is reported as class 0 "handgun", a solid cyan one as class 1
          "phone". It is NOT a weapon detector; it exists so the whole pipeline
          (decode, NMS, tracking, incidents, evidence) can be exercised end to end
          with a test pattern held up to a camera or drawn into a video.
  bench : yolov8n-640.onnx/.xml/.bin, coco80.labels
          The real YOLOv8n graph (same ops, shapes and cost as an Ultralytics export)
          with seeded random weights, for sizing hardware. It detects nothing.

Nothing is downloaded. Output is deterministic: two runs give byte-identical files.

  python models/generate.py --out DIR [--only demo|bench] [--check]
"""
import argparse
import io
import os
import re
import sys
import time

import numpy as np
import onnx
import openvino as ov
from onnx import TensorProto, helper, numpy_helper

IMG = 640
OPSET = 17
DEMO_LABELS = ["handgun", "phone"]
COCO80 = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
]
assert len(COCO80) == 80


class Graph:
    """Tiny ONNX graph builder: node/tensor names are sequential, so output is deterministic."""

    def __init__(self, name):
        self.name, self.nodes, self.inits, self.count = name, [], [], 0

    def _fresh(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value, dtype=np.float32):
        name = self._fresh("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, *inputs, outputs=1, out=None, **attrs):
        names = [out] if out else [self._fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names,
                                           name=self._fresh(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def split(self, x, sizes, axis):
        return self.op("Split", x, self.const(sizes, np.int64), outputs=len(sizes), axis=axis)

    def model(self, out_name, out_shape, metadata):
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMG, IMG])],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
            self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vigil-models/generate.py", producer_version="1")
        m.ir_version = 8  # readable by any onnx/onnxruntime/OpenVINO from the last few years
        helper.set_model_props(m, metadata)
        onnx.checker.check_model(m, full_check=True)
        return m


# ----------------------------------------------------------------------------- demo model
WIN, STRIDE, BAND = 80, 16, 8   # window, stride, border band excluded from the "inner" region
PAD = BAND                      # so inner regions tile the whole image, edges included
GRID = (IMG + 2 * PAD - WIN) // STRIDE + 1   # 37 windows per side
UNIT = 8.0                      # moments in units of 8 px keep every value < 30 (fp16-safe)
MASS0, MASS_SLOPE = 80.0, 0.04  # coverage sigmoid: 50% at 80 px of marker, ~0.05 at 9 px


def window_kernel():
    """Conv weights that turn a mask into per-window moments in WINDOW-LOCAL coordinates.

    Local, centred coordinates (in 8-px units, |x| < 5) avoid the E[x²]-E[x]² cancellation
    that 640-px global coordinates would suffer under reduced precision: emulated fp16
    (GPU) keeps per-axis box IoU >= 0.98; bf16 (AMX CPUs) is coarser, so pin f32 there.
    Channels: mass, Σx, Σy, Σx², Σy², inner mass (all /64, i.e. mass in 8×8 cells).
    """
    c = ((np.arange(WIN) + 0.5) - WIN / 2) / UNIT
    x, y = np.meshgrid(c, c)
    inner = np.zeros((WIN, WIN))
    inner[BAND:WIN - BAND, BAND:WIN - BAND] = 1
    k = np.stack([np.ones_like(x), x, y, x * x, y * y, inner]) / (UNIT * UNIT)
    return k[:, None].astype(np.float32)   # [6, 1, WIN, WIN]


def build_demo(head):
    g = Graph(f"vigil_demo_{head}")
    c = g.const
    clip01 = lambda t: g.op("Clip", t, c(0.0), c(1.0))
    r, gr, b = g.split("images", [1, 1, 1], axis=1)

    def marker_mask(a, bb, dark):
        # Both marker channels bright AND the third dark; a mere "min(a,b) - dark" chroma
        # test would also fire on dark purple/teal clothing. Ramps (not steps) so that
        # anti-aliased edges count partially instead of flickering.
        hi = clip01(g.op("Mul", g.op("Sub", g.op("Min", a, bb), c(0.75)), c(8.0)))
        lo = clip01(g.op("Mul", g.op("Sub", c(0.30), dark), c(8.0)))
        return g.op("Mul", hi, lo)

    # Class goes into the batch axis, so one Conv computes both classes' moments.
    masks = g.op("Concat", marker_mask(r, b, gr), marker_mask(gr, b, r), axis=0)  # [2,1,H,W]
    mom = g.op("Conv", masks, c(window_kernel()), kernel_shape=[WIN, WIN],
               strides=[STRIDE, STRIDE], pads=[PAD] * 4)                           # [2,6,G,G]
    m, sx, sy, sxx, syy, mi = g.split(mom, [1] * 6, axis=1)
    den = g.op("Add", m, c(1e-6))
    mean = lambda s: g.op("Div", s, den)
    mx, my = mean(sx), mean(sy)
    # Var of a uniform segment of length L is L²/12, so sqrt(12·var) is its exact length.
    # For a rectangle sampled on L whole pixels the variance is (L²-1)/12 px², hence the +1.
    size = lambda s2, mu: g.op("Sqrt", g.op("Add", g.op("Mul", g.op("Max", g.op(
        "Sub", mean(s2), g.op("Mul", mu, mu)), c(0.0)), c(12.0 * UNIT**2)), c(1.0)))
    centres = STRIDE * np.arange(GRID) + WIN / 2 - PAD
    cx = g.op("Add", g.op("Mul", mx, c(UNIT)), c(centres.reshape(1, 1, 1, GRID)))
    cy = g.op("Add", g.op("Mul", my, c(UNIT)), c(centres.reshape(1, 1, GRID, 1)))
    w, h = size(sxx, mx), size(syy, my)
    # Score = coverage x completeness. Completeness is 1 only when the whole marker lies in
    # the window's inner part (then the moments, hence the box, are exact). A marker cut by
    # the window edge leaves >= 8 px of itself in the border band, so inner/total <= 0.8
    # for markers up to 40 px and the ramp gives 0: no half-boxes survive to NMS.
    coverage = g.op("Sigmoid", g.op("Mul", g.op("Sub", m, c(MASS0 / UNIT**2)),
                                    c(MASS_SLOPE * UNIT**2)))
    complete = clip01(g.op("Mul", g.op("Sub", g.op("Div", mi, den), c(0.8)), c(5.0)))
    score = g.op("Mul", coverage, complete)

    n = 2 * GRID * GRID   # anchors: all magenta windows, then all cyan windows
    feats = g.op("Concat", cx, cy, w, h, score, axis=1)                             # [2,5,G,G]
    feats = g.op("Reshape", feats, c([2, 5, GRID * GRID], np.int64))
    feats = g.op("Reshape", g.op("Transpose", feats, perm=[1, 0, 2]), c([5, n], np.int64))
    box, score = g.split(feats, [4, 1], axis=0)
    label = np.repeat([0.0, 1.0], GRID * GRID)[None]
    meta = {"names": "{0: 'handgun', 1: 'phone'}", "stride": "16", "task": "detect",
            "imgsz": "[640, 640]", "description": "Vigil demo: magenta/cyan marker detector"}
    if head == "yolo":
        cls = g.op("Mul", score, c(np.concatenate([1 - label, label])))            # [2,n]
        out = g.op("Concat", box, cls, axis=0)
        g.op("Reshape", out, c([1, 6, n], np.int64), out="output0")
        return g.model("output0", [1, 6, n], meta)
    # SSD DetectionOutput layout: [image_id, label, conf, x_min, y_min, x_max, y_max], 0..1.
    cxy, wh = g.split(box, [2, 2], axis=0)
    half = g.op("Mul", wh, c(0.5))
    lo = g.op("Mul", g.op("Sub", cxy, half), c(1.0 / IMG))
    hi = g.op("Mul", g.op("Add", cxy, half), c(1.0 / IMG))
    rows = g.op("Concat", c(np.concatenate([np.zeros_like(label), label])), score, lo, hi, axis=0)
    g.op("Reshape", g.op("Transpose", rows, perm=[1, 0]), c([1, 1, n, 7], np.int64),
         out="detection_out")
    return g.model("detection_out", [1, 1, n, 7], meta)


# ------------------------------------------------------------------------ YOLOv8n benchmark
def build_yolov8n(seed=8):
    """YOLOv8n (depth 0.33, width 0.25) as exported by Ultralytics, BN folded into Conv bias."""
    rng = np.random.default_rng(seed)
    g = Graph("yolov8n")
    stats = {"params": 0, "macs": 0}

    def conv(x, c2, k=1, s=1, act=True, std=None, bias=None):
        name, c1, hw = x
        # Plain He-normal: SiLU passes less energy than ReLU, so activation RMS drifts from
        # ~0.9 down to ~0.07 over the depth instead of exploding (gain 3 reaches ~1e3): the
        # values stay bounded, finite and non-denormal, which is all a benchmark needs.
        wt = rng.standard_normal((c2, c1, k, k)) * (std or np.sqrt(2.0 / (c1 * k * k)))
        b = rng.standard_normal(c2) * 0.05 if bias is None else np.full(c2, bias)
        y = g.op("Conv", name, g.const(wt), g.const(b), kernel_shape=[k, k],
                 strides=[s, s], pads=[k // 2] * 4)
        hw //= s
        stats["params"] += wt.size + b.size
        stats["macs"] += wt.size * hw * hw
        if act:
            y = g.op("Mul", y, g.op("Sigmoid", y))   # SiLU, exactly as Ultralytics exports it
        return (y, c2, hw)

    def cat(*xs):
        return (g.op("Concat", *[x[0] for x in xs], axis=1), sum(x[1] for x in xs), xs[0][2])

    def c2f(x, c2, n, shortcut):
        c = c2 // 2
        y0 = conv(x, 2 * c)
        a, b = g.split(y0[0], [c, c], axis=1)
        ys = [(a, c, y0[2]), (b, c, y0[2])]
        for _ in range(n):
            t = conv(conv(ys[-1], c, 3), c, 3)
            if shortcut:
                t = (g.op("Add", ys[-1][0], t[0]), c, t[2])
            ys.append(t)
        return conv(cat(*ys), c2)

    def sppf(x, c2):
        y = [conv(x, x[1] // 2)]
        for _ in range(3):
            y.append((g.op("MaxPool", y[-1][0], kernel_shape=[5, 5], strides=[1, 1],
                           pads=[2] * 4), y[-1][1], y[-1][2]))
        return conv(cat(*y), c2)

    def up(x):
        return (g.op("Resize", x[0], "", g.const([1, 1, 2, 2]), mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                x[1], x[2] * 2)

    x = ("images", 3, IMG)
    x = conv(conv(x, 16, 3, 2), 32, 3, 2)
    p3 = c2f(conv(c2f(x, 32, 1, True), 64, 3, 2), 64, 2, True)
    p4 = c2f(conv(p3, 128, 3, 2), 128, 2, True)
    p5 = sppf(c2f(conv(p4, 256, 3, 2), 256, 1, True), 256)
    n4 = c2f(cat(up(p5), p4), 128, 1, False)
    o3 = c2f(cat(up(n4), p3), 64, 1, False)
    o4 = c2f(cat(conv(o3, 64, 3, 2), n4), 128, 1, False)
    o5 = c2f(cat(conv(o4, 128, 3, 2), p5), 256, 1, False)

    nc, reg = 80, 16
    levels, anchors, strides = [], [], []
    for feat in (o3, o4, o5):
        box = conv(conv(conv(feat, 64, 3), 64, 3), 4 * reg, act=False)
        # Small weights + bias -9: sigmoid ≈ 1e-4, like a trained model on an empty scene,
        # so downstream NMS/tracking costs stay realistic instead of drowning in boxes.
        cls = conv(conv(conv(feat, 80, 3), 80, 3), nc, act=False, std=0.01, bias=-9.0)
        levels.append(g.op("Reshape", cat(box, cls)[0], g.const([1, 4 * reg + nc, -1], np.int64)))
        hw = feat[2]
        gy, gx = np.meshgrid(np.arange(hw) + 0.5, np.arange(hw) + 0.5, indexing="ij")
        anchors.append(np.stack([gx.ravel(), gy.ravel()]))
        strides.append(np.full(hw * hw, IMG / hw))
    a = sum(s.size for s in strides)   # 8400
    box, cls = g.split(g.op("Concat", *levels, axis=2), [4 * reg, nc], axis=1)
    # DFL: softmax over 16 distance bins, expectation as a fixed 1x1 conv with weights 0..15.
    d = g.op("Reshape", box, g.const([1, 4, reg, a], np.int64))
    d = g.op("Transpose", d, perm=[0, 2, 1, 3])
    dfl_w = np.arange(reg, dtype=np.float32).reshape(1, reg, 1, 1)
    stats["params"] += dfl_w.size
    d = g.op("Conv", g.op("Softmax", d, axis=1), g.const(dfl_w), kernel_shape=[1, 1])
    lt, rb = g.split(g.op("Reshape", d, g.const([1, 4, a], np.int64)), [2, 2], axis=1)
    cxy = g.op("Add", g.const(np.concatenate(anchors, 1)[None]),
               g.op("Mul", g.op("Sub", rb, lt), g.const(0.5)))
    xywh = g.op("Mul", g.op("Concat", cxy, g.op("Add", lt, rb), axis=1),
                g.const(np.concatenate(strides)[None, None]))
    g.op("Concat", xywh, g.op("Sigmoid", cls), axis=1, out="output0")
    stats["macs"] += dfl_w.size * 4 * a
    meta = {"names": str(dict(enumerate(COCO80))), "stride": "32", "task": "detect",
            "imgsz": "[640, 640]",
            "description": "YOLOv8n architecture, RANDOM weights (benchmark only)"}
    return g.model("output0", [1, 4 + nc, a], meta), stats


def build_bad_layout():
    """A valid image model whose output ([1, 3]: mean colour) is no detection layout.

    Tests use it to check that vigild refuses such a model at startup.
    """
    g = Graph("vigil-bad-layout")
    g.op("ReduceMean", "images", out="mean_rgb", axes=[2, 3], keepdims=0)
    return g.model("mean_rgb", [1, 3], {"description": "not a detector: output is [1, 3]"})


# ------------------------------------------------------------------------------- writing
def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {path} ({len(data):,} bytes)")


def write_ir(model_proto, xml_path):
    # Convert from serialized bytes (not a path) so the IR's rt_info carries no local path,
    # and keep FP32 weights: the demo's moment kernel is exact in FP32, and a default
    # Ultralytics export (half=False) is FP32 too, so the benchmark cost matches.
    ir = ov.convert_model(io.BytesIO(model_proto.SerializeToString()))
    # Constants folded during conversion get names from a process-wide counter, so the XML
    # would depend on what was converted earlier (e.g. --only bench vs a full run).
    graph = model_proto.graph
    onnx_names = {n.name for n in graph.node} | {t.name for t in graph.initializer}
    for i, op in enumerate(ir.get_ordered_ops()):
        name = op.get_friendly_name()
        if name not in onnx_names and re.fullmatch(r"[A-Za-z]+_\d+", name):
            op.set_friendly_name(f"folded_{i}")
    ov.save_model(ir, xml_path, compress_to_fp16=False)
    for p in (xml_path, xml_path[:-4] + ".bin"):
        print(f"wrote {p} ({os.path.getsize(p):,} bytes)")


def generate(out, group):
    if group == "demo":
        yolo = build_demo("yolo")
        write_bytes(os.path.join(out, "demo-yolo.onnx"), yolo.SerializeToString())
        write_ir(yolo, os.path.join(out, "demo-yolo.xml"))
        write_ir(build_demo("ssd"), os.path.join(out, "demo-ssd.xml"))
        write_bytes(os.path.join(out, "demo.labels"), ("\n".join(DEMO_LABELS) + "\n").encode())
        write_bytes(os.path.join(out, "bad-layout.onnx"), build_bad_layout().SerializeToString())
    else:
        model, stats = build_yolov8n()
        print(f"yolov8n-640: {stats['params']:,} parameters, "
              f"{2 * stats['macs'] / 1e9:.2f} GFLOPs at {IMG}x{IMG}")
        write_bytes(os.path.join(out, "yolov8n-640.onnx"), model.SerializeToString())
        write_ir(model, os.path.join(out, "yolov8n-640.xml"))
        write_bytes(os.path.join(out, "coco80.labels"), ("\n".join(COCO80) + "\n").encode())


# -------------------------------------------------------------------------------- checks
def iou(a, b):
    """IoU of one xyxy box against an [N,4] array of xyxy boxes."""
    tl, br = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], axis=-1)
    return inter / (area(a) + area(b) - inter + 1e-9)


def nms(boxes, scores, labels, conf=0.25, iou_thr=0.45):
    """Greedy per-class NMS, as Vigil (and Ultralytics) do it. Returns [(label, score, xyxy)]."""
    keep = scores > conf
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    out = []
    for i in np.argsort(-scores, kind="stable"):
        if all(l != labels[i] or iou(b, boxes[i:i + 1])[0] <= iou_thr for l, _, b in out):
            out.append((int(labels[i]), float(scores[i]), boxes[i]))
    return out


def decode_yolo(out):
    p = out[0]                        # [4+classes, N]
    cls = p[4:]
    xy, wh = p[:2].T, p[2:4].T
    return nms(np.hstack([xy - wh / 2, xy + wh / 2]), cls.max(0), cls.argmax(0))


def decode_ssd(out):
    d = out[0, 0]                     # [N, 7]
    return nms(d[:, 3:7] * IMG, d[:, 2], d[:, 1].astype(int))


def render(markers, seed=1):
    """Synthetic letterboxed frame: grey/beige room, 'people' and furniture, given markers."""
    rng = np.random.default_rng(seed)
    img = np.empty((IMG, IMG, 3), np.float32)
    img[:] = (128, 126, 120)
    img[:, :320] = (205, 195, 175)                                   # beige wall
    img[400:560] = (140, 95, 55)                                     # wood floor
    clutter = [(230, 150, 110, 410, (110, 75, 45)),                  # door
               (300, 120, 360, 330, (30, 40, 90)),                   # navy jacket
               (380, 140, 430, 320, (200, 30, 40)),                  # red shirt
               (470, 130, 520, 300, (120, 50, 130)),                 # purple hoodie
               (540, 150, 590, 310, (240, 150, 190)),                # pink top
               (20, 300, 90, 400, (0, 128, 128)),                    # teal bag
               (100, 330, 160, 400, (90, 170, 230)),                 # sky-blue shirt
               (170, 420, 230, 500, (60, 80, 140)),                  # jeans
               (600, 100, 640, 200, (245, 245, 245))]                # white board
    for x0, y0, x1, y1, col in clutter:
        img[y0:y1, x0:x1] = col
    img += rng.normal(0, 4, img.shape)                               # sensor noise
    for x0, y0, x1, y1, col in markers:
        img[y0:y1, x0:x1] = col
    img[:80] = img[560:] = 114                                       # letterbox bands
    return np.clip(img, 0, 255).round().transpose(2, 0, 1)[None] / 255.0


MAGENTA, CYAN = (245, 20, 240), (15, 245, 240)


def check_demo(out):
    core = ov.Core()
    nets = {k: core.compile_model(os.path.join(out, f"demo-{k}.xml"), "CPU")
            for k in ("yolo", "ssd")}
    decoders = {"yolo": decode_yolo, "ssd": decode_ssd}

    def detect(kind, markers):
        return decoders[kind](nets[kind](render(markers).astype(np.float32))[0])

    main = [(300, 200, 324, 216, MAGENTA), (440, 380, 454, 402, CYAN)]
    for kind in nets:
        dets = detect(kind, main)
        for lab, truth in ((0, main[0]), (1, main[1])):
            mine = [d for d in dets if d[0] == lab]
            assert len(mine) == 1, f"{kind}: expected one {DEMO_LABELS[lab]}, got {mine}"
            q = iou(np.array(truth[:4], float), mine[0][2][None])[0]
            print(f"check demo-{kind}: {DEMO_LABELS[lab]:7s} score {mine[0][1]:.3f} IoU {q:.3f} "
                  f"box {np.round(mine[0][2], 1).tolist()}")
            assert q >= 0.9 and (lab == 1 or mine[0][1] >= 0.8)
        assert len(dets) == 2, f"{kind}: unexpected extra detections {dets}"
        empty = detect(kind, [])
        assert not empty, f"{kind}: false positives on a marker-free scene: {empty}"
        print(f"check demo-{kind}: marker-free scene -> 0 detections")

    # Every sub-stride offset, several sizes, and the image border: one exact box each.
    worst_iou, scores = 1.0, {}
    for w, h in ((10, 10), (24, 16), (40, 40), (16, 30)):
        for off in range(0, 16, 3):
            for x0, y0 in ((200 + off, 150 + 2 * off), (IMG - w - off % 4, 560 - h)):
                dets = detect("yolo", [(x0, y0, x0 + w, y0 + h, MAGENTA)])
                assert len(dets) == 1 and dets[0][0] == 0, f"{w}x{h} at {x0},{y0}: {dets}"
                worst_iou = min(worst_iou, iou(np.array([x0, y0, x0 + w, y0 + h], float),
                                               dets[0][2][None])[0])
                scores.setdefault(f"{w}x{h}", []).append(dets[0][1])
    speck = detect("yolo", [(250, 250, 253, 253, MAGENTA), (500, 450, 502, 454, CYAN)])
    assert not speck, f"specks detected: {speck}"
    print(f"check demo-yolo: position/size sweep worst IoU {worst_iou:.3f}; min score " +
          ", ".join(f"{k} {min(v):.3f}" for k, v in scores.items()) + "; 3x3/2x4 specks -> none")
    assert worst_iou >= 0.9


def check_bench(out):
    net = ov.Core().compile_model(os.path.join(out, "yolov8n-640.xml"), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY"})
    img = render([(300, 200, 324, 216, MAGENTA)]).astype(np.float32)
    req = net.create_infer_request()
    res = req.infer({0: img})[0]
    assert res.shape == (1, 84, 8400) and np.isfinite(res).all(), res.shape
    times = []
    for _ in range(20):
        t = time.perf_counter()
        req.infer({0: img})
        times.append(time.perf_counter() - t)
    print(f"check yolov8n-640: output {list(res.shape)}, max class score {res[0, 4:].max():.2e}, "
          f"box w/h range {res[0, 2:4].min():.0f}..{res[0, 2:4].max():.0f} px, "
          f"latency median {1e3 * np.median(times):.1f} ms (CPU, sync, 1 stream)")
    assert res[0, 4:].max() < 0.01, "random head should not fire"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--only", choices=["demo", "bench"], help="build just one group")
    ap.add_argument("--check", action="store_true", help="run the OpenVINO self-checks afterwards")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    groups = [args.only] if args.only else ["demo", "bench"]
    for skipped in sorted({"demo", "bench"} - set(groups)):
        print(f"skipping {skipped} models (--only {args.only})")
    for group in groups:
        generate(args.out, group)
    if args.check:
        for group in groups:
            {"demo": check_demo, "bench": check_bench}[group](args.out)
        print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())

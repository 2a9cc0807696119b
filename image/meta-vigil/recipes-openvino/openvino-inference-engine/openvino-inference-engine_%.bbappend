# meta-openvino builds OpenVINO without its NPU plugin (EXTRA_OECMAKE carries
# -DENABLE_INTEL_NPU=OFF). vigild runs its detector on the NPU first
# (detector.device = "AUTO:NPU,GPU,CPU"), so turn the plugin on; it reaches
# the NPU through Level Zero and the user-space driver from meta-intel.
DEPENDS:append:vigil = " level-zero"

# The GPU plugin (OpenCL) for the GPU fallback; the samples and the
# TensorFlow, TensorFlow Lite, PaddlePaddle and PyTorch frontends are not
# needed to run IR and ONNX models.
PACKAGECONFIG:append:vigil = " opencl onnx"
PACKAGECONFIG:remove:vigil = "samples tf tflite paddle pytorch"

EXTRA_OECMAKE:remove:vigil = "-DENABLE_INTEL_NPU=OFF"
EXTRA_OECMAKE:append:vigil = " -DENABLE_INTEL_NPU=ON"

RDEPENDS:${PN}:append:vigil = " level-zero linux-npu-driver linux-npu-driver-firmware"

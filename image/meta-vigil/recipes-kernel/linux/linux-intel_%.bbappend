FILESEXTRAPATHS:prepend:vigil := "${THISDIR}/files:"

# The NPU, the watchdog, dm-verity for RAUC bundles, the TPM, UVC cameras and
# RS-485 adapters (files/vigil.cfg).
SRC_URI:append:vigil = " file://vigil.cfg"

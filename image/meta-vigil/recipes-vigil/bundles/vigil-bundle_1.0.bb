SUMMARY = "Vigil update bundle"
DESCRIPTION = "The signed RAUC bundle (verity format) that installs vigil-image \
               into the inactive root filesystem slot."
SECTION = "images"
LICENSE = "MIT"

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "${VIGIL_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "Vigil ${DISTRO_VERSION} for ${MACHINE}"
# dm-verity: checked block by block as RAUC reads it; the devices refuse plain bundles.
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "vigil-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The signing key and certificate, from outside the repository
# (docs/image.md, "Keys and plugins"); meta-rauc stops the build, naming the
# variable, when a file is missing.
RAUC_KEY_FILE = "${VIGIL_KEYS_DIR}/rauc-signing.key.pem"
RAUC_CERT_FILE = "${VIGIL_KEYS_DIR}/rauc-signing.cert.pem"

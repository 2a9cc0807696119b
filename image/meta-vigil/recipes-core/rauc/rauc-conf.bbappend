FILESEXTRAPATHS:prepend:vigil := "${THISDIR}/files:"

# The certificate bundles are checked against: the integrator's RAUC CA,
# from outside the repository (docs/image.md, "Keys and plugins"). meta-rauc's
# example keyring must never reach a device. Without VIGIL_KEYS_DIR the
# fetcher stops the build, naming the file it could not find.
RAUC_KEYRING_FILE:vigil = "rauc-keyring.pem"
RAUC_KEYRING_URI:vigil = "file://${VIGIL_KEYS_DIR}/rauc-keyring.pem"

do_install:append:vigil() {
    sed -i -e 's/@VIGIL_RAUC_COMPATIBLE@/${VIGIL_RAUC_COMPATIBLE}/' ${D}${sysconfdir}/rauc/system.conf
}

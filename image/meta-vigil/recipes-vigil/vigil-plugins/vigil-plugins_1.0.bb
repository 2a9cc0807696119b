SUMMARY = "Vigil's factory plugin packages"
DESCRIPTION = "Signed plugin packages (.vpk) vigild installs at startup from \
               /usr/share/vigil/packages (plugins.install_dir)."
SECTION = "misc"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The packages are built for wasm32-wasip2 and signed away from the build
# machine (docs/image.md, "Keys and plugins"): the signing key never enters a
# build, and vigild installs only packages signed by a key in the device's
# plugins.trusted_keys. This recipe copies the signed packages from
# VIGIL_PLUGINS_DIR into the image, after checking that every plugin
# factory-plugins.conf names is there.
SRC_URI = "file://factory-plugins.conf"
S = "${WORKDIR}"

inherit allarch

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# Rebuild when a package in the folder changes, appears or goes.
do_install[file-checksums] += "${@'${VIGIL_PLUGINS_DIR}/*.vpk:True' if d.getVar('VIGIL_PLUGINS_DIR') else ''}"

do_install() {
    install -d ${D}${datadir}/vigil/packages
    for name in $(grep -v '^#' ${WORKDIR}/factory-plugins.conf); do
        if [ -z "${VIGIL_PLUGINS_DIR}" ] || ! ls ${VIGIL_PLUGINS_DIR}/$name-*.vpk >/dev/null 2>&1; then
            bbfatal "factory-plugins.conf requires plugin $name, but VIGIL_PLUGINS_DIR (${VIGIL_PLUGINS_DIR}) holds no $name-<version>.vpk"
        fi
    done
    if [ -n "${VIGIL_PLUGINS_DIR}" ]; then
        if [ ! -d "${VIGIL_PLUGINS_DIR}" ]; then
            bbfatal "VIGIL_PLUGINS_DIR=${VIGIL_PLUGINS_DIR} is not a folder: point it at the signed .vpk packages (docs/image.md)"
        fi
        for package in ${VIGIL_PLUGINS_DIR}/*.vpk; do
            [ -e "$package" ] || continue
            install -m 0644 "$package" ${D}${datadir}/vigil/packages/
        done
    fi
}

FILES:${PN} += "${datadir}/vigil/packages"
ALLOW_EMPTY:${PN} = "1"

SUMMARY = "Vigil OS integration: data partition, ESP, watchdog, device access"
DESCRIPTION = "Mount units for the data partition and the EFI system \
               partition, the hardware watchdog setting and the NPU's device permissions."
SECTION = "base"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "file://data.mount \
           file://efi.mount \
           file://vigil-watchdog.conf \
           file://70-vigil-devices.rules \
           "
S = "${WORKDIR}"

inherit allarch systemd

SYSTEMD_SERVICE:${PN} = "data.mount efi.mount"
SYSTEMD_AUTO_ENABLE = "enable"

do_install() {
    install -d ${D}${systemd_system_unitdir} ${D}${systemd_unitdir}/system.conf.d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${WORKDIR}/data.mount ${WORKDIR}/efi.mount ${D}${systemd_system_unitdir}/
    install -m 0644 ${WORKDIR}/vigil-watchdog.conf ${D}${systemd_unitdir}/system.conf.d/
    install -m 0644 ${WORKDIR}/70-vigil-devices.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    # Mount points on the read-only root filesystem.
    install -d ${D}/data ${D}/efi
}

FILES:${PN} += "${systemd_system_unitdir} \
                ${systemd_unitdir}/system.conf.d \
                ${nonarch_base_libdir}/udev/rules.d \
                /data \
                /efi \
                "

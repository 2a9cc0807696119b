SUMMARY = "GRUB environment block with Vigil's initial RAUC slot state"
DESCRIPTION = "The grubenv file wic puts on the EFI system partition: both \
               slots bootable, slot A first (wic/vigil-grub.cfg)."
SECTION = "bootloaders"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "file://grubenv.in"
S = "${WORKDIR}"

inherit deploy nopackages

# GRUB reads and writes its environment block in place: exactly 1024 bytes,
# padded with '#'.
do_compile() {
    cp ${WORKDIR}/grubenv.in ${B}/grubenv
    size=$(stat -c %s ${B}/grubenv)
    head -c $(expr 1024 - $size) /dev/zero | tr '\0' '#' >>${B}/grubenv
}

do_deploy() {
    install -m 0644 ${B}/grubenv ${DEPLOYDIR}/grubenv
}
addtask deploy after do_compile before do_build

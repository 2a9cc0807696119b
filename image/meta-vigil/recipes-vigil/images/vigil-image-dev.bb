SUMMARY = "Vigil appliance image (development: root login, SSH, debug tools)"
DESCRIPTION = "vigil-image with root login without a password, an SSH server \
               and debugging tools. For the lab only: never install it at a school."

SECTION = "images"

require vigil-image.inc

# The point of this image; never a release's.
# nooelint: oelint.var.badimagefeature.allow-empty-password, oelint.var.badimagefeature.allow-root-login, oelint.var.badimagefeature.empty-root-password, oelint.var.badimagefeature.tools-debug
IMAGE_FEATURES += "allow-empty-password allow-root-login empty-root-password ssh-server-openssh tools-debug"

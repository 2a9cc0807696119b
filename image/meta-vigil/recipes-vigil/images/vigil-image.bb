SUMMARY = "Vigil appliance image (release)"
DESCRIPTION = "The school-safety appliance: vigild on a read-only root \
               filesystem in A/B slots, with no login without a password and no SSH."
SECTION = "images"

require vigil-image.inc

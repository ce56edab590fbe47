#!/bin/sh
# Remakes test/fixtures/unet_sd_layout (SD 1.5's four levels, two layers per block, at small widths,
# with 12×12 latents, which are not a multiple of 8, so the up path upsamples to the skips' sizes)
# with the real diffusers v0.31.0 through the reference harness (see its README for REF_SRC).
#   sh packages/unet/scripts/make_cases.sh PATH_TO_REFERENCE_HARNESS
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$1"
/usr/bin/python3 make_reference.py gen --kind unet --config "$HERE/../test/fixtures/cases/unet_sd_layout.json" --out "$HERE/../test/fixtures/unet_sd_layout"

#!/bin/sh
# Remakes test/fixtures/vae_sd_layout (SD 1.5's four levels, two layers per block, at small widths,
# with 20×20 images, which the encoder halves to odd sizes (5×5, padded right and bottom))
# with the real diffusers v0.31.0 through the reference harness (see its README for REF_SRC).
#   sh packages/unet/scripts/make_cases.sh PATH_TO_REFERENCE_HARNESS
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$1"
/usr/bin/python3 make_reference.py gen --kind vae --config "$HERE/../test/fixtures/cases/vae_sd_layout.json" --out "$HERE/../test/fixtures/vae_sd_layout"

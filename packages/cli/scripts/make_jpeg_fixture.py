"""Writes test/fixtures/pattern.jpg: a 20×12 baseline JPEG (quality 95, 4:4:4) of pixel (x, y) =
(12x, 20y, 200 - 8x), for the `kiln generate --image` tests.

    /usr/bin/python3 packages/cli/scripts/make_jpeg_fixture.py packages/cli/test/fixtures/pattern.jpg
"""
import sys

from PIL import Image

img = Image.new("RGB", (20, 12))
img.putdata([(12 * x, 20 * y, 200 - 8 * x) for y in range(12) for x in range(20)])
img.save(sys.argv[1], quality=95, subsampling=0)

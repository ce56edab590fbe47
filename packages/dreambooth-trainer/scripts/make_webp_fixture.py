# Writes test/fixtures/pattern.webp: a 6×4 lossless WebP (Pillow) whose pixel (x, y) is
# (40·x, 60·y, 200), for the WebP decoding test.
#   /usr/bin/python3 packages/dreambooth-trainer/scripts/make_webp_fixture.py
import os
from PIL import Image

img = Image.new('RGB', (6, 4))
for y in range(4):
    for x in range(6):
        img.putpixel((x, y), (40 * x, 60 * y, 200))
img.save(os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'pattern.webp'), lossless=True)

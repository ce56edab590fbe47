# PIL's bilinear resize (with its antialiasing when shrinking) of small float images, the oracle
# for resizeBilinear: writes test/fixtures/resize-reference.json.
#   /usr/bin/python3 packages/dreambooth-trainer/scripts/make_resize_reference.py
import json, os
import numpy as np
from PIL import Image

cases = []
rng = np.random.default_rng(0)
for (w, h, W, H) in [(7, 5, 3, 2), (10, 13, 4, 6), (4, 3, 9, 7), (16, 16, 5, 5), (9, 4, 9, 2)]:
    src = rng.random((h, w, 3), dtype=np.float32)
    out = np.stack([np.asarray(Image.fromarray(src[:, :, c], 'F').resize((W, H), Image.BILINEAR)) for c in range(3)], -1)
    cases.append({'w': w, 'h': h, 'W': W, 'H': H, 'src': src.ravel().tolist(), 'out': out.ravel().tolist()})
path = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'resize-reference.json')
with open(path, 'w') as f:
    json.dump({'pillow': Image.__version__ if hasattr(Image, '__version__') else 'PIL', 'cases': cases}, f)

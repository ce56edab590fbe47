"""A small safetensors file written independently of Kiln, for @kiln/nn's reader tests.

Run with Debian's PyTorch:  /usr/bin/python3 packages/nn/scripts/make_safetensors_fixture.py
Writes packages/nn/test/fixtures/mixed.safetensors and mixed.json (the expected values).

The byte layout follows the safetensors spec (8-byte little-endian header length, JSON header
padded with spaces, data region); the element bytes come from PyTorch's own storage, so f16/bf16
bit patterns are PyTorch's rounding.
"""
import json
import os
import struct

import torch

HERE = os.path.dirname(__file__)
FIX = os.path.join(HERE, "..", "test", "fixtures")

tensors = {
    "f32": torch.tensor([[1.5, -2.25, 3.0], [0.1, 1e-30, -7.0]], dtype=torch.float32),
    "f16": torch.tensor([0.1, -65504.0, 6e-8, 1.0], dtype=torch.float16),
    "bf16": torch.tensor([[0.1, -3.0e38], [1.0, 2.5]], dtype=torch.bfloat16),
    "f64": torch.tensor([3.141592653589793, -1e-300], dtype=torch.float64),
    "i64": torch.tensor([0, -1, 2147483647, -2147483648], dtype=torch.int64),
    "i32": torch.tensor([[7, -8]], dtype=torch.int32),
    "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
    "mask": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(42.0, dtype=torch.float32),
}
NAMES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def raw(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


header = {"__metadata__": {"format": "pt", "source": "make_safetensors_fixture.py"}}
data = b""
for name, t in tensors.items():
    b = raw(t)
    header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(b)]}
    data += b
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(FIX, "mixed.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)

expected = {}
for name, t in tensors.items():
    v = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    expected[name] = {"shape": list(t.shape), "values": v.reshape(-1).tolist()}
with open(os.path.join(FIX, "mixed.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")
print("wrote mixed.safetensors and mixed.json")

"""Converts a single-file checkpoint that Kiln wrote with diffusers' own LDM converter and checks
that it gives back Kiln's diffusers folder exactly (an oracle for ldmUNetKey / ldmVAEKey that
does not share code with them). The report is committed as test/fixtures/single-file-check.txt
of @kiln/unet and @kiln/vae.

  node --conditions=kiln-source --import tsx packages/unet/scripts/write-for-diffusers.ts OUT
  /usr/bin/python3 packages/unet/scripts/check_single_file.py --kind unet --dir OUT --ref PATH_TO_REFERENCE_HARNESS

OUT holds config.json, diffusion_pytorch_model.safetensors and single_file.safetensors; --ref is the
reference harness folder (its env.py puts diffusers v0.31.0 on sys.path; see its README).
"""
import argparse
import json
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--kind", choices=["unet", "vae"], required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--ref", required=True)
a = ap.parse_args()
sys.path.insert(0, a.ref)
import env  # noqa: E402,F401  (diffusers sources + stubs on sys.path)
import torch  # noqa: E402
import safetensors_io as stio  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint  # noqa: E402

config = {k: v for k, v in json.load(open(os.path.join(a.dir, "config.json"))).items() if not k.startswith("_")}
single, _ = stio.load_torch(os.path.join(a.dir, "single_file.safetensors"))
folder, _ = stio.load_torch(os.path.join(a.dir, "diffusion_pytorch_model.safetensors"))
if a.kind == "unet":
    converted = convert_ldm_unet_checkpoint(single, config)
    model = UNet2DConditionModel.from_config(config)
else:
    converted = convert_ldm_vae_checkpoint(single, config)
    model = AutoencoderKL.from_config(config)
missing, unexpected = model.load_state_dict(converted, strict=False)
print(f"{a.kind}: {len(single)} LDM tensors -> {len(converted)} diffusers tensors by diffusers' converter")
print(f"loads into diffusers' {type(model).__name__}: missing={missing} unexpected={unexpected}")
differ = [k for k in folder if k not in converted or converted[k].shape != folder[k].shape or not torch.equal(converted[k], folder[k])]
print(f"keys only in Kiln's folder: {sorted(set(folder) - set(converted))}")
print(f"keys only in the conversion: {sorted(set(converted) - set(folder))}")
print(f"tensors that differ in shape or any bit: {differ}")
ok = not missing and not unexpected and not differ and set(folder) == set(converted)
print("IDENTICAL" if ok else "MISMATCH")
sys.exit(0 if ok else 1)

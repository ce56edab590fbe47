"""Runs diffusers' own LoRA loading conversion on a LoRA safetensors file and prints, as JSON, the
keys and shapes diffusers ends up with per component, its network_alphas, and the LoraConfig
kwargs it builds (r, lora_alpha, rank_pattern, alpha_pattern, target_modules).

It follows StableDiffusionLoraLoaderMixin.lora_state_dict / load_lora_into_unet /
load_lora_into_text_encoder of diffusers v0.31.0 (the steps before PEFT injects the weights):
  1. _maybe_map_sgm_blocks_to_diffusers, then _convert_non_diffusers_lora_to_diffusers for a kohya file;
  2. UNet: strip 'unet.', convert_unet_state_dict_to_peft (weights and alphas), ranks from lora_B,
     get_peft_kwargs(is_unet=True);
  3. text encoder: strip 'text_encoder.', convert_state_dict_to_diffusers then
     convert_state_dict_to_peft, ranks from lora_B, get_peft_kwargs(is_unet=False).

Usage (diffusers v0.31.0 sources and stand-ins for safetensors/huggingface_hub on the path; the
file is read here, without the safetensors package):
  PYTHONPATH=$REF_SRC/diffusers/src:$STUBS /usr/bin/python3 diffusers_lora_keys.py FILE [layers_per_block] > out.json
"""
import json
import struct
import sys
import types

import numpy as np
import torch

from diffusers.loaders.lora_conversion_utils import (
    _convert_non_diffusers_lora_to_diffusers,
    _maybe_map_sgm_blocks_to_diffusers,
)
from diffusers.utils.peft_utils import get_peft_kwargs
from diffusers.utils.state_dict_utils import (
    convert_state_dict_to_diffusers,
    convert_state_dict_to_peft,
    convert_unet_state_dict_to_peft,
)

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + start : 8 + n + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, metadata


def describe(state_dict, alphas, is_unet):
    rank = {k: v.shape[1] for k, v in state_dict.items() if "lora_B" in k}
    kwargs = get_peft_kwargs(rank, alphas, state_dict, is_unet=is_unet)
    kwargs["target_modules"] = sorted(kwargs["target_modules"])
    return {
        "keys": {k: list(v.shape) for k, v in state_dict.items()},
        "network_alphas": alphas,
        "lora_config": kwargs,
    }


def main():
    path = sys.argv[1]
    layers_per_block = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    state_dict, _ = read_safetensors(path)
    network_alphas = None
    # lora_state_dict: the same test diffusers uses to recognise a kohya/A1111 file.
    if all(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in state_dict):
        state_dict = _maybe_map_sgm_blocks_to_diffusers(state_dict, types.SimpleNamespace(layers_per_block=layers_per_block))
        state_dict, network_alphas = _convert_non_diffusers_lora_to_diffusers(state_dict)
    result = {}
    # load_lora_into_unet -> _process_lora
    unet = {k[len("unet.") :]: v for k, v in state_dict.items() if k.startswith("unet.")}
    if unet:
        alphas = None
        if network_alphas is not None:
            alphas = {k[len("unet.") :]: v for k, v in network_alphas.items() if k.startswith("unet.")}
            alphas = convert_unet_state_dict_to_peft(alphas)
        result["unet"] = describe(convert_unet_state_dict_to_peft(unet), alphas, True)
    # load_lora_into_text_encoder
    te = {k[len("text_encoder.") :]: v for k, v in state_dict.items() if k.split(".")[0] == "text_encoder"}
    if te:
        te = convert_state_dict_to_peft(convert_state_dict_to_diffusers(te))
        alphas = None
        if network_alphas is not None:
            alphas = {k[len("text_encoder.") :]: v for k, v in network_alphas.items() if k.split(".")[0] == "text_encoder"}
        result["text_encoder"] = describe(te, alphas, False)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

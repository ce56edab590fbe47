"""Reference outputs for @kiln/clip's CLIPTextModel (test/text-model.test.ts).

A plain-PyTorch CLIP text transformer written to transformers' CLIPTextModel semantics
(pre-LN blocks, causal self-attention, quick_gelu or gelu MLP, final layer norm, hidden_states =
embeddings + the output of every layer, pooled output at the first end-of-text token), with
seeded random weights under transformers' state-dict names. Padding masks are additive
torch.finfo(float32).min as in transformers (reference-masks.json), so a row with no key to
attend to averages its causal prefix instead of giving NaN. It writes a model folder in
transformers' layout (config.json + model.safetensors, the safetensors file written by hand to
the published format) and the outputs for a few id sequences.

Run: /usr/bin/python3 packages/clip/scripts/make_text_model_reference.py
"""
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "tiny-clip-text")

CONFIG = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": 1000,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 16,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 998,
    "eos_token_id": 999,
    "pad_token_id": 999,
    "projection_dim": 32,
    "torch_dtype": "float32",
}


def make_weights(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, inter, v, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    w = {}

    def rnd(*shape, std=0.2):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * std).float()

    w["text_model.embeddings.token_embedding.weight"] = rnd(v, h, std=0.5)
    w["text_model.embeddings.position_embedding.weight"] = rnd(p, h, std=0.5)
    for i in range(cfg["num_hidden_layers"]):
        pre = f"text_model.encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[pre + f"self_attn.{name}.weight"] = rnd(h, h)
            w[pre + f"self_attn.{name}.bias"] = rnd(h, std=0.05)
        for ln in ("layer_norm1", "layer_norm2"):
            w[pre + f"{ln}.weight"] = 1 + rnd(h, std=0.1)
            w[pre + f"{ln}.bias"] = rnd(h, std=0.1)
        w[pre + "mlp.fc1.weight"] = rnd(inter, h)
        w[pre + "mlp.fc1.bias"] = rnd(inter, std=0.05)
        w[pre + "mlp.fc2.weight"] = rnd(h, inter)
        w[pre + "mlp.fc2.bias"] = rnd(h, std=0.05)
    w["text_model.final_layer_norm.weight"] = 1 + rnd(h, std=0.1)
    w["text_model.final_layer_norm.bias"] = rnd(h, std=0.1)
    return w


# transformers' additive padding mask value (torch.finfo(torch.float32).min), as its
# _expand_mask / _prepare_4d_attention_mask build it.
FINFO_MIN = torch.finfo(torch.float32).min


def forward(w, cfg, ids, attention_mask=None):
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    eps = cfg["layer_norm_eps"]
    act = (lambda x: x * torch.sigmoid(1.702 * x)) if cfg["hidden_act"] == "quick_gelu" else torch.nn.functional.gelu
    w = {k: t.double() for k, t in w.items()}
    B, L = ids.shape
    x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:L]
    hidden_states = [x]
    mask = torch.full((L, L), float("-inf"), dtype=torch.float64).triu(1)
    if attention_mask is not None:
        # [B, L] 1/0 -> [B, 1, 1, L] additive, added to the causal mask as transformers does
        pad = (1.0 - attention_mask.double()).masked_fill((1.0 - attention_mask.double()).bool(), FINFO_MIN)
        mask = mask + pad[:, None, None, :]
    hd = h // heads
    for i in range(cfg["num_hidden_layers"]):
        pre = f"text_model.encoder.layers.{i}."
        lin = lambda t, n: t @ w[pre + n + ".weight"].T + w[pre + n + ".bias"]
        r = x
        t = torch.nn.functional.layer_norm(x, (h,), w[pre + "layer_norm1.weight"], w[pre + "layer_norm1.bias"], eps)
        q = lin(t, "self_attn.q_proj").view(B, L, heads, hd).transpose(1, 2) * hd**-0.5
        k = lin(t, "self_attn.k_proj").view(B, L, heads, hd).transpose(1, 2)
        v = lin(t, "self_attn.v_proj").view(B, L, heads, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
        x = r + lin(a.transpose(1, 2).reshape(B, L, h), "self_attn.out_proj")
        r = x
        t = torch.nn.functional.layer_norm(x, (h,), w[pre + "layer_norm2.weight"], w[pre + "layer_norm2.bias"], eps)
        x = r + lin(act(lin(t, "mlp.fc1")), "mlp.fc2")
        hidden_states.append(x)
    last = torch.nn.functional.layer_norm(x, (h,), w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"], eps)
    eos = (ids == cfg["eos_token_id"]).int().argmax(dim=-1)
    pooled = last[torch.arange(B), eos]
    return last, hidden_states, pooled


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    w = make_weights(CONFIG)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    write_safetensors(os.path.join(OUT, "model.safetensors"), w, {"format": "pt"})
    cases = [
        [998, 5, 17, 300, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999],
        [998, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 999],
        [998, 42, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999, 999],
    ]
    ids = torch.tensor(cases)
    last, hs, pooled = forward(w, CONFIG, ids)
    ref = {
        "input_ids": cases,
        "last_hidden_state": last.tolist(),
        "hidden_states": [t.tolist() for t in hs],
        "pooler_output": pooled.tolist(),
        "num_parameters": sum(t.numel() for t in w.values()),
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
    # Padding masks: all zeros (no key to attend to), left padding, right padding.
    masks = [[0] * 16, [0, 0, 0] + [1] * 13, [1] * 3 + [0] * 13]
    last_m, hs_m, pooled_m = forward(w, CONFIG, ids, torch.tensor(masks))
    with open(os.path.join(OUT, "reference-masks.json"), "w") as f:
        json.dump({"input_ids": cases, "attention_mask": masks, "last_hidden_state": last_m.tolist(), "pooler_output": pooled_m.tolist()}, f)
    print("wrote", OUT, "params", ref["num_parameters"])

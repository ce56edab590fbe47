#!/usr/bin/python3
"""Reference values for @kiln/guidance: diffusers v0.31.0's classifier-free guidance step.

The guidance lines of `StableDiffusionPipeline.__call__` (chunk the batched UNet output into
unconditional and text halves, `uncond + s * (text - uncond)`, then `rescale_noise_cfg` when
guidance_rescale > 0), on Debian's python3-torch, float32. `rescale_noise_cfg` is the upstream
function itself: its source is read from diffusers (commit 89e4d6219805975bd7d253a267e1951badc9f1c0)
and executed alone, because importing the pipeline module needs `transformers`.

    export REF_SRC=...   # as for packages/scheduler/scripts/make_scheduler_goldens.py
    /usr/bin/python3 packages/guidance/scripts/make_guidance_reference.py

Writes packages/guidance/test/fixtures/cfg_reference.json.
"""
import ast
import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "cfg_reference.json")
PIPELINE = os.path.join(os.environ["REF_SRC"], "diffusers", "src", "diffusers", "pipelines",
                        "stable_diffusion", "pipeline_stable_diffusion.py")


def upstream(name):
    src = open(PIPELINE).read()
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), PIPELINE, "exec"), scope)
    return scope[name]


def f32(t):
    return [float(repr(np.float32(x))) for x in t.reshape(-1).tolist()]


def main():
    rescale_noise_cfg = upstream("rescale_noise_cfg")
    g = torch.Generator().manual_seed(0)
    shape = (2, 4, 4, 4)
    uncond = torch.randn(shape, generator=g)
    text = torch.randn(shape, generator=g) * 1.5 + 0.2
    noise_pred = torch.cat([uncond, text])  # what the UNet returns for cat([latents] * 2)
    cases = []
    for scale in (1.0, 7.5, 12.0):
        for rescale in (0.0, 0.7, 1.0):
            n_uncond, n_text = noise_pred.chunk(2)
            out = n_uncond + scale * (n_text - n_uncond)
            if rescale > 0.0:
                out = rescale_noise_cfg(out, n_text, guidance_rescale=rescale)
            cases.append({"guidance_scale": scale, "guidance_rescale": rescale, "noise_pred": f32(out)})
    json.dump({"shape": list(shape), "uncond": f32(uncond), "text": f32(text), "cases": cases,
               "generated_by": {"torch": torch.__version__, "diffusers_commit": "89e4d6219805975bd7d253a267e1951badc9f1c0",
                                "script": "packages/guidance/scripts/make_guidance_reference.py"}},
              open(OUT, "w"), separators=(",", ":"))
    print(f"{len(cases)} cases -> {OUT}")


if __name__ == "__main__":
    main()

"""PyTorch side of the UNet/VAE benchmarks (diffusion.ts): the real diffusers v0.31.0 models on
PyTorch CPU, with shapes and configs mirroring diffusion.ts. One case per process, so its peak RSS
is its own:

  KILN_REF_HARNESS=PATH /usr/bin/python3 torch_diffusion.py --threads 2 --reps 3 CASE

prints {"case", "median_ms", "runs", "rss_base_bytes", "rss_peak_bytes", "torch", "threads"}.
diffusers is imported from sys.path, or through the reference harness's env.py when
KILN_REF_HARNESS names that folder (it puts the diffusers sources and its stubs on sys.path).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def diffusers():
    harness = os.environ.get("KILN_REF_HARNESS")
    if harness:
        sys.path.insert(0, harness)
        import env  # noqa: F401
    import diffusers as d
    return d


def config(name):
    c = json.load(open(os.path.join(HERE, "configs", name)))
    return {k: v for k, v in c.items() if not k.startswith("_")}


def unet_fwd_bwd(cfg, batch, size, ctx_dim, checkpointing=False, adamw=False):
    model = diffusers().UNet2DConditionModel.from_config(config(cfg)).train()
    if checkpointing:
        model.enable_gradient_checkpointing()
    x = torch.randn(batch, 4, size, size)
    t = torch.tensor([999, 37][:batch] if batch <= 2 else [500] * batch)
    ctx = torch.randn(batch, 77, ctx_dim)
    g = torch.randn(batch, 4, size, size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5) if adamw else None

    def run():
        model.zero_grad(set_to_none=True)
        model(x, t, encoder_hidden_states=ctx).sample.backward(g)
        if opt:
            opt.step()

    return run


def vae(op, size):
    model = diffusers().AutoencoderKL.from_config(config("sd15_vae.json")).eval()
    x = torch.rand(1, 3, size, size) * 2 - 1 if op == "encode" else torch.randn(1, 4, size // 8, size // 8)

    def run():
        with torch.no_grad():
            model.encode(x).latent_dist.mean if op == "encode" else model.decode(x).sample

    return run


CASES = {
    "unet_tiny_fwd_bwd": lambda: unet_fwd_bwd("unet_tiny.json", 2, 16, 32),
    "unet_sd15_fwd_bwd": lambda: unet_fwd_bwd("sd15_unet.json", 1, 64, 768),
    "unet_sd15_fwd_bwd_ckpt": lambda: unet_fwd_bwd("sd15_unet.json", 1, 64, 768, checkpointing=True),
    "unet_sd15_train_step_ckpt": lambda: unet_fwd_bwd("sd15_unet.json", 1, 64, 768, checkpointing=True, adamw=True),
    "vae_encode_256": lambda: vae("encode", 256),
    "vae_decode_256": lambda: vae("decode", 256),
    "vae_encode_512": lambda: vae("encode", 512),
    "vae_decode_512": lambda: vae("decode", 512),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("case")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fn = CASES[a.case]()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(a.warmup):
        fn()
    runs = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"case": a.case, "median_ms": statistics.median(runs), "runs": runs, "rss_base_bytes": base,
                      "rss_peak_bytes": peak, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

"""PyTorch side of txt2img-sd15.ts: diffusers v0.31.0's UNet (configs/sd15_unet.json, seeded random
weights) and DDIMScheduler (SD 1.5's scheduler_config) in StableDiffusionPipeline.__call__'s
denoising loop (CFG in one batched forward, batch 2), 64×64 latents, float32 CPU:

  KILN_REF_HARNESS=PATH /usr/bin/python3 torch_txt2img_sd15.py --steps 3 --threads 2

Prompt embeddings are random [1, 77, 768]; no VAE decode (not a per-step cost). Prints
{"step_ms": median of the steps after the first, "steps_ms", "rss_peak_bytes", "torch"}.
"""
import argparse
import json
import os
import resource
import sys
import time

harness = os.environ.get("KILN_REF_HARNESS")
if harness:
    sys.path.insert(0, harness)
    import env  # noqa: F401
import torch  # noqa: E402
from diffusers import DDIMScheduler, UNet2DConditionModel  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--guidance", type=float, default=7.5)
a = p.parse_args()
torch.set_num_threads(a.threads)
here = os.path.dirname(os.path.abspath(__file__))

# SD 1.5's scheduler/scheduler_config.json (a PNDMScheduler's), loaded into DDIM as the pipeline's
# `DDIMScheduler.from_config(pipe.scheduler.config)` does.
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "clip_sample": False, "trained_betas": None,
}
torch.manual_seed(0)
cfg = json.load(open(os.path.join(here, "configs", "sd15_unet.json")))
unet = UNet2DConditionModel.from_config({k: v for k, v in cfg.items() if not k.startswith("_")}).float().eval()
scheduler = DDIMScheduler.from_config(SD15_SCHEDULER)
context = torch.randn(2, 77, 768)  # negative, then positive
latents = torch.randn(1, 4, 64, 64)

times = []
with torch.no_grad():
    scheduler.set_timesteps(a.steps)
    latents = latents * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        t0 = time.perf_counter()
        x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        uncond, cond = unet(x, t, encoder_hidden_states=context, return_dict=False)[0].chunk(2)
        latents = scheduler.step(uncond + a.guidance * (cond - uncond), t, latents, return_dict=False)[0]
        latents[0, 0, 0, 0].item()
        times.append((time.perf_counter() - t0) * 1000)
        print(f"torch step {i + 1}/{a.steps}: {times[-1] / 1000:.1f} s", file=sys.stderr, flush=True)
rest = sorted(times[1:])
print(json.dumps({
    "step_ms": rest[len(rest) // 2] if rest else None,
    "steps_ms": times,
    "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "torch": torch.__version__,
    "threads": a.threads,
}))

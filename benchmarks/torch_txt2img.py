"""diffusers v0.31.0's txt2img loop on PyTorch CPU, timed per step, for benchmarks/txt2img.ts:

  KILN_REF_HARNESS=PATH /usr/bin/python3 torch_txt2img.py FOLDER --steps 10 --reps 3 --threads 2

FOLDER is the tiny pipeline Kiln wrote, with io.safetensors (prompt embeddings, latents). Runs the
UNet, PNDM scheduler (the folder's) and VAE in StableDiffusionPipeline.__call__'s lines (CFG in
one batched forward), as packages/pipeline/scripts/make_reference_image.py does (transformers is
not installable beside Debian's PyTorch). Prints {"step_ms": median per denoising step,
"total_ms": median per image, "runs", "torch", "threads"}.
"""
import argparse
import json
import os
import sys
import time

harness = os.environ.get("KILN_REF_HARNESS")
if harness:
    sys.path.insert(0, harness)
    import env  # noqa: F401
import torch  # noqa: E402
import safetensors_io as stio  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("folder")
p.add_argument("--steps", type=int, default=10)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--guidance", type=float, default=7.5)
a = p.parse_args()
torch.set_num_threads(a.threads)


def load(cls, sub):
    cfg = json.load(open(os.path.join(a.folder, sub, "config.json")))
    model = cls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    sd, _ = stio.load_torch(os.path.join(a.folder, sub, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict(sd, strict=True)
    return model.float().eval()


unet, vae = load(UNet2DConditionModel, "unet"), load(AutoencoderKL, "vae")
sched_cfg = json.load(open(os.path.join(a.folder, "scheduler", "scheduler_config.json")))
scheduler = getattr(diffusers, sched_cfg["_class_name"]).from_config(sched_cfg)
io, _ = stio.load_torch(os.path.join(a.folder, "io.safetensors"))
context = torch.cat([io["negative_prompt_embeds"], io["prompt_embeds"]])


def run():
    start = time.perf_counter()
    scheduler.set_timesteps(a.steps)
    latents = io["latents"] * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        uncond, cond = unet(x, t, encoder_hidden_states=context, return_dict=False)[0].chunk(2)
        latents = scheduler.step(uncond + a.guidance * (cond - uncond), t, latents, return_dict=False)[0]
    steps_end = time.perf_counter()
    image = (vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0] / 2 + 0.5).clamp(0, 1)
    image.sum().item()
    return (steps_end - start) * 1000 / len(scheduler.timesteps), (time.perf_counter() - start) * 1000


with torch.no_grad():
    run()  # warm-up
    runs = [run() for _ in range(a.reps)]
med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
print(json.dumps({"step_ms": med([r[0] for r in runs]), "total_ms": med([r[1] for r in runs]), "runs": runs, "torch": torch.__version__, "threads": a.threads}))

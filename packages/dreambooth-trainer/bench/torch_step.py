"""PyTorch side of bench/step.ts: the same DreamBooth step with diffusers v0.31.0's UNet, VAE and
DDPMScheduler, on CPU float32. diffusers comes from sys.path, or through the reference harness's
env.py when KILN_REF_HARNESS names that folder. Prints {"ms": <median of 3 timed steps after a warm-up>}.
"""
import argparse, json, os, statistics, sys, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
if os.environ.get("KILN_REF_HARNESS"):
    sys.path.insert(0, os.environ["KILN_REF_HARNESS"])
    import env  # noqa: F401
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

c = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "case.json")))
torch.manual_seed(0)
unet = UNet2DConditionModel(**c["unet"]).train()
vae = AutoencoderKL(**c["vae"]).eval().requires_grad_(False)
sched = DDPMScheduler(**c["scheduler"])
B, P = c["batch"], c["pixels"]
pixels = torch.rand(B, 3, P, P) * 2 - 1
ehs = torch.randn(B, c["contextLength"], c["contextDim"])
opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)


def step():
    t0 = time.perf_counter()
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.sample() * 0.18215
    noise = torch.randn_like(latents)
    t = torch.randint(0, 1000, (B,)).long()
    noisy = sched.add_noise(latents, noise, t)
    pred = unet(noisy, t, ehs).sample
    p, pp = torch.chunk(pred, 2)
    n, npr = torch.chunk(noise, 2)
    loss = F.mse_loss(p.float(), n.float()) + 1.0 * F.mse_loss(pp.float(), npr.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss.item()
    return (time.perf_counter() - t0) * 1000


step()
print(json.dumps({"ms": statistics.median([step() for _ in range(3)])}))

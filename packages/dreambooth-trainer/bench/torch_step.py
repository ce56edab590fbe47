"""PyTorch side of bench/step.ts: the same DreamBooth step as diffusers v0.31.0's
examples/dreambooth/train_dreambooth.py (prior preservation, train_batch_size 1: one instance and
one class row), with diffusers' UNet, VAE and DDPMScheduler on CPU float32: VAE encode (no grad)
and a latent sample × 0.18215, noise, uniform timesteps, add_noise, UNet forward, instance MSE +
1.0 × prior MSE, backward, clip_grad_norm_ 1.0, AdamW (lr 1e-5), zero_grad.

  KILN_REF_HARNESS=<reference harness> /usr/bin/python3 torch_step.py [--case tiny|sd15]
      [--train-text-encoder] [--warmup 1] [--steps 3] [--threads 2]

`sd15` is SD 1.5's UNet, VAE and text encoder (benchmarks/configs/) at 512², seeded random
weights, with gradient checkpointing in the UNet (`unet.enable_gradient_checkpointing()`, as
--gradient_checkpointing). With --train-text-encoder the text encoder runs inside the step with
gradients and is in the optimizer and the clipping; it is the reference harness's CLIPTextModel
(transformers' CLIPTextModel semantics and parameter names; transformers is not installable beside
Debian's PyTorch), so this mode needs KILN_REF_HARNESS. Without it the text embeddings are made
once before the steps (random; --pre_compute_text_embeddings). diffusers comes from sys.path, or
through the harness's env.py when KILN_REF_HARNESS names that folder. Prints {"ms": the median of
the timed steps after --warmup untimed ones, "runs_ms", "rss_peak_bytes"}.
"""
import argparse, json, os, resource, statistics, sys, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--case", default="tiny", choices=["tiny", "sd15"])
ap.add_argument("--train-text-encoder", action="store_true")
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--steps", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(a.threads)
if os.environ.get("KILN_REF_HARNESS"):
    sys.path.insert(0, os.environ["KILN_REF_HARNESS"])
    import env  # noqa: F401
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

here = os.path.dirname(os.path.abspath(__file__))
c = json.load(open(os.path.join(here, "case.json")))
sd = a.case == "sd15"
if sd:
    configs = os.path.join(here, "..", "..", "..", "benchmarks", "configs")
    cfg = lambda name: {k: v for k, v in json.load(open(os.path.join(configs, name))).items() if not k.startswith("_")}  # noqa: E731
    c.update(pixels=512, contextDim=768, unet=cfg("sd15_unet.json"), vae=cfg("sd15_vae.json"), textEncoder=cfg("sd15_text_encoder.json"))
torch.manual_seed(0)
unet = UNet2DConditionModel.from_config(c["unet"]).train()
if sd:
    unet.enable_gradient_checkpointing()
vae = AutoencoderKL.from_config(c["vae"]).eval().requires_grad_(False)
sched = DDPMScheduler(**c["scheduler"])
B, P, L = c["batch"], c["pixels"], c["contextLength"]
pixels = torch.rand(B, 3, P, P) * 2 - 1
params = list(unet.parameters())
if a.train_text_encoder:
    from clip_text_model import CLIPTextModel  # the reference harness's (see above)

    text_encoder = CLIPTextModel(c["textEncoder"]).train()
    ids = torch.tensor([row + [49407] * (L - len(row)) for row in c["promptIds"]])
    params += list(text_encoder.parameters())
else:
    ehs = torch.randn(B, L, c["contextDim"])
opt = torch.optim.AdamW(params, lr=1e-5)


def step():
    t0 = time.perf_counter()
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.sample() * 0.18215
    noise = torch.randn_like(latents)
    t = torch.randint(0, 1000, (B,)).long()
    noisy = sched.add_noise(latents, noise, t)
    context = text_encoder(ids)["last_hidden_state"] if a.train_text_encoder else ehs
    pred = unet(noisy, t, context).sample
    p, pp = torch.chunk(pred, 2)
    n, npr = torch.chunk(noise, 2)
    loss = F.mse_loss(p.float(), n.float()) + 1.0 * F.mse_loss(pp.float(), npr.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss.item()
    ms = (time.perf_counter() - t0) * 1000
    if sd:
        print(f"torch step: {ms / 1000:.1f} s", file=sys.stderr, flush=True)
    return ms


for _ in range(a.warmup):
    step()
runs = [step() for _ in range(a.steps)]
print(json.dumps({
    "ms": statistics.median(runs),
    "runs_ms": runs,
    "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "torch": torch.__version__,
}))

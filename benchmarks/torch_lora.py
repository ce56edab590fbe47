"""PyTorch side of lora.ts: one UNet training step (gradient checkpointing, batch 1, 77-token
context, t = 500, MSE loss, AdamW lr 1e-4, fresh optimizer) with the real diffusers v0.31.0
UNet2DConditionModel on PyTorch CPU, full fine-tune or LoRA. One mode per process, so its peak RSS
is its own:

  KILN_REF_HARNESS=PATH /usr/bin/python3 torch_lora.py --threads 2 --config sd15_unet.json --size 64 --mode lora

prints {"mode", "ms", "rss_base_bytes" (RSS before the step), "rss_peak_bytes", "trainable_params", "total_params", "torch"}.

LoRA is what diffusers' train_dreambooth_lora.py sets up through PEFT (LoraConfig(r=4,
lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_k", "to_q", "to_v", "to_out.0"])):
PEFT is not installed here, so the same layer is written out below (base Linear frozen,
lora_A: in -> r, lora_B: r -> out, zeros, output base(x) + lora_B(lora_A(x)) * alpha / r).
diffusers is imported from sys.path, or through the reference harness's env.py when
KILN_REF_HARNESS names that folder.
"""
import argparse
import json
import os
import resource
import time

import torch

from torch_diffusion import diffusers  # the same import path (KILN_REF_HARNESS) as the UNet/VAE benchmarks

HERE = os.path.dirname(os.path.abspath(__file__))


class LoraLinear(torch.nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = torch.nn.Linear(rank, base.out_features, bias=False)
        torch.nn.init.normal_(self.lora_A.weight, std=1 / rank)
        torch.nn.init.zeros_(self.lora_B.weight)
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def inject_lora(model, rank, alpha):
    """Wraps every Attention's to_q, to_k, to_v and to_out[0]; returns the adapter parameters."""
    model.requires_grad_(False)
    for module in model.modules():
        if type(module).__name__ != "Attention":
            continue
        for name in ("to_q", "to_k", "to_v"):
            setattr(module, name, LoraLinear(getattr(module, name), rank, alpha))
        module.to_out[0] = LoraLinear(module.to_out[0], rank, alpha)
    return [p for n, p in model.named_parameters() if "lora_" in n]


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--config", default="sd15_unet.json")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mode", choices=["full", "lora"], required=True)
    ap.add_argument("--rank", type=int, default=4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = {k: v for k, v in json.load(open(os.path.join(HERE, "configs", a.config))).items() if not k.startswith("_")}
    model = diffusers().UNet2DConditionModel.from_config(cfg).train()
    model.enable_gradient_checkpointing()
    params = inject_lora(model, a.rank, a.rank) if a.mode == "lora" else list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    ctx_dim = cfg.get("cross_attention_dim", 768)
    x = torch.randn(1, 4, a.size, a.size)
    ctx = torch.randn(1, 77, ctx_dim)
    target = torch.randn(1, 4, a.size, a.size)
    t = torch.tensor([500])
    base = rss_now()
    t0 = time.perf_counter()
    loss = torch.nn.functional.mse_loss(model(x, t, encoder_hidden_states=ctx).sample, target)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    ms = (time.perf_counter() - t0) * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": a.mode, "ms": ms, "rss_base_bytes": base, "rss_peak_bytes": peak,
                      "trainable_params": sum(p.numel() for p in params),
                      "total_params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}))


if __name__ == "__main__":
    main()

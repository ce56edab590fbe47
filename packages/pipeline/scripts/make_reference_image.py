"""diffusers v0.31.0's StableDiffusionPipeline loop on a Kiln-written folder: the reference images
of test/fixtures/reference.safetensors.

    /usr/bin/python3 make_reference_image.py OUT HARNESS_DIR

OUT is the folder write-reference-inputs.ts made (model folder, io.safetensors, cases.json);
HARNESS_DIR is the reference harness (env.py puts diffusers' sources from $REF_SRC and the
huggingface_hub/safetensors stubs on sys.path; safetensors_io.py reads and writes the files).
transformers cannot be installed there, so StableDiffusionPipeline itself cannot be built: this runs
its UNet, scheduler and VAE in the lines of `StableDiffusionPipeline.__call__` (prepare_latents,
the denoising loop with classifier-free guidance and rescale_noise_cfg, decode and
VaeImageProcessor.postprocess's denormalisation), given Kiln's prompt embeddings and latents.
Writes OUT/reference.safetensors: the inputs and `<case>.image` [N, 3, H, W] in [0, 1].
"""
import json
import os
import sys

out, harness = sys.argv[1], sys.argv[2]
sys.path.insert(0, harness)
import env  # noqa: E402,F401
import torch  # noqa: E402
import safetensors_io as stio  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
import ast  # noqa: E402


def upstream_function(module_file, name):
    # pipeline_stable_diffusion.py imports transformers at the top; take the function's own source.
    src = open(module_file).read()
    node = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope = {"torch": torch}
    exec(compile(ast.Module(body=[node], type_ignores=[]), module_file, "exec"), scope)
    return scope[name]


rescale_noise_cfg = upstream_function(
    os.path.join(os.path.dirname(diffusers.__file__), "pipelines", "stable_diffusion", "pipeline_stable_diffusion.py"), "rescale_noise_cfg")

torch.set_num_threads(2)


def load(cls, sub):
    cfg = json.load(open(os.path.join(out, sub, "config.json")))
    model = cls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    sd, _ = stio.load_torch(os.path.join(out, sub, "diffusion_pytorch_model.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=True)
    return model.float().eval()


unet = load(UNet2DConditionModel, "unet")
vae = load(AutoencoderKL, "vae")
sched_cfg = json.load(open(os.path.join(out, "scheduler", "scheduler_config.json")))
io, _ = stio.load_torch(os.path.join(out, "io.safetensors"))
cases = json.load(open(os.path.join(out, "cases.json")))
res = dict(io)
with torch.no_grad():
    for c in cases:
        name = c["name"]
        scheduler = getattr(diffusers, c["scheduler"]).from_config(sched_cfg)
        prompt_embeds = io[f"{name}.prompt_embeds"]
        negative = io[f"{name}.negative_prompt_embeds"]
        do_cfg = c["guidanceScale"] > 1
        if do_cfg:
            prompt_embeds = torch.cat([negative, prompt_embeds])
        scheduler.set_timesteps(c["steps"])
        latents = io[f"{name}.latents"] * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            latent_model_input = torch.cat([latents] * 2) if do_cfg else latents
            latent_model_input = scheduler.scale_model_input(latent_model_input, t)
            noise_pred = unet(latent_model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
            if do_cfg:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + c["guidanceScale"] * (noise_pred_text - noise_pred_uncond)
                if c["guidanceRescale"] > 0.0:
                    noise_pred = rescale_noise_cfg(noise_pred, noise_pred_text, guidance_rescale=c["guidanceRescale"])
            latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        res[f"{name}.image"] = (image / 2 + 0.5).clamp(0, 1)
        print(name, c["scheduler"], tuple(image.shape), f"mean={res[name + '.image'].mean():.6f}")
stio.save(os.path.join(out, "reference.safetensors"), {k: stio.from_torch(v.contiguous()) for k, v in res.items()},
          metadata={"format": "pt", "diffusers": diffusers.__version__, "torch": torch.__version__})
print("->", os.path.join(out, "reference.safetensors"))

"""diffusers v0.31.0's StableDiffusionImg2ImgPipeline on a Kiln-written folder: the reference images
of test/fixtures/img2img-reference.safetensors.

    REF_SRC=… /usr/bin/python3 make_img2img_reference.py OUT HARNESS_DIR

OUT is the folder write-img2img-inputs.ts made (model folder, io.safetensors, cases.json);
HARNESS_DIR is the reference harness (env.py puts diffusers' sources from $REF_SRC and the
huggingface_hub/safetensors stubs on sys.path; safetensors_io.py reads and writes the files).

The pipeline class itself runs (its __call__: encode_prompt with the given embeddings, image
preprocessing, get_timesteps, prepare_latents, the guided loop, decode and postprocess). Two things
stand in around it:
- transformers cannot be installed there; the img2img module only needs its CLIP class names to
  import (the text encoder, tokenizer, safety checker and image encoder are None, as prompt_embeds
  are given), so a stub module provides them.
- the random draws: `randn_tensor` in the VAE's DiagonalGaussianDistribution.sample and in
  prepare_latents returns Kiln's draws for the case (io.safetensors: `<case>.vae_eps`, then
  `<case>.noise`), checked for shape, so both libraries start from the same numbers.
Writes OUT/img2img-reference.safetensors: the inputs and `<case>.image` [N, 3, H, W] in [0, 1].
"""
import json
import os
import sys
import types

out, harness = sys.argv[1], sys.argv[2]
sys.path.insert(0, harness)
import env  # noqa: E402,F401
import torch  # noqa: E402
import safetensors_io as stio  # noqa: E402
import importlib.machinery  # noqa: E402

# A stand-in `transformers` whose every name is an empty class (PreTrainedModel a torch Module), so
# that the img2img module and the loader mixins it inherits import; diffusers is told it is 4.44.2.
stub = types.ModuleType("transformers")
stub.__spec__ = importlib.machinery.ModuleSpec("transformers", None)
stub.__version__ = "4.44.2"
stub.PreTrainedModel = type("PreTrainedModel", (torch.nn.Module,), {})
stub.__getattr__ = lambda name: stub.__dict__.setdefault(name, type(name, (), {}))
stub.__path__ = []
utils = types.ModuleType("transformers.utils")
utils.__getattr__ = lambda name: f"transformers-stub-{name}"  # FLAX_WEIGHTS_NAME and the like: file names
stub.utils = utils
sys.modules.update({"transformers": stub, "transformers.utils": utils})
import diffusers.utils.import_utils as import_utils  # noqa: E402

import_utils._transformers_available = True
import_utils._transformers_version = stub.__version__
import diffusers  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
import diffusers.models.autoencoders.vae as vae_module  # noqa: E402
import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as img2img_module  # noqa: E402

torch.set_num_threads(2)

draws = []


def kiln_randn(shape, generator=None, device=None, dtype=None, layout=None):
    want = draws.pop(0)
    assert tuple(shape) == tuple(want.shape), f"randn_tensor{tuple(shape)}: Kiln drew {tuple(want.shape)}"
    return want.to(dtype=dtype or want.dtype)


vae_module.randn_tensor = kiln_randn
img2img_module.randn_tensor = kiln_randn


def load(cls, sub):
    cfg = json.load(open(os.path.join(out, sub, "config.json")))
    model = cls.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
    sd, _ = stio.load_torch(os.path.join(out, sub, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict(sd, strict=True)
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
        pipe = img2img_module.StableDiffusionImg2ImgPipeline(
            vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler, safety_checker=None,
            feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        draws[:] = [io[f"{name}.vae_eps"], io[f"{name}.noise"]]
        seen = []
        image = pipe(
            prompt_embeds=io[f"{name}.prompt_embeds"],
            negative_prompt_embeds=io[f"{name}.negative_prompt_embeds"],
            image=io["image"],
            strength=c["strength"],
            num_inference_steps=c["steps"],
            guidance_scale=c["guidanceScale"],
            generator=torch.Generator().manual_seed(c["seed"]),
            output_type="pt",
            callback_on_step_end=lambda p, i, t, kw: (seen.append(int(t)), kw)[1],
        ).images
        assert draws == [], f"{name}: {len(draws)} of Kiln's draws were not used"
        res[f"{name}.image"] = image
        res[f"{name}.timesteps"] = torch.tensor(seen, dtype=torch.int64)
        print(name, c["scheduler"], f"strength={c['strength']}", tuple(image.shape), "timesteps", seen,
              f"mean={image.mean():.6f}")
stio.save(os.path.join(out, "img2img-reference.safetensors"), {k: stio.from_torch(v.contiguous()) for k, v in res.items()},
          metadata={"format": "pt", "diffusers": diffusers.__version__, "torch": torch.__version__,
                    "pipeline": "StableDiffusionImg2ImgPipeline"})
print("->", os.path.join(out, "img2img-reference.safetensors"))

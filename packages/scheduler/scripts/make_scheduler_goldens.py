#!/usr/bin/python3
"""Step-by-step reference values from the REAL diffusers schedulers, for @kiln/scheduler's tests.

Runs diffusers v0.31.0 (commit 89e4d6219805975bd7d253a267e1951badc9f1c0) on Debian's python3-torch,
float32, CPU. diffusers' sources are not vendored: extract them and point REF_SRC at the folder:

    export REF_SRC=$(mktemp -d); mkdir -p $REF_SRC/diffusers
    git -C <diffusers git dir> archive 89e4d6219805975bd7d253a267e1951badc9f1c0 src | tar -x -C $REF_SRC/diffusers
    /usr/bin/python3 packages/scheduler/scripts/make_scheduler_goldens.py [--check-dir DIR]

diffusers imports `huggingface_hub` and `safetensors`, which Debian does not package: stand-in
modules must be on PYTHONPATH (Kiln's reference harness folder and its `stubs/`:
PYTHONPATH=<harness>/stubs:<harness>); the schedulers never call them.

The protocol (the same as the six `*_epsilon.json` goldens made by Kiln's reference harness, which
this script reproduces bit for bit: `--check-dir` compares):
  config = SD 1.5's scheduler_config.json + the variant's overrides, through `from_config`;
  initial_noise = randn(shape, Generator(0)); sample = initial_noise * init_noise_sigma;
  model outputs = consecutive randn(shape, Generator(1)) (a fake model, independent of the sample);
  step generator = Generator(2); the noise a step draws is read by replaying the generator's state;
  add_noise: original, noise = two randn(shape, Generator(3)) draws, at timesteps[begin_index].
Floats are float32 written in shortest round-trip form.

Writes packages/scheduler/test/fixtures/<Scheduler>_<variant>.json, and training/ddpm_training.json
(add_noise, get_velocity and diffusers.training_utils.compute_snr at per-sample timesteps, with
the min-SNR-γ weights of diffusers' train_text_to_image.py).
"""
import argparse
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import warnings

REF_SRC = os.environ.get("REF_SRC", "")
sys.path.insert(0, os.path.join(REF_SRC, "diffusers", "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def scipy_shim():
    """diffusers' LMS imports scipy, which Debian's reference machine lacks. Its only use on this
    path is `integrate.quad` of a cubic-or-lower polynomial (the Lagrange basis of LMS); QUADPACK's
    21-point Gauss-Kronrod rule integrates that exactly, and so does the 20-point Gauss-Legendre
    rule used here (both in float64 over the same float32 evaluations of diffusers' integrand)."""
    import types
    if importlib.util.find_spec("scipy") is not None:
        return
    scipy = types.ModuleType("scipy")
    integrate = types.ModuleType("scipy.integrate")
    stats = types.ModuleType("scipy.stats")  # beta sigmas only; not used here
    xs, ws = np.polynomial.legendre.leggauss(20)

    def quad(f, a, b, epsrel=None):
        a, b = float(a), float(b)
        half, mid = (b - a) / 2, (a + b) / 2
        return sum(float(w) * float(f(mid + half * float(x))) for x, w in zip(xs, ws)) * half, 0.0

    integrate.quad = quad
    scipy.integrate, scipy.stats = integrate, stats
    for m in (scipy, integrate, stats):  # importlib.util.find_spec (diffusers asks) needs a spec
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    sys.modules.update({"scipy": scipy, "scipy.integrate": integrate, "scipy.stats": stats})


scipy_shim()
import diffusers  # noqa: E402

DIFFUSERS_COMMIT = "89e4d6219805975bd7d253a267e1951badc9f1c0"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "test", "fixtures"))

SD15 = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None,
}
SHAPE = (1, 4, 4, 4)

# (scheduler, variant, config overrides, num_inference_steps, step kwargs)
VARIANTS = [
    # The six epsilon goldens come from Kiln's reference harness; --check-dir shows this script
    # reproduces them (they are committed as the harness wrote them, not rewritten here).
    ("DDPMScheduler", "epsilon", {}, 20, {}),
    ("DDIMScheduler", "epsilon", {}, 20, {}),
    ("PNDMScheduler", "epsilon", {}, 20, {}),
    ("EulerDiscreteScheduler", "epsilon", {}, 20, {}),
    ("EulerAncestralDiscreteScheduler", "epsilon", {}, 20, {}),
    ("DPMSolverMultistepScheduler", "epsilon", {}, 20, {}),
    # prediction types
    ("DDPMScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("DDPMScheduler", "sample", {"prediction_type": "sample"}, 20, {}),
    ("DDIMScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("DDIMScheduler", "sample", {"prediction_type": "sample"}, 20, {}),
    ("PNDMScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("EulerDiscreteScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("EulerDiscreteScheduler", "sample", {"prediction_type": "sample"}, 20, {}),
    ("EulerAncestralDiscreteScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("DPMSolverMultistepScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("DPMSolverMultistepScheduler", "sample", {"prediction_type": "sample"}, 20, {}),
    # Karras sigmas
    ("EulerDiscreteScheduler", "karras", {"use_karras_sigmas": True}, 20, {}),
    ("DPMSolverMultistepScheduler", "karras", {"use_karras_sigmas": True}, 20, {}),
    ("DPMSolverMultistepScheduler", "karras_v_prediction", {"use_karras_sigmas": True, "prediction_type": "v_prediction"}, 20, {}),
    # spacings, offsets, schedules, clipping
    ("DDIMScheduler", "trailing", {"timestep_spacing": "trailing"}, 20, {}),
    ("DDIMScheduler", "linspace", {"timestep_spacing": "linspace"}, 20, {}),
    ("DDIMScheduler", "linear_alpha_one_clip", {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "set_alpha_to_one": True, "clip_sample": True, "steps_offset": 0}, 10, {}),
    ("DDIMScheduler", "eta1", {}, 20, {"eta": 1.0}),
    ("DDPMScheduler", "cosine_clip", {"beta_schedule": "squaredcos_cap_v2", "clip_sample": True, "steps_offset": 0}, 25, {}),
    ("DDPMScheduler", "trailing", {"timestep_spacing": "trailing"}, 20, {}),
    ("DDPMScheduler", "fixed_small_log", {"variance_type": "fixed_small_log"}, 20, {}),
    ("DDPMScheduler", "fixed_large", {"variance_type": "fixed_large"}, 20, {}),
    ("PNDMScheduler", "prk", {"skip_prk_steps": False}, 20, {}),
    ("PNDMScheduler", "linspace", {"timestep_spacing": "linspace"}, 20, {}),
    ("EulerDiscreteScheduler", "leading", {"timestep_spacing": "leading"}, 20, {}),
    ("EulerDiscreteScheduler", "trailing", {"timestep_spacing": "trailing"}, 20, {}),
    ("EulerDiscreteScheduler", "churn", {}, 20, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0}),
    ("EulerAncestralDiscreteScheduler", "trailing", {"timestep_spacing": "trailing"}, 20, {}),
    ("DPMSolverMultistepScheduler", "leading_10", {"timestep_spacing": "leading"}, 10, {}),
    ("DPMSolverMultistepScheduler", "trailing", {"timestep_spacing": "trailing"}, 20, {}),
    ("DPMSolverMultistepScheduler", "dpmsolver_heun_sigma_min", {"algorithm_type": "dpmsolver", "solver_type": "heun", "final_sigmas_type": "sigma_min"}, 20, {}),
    ("DPMSolverMultistepScheduler", "order1", {"solver_order": 1}, 20, {}),
    ("DPMSolverMultistepScheduler", "sde_plus_plus", {"algorithm_type": "sde-dpmsolver++"}, 20, {}),
    ("DPMSolverMultistepScheduler", "sde_heun_karras", {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun", "use_karras_sigmas": True}, 15, {}),
    ("DPMSolverMultistepScheduler", "sde_noise_prediction", {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min", "prediction_type": "v_prediction"}, 12, {}),
    # UniPC (predictor-corrector)
    ("UniPCMultistepScheduler", "epsilon", {}, 20, {}),
    ("UniPCMultistepScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("UniPCMultistepScheduler", "sample", {"prediction_type": "sample"}, 20, {}),
    # bh1 with final σ = 0 makes diffusers return NaN on the last step (B(h) = −∞ times 0); Kiln steps to x₀.
    ("UniPCMultistepScheduler", "order3_bh1", {"solver_order": 3, "solver_type": "bh1", "final_sigmas_type": "sigma_min"}, 10, {}),
    ("UniPCMultistepScheduler", "noise_pred_karras", {"predict_x0": False, "use_karras_sigmas": True, "final_sigmas_type": "sigma_min"}, 12, {}),
    ("UniPCMultistepScheduler", "trailing_no_corrector_0", {"timestep_spacing": "trailing", "disable_corrector": [0]}, 8, {}),
    # LMS (scipy's quad replaced by an exact rule, see scipy_shim)
    ("LMSDiscreteScheduler", "epsilon", {}, 20, {}),
    ("LMSDiscreteScheduler", "v_prediction", {"prediction_type": "v_prediction"}, 20, {}),
    ("LMSDiscreteScheduler", "karras_leading", {"use_karras_sigmas": True, "timestep_spacing": "leading"}, 15, {}),
    # Heun (two evaluations per step)
    ("HeunDiscreteScheduler", "epsilon", {}, 10, {}),
    ("HeunDiscreteScheduler", "v_prediction_karras", {"prediction_type": "v_prediction", "use_karras_sigmas": True}, 10, {}),
    ("HeunDiscreteScheduler", "sample_clip_trailing", {"prediction_type": "sample", "clip_sample": True, "timestep_spacing": "trailing"}, 10, {}),
    # zero terminal SNR (Lin et al. 2023: rescaled betas, trailing spacing, v-prediction)
    ("DDIMScheduler", "zero_snr", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 20, {}),
    ("DDPMScheduler", "zero_snr", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 20, {}),
    ("EulerDiscreteScheduler", "zero_snr", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 20, {}),
    ("EulerAncestralDiscreteScheduler", "zero_snr", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 20, {}),
    ("DPMSolverMultistepScheduler", "zero_snr", {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 20, {}),
]


def f32(t):
    """float32 values in shortest round-trip form (what a JS Float32Array reads back exactly)."""
    a = np.asarray(t.detach().cpu() if torch.is_tensor(t) else t, dtype=np.float32).reshape(-1)
    return [float(repr(x)) if np.isfinite(x) else None for x in a.tolist() for x in [np.float32(x)]]


def scalar(v):
    return float(v.item()) if torch.is_tensor(v) else float(v)


def timestep_value(t):
    v = t.item()
    return int(v) if isinstance(v, int) else float(repr(np.float32(v)))


def make(name, variant, overrides, n, step_kwargs):
    if name == "LMSDiscreteScheduler":  # diffusers hides it when scipy's metadata is missing
        from diffusers.schedulers.scheduling_lms_discrete import LMSDiscreteScheduler as cls
    else:
        cls = getattr(diffusers, name)
    sched = cls.from_config({**SD15, "_class_name": name, **overrides})
    sched.set_timesteps(n)
    config = json.loads(json.dumps(dict(sched.config)))
    if "_use_default_values" in config:  # a set in diffusers: sort it so reruns write the same file
        config["_use_default_values"] = sorted(config["_use_default_values"])
    g_model = torch.Generator().manual_seed(1)
    g_step = torch.Generator().manual_seed(2)
    initial = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    sample = initial * sched.init_noise_sigma
    out = {
        "scheduler": name, "variant": variant, "prediction_type": sched.config.prediction_type,
        "num_inference_steps": n, "shape": list(SHAPE), "config": config,
        "alphas_cumprod": f32(sched.alphas_cumprod),
        "timesteps": [timestep_value(t) for t in sched.timesteps],
        "timesteps_dtype": str(sched.timesteps.dtype).replace("torch.", ""),
        "init_noise_sigma": scalar(sched.init_noise_sigma),
        "initial_noise": f32(initial), "steps": [],
    }
    if step_kwargs:
        out["step_kwargs"] = step_kwargs
    if hasattr(sched, "sigmas") and name not in ("DDPMScheduler", "DDIMScheduler", "PNDMScheduler"):
        out["sigmas"] = f32(sched.sigmas)
    stochastic = name in ("DDPMScheduler", "EulerAncestralDiscreteScheduler") or step_kwargs.get("eta", 0) > 0 \
        or step_kwargs.get("s_churn", 0) > 0 or str(overrides.get("algorithm_type", "")).startswith("sde")
    for i, t in enumerate(sched.timesteps):
        scaled = sched.scale_model_input(sample, t)
        model_output = torch.randn(SHAPE, generator=g_model)
        noise = None
        if stochastic:
            state = g_step.get_state()
            noise = torch.randn(SHAPE, generator=g_step)
            g_step.set_state(state)
        kw = dict(step_kwargs)
        if "generator" in inspect.signature(sched.step).parameters:
            kw["generator"] = g_step
        res = sched.step(model_output, t, sample, **kw)
        if noise is not None and torch.equal(state, g_step.get_state()):
            noise = None  # the step drew nothing (DDPM at t = 0, Euler outside [s_tmin, s_tmax])
        pred = getattr(res, "pred_original_sample", None)
        step = {
            "i": i, "t": timestep_value(t), "scaled_model_input": f32(scaled), "model_output": f32(model_output),
            "noise": f32(noise) if noise is not None else None, "prev_sample": f32(res.prev_sample),
        }
        if pred is not None:  # PNDM and DPM-Solver return no prediction of x0
            step["pred_original_sample"] = f32(pred)
        out["steps"].append(step)
        sample = res.prev_sample
    out["final_sample"] = f32(sample)
    # add_noise as img2img uses it: a fresh scheduler, begin_index set, timesteps[begin_index].
    fresh = cls.from_config(sched.config)
    fresh.set_timesteps(n)
    begin = 5
    if hasattr(fresh, "set_begin_index"):
        fresh.set_begin_index(begin)
    g_add = torch.Generator().manual_seed(3)
    original = torch.randn(SHAPE, generator=g_add)
    noise = torch.randn(SHAPE, generator=g_add)
    t = fresh.timesteps[begin:begin + 1]
    out["add_noise"] = {"begin_index": begin, "t": timestep_value(t[0]), "original": f32(original),
                        "noise": f32(noise), "result": f32(fresh.add_noise(original, noise, t))}
    out["generated_by"] = {"diffusers": diffusers.__version__, "diffusers_commit": DIFFUSERS_COMMIT,
                           "torch": torch.__version__,
                           "script": "packages/scheduler/scripts/make_scheduler_goldens.py"}
    return out


def training():
    """Training-side values: add_noise / get_velocity with per-sample timesteps, compute_snr, min-SNR weights."""
    from diffusers.training_utils import compute_snr

    sched = diffusers.DDPMScheduler.from_config({**SD15, "_class_name": "DDPMScheduler"})
    g = torch.Generator().manual_seed(5)
    shape = (4, 2, 2, 2)
    x0 = torch.randn(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    t = torch.tensor([0, 37, 500, 999], dtype=torch.int64)
    snr = compute_snr(sched, t)
    gamma = 5.0
    base = torch.stack([snr, gamma * torch.ones_like(t)], dim=1).min(dim=1)[0]  # train_text_to_image.py
    config = json.loads(json.dumps(dict(sched.config)))
    config["_use_default_values"] = sorted(config.get("_use_default_values", []))
    return {
        "config": config, "timesteps": t.tolist(), "shape": list(shape),
        "original": f32(x0), "noise": f32(noise), "add_noise": f32(sched.add_noise(x0, noise, t)),
        "velocity": f32(sched.get_velocity(x0, noise, t)), "snr": f32(snr), "min_snr_gamma": gamma,
        "min_snr_weights": {"epsilon": f32(base / snr), "v_prediction": f32(base / (snr + 1)), "sample": f32(base)},
        "generated_by": {"diffusers": diffusers.__version__, "diffusers_commit": DIFFUSERS_COMMIT, "torch": torch.__version__,
                         "script": "packages/scheduler/scripts/make_scheduler_goldens.py"},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-dir", help="compare the epsilon variants with the files in this folder")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    if not a.check_dir:
        with open(os.path.join(a.out, "training", "ddpm_training.json"), "w") as f:
            json.dump(training(), f, separators=(",", ":"))
    for name, variant, overrides, n, kw in VARIANTS:
        d = make(name, variant, overrides, n, kw)
        fn = f"{name}_{variant}.json"
        if variant == "epsilon" and name not in ("UniPCMultistepScheduler", "LMSDiscreteScheduler", "HeunDiscreteScheduler") and not a.check_dir:
            continue
        if a.check_dir and os.path.exists(os.path.join(a.check_dir, fn)):
            ref = json.load(open(os.path.join(a.check_dir, fn)))
            same = {k: ref.get(k) == d.get(k) for k in ref if k not in ("generated_by", "variant", "config")}
            same["config"] = all(ref["config"][k] == d["config"].get(k) for k in ref["config"] if not k.startswith("_"))
            print(f"{fn}: {'identical' if all(same.values()) else 'DIFFERS in ' + str([k for k, v in same.items() if not v])}")
            continue
        with open(os.path.join(a.out, fn), "w") as f:
            json.dump(d, f, separators=(",", ":"))
        print(f"{fn}: {len(d['steps'])} steps")


if __name__ == "__main__":
    main()

/**
 * Text-to-image time per denoising step at SD 1.5's size: the UNet of `configs/sd15_unet.json`
 * (859,520,964 parameters, seeded random weights), 512² images (64×64 latents), DDIM with
 * classifier-free guidance 7.5 (batch 2 through the UNet per step), on Kiln's wasm backend and on
 * PyTorch CPU (diffusers v0.31.0's UNet and DDIMScheduler in StableDiffusionPipeline.__call__'s
 * loop, torch_txt2img_sd15.py), same thread count.
 *
 * Kiln runs `pipe.txt2img` itself (the pipeline built from SD 1.5-size components, with
 * `promptEmbeds`/`negativePromptEmbeds` and `latents` given); the prompt embeddings are
 * precomputed random [1, 77, 768] on both sides (the text encoder is not part of a denoising step).
 * Time per step is the median of the steps after the first (the first warms kernels up); the
 * run stops after the last step, before the VAE decode (not a per-step cost; 2–3 minutes at 512²
 * on two cores, see results/diffusion.json). Kiln and PyTorch each run in their own process,
 * one after the other (`--reps` alternations), so each peak is its own and both see the same load.
 * The parent waits until `--min-free-gib` of memory is available before each child.
 *
 *   pnpm --filter @kiln/benchmarks bench:txt2img-sd15 [--threads 2] [--steps 3] [--reps 1] [--out results/txt2img-sd15.json]
 *
 * PyTorch runs when diffusers imports: on sys.path, or KILN_REF_HARNESS=<reference harness folder>.
 * Needs ~5 GiB free per side and minutes per step on two cores.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { CLIPTextModel, CLIPTokenizer } from '@kiln/clip';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { SD15_SCHEDULER_CONFIG } from '@kiln/pipeline/testing';
import { schedulerFromConfig } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { flag, opt } from './flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(opt('threads') ?? Math.min(2, availableParallelism()));
const steps = Number(opt('steps') ?? 3);
const reps = Number(opt('reps') ?? 1);
const config = (name: string) => JSON.parse(readFileSync(join(here, 'configs', name), 'utf8')) as Record<string, unknown>;
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);

/** Thrown from the step callback after the last step: the decode is not part of a step. */
class StopBeforeDecode extends Error {}

async function kilnChild(): Promise<void> {
  k.registerWasmBackend({ threads });
  await k.useBackend('wasm');
  k.manualSeed(0);
  const unet = new UNet2DConditionModel(config('sd15_unet.json'));
  const textEncoder = new CLIPTextModel(config('sd15_text_encoder.json'));
  const vae = new AutoencoderKL(config('sd15_vae.json'));
  const tokenizer = await CLIPTokenizer.fromOpenAI();
  const scheduler = schedulerFromConfig(SD15_SCHEDULER_CONFIG, { className: 'DDIMScheduler' });
  const pipe = new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler });
  const promptEmbeds = k.randn([1, 77, 768], { seed: 1 });
  const negativePromptEmbeds = k.randn([1, 77, 768], { seed: 2 });
  const latents = k.randn([1, 4, 64, 64], { seed: 3 });
  const setupBytes = k.memory().liveBytes;
  const marks: number[] = [performance.now()];
  try {
    await pipe.txt2img({
      promptEmbeds,
      negativePromptEmbeds,
      latents,
      numInferenceSteps: steps,
      guidanceScale: 7.5,
      width: 512,
      height: 512,
      callback: async ({ step, latents: x }) => {
        await x.reshape([-1]).slice(0, 0, 1).data(); // the step's work is done when its result is read
        marks.push(performance.now());
        process.stderr.write(`kiln step ${step + 1}/${steps}: ${((marks.at(-1)! - marks.at(-2)!) / 1000).toFixed(1)} s\n`);
        if (step === steps - 1) throw new StopBeforeDecode();
      },
    });
  } catch (e) {
    if (!(e instanceof StopBeforeDecode)) throw e;
  }
  const stepMs = marks.slice(1).map((t, i) => t - marks[i]);
  console.log(
    JSON.stringify({
      step_ms: median(stepMs.slice(1)),
      steps_ms: stepMs,
      peak_bytes: k.memory().peakBytes,
      setup_bytes: setupBytes,
      rss_peak_bytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
}

/** MemAvailable from /proc/meminfo, in GiB. */
const availableGiB = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 2 ** 20;

async function waitForMemory(minGiB: number): Promise<void> {
  while (availableGiB() < minGiB) {
    process.stderr.write(`waiting: ${availableGiB().toFixed(1)} GiB available, need ${minGiB}\n`);
    await new Promise((r) => setTimeout(r, 30_000));
  }
}

function child(cmd: string, argv: string[]): Record<string, unknown> {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const last = r.stdout?.trim().split('\n').at(-1);
  if (r.status !== 0 || !last) return { error: `${cmd} exited with ${r.status ?? r.signal}` };
  return JSON.parse(last) as Record<string, unknown>;
}

async function parent(): Promise<void> {
  const minFree = Number(opt('min-free-gib') ?? 8);
  const loadStart = loadavg();
  const kiln: Record<string, unknown>[] = [];
  const torch: Record<string, unknown>[] = [];
  const common = ['--threads', String(threads), '--steps', String(steps)];
  for (let i = 0; i < reps; i++) {
    await waitForMemory(minFree);
    kiln.push(child(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', ...common]));
    await waitForMemory(minFree);
    torch.push(child('/usr/bin/python3', [join(here, 'torch_txt2img_sd15.py'), ...common]));
  }
  const stepOf = (runs: Record<string, unknown>[]) => median(runs.flatMap((r) => (typeof r.step_ms === 'number' ? [r.step_ms] : [])));
  const kilnMs = stepOf(kiln);
  const torchMs = stepOf(torch);
  const result = {
    date: new Date().toISOString(),
    case: 'txt2img_sd15_unet_512px_ddim_cfg',
    machine: `${availableParallelism()} cores, ${process.arch}`,
    threads,
    steps,
    load_average_start: loadStart,
    load_average_end: loadavg(),
    kiln_step_ms: kilnMs,
    torch_step_ms: torchMs,
    ratio_vs_torch: kilnMs && torchMs ? torchMs / kilnMs : null,
    kiln_wasm: kiln,
    pytorch_cpu: torch,
    note: 'Seeded random weights; prompt embeddings random [1,77,768] (negative and positive); step_ms is the median of the steps after the first; the VAE decode is not run.',
  };
  const out = resolve(opt('out') ?? join(here, 'results', 'txt2img-sd15.json'));
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `txt2img SD 1.5 512² (${threads} threads): kiln ${kilnMs?.toFixed(0)} ms/step, pytorch ${torchMs?.toFixed(0)} ms/step → ${out}`,
  );
}

await (flag('child') ? kilnChild() : parent());

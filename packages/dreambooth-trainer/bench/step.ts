// One DreamBooth training step (prior preservation: 1 instance + 1 class row, train_batch_size 1)
// on Kiln's wasm backend beside the same step in diffusers v0.31.0 on PyTorch CPU (torch_step.py),
// same configs, shapes and thread count, alternating runs so both see the same machine load:
//
//   KILN_REF_HARNESS=<reference harness folder> KILN_WASM_THREADS=2 \
//     node --conditions=kiln-source --import tsx packages/dreambooth-trainer/bench/step.ts \
//       [--case tiny|sd15] [--train-text-encoder] [--reps 5] [--out FILE]
//
// The step (train_dreambooth.py's loop body): VAE encode (no grad) of the two 512² (tiny: 32²)
// images and a posterior sample × 0.18215, noise, uniform timesteps, DDPM addNoise, UNet forward,
// instance MSE + 1.0 × prior MSE (the trainer's `dreamBoothLoss`), backward, gradient clipping to
// norm 1, AdamW (lr 1e-5), zero grads. With --train-text-encoder the CLIP text encoder runs inside
// the step with gradients and is in the optimizer and the clipping, as the trainer does; without
// it the text embeddings are computed once before the steps (Kiln's trainer caches them for a
// frozen encoder; train_dreambooth.py's --pre_compute_text_embeddings). `sd15` (SD 1.5's UNet, VAE
// and text encoder, seeded random weights) turns gradient checkpointing on in the UNet, as a CPU
// user needs it, and runs each side in its own process, one at a time, waiting for
// --min-free-gib of memory first (a Kiln step peaks at ~14 GiB RSS, PyTorch's at ~16 GiB); there,
// --steps steps per process (default 1: the first step, which also allocates AdamW's state).
// `tiny` runs Kiln in this process: one warm-up step, then --reps Kiln steps, each followed by a
// PyTorch process (one warm-up, three timed steps, their median). Writes JSON (median ms per side
// and their ratio torch/kiln: above 1, Kiln is faster).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { CLIPTextModel } from '@kiln/clip';
import { AdamW, clipGradNorm } from '@kiln/nn';
import { DDPMScheduler } from '@kiln/scheduler';
import { UNet2DConditionModel } from '@kiln/unet';
import { AutoencoderKL } from '@kiln/vae';
import { dreamBoothLoss } from '../src/index.js';
import { benchCase } from './case.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const caseName = opt('--case', 'tiny');
const sd = caseName === 'sd15';
const trainTE = args.includes('--train-text-encoder');
const reps = Number(opt('--reps', sd ? '1' : '5'));
const steps = Number(opt('--steps', '1'));
const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.KILN_WASM_THREADS ?? '2');
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);
const C = benchCase(caseName);

/** Builds the models and returns one timed training step. */
async function kilnSetup(): Promise<() => Promise<number>> {
  k.registerWasmBackend({ threads });
  await k.useBackend('wasm');
  k.manualSeed(0);
  const unet = new UNet2DConditionModel(C.unet).enableGradientCheckpointing(sd).train();
  const vae = new AutoencoderKL(C.vae).eval();
  const textEncoder = new CLIPTextModel(C.textEncoder);
  textEncoder.train(trainTE);
  const scheduler = DDPMScheduler.fromConfig(C.scheduler);
  const { batch, pixels: P, contextLength } = C;
  const pixels = k.keep(k.rand([batch, 3, P, P]).mul(2).sub(1));
  const ids = k.keep(
    k.tensor(
      C.promptIds.flatMap((row) => [...row, ...new Array<number>(contextLength - row.length).fill(49407)]),
      { shape: [batch, contextLength], dtype: 'int32' },
    ),
  );
  const frozenText = trainTE ? null : k.keep(k.tidy(() => k.noGrad(() => textEncoder.forward(ids).lastHiddenState)));
  const params = [...unet.parameters(), ...(trainTE ? textEncoder.parameters() : [])];
  const optimizer = new AdamW(params, { lr: 1e-5 });
  const generator = new k.Generator(1);
  return async () => {
    const t0 = performance.now();
    const loss = k.tidy(() => {
      const latents = k.noGrad(() => vae.encode(pixels).latentDist.sample(generator).mul(0.18215));
      const out = dreamBoothLoss({
        unet,
        scheduler,
        latents,
        encoderHiddenStates: frozenText ?? textEncoder.forward(ids).lastHiddenState,
        generator,
        predictionType: 'epsilon',
        offsetNoise: false,
        snrGamma: null,
        withPrior: true,
        priorLossWeight: 1,
      });
      out.loss.backward();
      return out.loss.detach();
    });
    clipGradNorm(params, 1).dispose();
    optimizer.step();
    optimizer.zeroGrad();
    await loss.item();
    loss.dispose();
    return performance.now() - t0;
  };
}

const torchArgs = (extra: string[]) => [
  join(here, 'torch_step.py'),
  '--threads',
  String(threads),
  '--case',
  caseName,
  ...(trainTE ? ['--train-text-encoder'] : []),
  ...extra,
];

function runChild(cmd: string, argv: string[]): Record<string, unknown> {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const last = r.stdout?.trim().split('\n').at(-1);
  if (r.status !== 0 || !last) {
    process.stderr.write(`${cmd} exited with ${r.status ?? r.signal}\n`);
    return { error: `exited with ${r.status ?? r.signal}` };
  }
  return JSON.parse(last) as Record<string, unknown>;
}

/** MemAvailable from /proc/meminfo, in GiB. */
const availableGiB = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) / 2 ** 20;
async function waitForMemory(minGiB: number): Promise<void> {
  while (availableGiB() < minGiB) {
    process.stderr.write(`waiting: ${availableGiB().toFixed(1)} GiB available, need ${minGiB}\n`);
    await new Promise((r) => setTimeout(r, 30_000));
  }
}

if (args.includes('--child')) {
  // One SD-size Kiln process: --steps timed steps, no warm-up (each takes minutes).
  const step = await kilnSetup();
  const setupBytes = k.memory().liveBytes;
  const runs: number[] = [];
  for (let i = 0; i < steps; i++) {
    runs.push(await step());
    process.stderr.write(`kiln step ${i + 1}/${steps}: ${(runs[i] / 1000).toFixed(1)} s\n`);
  }
  console.log(
    JSON.stringify({
      ms: runs.at(-1),
      runs_ms: runs,
      peak_bytes: k.memory().peakBytes,
      setup_bytes: setupBytes,
      rss_peak_bytes: process.resourceUsage().maxRSS * 1024,
    }),
  );
} else {
  const loadStart = loadavg();
  const kiln: number[] = [];
  const torch: number[] = [];
  const kilnRuns: Record<string, unknown>[] = [];
  const torchRuns: Record<string, unknown>[] = [];
  if (sd) {
    const minFree = Number(opt('--min-free-gib', '20'));
    for (let i = 0; i < reps; i++) {
      await waitForMemory(minFree);
      const kr = runChild(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args, '--child']);
      kilnRuns.push(kr);
      if (typeof kr.ms === 'number') kiln.push(kr.ms);
      await waitForMemory(minFree);
      const tr = runChild('/usr/bin/python3', torchArgs(['--warmup', String(steps - 1), '--steps', '1']));
      torchRuns.push(tr);
      if (typeof tr.ms === 'number') torch.push(tr.ms);
    }
  } else {
    const step = await kilnSetup();
    await step(); // warm-up: kernels, optimizer state
    // Kiln's steps first, then PyTorch's processes: the first Kiln step after any child process
    // (even /bin/true or a 1 s sleep) took ~250 ms longer at this size, 420–440 against 150–240
    // ms, so interleaving them measured the spawn, not the step.
    for (let i = 0; i < reps; i++) kiln.push(await step());
    for (let i = 0; i < reps; i++) {
      const tr = runChild('/usr/bin/python3', torchArgs([]));
      torchRuns.push(tr);
      if (typeof tr.ms === 'number') torch.push(tr.ms);
    }
  }
  const result = {
    case: `dreambooth_step_${caseName}_prior${trainTE ? '_text_encoder' : ''}`,
    date: new Date().toISOString(),
    backend: 'wasm',
    machine: `${availableParallelism()} cores, ${process.arch}`,
    threads,
    load_average_start: loadStart,
    load_average_end: loadavg(),
    shapes: { batch: C.batch, pixels: C.pixels, latents: C.pixels / 2 ** ((C.vae.block_out_channels?.length ?? 4) - 1) },
    gradient_checkpointing: sd,
    train_text_encoder: trainTE,
    kiln_median_ms: median(kiln),
    kiln_runs_ms: kiln,
    torch_median_ms: median(torch),
    torch_runs_ms: torch,
    ratio_vs_torch: kiln.length && torch.length ? median(torch)! / median(kiln)! : null,
    ...(sd ? { kiln_processes: kilnRuns } : {}),
    torch_processes: torchRuns,
  };
  console.log(JSON.stringify(result, null, 1));
  const out = opt('--out', '');
  if (out) writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
}

/**
 * --mixed_precision fp16/bf16 on the tiny model (wasm): the loss curve stays near the float32
 * run's, weights are written in float32 (the frozen VAE as the base model has it), a float16
 * overflow skips its step without stopping the run, and an interrupted fp16 run resumes bit for
 * bit, with the loss scale carried in checkpoint-N/. Prints the measured peak memory and step time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { trainDreamBooth } from '../src/node.js';
import type { StepInfo } from '../src/node.js';
import type { TrainerConfigInput } from '../src/index.js';
import { MixedPrecision } from '../src/mixed-precision.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

let base: TrainerConfigInput;
beforeAll(async () => {
  await k.useBackend('wasm');
  base = {
    pretrained_model_name_or_path: await tinyModel(),
    instance_data_dir: writeImages(3),
    instance_prompt: 'a photo of sks dog',
    resolution: 16,
    train_batch_size: 2,
    max_train_steps: 10,
    checkpointing_steps: 100,
    learning_rate: 1e-3,
    lr_warmup_steps: 0,
    seed: 3,
    backend: 'wasm',
    report_to: 'jsonl',
  };
}, 120_000);
afterEach(() => void vi.restoreAllMocks());

/** The dtypes in a safetensors file's header. */
const dtypesOf = (path: string): Set<string> => {
  const bytes = readFileSync(path);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype?: string }>;
  return new Set(Object.entries(header).flatMap(([key, v]) => (key === '__metadata__' ? [] : [v.dtype!])));
};
const file = (dir: string, ...path: string[]) => readFileSync(join(dir, ...path));

/** A run with its losses, its steady-state peak memory (steps 2…n) and its mean step time (wall and process CPU). */
async function measured(config: TrainerConfigInput) {
  let peak = 0;
  let t0 = 0;
  let cpu0 = 0;
  let last: StepInfo | undefined;
  const wall = { ms: 0, cpuMs: 0 };
  const r = await trainDreamBooth(config, {
    log: () => {},
    onStep: (info) => {
      const cpu = process.cpuUsage();
      if (info.step === 1) {
        k.resetPeakMemory();
        t0 = performance.now();
        cpu0 = (cpu.user + cpu.system) / 1000;
      } else {
        peak = k.memory().peakBytes;
        wall.ms = (performance.now() - t0) / (info.step - 1);
        wall.cpuMs = ((cpu.user + cpu.system) / 1000 - cpu0) / (info.step - 1);
      }
      last = info;
    },
  });
  return { ...r, peak, ...wall, last: last! };
}

describe('trainDreamBooth --mixed_precision', () => {
  it('fp16 and bf16 follow the float32 loss curve (gradient checkpointing on); weights are saved in float32', async () => {
    const cfg = { ...base, gradient_checkpointing: true };
    const runs = {
      no: await measured({ ...cfg, output_dir: tempDir('mp-f32') }),
      fp16: await measured({ ...cfg, mixed_precision: 'fp16', output_dir: tempDir('mp-fp16') }),
      bf16: await measured({ ...cfg, mixed_precision: 'bf16', output_dir: tempDir('mp-bf16') }),
    };
    const delta = (l: number[]) => Math.max(...l.map((v, i) => Math.abs(v - runs.no.losses[i])));
    const rows = Object.entries(runs).map(
      ([mp, r]) =>
        `${mp.padEnd(4)} max |Δloss| ${delta(r.losses).toExponential(2)}  peak ${(r.peak / 2 ** 20).toFixed(2)} MiB  step ${r.ms.toFixed(0)} ms wall, ${r.cpuMs.toFixed(0)} ms cpu`,
    );
    console.log(`tiny model, wasm, 10 steps, batch 2, 16 px, gradient checkpointing:\n${rows.join('\n')}`);
    expect(runs.no.losses).toHaveLength(10);
    // Half precision changes the numbers a little, never the course.
    expect(delta(runs.fp16.losses)).toBeGreaterThan(0);
    expect(delta(runs.fp16.losses)).toBeLessThan(3e-3);
    expect(delta(runs.bf16.losses)).toBeGreaterThan(0);
    expect(delta(runs.bf16.losses)).toBeLessThan(1e-2);
    expect(runs.fp16.last).toMatchObject({ skipped: false, lossScale: 65536 });
    expect(runs.bf16.last.lossScale).toBeUndefined();
    for (const mp of ['fp16', 'bf16'] as const) {
      const out = runs[mp].outputDir;
      expect(dtypesOf(join(out, 'unet', 'diffusion_pytorch_model.safetensors'))).toEqual(new Set(['F32']));
      // The frozen VAE and text encoder ran in half precision; the output has the base model's.
      for (const part of ['vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'])
        expect(file(out, part).equals(file(runs.no.outputDir, part)), part).toBe(true);
      expect(
        file(out, 'unet', 'diffusion_pytorch_model.safetensors').equals(
          file(runs.no.outputDir, 'unet', 'diffusion_pytorch_model.safetensors'),
        ),
      ).toBe(false);
      expect(runs[mp].peak).toBeLessThan(runs.no.peak);
    }
    const metrics = readFileSync(join(runs.fp16.outputDir, 'logs', 'metrics.jsonl'), 'utf8');
    expect(metrics).toMatch(/"loss_scale":65536/);
  }, 900_000);

  it('an fp16 overflow skips the step (logged, loss scale halved, LR schedule held) and training goes on', async () => {
    // The second micro-batch's loss × 2^40 overflows the float16 backward pass, as a too-large scale would.
    let calls = 0;
    const scaleLoss = MixedPrecision.prototype.scaleLoss;
    vi.spyOn(MixedPrecision.prototype, 'scaleLoss').mockImplementation(function (this: MixedPrecision, loss: k.Tensor) {
      return ++calls === 2 ? loss.mul(2 ** 40) : scaleLoss.call(this, loss);
    });
    const lines: string[] = [];
    const steps: StepInfo[] = [];
    const out = tempDir('mp-skip');
    const r = await trainDreamBooth(
      { ...base, max_train_steps: 3, mixed_precision: 'fp16', lr_scheduler: 'linear', output_dir: out },
      { log: (l) => lines.push(l), onStep: (s) => void steps.push(s) },
    );
    expect(r.step).toBe(3);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    expect(steps.map((s) => [s.skipped, s.lossScale])).toEqual([
      [false, 65536],
      [true, 32768],
      [false, 32768],
    ]);
    // A skipped step leaves the LR schedule where it was (accelerate's rule): step 3 runs at step 2's rate.
    expect(steps[1].lr).toBe(steps[0].lr);
    expect(lines.join('\n')).toMatch(/step 2: float16 gradients overflowed; step skipped, loss scale now 32768/);
    const metrics = readFileSync(join(out, 'logs', 'metrics.jsonl'), 'utf8');
    expect(metrics).toMatch(/"step_skipped":1/);
  }, 600_000);

  it('fp16 with prior preservation and accumulation: interrupted and resumed = uninterrupted, bit for bit', async () => {
    const cfg: TrainerConfigInput = {
      ...base,
      mixed_precision: 'fp16',
      with_prior_preservation: true,
      class_data_dir: tempDir('mp-class'),
      class_prompt: 'a photo of dog',
      num_class_images: 2,
      sample_batch_size: 2,
      class_inference_steps: 2,
      prior_generation_precision: 'fp16',
      gradient_accumulation_steps: 2,
      max_train_steps: 3,
      checkpointing_steps: 1,
      snr_gamma: 5,
    };
    const full = tempDir('mp-full');
    const loads = vi.spyOn(StableDiffusionPipeline, 'fromPretrained');
    const a = await trainDreamBooth({ ...cfg, output_dir: full }, { log: () => {} });
    // --prior_generation_precision fp16: a float16 pipeline made the class images, then the float32 one trained
    // (and the output read the frozen VAE and text encoder again); a later run finds the images and loads no float16 one.
    expect(loads.mock.calls.map(([, o]) => o?.dtype)).toEqual(['float16', undefined, undefined]);
    loads.mockClear();
    const split = tempDir('mp-split');
    const controller = new AbortController();
    const stopAt = 1 + Math.floor(Math.random() * 2);
    const b1 = await trainDreamBooth(
      { ...cfg, output_dir: split },
      { signal: controller.signal, log: () => {}, onStep: ({ step }) => void (step === stopAt && controller.abort()) },
    );
    expect(b1).toMatchObject({ step: stopAt, interrupted: true });
    const saved = JSON.parse(readFileSync(join(split, `checkpoint-${stopAt}`, 'trainer_state.json'), 'utf8'));
    expect(saved.gradScaler).toEqual({ scale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000, growthTracker: stopAt });
    expect(dtypesOf(join(split, `checkpoint-${stopAt}`, 'unet', 'diffusion_pytorch_model.safetensors'))).toEqual(new Set(['F32']));
    const b2 = await trainDreamBooth({ ...cfg, output_dir: split, resume_from_checkpoint: 'latest' }, { log: () => {} });
    expect(loads.mock.calls.map(([, o]) => o?.dtype)).not.toContain('float16');
    expect([...b1.losses, ...b2.losses]).toEqual(a.losses);
    const unet = ['unet', 'diffusion_pytorch_model.safetensors'];
    expect(file(split, ...unet).equals(file(full, ...unet))).toBe(true);
    const last = (dir: string) => JSON.parse(readFileSync(join(dir, 'checkpoint-3', 'trainer_state.json'), 'utf8')).gradScaler;
    expect(last(split)).toEqual(last(full));
    expect(last(full).growthTracker).toBe(3);
  }, 900_000);

  it('LoRA in fp16: float32 adapters follow the float32 run, over a half-precision base, and resume bit for bit', async () => {
    const cfg: TrainerConfigInput = {
      ...base,
      lora: true,
      train_text_encoder: true,
      max_train_steps: 4,
      checkpointing_steps: 2,
      learning_rate: 1e-2,
    };
    const f32 = await trainDreamBooth({ ...cfg, output_dir: tempDir('mp-lora-f32') }, { log: () => {} });
    const full = await trainDreamBooth({ ...cfg, mixed_precision: 'fp16', output_dir: tempDir('mp-lora-full') }, { log: () => {} });
    const delta = Math.max(...full.losses.map((v, i) => Math.abs(v - f32.losses[i])));
    console.log(`LoRA fp16 vs f32, 4 steps: max |Δloss| ${delta.toExponential(2)}`);
    expect(delta).toBeGreaterThan(0);
    expect(delta).toBeLessThan(3e-3);
    const weights = 'pytorch_lora_weights.safetensors';
    expect(dtypesOf(join(full.outputDir, weights))).toEqual(new Set(['F32']));

    const split = tempDir('mp-lora-split');
    const controller = new AbortController();
    const b1 = await trainDreamBooth(
      { ...cfg, mixed_precision: 'fp16', output_dir: split },
      { signal: controller.signal, log: () => {}, onStep: ({ step }) => void (step === 2 && controller.abort()) },
    );
    const b2 = await trainDreamBooth(
      { ...cfg, mixed_precision: 'fp16', output_dir: split, resume_from_checkpoint: 'latest' },
      { log: () => {} },
    );
    expect([...b1.losses, ...b2.losses]).toEqual(full.losses);
    expect(file(split, weights).equals(file(full.outputDir, weights))).toBe(true);
  }, 900_000);
});

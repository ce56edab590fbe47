/**
 * --mixed_precision fp16 on webgpu: a few DreamBooth steps on the tiny model follow the float32
 * webgpu run, and the weights are written in float32. Prints peak memory and step time. Small
 * (16 px, 4 steps): lavapipe is a CPU Vulkan driver. Runs where the adapter has shader-f16. Skips without an adapter,
 * fails then in CI (KILN_WEBGPU_REQUIRED).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { trainDreamBooth } from '../src/node.js';
import type { TrainerConfigInput } from '../src/index.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

const gpu: k.Backend | string = await k.initBackend('webgpu').catch((err: Error) => err.message);
const unavailable = typeof gpu === 'string' ? gpu : null;
// Without `shader-f16` (SwiftShader) float16 is emulated in u32 words: two training runs there pass
// 10 minutes, so this suite runs on adapters with shader-f16 (lavapipe); the UNet's float16 test covers SwiftShader.
const f16 = typeof gpu !== 'string' && (gpu as { caps?: { f16?: boolean } }).caps?.f16 === true;
if (unavailable === null && !f16) console.warn('[kiln] skipping the fp16 training test on webgpu: the adapter has no shader-f16');
if (unavailable !== null && (process.env.CI || process.env.KILN_WEBGPU_REQUIRED))
  throw new Error(`webgpu backend required but unavailable: ${unavailable}`);
const suite = unavailable === null && f16 ? describe : describe.skip;

suite('trainDreamBooth --mixed_precision fp16 on webgpu', () => {
  it('follows the float32 run and saves float32 weights', async () => {
    const base: TrainerConfigInput = {
      pretrained_model_name_or_path: await tinyModel(),
      instance_data_dir: writeImages(3),
      instance_prompt: 'a photo of sks dog',
      resolution: 16,
      train_batch_size: 2,
      max_train_steps: 4,
      checkpointing_steps: 100,
      learning_rate: 1e-3,
      lr_warmup_steps: 0,
      seed: 3,
      backend: 'webgpu',
      report_to: 'jsonl',
    };
    const run = async (mixed_precision: 'no' | 'fp16') => {
      let peak = 0;
      let t0 = 0;
      let ms = 0;
      const r = await trainDreamBooth(
        { ...base, mixed_precision, output_dir: tempDir(`gpu-${mixed_precision}`) },
        {
          log: () => {},
          onStep: ({ step }) => {
            if (step === 1) {
              k.resetPeakMemory();
              t0 = performance.now();
            } else {
              peak = k.memory().peakBytes;
              ms = (performance.now() - t0) / (step - 1);
            }
          },
        },
      );
      return { ...r, peak, ms };
    };
    const f32 = await run('no');
    const fp16 = await run('fp16');
    const delta = Math.max(...fp16.losses.map((v, i) => Math.abs(v - f32.losses[i])));
    console.log(
      `webgpu (${process.env.VK_ICD_FILENAMES ?? 'default driver'}), tiny model, 4 steps: fp16 max |Δloss| ${delta.toExponential(2)}; ` +
        `peak f32 ${(f32.peak / 2 ** 20).toFixed(2)} MiB, fp16 ${(fp16.peak / 2 ** 20).toFixed(2)} MiB; step f32 ${f32.ms.toFixed(0)} ms, fp16 ${fp16.ms.toFixed(0)} ms`,
    );
    expect(fp16.losses.every(Number.isFinite)).toBe(true);
    expect(delta).toBeGreaterThan(0);
    expect(delta).toBeLessThan(3e-3);
    expect(fp16.peak).toBeLessThan(f32.peak);
    const bytes = readFileSync(join(fp16.outputDir, 'unet', 'diffusion_pytorch_model.safetensors'));
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<
      string,
      { dtype?: string }
    >;
    expect(new Set(Object.entries(header).flatMap(([key, v]) => (key === '__metadata__' ? [] : [v.dtype])))).toEqual(new Set(['F32']));
    await k.useBackend('cpu');
  }, 600_000);
});

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { loadSafetensors } from '@kiln/nn/node';
import { describe, expect, it } from 'vitest';
import type { TrainerConfigInput } from '../src/index.js';
import { trainDreamBooth } from '../src/node.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

const child = fileURLToPath(new URL('./train-child.ts', import.meta.url));

/** Runs the child trainer and SIGKILLs it as soon as it reports `killAt`; resolves to the last step it reported. */
function trainAndKill(config: TrainerConfigInput, killAt: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', child, JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let last = 0;
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const m of chunk.matchAll(/step (\d+)/g)) last = Number(m[1]);
      if (last >= killAt) p.kill('SIGKILL');
    });
    p.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(last) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}

const unetWeights = async (dir: string) => {
  const t = await loadSafetensors(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
  const out = new Map<string, Buffer>();
  for (const [name, v] of Object.entries(t)) {
    out.set(name, Buffer.from(((await v.data()) as Float32Array).buffer));
    v.dispose();
  }
  return out;
};

describe('a killed run resumes from its last checkpoint', () => {
  it('to bit-identical weights and the same losses as an uninterrupted run', async () => {
    await k.useBackend('wasm');
    const config: TrainerConfigInput = {
      pretrained_model_name_or_path: await tinyModel(),
      instance_data_dir: writeImages(3),
      instance_prompt: 'a photo of sks dog',
      resolution: 16,
      train_batch_size: 2,
      gradient_accumulation_steps: 2,
      max_train_steps: 6,
      checkpointing_steps: 2,
      checkpoints_total_limit: 2,
      learning_rate: 1e-3,
      lr_scheduler: 'linear',
      lr_warmup_steps: 1,
      seed: 5,
      random_flip: true,
      backend: 'wasm',
      report_to: 'jsonl',
    };
    const full = tempDir('full');
    const a = await trainDreamBooth({ ...config, output_dir: full }, { log: () => {} });

    const killed = tempDir('killed');
    const killAt = 3 + Math.floor(Math.random() * 3); // 3, 4 or 5: after checkpoint-2 exists
    const reached = await trainAndKill({ ...config, output_dir: killed }, killAt);
    expect(reached).toBeGreaterThanOrEqual(killAt);
    const kept = readdirSync(killed).filter((d) => /^checkpoint-\d+$/.test(d));
    expect(kept.length).toBeGreaterThan(0);
    const from = Math.max(...kept.map((d) => Number(d.split('-')[1])));
    const b = await trainDreamBooth({ ...config, output_dir: killed, resume_from_checkpoint: 'latest' }, { log: () => {} });
    expect(b.step).toBe(6);
    expect(b.losses).toEqual(a.losses.slice(from));
    const [wa, wb] = [await unetWeights(full), await unetWeights(killed)];
    for (const [key, buf] of wa) expect(wb.get(key)!.equals(buf), key).toBe(true);
  });
});

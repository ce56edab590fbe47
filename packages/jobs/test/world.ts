// A storage root with the tiny SD model (@kiln/pipeline/testing) and small instance-image folders,
// for the pool's end-to-end tests and its benchmark.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';

export const tempDir = (name: string) => mkdtempSync(join(tmpdir(), `kiln-jobs-${name}-`));

/** A w×h RGBA PNG with a smooth pattern that differs per `seed`. */
export function patternPng(w: number, h: number, seed: number): Uint8Array {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      data.set([(x * 255) / w, (y * 255) / h, (seed * 67 + x * y) % 256, 255], i);
    }
  return encodePng({ width: w, height: h, data });
}

/** Writes `n` 32×32 images into `root/key`; returns the key. */
export function writeSubject(root: string, key: string, n: number, seed = 0): string {
  mkdirSync(join(root, key), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(root, key, `img${i}.png`), patternPng(32, 32, seed * 10 + i));
  return key;
}

/** A storage root holding the tiny model at `models/tiny`. */
export async function tinyWorld(): Promise<string> {
  const root = tempDir('storage');
  await writeTinyModel(join(root, 'models', 'tiny'));
  return root;
}

/** A tiny training config (32×32, a few steps, a checkpoint every 2) on `subject`, into `output`. */
export function tinyTrainConfig(subject: string, output: string, seed: number, steps = 6): Record<string, unknown> {
  return {
    pretrained_model_name_or_path: 'models/tiny',
    instance_data_dir: subject,
    instance_prompt: 'a photo of sks dog',
    output_dir: output,
    resolution: 32,
    train_batch_size: 1,
    max_train_steps: steps,
    checkpointing_steps: 2,
    learning_rate: 1e-3,
    lr_scheduler: 'constant',
    lr_warmup_steps: 0,
    seed,
    report_to: 'jsonl',
  };
}

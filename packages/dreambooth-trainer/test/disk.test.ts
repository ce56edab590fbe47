import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as k from '@kiln/tensor-core';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../src/index.js';
import { trainDreamBooth } from '../src/node.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

// A full disk, simulated with a 96 KiB tmpfs (mounting needs root, as the CI and dev machines
// run; elsewhere the test is skipped): the logs fit, the first checkpoint does not.
const disk = join(tempDir('disk'), 'full');
mkdirSync(disk);
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96k', 'tmpfs', disk], { stdio: 'ignore' });
  mounted = true;
} catch {
  mounted = false;
}
afterAll(() => {
  if (mounted) execFileSync('umount', [disk]);
});

describe('a full disk', () => {
  it.skipIf(!mounted)('stops with a CheckpointError and leaves no half-written checkpoint', async () => {
    await k.useBackend('wasm');
    const out = join(disk, 'out');
    const err = await trainDreamBooth(
      {
        pretrained_model_name_or_path: await tinyModel(),
        instance_data_dir: writeImages(1),
        instance_prompt: 'a photo of sks dog',
        output_dir: out,
        resolution: 16,
        train_batch_size: 1,
        max_train_steps: 2,
        checkpointing_steps: 1,
        seed: 0,
        report_to: 'jsonl',
      },
      { log: () => {} },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/checkpoint-1: the checkpoint could not be written \(.*ENOSPC.*\); nothing was left half-written/);
    expect(readdirSync(out)).toEqual(['logs']);
  });
});

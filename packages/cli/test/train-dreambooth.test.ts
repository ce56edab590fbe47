import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { writeTinyModel } from '@kiln/pipeline/testing';
import { encode as encodePng } from 'fast-png';
import { main } from '../src/main.js';
import { trainDreamboothCommand } from '../src/train-dreambooth.js';

const run = async (argv: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    (s) => out.push(s),
    (s) => err.push(s),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
};

describe('kiln train-dreambooth', () => {
  it('--help prints every option with its default', async () => {
    const r = await run(['train-dreambooth', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--learning_rate (default: 0.000005)');
    expect(r.out).toContain('--resume_from_checkpoint (default: None)');
    expect((await run(['--help'])).out).toContain('kiln train-dreambooth');
  });

  it('an unknown flag is a usage error that suggests the nearest option', async () => {
    const r = await run(['train-dreambooth', '--instance_dir', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown flag --instance_dir; did you mean --instance_data_dir\?/);
  });

  it('a folder without images fails with its name, exit 1', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'kiln-cli-db-'));
    const r = await run([
      'train-dreambooth',
      '--pretrained_model_name_or_path',
      'sd15',
      '--instance_data_dir',
      empty,
      '--instance_prompt',
      'x',
      '--output_dir',
      join(empty, 'out'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${empty} has no images`);
  });

  it('Ctrl-C saves a checkpoint of the step and stops cleanly; --resume_from_checkpoint latest finishes', async () => {
    await k.useBackend('wasm');
    const root = mkdtempSync(join(tmpdir(), 'kiln-cli-db-'));
    const model = join(root, 'model');
    await writeTinyModel(model);
    const images = join(root, 'images');
    mkdirSync(images);
    writeFileSync(
      join(images, 'a.png'),
      encodePng({ width: 20, height: 20, data: new Uint8Array(20 * 20 * 3).map((_, i) => i % 251), channels: 3, depth: 8 }),
    );
    const out = join(root, 'out');
    const args = [
      '--pretrained_model_name_or_path',
      model,
      '--instance_data_dir',
      images,
      '--instance_prompt',
      'a photo of sks dog',
      '--output_dir',
      out,
      '--resolution',
      '16',
      '--train_batch_size',
      '1',
      '--max_train_steps',
      '3',
      '--seed',
      '0',
      '--report_to',
      'jsonl',
    ];
    const signals = new EventEmitter();
    const err: string[] = [];
    const first = await trainDreamboothCommand(args, { err: (s) => err.push(s), progress: () => signals.emit('SIGINT') }, signals);
    expect(first).toMatch(/checkpoint-1 in .* \(stopped; resume with --resume_from_checkpoint latest\)/);
    expect(err.join('\n')).toMatch(/stopping after this step/);
    expect(readdirSync(out)).toContain('checkpoint-1');
    expect(existsSync(join(out, 'model_index.json'))).toBe(false);
    expect(signals.listenerCount('SIGINT')).toBe(0);
    const r = await run(['train-dreambooth', ...args, '--resume_from_checkpoint', 'latest']);
    expect(r.code).toBe(0);
    expect(existsSync(join(out, 'model_index.json'))).toBe(true);
  });
});

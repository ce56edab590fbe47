// @kiln/nn/node's model-folder I/O: diffusers and transformers layouts, variants, subfolders,
// sharded indexes with path checks, validated configs and atomic writes.
import * as k from '@kiln/tensor-core';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, Linear, Module, SafetensorsError, StateDictError } from '../src/index.js';
import {
  findWeightsFile,
  loadPretrained,
  loadSafetensors,
  readConfig,
  savePretrained,
  variantFileName,
  writeFileAtomic,
} from '../src/node.js';
import { values } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-nn-folder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const Config = z
  .object({ in_features: z.number().int().positive(), out_features: z.number().int().positive(), note: z.string().optional() })
  .passthrough();
type Config = z.output<typeof Config>;

class Proj extends Module {
  readonly proj: Linear;
  constructor(
    readonly config: Config,
    options: { dtype?: k.DType } = {},
  ) {
    super();
    this.proj = this.registerModule('proj', new Linear(config.in_features, config.out_features, options));
  }
}

const load = (path: string, extra: Partial<Parameters<typeof loadPretrained<Config, Proj>>[1]> = {}) =>
  loadPretrained(path, { config: Config, build: (c) => new Proj(c), ...extra });

describe('savePretrained / loadPretrained', () => {
  it('round-trips a diffusers-layout subfolder bit-exactly', async () => {
    const m = new Proj({ in_features: 3, out_features: 2 });
    const root = join(dir, 'pipe');
    const written = await savePretrained(join(root, 'unet'), { config: m.config, weights: m.stateDict() });
    expect(written.map((p) => p.slice(root.length + 1))).toEqual(['unet/diffusion_pytorch_model.safetensors', 'unet/config.json']);
    expect(readdirSync(join(root, 'unet')).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const { model, config, weightsFile } = await load(root, { subfolder: 'unet' });
    expect(config).toEqual({ in_features: 3, out_features: 2 });
    expect(weightsFile).toBe(join(root, 'unet', 'diffusion_pytorch_model.safetensors'));
    expect(await values(model.proj.weight)).toEqual(await values(m.proj.weight));
  });

  it('names variants as diffusers and transformers do, and finds each layout', async () => {
    expect(variantFileName('diffusion_pytorch_model.safetensors', 'fp16')).toBe('diffusion_pytorch_model.fp16.safetensors');
    expect(variantFileName('model.safetensors', 'fp16')).toBe('model.fp16.safetensors');
    expect(variantFileName('model.safetensors.index.json', 'fp16')).toBe('model.safetensors.index.fp16.json');
    const m = new Proj({ in_features: 4, out_features: 4 });
    const half = new Proj({ in_features: 4, out_features: 4 }, { dtype: 'float16' });
    half.loadStateDict(m.stateDict());
    const te = join(dir, 'te');
    await savePretrained(te, { config: m.config, weights: m.stateDict(), weightsName: 'model' });
    await savePretrained(te, { config: m.config, weights: half.stateDict(), weightsName: 'model', variant: 'fp16' });
    expect(readdirSync(te).sort()).toEqual(['config.json', 'model.fp16.safetensors', 'model.safetensors']);
    expect(await findWeightsFile(te)).toBe(join(te, 'model.safetensors'));
    expect(await findWeightsFile(te, { variant: 'fp16' })).toBe(join(te, 'model.fp16.safetensors'));
    // The fp16 file loads into a float32 model, converted on the way.
    const { model } = await load(te, { variant: 'fp16' });
    expect(model.proj.weight.dtype).toBe('float32');
    expect(await values(model.proj.weight)).toEqual(await values(half.proj.weight));
    const err = await findWeightsFile(te, { variant: 'bf16' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'not_found' });
    expect((err as Error).message).toMatch(/model\.bf16\.safetensors.*model\.safetensors\.index\.bf16\.json/);
  });

  it('writes and reads sharded checkpoints with an index, variant included', async () => {
    const m = new Proj({ in_features: 8, out_features: 8 }); // weight 256 bytes, bias 32 bytes
    const out = join(dir, 'sharded');
    await savePretrained(out, { config: m.config, weights: m.stateDict(), maxShardBytes: 256, variant: 'fp16' });
    expect(readdirSync(out).sort()).toEqual([
      'config.json',
      'diffusion_pytorch_model.fp16-00001-of-00002.safetensors',
      'diffusion_pytorch_model.fp16-00002-of-00002.safetensors',
      'diffusion_pytorch_model.safetensors.index.fp16.json',
    ]);
    const index = JSON.parse(readFileSync(join(out, 'diffusion_pytorch_model.safetensors.index.fp16.json'), 'utf8'));
    expect(index).toEqual({
      metadata: { total_size: 288 },
      weight_map: {
        'proj.weight': 'diffusion_pytorch_model.fp16-00001-of-00002.safetensors',
        'proj.bias': 'diffusion_pytorch_model.fp16-00002-of-00002.safetensors',
      },
    });
    const { model } = await load(out, { variant: 'fp16' });
    expect(await values(model.proj.bias!)).toEqual(await values(m.proj.bias!));
  });

  it('refuses an index whose weight_map leaves the folder, and a non-JSON index, naming the file', async () => {
    const m = new Proj({ in_features: 2, out_features: 2 });
    const outside = join(dir, 'outside.safetensors');
    writeFileSync(outside, readFileSync((await savePretrained(join(dir, 'src'), { config: m.config, weights: m.stateDict() }))[0]));
    const evil = join(dir, 'evil', 'inner');
    mkdirSync(evil, { recursive: true });
    writeFileSync(join(evil, 'config.json'), JSON.stringify(m.config));
    const index = join(evil, 'diffusion_pytorch_model.safetensors.index.json');
    for (const shard of ['../outside.safetensors', '../../outside.safetensors', outside, 'sub/x.safetensors']) {
      writeFileSync(index, JSON.stringify({ weight_map: { 'proj.weight': shard, 'proj.bias': shard } }));
      const err = await load(evil).catch((e: unknown) => e);
      expect(err, shard).toBeInstanceOf(SafetensorsError);
      expect(err).toMatchObject({ code: 'invalid_index', file: index });
    }
    writeFileSync(index, '<html>not json</html>');
    const err = await load(evil).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k.KilnError);
    expect(err).toMatchObject({ code: 'invalid_index', file: index });
    expect((err as Error).message).toMatch(/not valid JSON/);
  });

  it('config.json errors are ConfigErrors naming the file and field', async () => {
    const folder = join(dir, 'cfg');
    mkdirSync(folder, { recursive: true });
    const file = join(folder, 'config.json');
    await expect(readConfig(file, Config)).rejects.toMatchObject({ name: 'ConfigError', file, issues: ['not found'] });
    writeFileSync(file, '{"in_features": 3,');
    await expect(readConfig(file, Config)).rejects.toThrow(/config\.json: not valid JSON/);
    writeFileSync(file, JSON.stringify({ in_features: 3, out_features: 'two' }));
    const err = (await readConfig(file, Config).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(k.KilnError);
    expect(err.issues[0]).toMatch(/^out_features: /);
    expect(err.message).toContain(file);
    // A parse function keeps a package's own typed error.
    await expect(
      readConfig(file, () => {
        throw new RangeError('custom');
      }),
    ).rejects.toThrow('custom');
    // Unknown fields are kept (passthrough schema), so saved configs round-trip.
    writeFileSync(file, JSON.stringify({ in_features: 3, out_features: 2, _class_name: 'Proj' }));
    expect(await readConfig(file, Config)).toEqual({ in_features: 3, out_features: 2, _class_name: 'Proj' });
  });

  it('a checkpoint that does not fit is a StateDictError naming the file, and the model is disposed', async () => {
    const m = new Proj({ in_features: 3, out_features: 2 });
    const folder = join(dir, 'mismatch');
    await savePretrained(folder, { config: { in_features: 3, out_features: 5 }, weights: m.stateDict() });
    const before = k.memory().liveTensors;
    const err = (await load(folder).catch((e: unknown) => e)) as StateDictError;
    expect(err).toBeInstanceOf(StateDictError);
    expect(err.file).toBe(join(folder, 'diffusion_pytorch_model.safetensors'));
    expect(err.shapeMismatches.map((s) => s.key)).toEqual(['proj.weight', 'proj.bias']);
    expect(k.memory().liveTensors).toBe(before);
  });
});

describe('atomic writes', () => {
  it('leave the old file whole when writing fails, and no temporary files', async () => {
    const folder = join(dir, 'atomic');
    await savePretrained(folder, {
      config: { in_features: 1, out_features: 1 },
      weights: new Proj({ in_features: 1, out_features: 1 }).stateDict(),
    });
    const file = join(folder, 'diffusion_pytorch_model.safetensors');
    const before = readFileSync(file);
    const disposed = k.tensor([1]);
    disposed.dispose();
    await expect(savePretrained(folder, { config: {}, weights: { w: disposed } })).rejects.toThrow(SafetensorsError);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8'))).toEqual({ in_features: 1, out_features: 1 });
    expect(readdirSync(folder).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    await writeFileAtomic(join(folder, 'deep', 'note.txt'), 'hello');
    expect(readFileSync(join(folder, 'deep', 'note.txt'), 'utf8')).toBe('hello');
    expect(readdirSync(join(folder, 'deep'))).toEqual(['note.txt']);
    expect(existsSync(join(folder, 'deep', '.note.txt.tmp'))).toBe(false);
    expect(Object.keys(await loadSafetensors(file)).sort()).toEqual(['proj.bias', 'proj.weight']);
  });
});

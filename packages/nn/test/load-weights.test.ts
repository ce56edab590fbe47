// skipInit + loadWeights: a model loads tensor by tensor in its own size, shapes checked before
// any read, dtypes converted on the way (candle's VarBuilder).
import * as k from '@kiln/tensor-core';
import { mkdtempSync, openAsBlob, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Embedding,
  LayerNorm,
  Linear,
  Module,
  StateDictError,
  isPlaceholder,
  SafetensorsError,
  loadWeights,
  openSafetensorsBlob,
  parseSafetensors,
  prefixedSource,
  renamedSource,
  serializeSafetensors,
  skipInit,
  uninitializedKeys,
} from '../src/index.js';
import type { TensorSource } from '../src/index.js';
import { openSafetensors, saveSafetensors } from '../src/node.js';
import { secondBackend, values } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-nn-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A tiny text-encoder-like model: a large embedding (the largest tensor), MLP and norm. */
class Tiny extends Module {
  readonly embed: Embedding;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly norm: LayerNorm;
  constructor(options: { dtype?: k.DType } = {}) {
    super();
    this.embed = this.registerModule('embed', new Embedding(2048, 64, options));
    this.fc1 = this.registerModule('fc1', new Linear(64, 256, options));
    this.fc2 = this.registerModule('fc2', new Linear(256, 64, options));
    this.norm = this.registerModule('norm', new LayerNorm(64, options));
    this.registerBuffer('position_ids', k.arange(8, undefined, undefined, { dtype: 'int32' }), { persistent: false });
  }
}

const weightBytes = (m: Module) => Object.values(m.stateDict()).reduce((n, t) => n + t.numel() * k.itemSize(t.dtype), 0);
const file = join(dir, 'tiny.safetensors');
let reference: Record<string, number[]>;

beforeAll(async () => {
  k.manualSeed(7);
  const m = new Tiny();
  await saveSafetensors(file, m.stateDict());
  reference = {};
  for (const [key, t] of Object.entries(m.stateDict())) reference[key] = await values(t);
  m.dispose();
});

describe('skipInit', () => {
  it('builds placeholders that hold one element each, and keeps computed buffers', async () => {
    const base = k.memory().liveBytes;
    const m = skipInit(() => new Tiny());
    expect(k.memory().liveBytes - base).toBeLessThan(1024); // 7 one-element storages + position_ids
    expect(uninitializedKeys(m)).toEqual(Object.keys(m.stateDict()));
    expect(m.fc1.weight.shape).toEqual([256, 64]);
    expect(m.fc1.weight.requiresGrad).toBe(true);
    expect(await values(m.namedBuffers()[0][1])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    m.dispose();
  });

  it('to(dtype) and toBackend() keep placeholders as placeholders', async () => {
    const other = await secondBackend();
    const base = k.memory().liveBytes;
    const m = skipInit(() => new Tiny()).to('float16');
    expect(k.memory().liveBytes - base).toBeLessThan(1024);
    expect(m.fc1.weight.dtype).toBe('float16');
    expect(uninitializedKeys(m).length).toBe(7);
    await m.toBackend(other);
    expect(m.fc1.weight.device).toBe(other);
    expect(uninitializedKeys(m).length).toBe(7);
    await loadWeights(m, await openSafetensors(file));
    expect(m.fc1.weight.device).toBe(other);
    expect(await values(m.fc1.weight)).toEqual(await values(k.cast(k.tensor(reference['fc1.weight']), 'float16')));
    m.dispose();
  });

  it('draws nothing from the global generator', async () => {
    k.manualSeed(11);
    skipInit(() => new Tiny()).dispose();
    const after = await values(k.rand([4]));
    k.manualSeed(11);
    expect(await values(k.rand([4]))).toEqual(after);
  });
});

describe('loadWeights', () => {
  it('loads a file into a skipInit model exactly, at ≤ 1.1× its weight bytes (the plain path takes ~2×)', async () => {
    const f = await openSafetensors(file);
    k.resetPeakMemory();
    const base = k.memory().liveBytes;
    const m = skipInit(() => new Tiny());
    const progress: number[] = [];
    await loadWeights(m, f, { onProgress: (loaded, total) => progress.push(loaded / total) });
    const streamedPeak = k.memory().peakBytes - base;
    await f.close();
    const bytes = weightBytes(m);
    expect(uninitializedKeys(m)).toEqual([]);
    for (const [key, t] of Object.entries(m.stateDict())) expect(await values(t), key).toEqual(reference[key]);
    expect(progress.length).toBe(7);
    expect(progress[progress.length - 1]).toBe(1);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    m.dispose();

    // For comparison: initialise, then copy a fully loaded dict in (what fromPretrained did).
    const { loadSafetensors } = await import('../src/node.js');
    k.resetPeakMemory();
    const base2 = k.memory().liveBytes;
    const plain = new Tiny();
    const dict = await loadSafetensors(file);
    plain.loadStateDict(dict);
    Object.values(dict).forEach((t) => t.dispose());
    const plainPeak = k.memory().peakBytes - base2;
    plain.dispose();
    console.log(
      `tiny model ${bytes} weight bytes: loadWeights peak ${streamedPeak} (${(streamedPeak / bytes).toFixed(3)}×), init + loadStateDict peak ${plainPeak} (${(plainPeak / bytes).toFixed(3)}×)`,
    );
    expect(streamedPeak / bytes).toBeLessThanOrEqual(1.1);
    expect(plainPeak / bytes).toBeGreaterThan(1.9);
  });

  it('converts dtypes on the way: an f16 file into a float32 model and an f32 file into a bfloat16 one', async () => {
    const half = new Map<string, k.Tensor>();
    const shapes = skipInit(() => new Tiny());
    for (const [key, t] of Object.entries(shapes.stateDict()))
      half.set(key, k.tensor(reference[key], { dtype: 'float16', shape: t.shape }));
    shapes.dispose();
    const source = parseSafetensors(await serializeSafetensors(half), { source: 'half.safetensors' });
    const m = skipInit(() => new Tiny());
    await loadWeights(m, source);
    expect(m.fc1.weight.dtype).toBe('float32');
    const want = await values(k.cast(k.tensor(reference['fc1.weight']), 'float16'));
    expect(await values(m.fc1.weight)).toEqual(want);

    const b = skipInit(() => new Tiny({ dtype: 'bfloat16' }));
    await loadWeights(b, await openSafetensors(file));
    expect(b.fc2.bias!.dtype).toBe('bfloat16');
    expect(await values(b.fc2.bias!)).toEqual(await values(k.cast(k.tensor(reference['fc2.bias']), 'bfloat16')));
  });

  it('checks every key and shape before reading: nothing is loaded, and the error names the file', async () => {
    const f = await openSafetensors(file);
    const reads: string[] = [];
    const spy: TensorSource = {
      path: f.path,
      keys: () => f.keys(),
      has: (n) => f.has(n),
      info: (n) => f.info(n),
      tensor: (n, o) => (reads.push(n), f.tensor(n, o)),
    };
    const m = skipInit(() => new Tiny());
    // Mis-shape one key by renaming fc2.weight onto a module key of another shape.
    const wrong = renamedSource(spy, (name) => (name === 'fc1.weight' ? 'fc2.weight' : name === 'fc2.weight' ? 'fc1.weight' : name));
    const err = await loadWeights(m, wrong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as StateDictError).shapeMismatches.map((s) => s.key).sort()).toEqual(['fc1.weight', 'fc2.weight']);
    expect((err as Error).message).toContain(file);
    expect(reads).toEqual([]);
    expect(uninitializedKeys(m).length).toBe(7);

    // Missing and unexpected keys, strict and not.
    const partial = renamedSource(spy, (name) => (name === 'norm.bias' ? 'extra.bias' : name));
    const strictErr = (await loadWeights(m, partial).catch((e: unknown) => e)) as StateDictError;
    expect([strictErr.missingKeys, strictErr.unexpectedKeys]).toEqual([['norm.bias'], ['extra.bias']]);
    expect(reads).toEqual([]);
    const loose = await loadWeights(m, partial, { strict: false });
    expect(loose).toEqual({ missingKeys: ['norm.bias'], unexpectedKeys: ['extra.bias'] });
    expect(uninitializedKeys(m)).toEqual(['norm.bias']);
    expect(isPlaceholder(m.norm.bias!)).toBe(true);
    await f.close();
  });

  it('refuses a dtype Kiln cannot load before reading anything', async () => {
    const bytes = new Uint8Array(8 + 64 + 4);
    const header = JSON.stringify({ w: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }).padEnd(64, ' ');
    new DataView(bytes.buffer).setUint32(0, 64, true);
    bytes.set(new TextEncoder().encode(header), 8);
    class One extends Module {
      readonly w = this.registerParameter('w', k.zeros([4]));
    }
    const m = new One();
    const err = (await loadWeights(m, parseSafetensors(bytes, { source: 'i8.safetensors' })).catch((e: unknown) => e)) as StateDictError;
    expect(err).toBeInstanceOf(StateDictError);
    expect(err.invalidValues[0].reason).toMatch(/dtype I8 cannot be loaded/);
  });

  it('reads by key prefix (one model out of a single-file checkpoint) and renames with a reshape', async () => {
    const m0 = skipInit(() => new Tiny());
    await loadWeights(m0, await openSafetensors(file));
    const combined = new Map<string, k.Tensor>();
    for (const [key, t] of Object.entries(m0.stateDict())) combined.set(`model.text.${key}`, t);
    combined.set('model.other.weight', k.ones([3]));
    // An LDM-style 1×1 conv weight for fc1 ([256, 64, 1, 1]) that loads into the linear [256, 64].
    combined.set('model.text.fc1.weight', m0.fc1.weight.reshape([256, 64, 1, 1]));
    const source = parseSafetensors(await serializeSafetensors(combined), { source: 'single.safetensors' });

    const m = skipInit(() => new Tiny());
    const conv = renamedSource(prefixedSource(source, 'model.text.'), (name) =>
      name === 'fc1.weight' ? { key: name, shape: [256, 64] } : name,
    );
    expect(await loadWeights(m, conv)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await values(m.fc1.weight)).toEqual(reference['fc1.weight']);
    // The same through the prefix option.
    const bad = skipInit(() => new Tiny());
    await expect(loadWeights(bad, source, { prefix: 'model.text.' })).rejects.toThrow(
      /size mismatch for fc1\.weight: checkpoint has shape \[256, 64, 1, 1\]/,
    );
  });

  it('renames with a "reshape" to the shape the tensor already has', async () => {
    const m = skipInit(() => new Tiny());
    const same = renamedSource(await openSafetensors(file), (name) => (name === 'fc1.weight' ? { key: name, shape: [256, 64] } : name));
    expect(await loadWeights(m, same)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(await values(m.fc1.weight)).toEqual(reference['fc1.weight']);
  });

  it('ignores listed unexpected keys', async () => {
    const extra = new Map<string, k.Tensor>([['legacy.position_ids', k.arange(4, undefined, undefined, { dtype: 'int32' })]]);
    const m0 = skipInit(() => new Tiny());
    await loadWeights(m0, await openSafetensors(file));
    for (const [key, t] of Object.entries(m0.stateDict())) extra.set(key, t);
    const source = parseSafetensors(await serializeSafetensors(extra));
    const m = skipInit(() => new Tiny());
    await expect(loadWeights(m, source)).rejects.toThrow(/Unexpected key\(s\) \(1\): "legacy\.position_ids"/);
    await expect(loadWeights(m, source, { ignoreUnexpected: [/position_ids$/] })).resolves.toEqual({ missingKeys: [], unexpectedKeys: [] });
  });

  it('loads from a Blob (a browser File, or fs.openAsBlob) tensor by tensor', async () => {
    const st = await openSafetensorsBlob(await openAsBlob(file), { source: 'tiny.safetensors' });
    expect(st.keys().sort()).toEqual(Object.keys(reference).sort());
    const m = skipInit(() => new Tiny());
    await loadWeights(m, st);
    for (const [key, t] of Object.entries(m.stateDict())) expect(await values(t), key).toEqual(reference[key]);
    const bytes = readFileSync(file);
    const cut = new Blob([bytes.subarray(0, bytes.length - 4)]);
    const err = await openSafetensorsBlob(cut, { source: 'cut.safetensors' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code: 'truncated', file: 'cut.safetensors' });
  });
});

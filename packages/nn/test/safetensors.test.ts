import * as k from '@kiln/tensor-core';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Conv2d, GroupNorm, Linear, Module, ModuleList, SafetensorsError, parseSafetensors, serializeSafetensors } from '../src/index.js';
import { loadSafetensors, openSafetensors, saveSafetensors } from '../src/node.js';
import type { SafetensorsErrorCode } from '../src/index.js';
import { values } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-nn-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);
const expected = JSON.parse(readFileSync(fixture('mixed.json'), 'utf8')) as Record<
  string,
  { shape: number[]; values: (number | boolean)[] }
>;

/** A file from a header object and raw data, laid out by hand (independent of the writer). */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), headerOverride?: string): Uint8Array {
  const json = new TextEncoder().encode(headerOverride ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function code(fn: () => unknown): SafetensorsErrorCode | 'no error' | 'other' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof SafetensorsError ? err.code : 'other';
  }
}

describe('reading a file written by PyTorch', () => {
  it('decodes every dtype with the documented mapping and reads __metadata__', async () => {
    const f = await openSafetensors(fileURLPath(fixture('mixed.safetensors')));
    try {
      expect(f.metadata).toEqual({ format: 'pt', source: 'make_safetensors_fixture.py' });
      expect(f.keys()).toEqual(Object.keys(expected));
      const dtypes: Record<string, k.DType> = {
        f32: 'float32',
        f16: 'float16',
        bf16: 'bfloat16',
        f64: 'float64',
        i64: 'int32',
        i32: 'int32',
        u8: 'int32',
        mask: 'bool',
        scalar: 'float32',
      };
      for (const [name, want] of Object.entries(expected)) {
        const t = await f.tensor(name);
        expect(t.dtype, name).toBe(dtypes[name]);
        expect(t.shape, name).toEqual(want.shape);
        const got = await values(t);
        const wantNum = want.values.map(Number);
        if (name === 'f32' || name === 'scalar') expect(got).toEqual(wantNum.map(Math.fround));
        else expect(got, name).toEqual(wantNum);
      }
      const asF32 = await f.tensor('i64', { dtype: 'float64' });
      expect(await values(asF32)).toEqual([0, -1, 2147483647, -2147483648]);
    } finally {
      await f.close();
    }
  });
});

function fileURLPath(u: URL): string {
  return decodeURIComponent(u.pathname);
}

describe('round trips', () => {
  class Net extends Module {
    readonly convIn = this.registerModule('conv_in', new Conv2d(2, 4, 3, { padding: 1 }));
    readonly blocks = this.registerModule('blocks', new ModuleList([new GroupNorm(2, 4), new Linear(4, 3)]));
    readonly ids = this.registerBuffer('position_ids', k.arange(0, 6).reshape([1, 6]));
    readonly flag = this.registerBuffer('flag', k.tensor([true, false, true]));
  }

  for (const dtype of ['float32', 'float16', 'bfloat16', 'float64'] as const) {
    it(`module (${dtype}) → stateDict → saveSafetensors → loadSafetensors → loadStateDict is bit-exact`, async () => {
      k.manualSeed(3);
      const a = new Net().to(dtype);
      const path = join(dir, `net-${dtype}.safetensors`);
      await saveSafetensors(path, a.stateDict(), { format: 'pt' });
      const b = new Net().to(dtype);
      const loaded = await loadSafetensors(path);
      b.loadStateDict(loaded);
      const sa = a.stateDict();
      const sb = b.stateDict();
      for (const key of Object.keys(sa)) {
        expect(sb[key].dtype, key).toBe(sa[key].dtype);
        const [x, y] = [await sa[key].data(), await sb[key].data()];
        expect(Array.from(y), key).toEqual(Array.from(x));
      }
      const opened = await openSafetensors(path);
      expect(opened.metadata).toEqual({ format: 'pt' });
      await opened.close();
      // Aligned layout: the header is padded to 8 bytes and larger elements come first.
      const bytes = readFileSync(path);
      expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) % 8).toBe(0);
    });
  }

  it('serializeSafetensors and parseSafetensors agree with the file functions', async () => {
    const tensors = { a: k.tensor([1, 2, 3]), b: k.tensor([[true, false]]), c: k.tensor(5, { dtype: 'int32' }) };
    const bytes = await serializeSafetensors(tensors, { x: 'y' });
    const path = join(dir, 'same.safetensors');
    await saveSafetensors(path, tensors, { x: 'y' });
    expect(Array.from(readFileSync(path))).toEqual(Array.from(bytes));
    const st = parseSafetensors(bytes);
    expect(st.metadata).toEqual({ x: 'y' });
    expect(await values(st.tensor('c'))).toEqual([5]);
    // A copy at an odd byte offset still decodes (misaligned typed-array views are copied).
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect(await values(parseSafetensors(shifted.subarray(1)).tensor('a'))).toEqual([1, 2, 3]);
  });

  it('writes atomically: a failure while writing leaves neither the file nor a temp file', async () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const path = join(sub, 'model.safetensors');
    const bad = k.tensor([1, 2]);
    Object.defineProperty(bad, 'data', { value: async () => Promise.reject(new Error('device lost')) });
    await expect(saveSafetensors(path, { ok: k.tensor([1]), bad })).rejects.toThrow(/device lost/);
    expect(readdirSync(sub)).toEqual([]);
    // An existing file survives a failed overwrite untouched.
    await saveSafetensors(path, { ok: k.tensor([1]) });
    const before = readFileSync(path);
    await expect(saveSafetensors(path, { ok: k.tensor([1]), bad })).rejects.toThrow(SafetensorsError);
    expect(readdirSync(sub)).toEqual(['model.safetensors']);
    expect(readFileSync(path).equals(before)).toBe(true);
  });
});

describe('sharded checkpoints', () => {
  it('loads through the index weight_map', async () => {
    const sub = mkdtempSync(join(dir, 'sharded-'));
    await saveSafetensors(join(sub, 'model-00001-of-00002.safetensors'), { 'a.weight': k.tensor([1, 2]) });
    await saveSafetensors(join(sub, 'model-00002-of-00002.safetensors'), { 'b.weight': k.tensor([3]), 'b.bias': k.tensor([4]) });
    const index = {
      metadata: { total_size: 16 },
      weight_map: {
        'a.weight': 'model-00001-of-00002.safetensors',
        'b.weight': 'model-00002-of-00002.safetensors',
        'b.bias': 'model-00002-of-00002.safetensors',
      },
    };
    writeFileSync(join(sub, 'model.safetensors.index.json'), JSON.stringify(index));
    const all = await loadSafetensors(join(sub, 'model.safetensors.index.json'));
    expect(Object.keys(all)).toEqual(['a.weight', 'b.weight', 'b.bias']);
    expect(await values(all['b.bias'])).toEqual([4]);

    writeFileSync(
      join(sub, 'bad.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'c.weight': 'model-00001-of-00002.safetensors' } }),
    );
    await expect(loadSafetensors(join(sub, 'bad.safetensors.index.json'))).rejects.toMatchObject({
      code: 'missing_tensor',
      tensor: 'c.weight',
    });
    writeFileSync(join(sub, 'evil.safetensors.index.json'), JSON.stringify({ weight_map: { x: '../x.safetensors' } }));
    await expect(loadSafetensors(join(sub, 'evil.safetensors.index.json'))).rejects.toMatchObject({ code: 'invalid_index' });
  });
});

describe('validation', () => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).fill(1).buffer);
  const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

  it('refuses an unknown requested dtype before decoding, leaving nothing behind', () => {
    const file = parseSafetensors(build({ a: entry('F32', [2], 0, 8) }, f32(2)));
    const before = k.memory().liveTensors;
    expect(() => file.tensor('a', { dtype: 'int64' as k.DType })).toThrow(/loading 'a' as dtype: unknown dtype "int64"/);
    expect(k.memory().liveTensors).toBe(before);
  });

  it('accepts a valid file and an empty one', () => {
    expect(code(() => parseSafetensors(build({ a: entry('F32', [2], 0, 8) }, f32(2))))).toBe('no error');
    expect(code(() => parseSafetensors(build({})))).toBe('no error');
  });

  it('names the problem, the file and the tensor', async () => {
    const cases: [string, Uint8Array, SafetensorsErrorCode][] = [
      ['too short', new Uint8Array(5), 'truncated'],
      [
        'header past end',
        (() => {
          const b = build({ a: entry('F32', [2], 0, 8) }, f32(2));
          new DataView(b.buffer).setUint32(0, 10_000, true);
          return b;
        })(),
        'truncated',
      ],
      [
        'absurd header length',
        (() => {
          const b = new Uint8Array(16);
          new DataView(b.buffer).setUint32(4, 1, true);
          return b;
        })(),
        'header_too_large',
      ],
      ['data truncated', build({ a: entry('F32', [2], 0, 8) }, f32(1)), 'truncated'],
      ['trailing bytes', build({ a: entry('F32', [2], 0, 8) }, f32(3)), 'invalid_offsets'],
      ['overlap', build({ a: entry('F32', [2], 0, 8), b: entry('F32', [1], 4, 8) }, f32(3)), 'invalid_offsets'],
      ['gap', build({ a: entry('F32', [1], 0, 4), b: entry('F32', [1], 8, 12) }, f32(3)), 'invalid_offsets'],
      ['not starting at 0', build({ a: entry('F32', [1], 4, 8) }, f32(2)), 'invalid_offsets'],
      ['reversed offsets', build({ a: entry('F32', [0], 4, 0) }, f32(1)), 'invalid_offsets'],
      ['unknown dtype', build({ a: entry('F33', [1], 0, 4) }, f32(1)), 'unknown_dtype'],
      ['shape/size mismatch', build({ a: entry('F32', [3], 0, 8) }, f32(2)), 'shape_mismatch'],
      ['non-integer shape', build({ a: entry('F32', [1.5], 0, 6) }, f32(2).subarray(0, 6)), 'invalid_header'],
      ['negative shape', build({ a: entry('F32', [-2], 0, 8) }, f32(2)), 'invalid_header'],
      ['missing field', build({ a: { dtype: 'F32', shape: [2] } }, f32(2)), 'invalid_header'],
      ['bad json', build(null, f32(0), '{"a": [1,'), 'invalid_header'],
      ['not an object', build([1, 2]), 'invalid_header'],
      ['bad metadata', build({ __metadata__: { a: 1 } }), 'invalid_header'],
    ];
    for (const [what, bytes, want] of cases)
      expect(
        code(() => parseSafetensors(bytes)),
        what,
      ).toBe(want);

    const path = join(dir, 'broken.safetensors');
    writeFileSync(path, build({ weight: entry('F32', [3], 0, 8) }, f32(2)));
    const err = await openSafetensors(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).file).toBe(path);
    expect((err as SafetensorsError).tensor).toBe('weight');
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain("tensor 'weight'");
    await expect(openSafetensors(join(dir, 'nope.safetensors'))).rejects.toMatchObject({ code: 'io' });
  });

  it('refuses I64 values that do not fit in int32, naming the tensor', () => {
    const data = new Uint8Array(new BigInt64Array([1n, 2n ** 40n]).buffer);
    const st = parseSafetensors(build({ pos: entry('I64', [2], 0, 16) }, data));
    let err: unknown;
    try {
      st.tensor('pos');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'value_out_of_range', tensor: 'pos' });
    expect((err as Error).message).toContain('1099511627776');
  });

  it('lists known-but-unloadable dtypes and refuses them only when read', () => {
    const st = parseSafetensors(build({ q: entry('I8', [4], 0, 4), a: entry('F32', [1], 4, 8) }, new Uint8Array(8)));
    expect(st.keys()).toEqual(['q', 'a']);
    expect(code(() => st.tensor('q'))).toBe('unsupported_dtype');
    expect(code(() => st.tensor('a'))).toBe('no error');
  });

  it('survives 2000 seeded random mutations with only SafetensorsError (fuzz)', async () => {
    const base = await serializeSafetensors(
      {
        w: k.randn([3, 4], { seed: 1 }),
        h: k.randn([5], { seed: 2 }).half(),
        b: k.randn([2, 2], { seed: 3 }).to('bfloat16'),
        i: k.tensor([1, 2], { dtype: 'int32' }),
        m: k.tensor([true, false]),
      },
      { format: 'pt' },
    );
    const headerLen = new DataView(base.buffer, base.byteOffset).getUint32(0, true);
    let seed = 12345;
    const rand = () => {
      // xorshift32: fixed, fast, reproducible.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const int = (n: number) => Math.floor(rand() * n);
    const text = new TextDecoder().decode(base.subarray(8, 8 + headerLen));
    const tokens = [
      '0',
      '1',
      '-1',
      '1e308',
      '1.5',
      '"F16"',
      '"X"',
      '[]',
      '{}',
      'null',
      ',',
      ']',
      '"',
      '99999999999999999999',
      '"__metadata__"',
    ];
    const counts: Record<string, number> = {};
    const start = Date.now();
    for (let iter = 0; iter < 2000; iter++) {
      let bytes = base.slice();
      const kind = int(4);
      if (kind === 0) {
        for (let j = 0, n = 1 + int(4); j < n; j++) {
          const pos = int(bytes.length);
          bytes[pos] ^= 1 << int(8);
        }
      } else if (kind === 1) {
        bytes = bytes.slice(0, int(bytes.length));
      } else if (kind === 2) {
        // Edit the JSON header text: replace a span with a token, keeping the length field honest.
        const at = int(text.length);
        const edited = text.slice(0, at) + tokens[int(tokens.length)] + text.slice(at + int(6));
        const json = new TextEncoder().encode(edited);
        bytes = new Uint8Array(8 + json.length + (base.length - 8 - headerLen));
        new DataView(bytes.buffer).setUint32(0, json.length, true);
        bytes.set(json, 8);
        bytes.set(base.subarray(8 + headerLen), 8 + json.length);
      } else {
        // Corrupt the header length field.
        new DataView(bytes.buffer).setUint32(int(2) * 4, int(2) ? int(2 ** 32) : headerLen + int(17) - 8, true);
      }
      const result = code(() => {
        const st = parseSafetensors(bytes);
        for (const name of st.keys()) st.tensor(name).dispose();
      });
      counts[result] = (counts[result] ?? 0) + 1;
      expect(result, `mutation ${iter} (kind ${kind})`).not.toBe('other');
    }
    console.log('fuzz outcomes', JSON.stringify(counts));
    expect(Date.now() - start).toBeLessThan(60_000);
    expect(Object.keys(counts).length).toBeGreaterThan(4); // many different failure modes were hit
  });
});

// Names read from files are data: a tensor, metadata key or state-dict key called `__proto__`
// (or `constructor`) must survive every path, as it does in PyTorch and the reference safetensors.
import * as k from '@kiln/tensor-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Module, parseSafetensors, serializeSafetensors } from '../src/index.js';
import { loadSafetensors, openSafetensors, saveSafetensors } from '../src/node.js';
import { values } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-nn-proto-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** { __proto__: a, constructor: b } as own data properties (a literal would set the prototype). */
function tricky(): Record<string, k.Tensor> {
  const out = Object.create(null) as Record<string, k.Tensor>;
  out.__proto__ = k.tensor([1, 2]);
  const ctor: string = 'constructor'; // a string-typed key reaches the index signature
  out[ctor] = k.tensor([3]);
  out['w.toString'] = k.tensor([4]);
  return out;
}

describe('keys named __proto__', () => {
  it('the writer makes a readable file and the in-memory reader keeps every name', async () => {
    const metadata = Object.create(null) as Record<string, string>;
    metadata.__proto__ = 'meta';
    metadata.format = 'pt';
    const bytes = await serializeSafetensors(tricky(), metadata);
    const st = parseSafetensors(bytes);
    expect(st.keys().sort()).toEqual(['__proto__', 'constructor', 'w.toString']);
    expect(Object.keys(st.metadata).sort()).toEqual(['__proto__', 'format']);
    expect(st.metadata.__proto__).toBe('meta');
    const all = st.tensors();
    expect(Object.keys(all).sort()).toEqual(['__proto__', 'constructor', 'w.toString']);
    expect(await values(all.__proto__)).toEqual([1, 2]);
  });

  it('files: saveSafetensors → openSafetensors / loadSafetensors keep it', async () => {
    const path = join(dir, 'proto.safetensors');
    await saveSafetensors(path, new Map([['__proto__', k.tensor([5, 6])]]));
    // The header really holds the key (the reference reader would see it too).
    expect(readFileSync(path).toString('utf8')).toContain('"__proto__":{"dtype":"F32"');
    const f = await openSafetensors(path);
    expect(f.keys()).toEqual(['__proto__']);
    expect(await values(await f.tensor('__proto__'))).toEqual([5, 6]);
    await f.close();
    const loaded = await loadSafetensors(path);
    expect(Object.keys(loaded)).toEqual(['__proto__']);
    expect(await values(loaded.__proto__)).toEqual([5, 6]);
  });

  it('a sharded weight_map keeps it', async () => {
    const sub = mkdtempSync(join(dir, 'sharded-'));
    await saveSafetensors(join(sub, 'a.safetensors'), new Map([['__proto__', k.tensor([7])]]));
    await saveSafetensors(join(sub, 'b.safetensors'), { x: k.tensor([8]) });
    writeFileSync(join(sub, 'model.safetensors.index.json'), '{"weight_map":{"__proto__":"a.safetensors","x":"b.safetensors"}}');
    const all = await loadSafetensors(join(sub, 'model.safetensors.index.json'));
    expect(Object.keys(all).sort()).toEqual(['__proto__', 'x']);
    expect(await values(all.__proto__)).toEqual([7]);
  });

  it('Module.stateDict() and loadStateDict keep a parameter named __proto__', async () => {
    class Odd extends Module {
      readonly p = this.registerParameter('__proto__', k.tensor([1, 2]));
      readonly c = this.registerParameter('constructor', k.tensor([3]));
    }
    const m = new Odd();
    const sd = m.stateDict();
    expect(Object.keys(sd)).toEqual(['__proto__', 'constructor']);
    expect(sd.__proto__).toBe(m.p);
    const next = Object.create(null) as Record<string, k.Tensor>;
    next.__proto__ = k.tensor([9, 9]);
    const ctor: string = 'constructor';
    next[ctor] = k.tensor([8]);
    m.loadStateDict(next);
    expect(await values(m.p)).toEqual([9, 9]);
    // and through a file
    const path = join(dir, 'odd.safetensors');
    await saveSafetensors(path, m.stateDict());
    const again = new Odd();
    again.loadStateDict(await loadSafetensors(path));
    expect(await values(again.p)).toEqual([9, 9]);
    expect(await values(again.c)).toEqual([8]);
  });
});

/**
 * `k.Generator`: draws advance, state saves and restores exactly (through JSON), the counter
 * advances by ceil(n / 4) blocks per draw, and the cpu and wasm backends give the same stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';

beforeAll(async () => {
  await k.useBackend('cpu');
});

const read = async (t: k.Tensor) => Array.from(await t.data());

describe('Generator', () => {
  it('repeated draws differ (unlike { seed }, which restarts at block 0)', async () => {
    const g = new k.Generator(42);
    const a = await read(k.randn([5], { generator: g }));
    const b = await read(k.randn([5], { generator: g }));
    expect(a).not.toEqual(b);
    expect(await read(k.randn([5], { seed: 42 }))).toEqual(await read(k.randn([5], { seed: 42 })));
  });

  it('its first draw equals { seed } with the same seed', async () => {
    expect(await read(k.randn([7], { generator: new k.Generator(9) }))).toEqual(await read(k.randn([7], { seed: 9 })));
    expect(await read(k.randint(0, 1000, [7], { generator: new k.Generator(9) }))).toEqual(
      await read(k.randint(0, 1000, [7], { seed: 9 })),
    );
  });

  it('advances ceil(n / 4) blocks per draw, whatever the distribution', async () => {
    const g = new k.Generator(1);
    k.randn([5], { generator: g });
    expect(g.offset).toBe(2);
    k.rand([8], { generator: g });
    expect(g.offset).toBe(4);
    k.randint(0, 10, [1], { generator: g });
    expect(g.offset).toBe(5);
    k.dropout(k.ones([9]), 0.5, true, { generator: g });
    expect(g.offset).toBe(8);
    // So a draw continues exactly where one long draw would be: blocks 0–1 then 2–3 = blocks 0–3.
    const h = new k.Generator(3);
    const parts = [...(await read(k.rand([8], { generator: h }))), ...(await read(k.rand([8], { generator: h })))];
    expect(parts).toEqual(await read(k.rand([16], { seed: 3 })));
  });

  it('getState/setState resume exactly, through JSON', async () => {
    const g = new k.Generator(2024);
    k.randn([10], { generator: g });
    const saved = JSON.parse(JSON.stringify(g.getState())) as k.GeneratorState;
    expect(saved).toEqual({ algorithm: 'philox4x32-10', seed: 2024, offset: 3 });
    const next = [await read(k.randn([6], { generator: g })), await read(k.randint(5, 50, [3], { generator: g }))];
    const other = new k.Generator().setState(saved);
    expect([await read(k.randn([6], { generator: other })), await read(k.randint(5, 50, [3], { generator: other }))]).toEqual(next);
    expect(other.initialSeed()).toBe(2024);
  });

  it('manualSeed rewinds; the default generator is one too', async () => {
    const g = new k.Generator(5);
    const a = await read(k.rand([3], { generator: g }));
    g.manualSeed(5);
    expect(await read(k.rand([3], { generator: g }))).toEqual(a);
    expect(k.manualSeed(5)).toBe(k.defaultGenerator);
    expect(await read(k.rand([3]))).toEqual(a);
    const saved = k.defaultGenerator.getState();
    const b = await read(k.rand([3]));
    k.defaultGenerator.setState(saved);
    expect(await read(k.rand([3]))).toEqual(b);
  });

  it('the *Like variants take the shape, dtype and backend of their argument', async () => {
    const x = k.zeros([2, 3], { dtype: 'float64' });
    const n = k.randnLike(x, { generator: new k.Generator(4) });
    expect([n.shape, n.dtype]).toEqual([[2, 3], 'float64']);
    expect(await read(n)).toEqual(await read(k.randn([2, 3], { seed: 4, dtype: 'float64' })));
    expect(k.randLike(x, { seed: 1 }).dtype).toBe('float64');
    const ids = k.randintLike(k.zeros([4], { dtype: 'int32' }), 0, 7, { seed: 2 });
    expect([ids.shape, ids.dtype]).toEqual([[4], 'int32']);
  });

  it('a draw that fails (a size the backend cannot hold) does not advance the generator', () => {
    const g = new k.Generator(8);
    k.rand([3], { generator: g });
    expect(() => k.randn([2 ** 20, 2 ** 20], { generator: g })).toThrow(k.BackendError);
    expect(() => k.randint(0, 9, [2 ** 20, 2 ** 20], { generator: g })).toThrow(k.BackendError);
    expect(g.offset).toBe(1);
  });

  it('refuses a bad state, seed plus generator, and a non-generator', () => {
    const g = new k.Generator();
    expect(() => g.setState({ algorithm: 'mt19937', seed: 1, offset: 0 } as never)).toThrow(k.ArgumentError);
    expect(() => g.setState({ algorithm: 'philox4x32-10', seed: 1, offset: -1 })).toThrow(
      /state.offset must be a non-negative safe integer/,
    );
    expect(() => g.setState({ algorithm: 'philox4x32-10', seed: 0.5, offset: 0 })).toThrow(/state.seed/);
    expect(() => k.randn([2], { seed: 1, generator: g })).toThrow(/either seed or generator/);
    expect(() => k.randn([2], { generator: { seed: 1 } as never })).toThrow(/must be a k.Generator/);
  });
});

describe('Generator: same stream on cpu and wasm', () => {
  beforeAll(async () => {
    await k.initBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it('draw after draw, every kind', async () => {
    const streams = async (device: string) => {
      const g = new k.Generator(77);
      const out: number[][] = [];
      for (const n of [5, 1027, 3]) {
        out.push(await read(k.randn([n], { generator: g, device })));
        out.push(await read(k.rand([n], { generator: g, device })));
        out.push(await read(k.randint(-3, 100, [n], { generator: g, device })));
      }
      out.push(await read(k.dropout(k.ones([33], { device }), 0.3, true, { generator: g })));
      return { out, state: g.getState() };
    };
    const cpu = await streams('cpu');
    const wasm = await streams('wasm');
    expect(wasm.state).toEqual(cpu.state);
    cpu.out.forEach((c, i) => {
      const w = wasm.out[i];
      expect(w.length).toBe(c.length);
      for (let j = 0; j < c.length; j++)
        expect(Math.abs(w[j] - c[j]), `draw ${i}, element ${j}`).toBeLessThanOrEqual(2e-6 * (1 + Math.abs(c[j])));
    });
  });
});

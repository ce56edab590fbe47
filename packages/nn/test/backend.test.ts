import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { AdamW, Linear, SiLU, Sequential } from '../src/index.js';
import { maxAbsDiff, values } from './helpers.js';

const hasWasm = k.listBackends().includes('wasm');

describe.skipIf(!hasWasm)('modules on the wasm backend', () => {
  it('moves with toBackend and trains there like on cpu', async () => {
    await k.initBackend('wasm');
    k.manualSeed(0);
    const cpu = new Sequential([new Linear(4, 8), new SiLU(), new Linear(8, 2)]);
    k.manualSeed(0);
    const wasm = new Sequential([new Linear(4, 8), new SiLU(), new Linear(8, 2)]);
    await wasm.toBackend('wasm');
    expect(wasm.parameters().every((p) => p.device === 'wasm')).toBe(true);
    const step = async (m: typeof cpu, device: string) => {
      const opt = new AdamW(m.parameters(), { lr: 1e-2 });
      const x = k.tensor(
        [
          [1, 2, 3, 4],
          [0.5, -1, 0, 2],
        ],
        { device },
      );
      for (let i = 0; i < 3; i++) {
        k.tidy(() => m.forward(x).square().mean().backward());
        opt.step();
        opt.zeroGrad();
      }
      return values((m.at(2) as Linear).weight);
    };
    expect(maxAbsDiff(await step(cpu, 'cpu'), await step(wasm, 'wasm'))).toBeLessThan(1e-5);
  });
});

/**
 * Scale: the wasm backend keeps tensors outside the wasm32 memory, so live tensors may exceed
 * 4 GiB. Allocates ~7.5 GB of live f32 tensors on the backend and computes with every one of them
 * (a GEMM streamed through the scratch memory and an elementwise op), checking the results.
 *
 * Heavy (about 8 GB of RAM), so opt-in: KILN_SCALE_TEST=1 npx vitest run packages/tensor-core/test/wasm-scale.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

const enabled = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KILN_SCALE_TEST === '1';

describe.skipIf(!enabled)('wasm backend beyond 4 GiB of live tensors', () => {
  beforeAll(async () => {
    await k.useBackend('wasm');
  });
  afterAll(async () => {
    await k.useBackend('cpu');
  });

  it('holds > 6 GB of live tensors and computes with all of them', async () => {
    const rows = 131072;
    const cols = 1024; // 2^27 f32 = 512 MiB per tensor
    const count = 14; // 7.5 GB
    const big: Tensor[] = [];
    for (let i = 0; i < count; i++) big.push(k.full([rows, cols], i + 1));
    const live = k.memory('wasm').liveBytes;
    expect(live).toBeGreaterThan(6e9);
    const w = k.full([cols, 1], 0.5);
    for (let i = 0; i < count; i++) {
      // Each GEMM stages a 512 MiB operand through the wasm scratch memory.
      const y = big[i].matmul(w);
      const d = (await y.slice(0, rows - 2, rows).data()) as Float32Array;
      expect(Array.from(d)).toEqual([(i + 1) * cols * 0.5, (i + 1) * cols * 0.5]);
      y.dispose();
    }
    const s = big[0].add(big[count - 1]);
    expect(
      Array.from(
        (await s
          .slice(0, rows - 1, rows)
          .slice(1, cols - 2, cols)
          .data()) as Float32Array,
      ),
    ).toEqual([count + 1, count + 1]);
    s.dispose();
    console.log(
      `wasm scale test: ${(live / 1e9).toFixed(2)} GB live in ${count} tensors; wasm memory ${(Number(k.memory().wasmMemoryBytes ?? 0) / 1e9).toFixed(2)} GB`,
    );
    big.forEach((t) => t.dispose());
    w.dispose();
  }, 600_000);
});

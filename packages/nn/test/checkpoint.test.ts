import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { Linear, Module, Sequential, SiLU, checkpoint } from '../src/index.js';
import { maxAbsDiff, values } from './helpers.js';

class Block extends Module {
  readonly layers = this.registerModule(
    'layers',
    new Sequential([new Linear(64, 64), new SiLU(), new Linear(64, 64), new SiLU(), new Linear(64, 64), new SiLU()]),
  );
  forward(x: k.Tensor): k.Tensor {
    return this.layers.forward(x).add(x);
  }
}

describe('checkpoint', () => {
  it('lowers peak memory of a deep stack and gives the same gradients', async () => {
    k.manualSeed(0);
    const blocks = Array.from({ length: 8 }, () => new Block());
    const params = blocks.flatMap((b) => b.parameters());
    const x = k.randn([256, 64], { seed: 1 });

    const run = (useCheckpoint: boolean): { peak: number; grads: k.Tensor[] } => {
      for (const p of params) {
        p.grad?.dispose();
        p.grad = null;
      }
      k.resetPeakMemory();
      const base = k.memory().liveBytes;
      k.tidy(() => {
        let h = x;
        for (const b of blocks) h = useCheckpoint ? checkpoint(b, h) : b.forward(h);
        h.square().mean().backward();
      });
      const peak = k.memory().peakBytes - base;
      return { peak, grads: params.map((p) => k.keep(p.grad!.clone())) };
    };
    const plain = run(false);
    const ckpt = run(true);
    // Eight blocks each hold ~11 activations of 64 KiB without checkpointing; with it, one block
    // at a time is recomputed.
    expect(ckpt.peak).toBeLessThan(plain.peak * 0.6);
    console.log(`peak bytes: plain ${plain.peak}, checkpointed ${ckpt.peak}`);
    let worst = 0;
    for (let i = 0; i < params.length; i++) worst = Math.max(worst, maxAbsDiff(await values(plain.grads[i]), await values(ckpt.grads[i])));
    expect(worst).toBeLessThan(1e-6);
  });

  it('passes gradients to its inputs (finite differences, float64) and to closed-over params', async () => {
    const w = k.keep(k.randn([3, 3], { seed: 4, dtype: 'float64', requiresGrad: true }));
    const fn = (a: k.Tensor, b: k.Tensor) => a.matmul(w).tanh().mul(b);
    const r = await k.gradcheck(
      (a, b) => checkpoint(fn, a, b, { params: [w] }),
      [k.randn([2, 3], { seed: 5, dtype: 'float64' }), k.randn([2, 3], { seed: 6, dtype: 'float64' })],
    );
    expect(r.ok).toBe(true);

    // The closed-over weight gets the same gradient as without checkpointing.
    const a = k.randn([2, 3], { seed: 7, dtype: 'float64' });
    const b = k.randn([2, 3], { seed: 8, dtype: 'float64' });
    w.grad = null; // gradcheck's own backward accumulated into it
    k.tidy(() => fn(a, b).sum().backward());
    const want = await values(w.grad!);
    w.grad = null;
    k.tidy(() =>
      checkpoint(fn, a, b, { params: [w] })
        .sum()
        .backward(),
    );
    expect(maxAbsDiff(await values(w.grad!), want)).toBeLessThan(1e-14);
  });

  it('records nothing under noGrad and frees the forward intermediates', () => {
    const lin = new Linear(4, 4);
    const before = k.memory().liveTensors;
    const y = k.noGrad(() => checkpoint(lin, k.ones([2, 4])));
    expect(y.requiresGrad).toBe(false);
    expect(k.memory().liveTensors).toBeLessThanOrEqual(before + 2); // the input and the output
  });

  it('passes every input to forward and recomputes with all of them (a ResNet block with temb)', async () => {
    class TembBlock extends Module {
      readonly conv = this.registerModule('conv', new Linear(8, 8));
      readonly proj = this.registerModule('proj', new Linear(4, 8));
      forward(x: k.Tensor, temb: k.Tensor, scale: number | null = null): k.Tensor {
        const h = k.silu(this.conv.forward(x)).add(this.proj.forward(k.silu(temb)));
        return scale === null ? h : h.mul(scale);
      }
    }
    k.manualSeed(3);
    const block = new TembBlock();
    const x = k.keep(k.randn([2, 8], { seed: 1, requiresGrad: true }));
    const temb = k.keep(k.randn([2, 4], { seed: 2, requiresGrad: true }));
    const leaves = [x, temb, ...block.parameters()];
    const grads = (useCheckpoint: boolean) => {
      for (const t of leaves) t.grad = null;
      const out = k.tidy(() => {
        const y = useCheckpoint ? checkpoint(block, x, temb, 0.5) : block.forward(x, temb, 0.5);
        y.square().sum().backward();
        return k.keep(y.detach().clone());
      });
      return { out, grads: leaves.map((t) => t.grad!) };
    };
    const plain = grads(false);
    const ckpt = grads(true);
    expect(maxAbsDiff(await values(ckpt.out), await values(plain.out))).toBeLessThan(1e-6);
    for (let i = 0; i < leaves.length; i++) {
      expect(ckpt.grads[i], `gradient ${i}`).not.toBeNull();
      expect(maxAbsDiff(await values(ckpt.grads[i]), await values(plain.grads[i])), `gradient ${i}`).toBeLessThan(1e-6);
    }
  });

  it('refuses arguments whose tensors would get no gradient, and non-tensor results', () => {
    const lin = new Linear(2, 2);
    const fn = (a: k.Tensor) => a;
    expect(() => checkpoint(fn as never, [k.ones([2])] as never)).toThrow(/argument 1 is an array/);
    expect(() => checkpoint(fn as never, k.ones([2]), { mask: k.ones([2]) } as never)).toThrow(/argument 2 is Object/);
    expect(() => checkpoint((() => ({ sample: k.ones([1]) })) as never, k.ones([1]) as never)).toThrow(/must return one tensor/);
    expect(() => checkpoint(lin, k.ones([1, 2]))).not.toThrow();
  });
});

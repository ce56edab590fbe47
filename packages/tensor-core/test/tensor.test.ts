import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';

beforeAll(async () => {
  await k.useBackend('cpu');
});

describe('creation and reads', () => {
  it('infers shapes from nested arrays and reads back nested and flat', async () => {
    const t = k.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(await t.toArray()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(Array.from(await t.data())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await k.tensor(7).item()).toBe(7);
  });

  it('keeps typed-array dtypes and validates sizes', async () => {
    expect(k.tensor(new Int32Array([1, 2])).dtype).toBe('int32');
    expect(k.tensor(new Float64Array([1, 2])).dtype).toBe('float64');
    expect(() => k.tensor([1, 2, 3], { shape: [2, 2] })).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(() => k.tensor([[1, 2], [3]])).toThrow(k.ShapeError);
  });

  it('arange, linspace, full, zerosLike', async () => {
    expect(Array.from(await k.arange(5).data())).toEqual([0, 1, 2, 3, 4]);
    expect(k.arange(5).dtype).toBe('int32');
    expect(Array.from(await k.arange(0, 1, 0.25).data())).toEqual([0, 0.25, 0.5, 0.75]);
    expect(Array.from(await k.linspace(0, 1, 3).data())).toEqual([0, 0.5, 1]);
    expect(Array.from(await k.zerosLike(k.full([2], 3, { dtype: 'int32' })).data())).toEqual([0, 0]);
  });

  it('bool tensors read back as booleans', async () => {
    expect(await k.tensor([1, -1, 0]).gt(0).toArray()).toEqual([true, false, false]);
  });
});

describe('dtypes', () => {
  it('rounds float16 and bfloat16 storage to nearest even', async () => {
    const x = k.tensor([1.0009765625 + 2 ** -12, 65504, 70000, 1e-8, -2.5]);
    expect(Array.from(await x.to('float16').data())).toEqual([1.0009765625, 65504, Infinity, 0, -2.5]);
    const b = k.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.14159]).to('bfloat16');
    expect(Array.from(await b.data())).toEqual([1, 1.015625, 3.140625]);
  });

  it('computes half types in f32 and stores rounded results', async () => {
    const a = k.tensor([1000, 0.1]).to('float16');
    const y = a.add(0.3);
    expect(y.dtype).toBe('float16');
    expect(Array.from(await y.data())).toEqual([1000.5, k.f16BitsToF32(k.f32ToF16Bits(0.4))]); // f16 spacing at 1000 is 0.5
  });

  it('promotes like PyTorch', () => {
    const i = k.tensor([1, 2], { dtype: 'int32' });
    expect(i.add(1).dtype).toBe('int32');
    expect(i.add(1.5).dtype).toBe('float32');
    expect(i.div(2).dtype).toBe('float32');
    expect(k.ones([1], { dtype: 'float16' }).add(k.ones([1], { dtype: 'bfloat16' })).dtype).toBe('float32');
    expect(k.ones([1], { dtype: 'float16' }).mul(3).dtype).toBe('float16');
    expect(k.ones([2]).gt(0).dtype).toBe('bool');
    expect(k.ones([2]).gt(0).sum().dtype).toBe('int32');
  });

  it('passes gradients through casts', async () => {
    const x = k.tensor([1, 2], { requiresGrad: true });
    x.to('float64').mul(3).sum().backward();
    expect(x.grad!.dtype).toBe('float32');
    expect(Array.from(await x.grad!.data())).toEqual([3, 3]);
  });
});

describe('views share storage without copies', () => {
  it('transpose, slice, expand and reshape are views', async () => {
    const x = k.arange(12).reshape([3, 4]);
    const before = k.memory().liveBytes;
    const t = x.transpose(0, 1);
    const s = x.slice(1, 1, 4, 2);
    const e = x.slice(0, 0, 1).expand([5, 4]);
    const u = x.unsqueeze(0).squeeze(0);
    expect(k.memory().liveBytes).toBe(before);
    expect(t.isContiguous()).toBe(false);
    expect(await t.toArray()).toEqual([
      [0, 4, 8],
      [1, 5, 9],
      [2, 6, 10],
      [3, 7, 11],
    ]);
    expect(await s.toArray()).toEqual([
      [1, 3],
      [5, 7],
      [9, 11],
    ]);
    expect(((await e.toArray()) as number[][])[4]).toEqual([0, 1, 2, 3]);
    expect(u.shape).toEqual([3, 4]);
    // A reshape that strides cannot express copies.
    expect(await t.reshape([12]).toArray()).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    // A reshape that strides can express does not.
    const b2 = k.memory().liveBytes;
    const v = x.reshape([3, 2, 2]).permute([1, 0, 2]).reshape([2, 3, 2]);
    expect(k.memory().liveBytes).toBe(b2);
    expect(v.shape).toEqual([2, 3, 2]);
  });

  it('select, split and chunk', async () => {
    const x = k.arange(6).reshape([2, 3]);
    expect(await x.select(0, -1).toArray()).toEqual([3, 4, 5]);
    expect(await Promise.all(x.split(2, 1).map((t) => t.toArray()))).toEqual([
      [
        [0, 1],
        [3, 4],
      ],
      [[2], [5]],
    ]);
    expect(x.chunk(3, 1).map((t) => t.shape)).toEqual([
      [2, 1],
      [2, 1],
      [2, 1],
    ]);
  });
});

describe('errors name shapes and misuse', () => {
  it('matmul shape mismatch', () => {
    expect(() => k.zeros([2, 3]).matmul(k.zeros([4, 5]))).toThrow(k.ShapeError);
    expect(() => k.zeros([2, 3]).matmul(k.zeros([4, 5]))).toThrow('[2, 3] and [4, 5]');
  });
  it('broadcast mismatch', () => {
    expect(() => k.zeros([2, 3]).add(k.zeros([4]))).toThrow(/\[2, 3\] and \[4\] cannot be broadcast/);
  });
  it('conv2d channel mismatch', () => {
    expect(() => k.conv2d(k.zeros([1, 3, 8, 8]), k.zeros([4, 2, 3, 3]))).toThrow(/input \[1, 3, 8, 8\].*\[4, 2, 3, 3\]/);
  });
  it('reshape and dims', () => {
    expect(() => k.zeros([2, 3]).reshape([4, 2])).toThrow(/cannot reshape \[2, 3\]/);
    expect(() => k.zeros([2, 3]).sum(2)).toThrow(k.ArgumentError);
    expect(() => k.groupNorm(k.zeros([1, 6, 2]), 4)).toThrow(/6 channels .* 4 groups/);
  });
  it('using a disposed tensor is a clear error', async () => {
    const x = k.ones([2]);
    x.dispose();
    expect(() => x.add(1)).toThrow(k.DisposedError);
    await expect(x.data()).rejects.toThrow(/used after dispose/);
  });
  it('a view keeps its storage alive after the source is disposed', async () => {
    const x = k.arange(4);
    const v = x.reshape([2, 2]);
    x.dispose();
    expect(await v.toArray()).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });
  it('backward errors', () => {
    expect(() => k.ones([2]).sum().backward()).toThrow(/does not require grad/);
    const w = k.ones([2], { requiresGrad: true });
    expect(() => w.mul(2).backward()).toThrow(/non-scalar/);
    const loss = w.mul(2).sum();
    loss.backward();
    expect(() => loss.backward()).toThrow(/already freed/);
  });
  it('unknown backend and dtype', async () => {
    await expect(k.useBackend('nope')).rejects.toThrow(k.BackendError);
    expect(() => k.zeros([1], { dtype: 'float8' as never })).toThrow();
  });
});

describe('autograd', () => {
  it('accumulates into .grad across backward calls and supports upstream gradients', async () => {
    const w = k.tensor([1, 2, 3], { requiresGrad: true });
    w.mul(w).sum().backward();
    w.sum().backward();
    expect(Array.from(await w.grad!.data())).toEqual([3, 5, 7]);
    const y = w.mul(2);
    y.backward(k.tensor([1, 0, -1]));
    expect(Array.from(await w.grad!.data())).toEqual([5, 5, 5]);
  });

  it('noGrad, detach and frozen leaves record nothing', async () => {
    const w = k.ones([2], { requiresGrad: true });
    expect(k.noGrad(() => w.mul(2)).requiresGrad).toBe(false);
    expect(w.detach().mul(2).requiresGrad).toBe(false);
    const frozen = k.ones([2]).requiresGrad_(false);
    const y = frozen.mul(w).sum();
    y.backward();
    expect(frozen.grad).toBeNull();
    expect(w.grad).not.toBeNull();
  });

  it('a diamond graph sums both paths', async () => {
    const x = k.tensor([2], { requiresGrad: true });
    const a = x.mul(3);
    a.mul(a).add(a).sum().backward(); // d/dx (9x² + 3x) = 18x + 3
    expect(await x.grad!.item()).toBe(39);
  });
});

describe('memory', () => {
  it('tidy frees intermediates and keeps results', () => {
    const before = k.memory();
    const y = k.tidy(() => k.ones([100]).mul(2).add(1).sum());
    const after = k.memory();
    expect(after.liveTensors).toBe(before.liveTensors + 1);
    expect(after.liveBytes).toBe(before.liveBytes + 4);
    y.dispose();
    expect(k.memory().liveTensors).toBe(before.liveTensors);
  });

  it('a training step inside tidy leaks nothing', () => {
    const w = k.randn([8, 4], { seed: 1, requiresGrad: true });
    const x = k.randn([16, 8], { seed: 2 });
    const step = () =>
      k.tidy(() => {
        const loss = x.matmul(w).tanh().square().mean();
        loss.backward();
        k.noGrad(() => w.assign_(w.sub(w.grad!.mul(0.1))));
        w.grad!.dispose();
        w.grad = null;
      });
    step();
    const m = k.memory();
    for (let i = 0; i < 5; i++) step();
    expect(k.memory().liveTensors).toBe(m.liveTensors);
    expect(k.memory().liveBytes).toBe(m.liveBytes);
  });

  it('the fused AdamW step never writes through to another view of the parameter', async () => {
    const p = k.ones([4]);
    const view = p.reshape([2, 2]);
    const hp = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    k.adamwUpdate(p, k.ones([4]), k.zeros([4]), k.zeros([4]), hp);
    expect(await view.toArray()).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(Array.from(await p.data()).map((v) => v.toFixed(4))).toEqual(['0.9000', '0.9000', '0.9000', '0.9000']);
  });

  it('`using` disposes at scope end', () => {
    const before = k.memory().liveTensors;
    {
      using t = k.ones([4]);
      expect(t.numel()).toBe(4);
    }
    expect(k.memory().liveTensors).toBe(before);
  });

  it('peak bytes track the high-water mark', () => {
    k.resetPeakMemory();
    const base = k.memory().liveBytes;
    k.tidy(() => {
      k.zeros([1000]);
    });
    expect(k.memory().peakBytes).toBeGreaterThanOrEqual(base + 4000);
    expect(k.memory().liveBytes).toBe(base);
  });
});

/**
 * The op suite, written once: every backend runs these cases against the cpu backend
 * (`parity.ts`), and the cpu backend runs them through finite differences in float64
 * (`gradcheck.test.ts`). Inputs are generated from seeds, so every backend sees the same numbers.
 */
import * as k from '@kiln/tensor-core';
import type { Tensor } from '@kiln/tensor-core';

export interface InputSpec {
  shape: number[];
  /** normal (default), positive (|x| + 0.5), ints (int32 ids below `high`), bool (random mask). */
  kind?: 'normal' | 'positive' | 'ints' | 'bool' | 'unit';
  high?: number;
  /** Whether gradients flow to this input (default: float inputs do). */
  grad?: boolean;
}

export interface OpCase {
  name: string;
  inputs: InputSpec[];
  fn: (...xs: Tensor[]) => Tensor;
  /** Skip the finite-difference check (non-differentiable points, integer outputs). */
  noGrad?: boolean;
  /** Looser parity tolerance for long reductions. */
  tol?: number;
}

const n = (...shape: number[]): InputSpec => ({ shape });
const pos = (...shape: number[]): InputSpec => ({ shape, kind: 'positive' });
/** A fixed int32 index tensor on `like`'s backend. */
const ids = (like: Tensor, data: number[] | number[][] | number[][][]): Tensor => k.tensor(data, { dtype: 'int32', device: like.device });

/** Makes the inputs of a case on the current backend, as `dtype`. */
export function makeInputs(c: OpCase, dtype: 'float32' | 'float64' | 'float16', seed = 0): Tensor[] {
  return c.inputs.map((s, i) => {
    const opts = { seed: seed * 100 + i + 1 };
    if (s.kind === 'ints') return k.randint(0, s.high ?? 10, s.shape, opts);
    if (s.kind === 'bool') return k.rand(s.shape, opts).gt(0.5);
    const base = k.randn(s.shape, { ...opts, dtype: 'float64' });
    let v = base;
    if (s.kind === 'positive') v = base.abs().add(0.5);
    if (s.kind === 'unit')
      v = k
        .rand(s.shape, { ...opts, dtype: 'float64' })
        .mul(0.8)
        .add(0.1);
    return v.to(dtype);
  });
}

export const OP_CASES: OpCase[] = [
  // Elementwise, with broadcasting.
  { name: 'add broadcast', inputs: [n(2, 3, 4), n(3, 1)], fn: (a, b) => a.add(b) },
  { name: 'add alpha', inputs: [n(3, 4), n(4)], fn: (a, b) => k.add(a, b, 0.5) },
  { name: 'sub scalar left', inputs: [n(3, 4)], fn: (a) => k.sub(2, a) },
  { name: 'mul broadcast', inputs: [n(4, 1, 3), n(2, 3)], fn: (a, b) => a.mul(b) },
  { name: 'div', inputs: [n(3, 4), pos(3, 4)], fn: (a, b) => a.div(b) },
  { name: 'pow tensor', inputs: [pos(3, 4), n(3, 4)], fn: (a, b) => a.pow(b) },
  { name: 'pow scalar', inputs: [n(3, 4)], fn: (a) => a.pow(3) },
  { name: 'maximum', inputs: [n(3, 4), n(4)], fn: (a, b) => a.maximum(b) },
  { name: 'minimum', inputs: [n(3, 4), n(3, 4)], fn: (a, b) => a.minimum(b) },
  { name: 'where', inputs: [{ shape: [3, 4], kind: 'bool' }, n(3, 4), n(4)], fn: (c, a, b) => k.where(c, a, b) },
  { name: 'clamp', inputs: [n(5, 4)], fn: (a) => a.clamp(-0.5, 0.7) },
  { name: 'compare gt', inputs: [n(3, 4), n(4)], fn: (a, b) => a.gt(b).to('float32'), noGrad: true },
  { name: 'neg', inputs: [n(3, 4)], fn: (a) => a.neg() },
  { name: 'abs', inputs: [n(3, 4)], fn: (a) => a.abs() },
  { name: 'exp', inputs: [n(3, 4)], fn: (a) => a.exp() },
  { name: 'log', inputs: [pos(3, 4)], fn: (a) => a.log() },
  { name: 'sqrt', inputs: [pos(3, 4)], fn: (a) => a.sqrt() },
  { name: 'rsqrt', inputs: [pos(3, 4)], fn: (a) => a.rsqrt() },
  { name: 'reciprocal', inputs: [pos(3, 4)], fn: (a) => a.reciprocal() },
  { name: 'square', inputs: [n(3, 4)], fn: (a) => a.square() },
  { name: 'sin cos', inputs: [n(3, 4)], fn: (a) => a.sin().add(a.cos()) },
  { name: 'tanh', inputs: [n(3, 4)], fn: (a) => a.tanh() },
  { name: 'sigmoid', inputs: [n(3, 4)], fn: (a) => a.sigmoid() },
  { name: 'relu', inputs: [n(3, 4)], fn: (a) => a.relu() },
  { name: 'silu', inputs: [n(3, 4)], fn: (a) => a.silu() },
  { name: 'gelu erf', inputs: [n(3, 4)], fn: (a) => a.gelu() },
  { name: 'gelu tanh', inputs: [n(3, 4)], fn: (a) => a.gelu({ approximate: 'tanh' }) },
  { name: 'quickGelu', inputs: [n(3, 4)], fn: (a) => k.quickGelu(a) },
  { name: 'erf', inputs: [n(3, 4)], fn: (a) => a.erf() },
  // Non-contiguous inputs: permuted, sliced, expanded.
  { name: 'exp of transpose', inputs: [n(3, 4)], fn: (a) => a.transpose(0, 1).exp() },
  { name: 'mul of strided slices', inputs: [n(6, 5)], fn: (a) => a.slice(0, 0, 6, 2).mul(a.slice(0, 1, 6, 2)) },
  { name: 'add permuted 3d', inputs: [n(2, 3, 4), n(4, 3, 2)], fn: (a, b) => a.add(b.permute([2, 1, 0])) },
  // Reductions.
  { name: 'sum all', inputs: [n(3, 4, 5)], fn: (a) => a.sum() },
  { name: 'sum dims keepdim', inputs: [n(3, 4, 5)], fn: (a) => a.sum([0, 2], true) },
  { name: 'mean dim', inputs: [n(3, 4, 5)], fn: (a) => a.mean(1) },
  { name: 'max dim', inputs: [n(3, 4, 5)], fn: (a) => a.max(-1) },
  { name: 'min all', inputs: [n(3, 4)], fn: (a) => a.min() },
  { name: 'var', inputs: [n(3, 6)], fn: (a) => a.var(1) },
  { name: 'var biased keepdim', inputs: [n(3, 6)], fn: (a) => a.var(0, { correction: 0, keepdim: true }) },
  { name: 'norm', inputs: [n(3, 4)], fn: (a) => a.norm() },
  { name: 'sum of transpose', inputs: [n(3, 4, 5)], fn: (a) => a.permute([2, 0, 1]).sum(1) },
  // Views and joins.
  {
    name: 'reshape of transpose',
    inputs: [n(3, 4)],
    fn: (a) =>
      a
        .t()
        .reshape([2, 6])
        .mul(a.reshape([2, 6])),
  },
  { name: 'expand', inputs: [n(3, 1)], fn: (a) => a.expand([2, 3, 4]).mul(k.arange(4).to(a.dtype)) },
  { name: 'squeeze unsqueeze', inputs: [n(3, 1, 4)], fn: (a) => a.squeeze(1).unsqueeze(0).exp() },
  { name: 'select', inputs: [n(3, 4)], fn: (a) => a.select(1, 2).exp() },
  { name: 'cat', inputs: [n(2, 3), n(4, 3)], fn: (a, b) => k.cat([a, b.sin()], 0) },
  { name: 'cat dim1 of views', inputs: [n(2, 3), n(3, 2)], fn: (a, b) => k.cat([a, b.t()], 1) },
  { name: 'stack', inputs: [n(2, 3), n(2, 3)], fn: (a, b) => k.stack([a, b], 1) },
  {
    name: 'split chunk',
    inputs: [n(6, 4)],
    fn: (a) => {
      const [x, y] = a.chunk(2, 0);
      return x.mul(y);
    },
  },
  {
    name: 'split sizes',
    inputs: [n(6, 4)],
    fn: (a) => {
      const [x, , z] = a.split([1, 2, 3], 0);
      return x.sum().add(z.sum(0));
    },
  },
  { name: 'pad', inputs: [n(2, 3, 4)], fn: (a) => k.pad(a, [1, 2, 0, 1], 0.5) },
  { name: 'cast roundtrip', inputs: [n(3, 4)], fn: (a) => a.to('float16').to(a.dtype).mul(a), noGrad: true },
  { name: 'clone', inputs: [n(3, 4)], fn: (a) => a.clone().mul(2) },
  // Linear algebra.
  { name: 'matmul 2d', inputs: [n(3, 5), n(5, 4)], fn: (a, b) => a.matmul(b) },
  { name: 'matmul batched broadcast', inputs: [n(2, 1, 3, 5), n(3, 5, 4)], fn: (a, b) => a.matmul(b) },
  { name: 'matmul transposed operands', inputs: [n(5, 3), n(4, 5)], fn: (a, b) => a.t().matmul(b.t()) },
  { name: 'matmul vector', inputs: [n(5), n(2, 5, 3)], fn: (a, b) => a.matmul(b) },
  { name: 'linear', inputs: [n(2, 3, 4), n(5, 4), n(5)], fn: (x, w, b) => k.linear(x, w, b) },
  // Convolutions and pooling.
  { name: 'conv2d', inputs: [n(2, 3, 6, 5), n(4, 3, 3, 3), n(4)], fn: (x, w, b) => k.conv2d(x, w, b, { padding: 1 }) },
  {
    name: 'conv2d stride dilation',
    inputs: [n(1, 2, 7, 7), n(3, 2, 3, 3)],
    fn: (x, w) => k.conv2d(x, w, null, { stride: 2, padding: [1, 2], dilation: 2 }),
  },
  { name: 'conv2d groups', inputs: [n(1, 4, 5, 5), n(6, 2, 3, 3)], fn: (x, w) => k.conv2d(x, w, null, { groups: 2 }) },
  { name: 'conv2d 1x1 of permuted', inputs: [n(1, 5, 4, 3), n(2, 3, 1, 1)], fn: (x, w) => k.conv2d(x.permute([0, 3, 2, 1]), w) },
  {
    name: 'convTranspose2d',
    inputs: [n(1, 3, 4, 4), n(3, 2, 3, 3), n(2)],
    fn: (x, w, b) => k.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }),
  },
  // outputPadding below the dilation but not the stride: gy is one row/col larger than the forward formula says.
  {
    name: 'convTranspose2d dilation outputPadding',
    inputs: [n(1, 2, 4, 4), n(2, 3, 3, 3)],
    fn: (x, w) => k.convTranspose2d(x, w, null, { stride: 1, dilation: 2, outputPadding: 1 }),
  },
  { name: 'avgPool2d', inputs: [n(2, 3, 4, 6)], fn: (x) => k.avgPool2d(x, 2) },
  {
    name: 'interpolate nearest',
    inputs: [n(1, 2, 3, 3)],
    fn: (x) => k.interpolate(x, { scaleFactor: 2 }).mul(k.arange(36).reshape([6, 6]).to(x.dtype)),
  },
  // Normalisation, softmax, attention.
  { name: 'groupNorm', inputs: [n(2, 4, 3, 3), n(4), n(4)], fn: (x, w, b) => k.groupNorm(x, 2, w, b, 1e-5) },
  { name: 'groupNorm+silu', inputs: [n(2, 6, 2, 3), n(6), n(6)], fn: (x, w, b) => k.groupNormSilu(x, 3, w, b, 1e-6) },
  { name: 'groupNorm no affine', inputs: [n(1, 4, 5)], fn: (x) => k.groupNorm(x, 4) },
  { name: 'layerNorm', inputs: [n(2, 3, 8), n(8), n(8)], fn: (x, w, b) => k.layerNorm(x, [8], w, b) },
  { name: 'layerNorm 2 dims', inputs: [n(2, 3, 4)], fn: (x) => k.layerNorm(x, [3, 4]) },
  { name: 'softmax last', inputs: [n(3, 7)], fn: (x) => x.softmax(-1) },
  { name: 'softmax dim0', inputs: [n(4, 3)], fn: (x) => x.softmax(0) },
  { name: 'logSoftmax', inputs: [n(3, 7)], fn: (x) => x.logSoftmax(-1) },
  { name: 'sdpa', inputs: [n(2, 2, 5, 4), n(2, 2, 6, 4), n(2, 2, 6, 3)], fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v) },
  {
    name: 'sdpa causal scale',
    inputs: [n(1, 5, 4), n(1, 5, 4), n(1, 5, 4)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { isCausal: true, scale: 0.3 }),
  },
  {
    name: 'sdpa float mask',
    inputs: [n(2, 3, 4), n(2, 5, 4), n(2, 5, 2), n(3, 5)],
    fn: (q, kk, v, m) => k.scaledDotProductAttention(q, kk, v, { attnMask: m }),
  },
  {
    name: 'sdpa bool mask',
    inputs: [n(2, 3, 4), n(2, 5, 4), n(2, 5, 2)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q, kk, v, { attnMask: k.arange(5).lt(4).reshape([1, 5]).expand([3, 5]) }),
  },
  {
    name: 'sdpa transposed heads',
    inputs: [n(2, 5, 2, 4), n(2, 6, 2, 4), n(2, 6, 2, 4)],
    fn: (q, kk, v) => k.scaledDotProductAttention(q.transpose(1, 2), kk.transpose(1, 2), v.transpose(1, 2)),
  },
  // Indexing (gather/indexSelect/flip are row gathers; ids repeat so gradients must sum).
  {
    name: 'gather dim1 repeated ids',
    inputs: [n(3, 4)],
    fn: (x) =>
      k.gather(
        x,
        1,
        ids(x, [
          [0, 3, 3],
          [2, 1, 0],
          [1, 1, 1],
        ]),
      ),
  },
  {
    name: 'gather dim0 smaller index',
    inputs: [n(4, 5)],
    fn: (x) =>
      k.gather(
        x,
        0,
        ids(x, [
          [3, 0, 1],
          [3, 3, 2],
        ]),
      ),
  },
  {
    name: 'gather of transpose 3d',
    inputs: [n(2, 3, 4)],
    fn: (x) =>
      x.transpose(0, 2).gather(
        2,
        ids(x, [
          [[1], [0], [1]],
          [[0], [0], [1]],
        ]),
      ),
  },
  { name: 'indexSelect dim0', inputs: [n(5, 3), { shape: [4], kind: 'ints', high: 5 }], fn: (x, i) => k.indexSelect(x, 0, i) },
  { name: 'indexSelect dim1 repeated', inputs: [n(2, 4, 3)], fn: (x) => x.indexSelect(1, ids(x, [3, 3, 0, 1, 3])) },
  {
    name: 'indexSelect 1d (alphas_cumprod[t])',
    inputs: [pos(10), { shape: [3], kind: 'ints', high: 10 }],
    fn: (a, t) => k.indexSelect(a, 0, t).sqrt(),
  },
  { name: 'flip dims 0 and 2', inputs: [n(2, 3, 4)], fn: (x) => k.flip(x, [0, 2]) },
  { name: 'flip dims 0 and 1 of long rows', inputs: [n(2, 3, 17)], fn: (x) => k.flip(x, [1, 0]) },
  {
    name: 'flip last dim of permuted',
    inputs: [n(2, 3, 4)],
    fn: (x) =>
      x
        .permute([2, 0, 1])
        .flip([-1])
        .mul(x.permute([2, 0, 1])),
  },
  {
    name: 'isfinite isnan isinf',
    inputs: [n(3, 4)],
    fn: (x) => {
      const special = k.tensor([1, Infinity, NaN, -Infinity], { device: x.device }).to(x.dtype);
      const y = x.mul(special);
      return k.isfinite(y).to(x.dtype).add(k.isnan(y).to(x.dtype).mul(2)).add(y.isinf().to(x.dtype).mul(4));
    },
    noGrad: true,
  },
  { name: 'interpolate nearest to size 7x8', inputs: [n(1, 2, 3, 5)], fn: (x) => k.interpolate(x, { size: [7, 8] }) },
  {
    name: 'interpolate nearest scale 1.5',
    inputs: [n(2, 1, 4, 3)],
    fn: (x) => k.interpolate(x, { scaleFactor: 1.5 }).mul(k.arange(24, undefined, 1, { device: x.device }).reshape([6, 4]).to(x.dtype)),
  },
  { name: 'interpolate nearest downsample', inputs: [n(1, 2, 5, 7)], fn: (x) => k.interpolate(x, { size: [3, 4] }) },
  // Embedding and losses.
  { name: 'embedding', inputs: [{ shape: [2, 3], kind: 'ints', high: 5 }, n(5, 4)], fn: (ids, w) => k.embedding(ids, w) },
  {
    name: 'embedding repeated ids',
    inputs: [n(4, 3)],
    fn: (w) =>
      k.embedding(
        k.tensor(
          [
            [1, 1, 3],
            [0, 1, 1],
          ],
          { dtype: 'int32', device: w.device },
        ),
        w,
      ),
  },
  { name: 'mseLoss', inputs: [n(3, 4), n(3, 4)], fn: (a, b) => k.mseLoss(a, b) },
  { name: 'mseLoss sum', inputs: [n(3, 4), n(3, 4)], fn: (a, b) => k.mseLoss(a, b, 'sum') },
];

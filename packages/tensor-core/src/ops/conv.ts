import type { Conv2dParams } from '../backend.js';
import { promoteTypes } from '../dtype.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { conv2dOutputShape, convTransposeOutputSize, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { backendOf, make, record } from './dispatch.js';
import { add, cast } from './elementwise.js';
import { sum } from './reduce.js';
import { reshape, slice } from './view.js';

/** One value for both spatial dims, or [h, w]. @example k.conv2d(x, w, null, { stride: 2, padding: [1, 0] }); // a number for both dims, or [h, w] */
export type Pair = number | readonly [number, number];

/** Options of `conv2d` (PyTorch's keyword arguments). @example k.conv2d(x, w, b, { stride: 1, padding: 1, dilation: 1, groups: 1 }); */
export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding per side, or 'valid' (0) / 'same' (stride 1 only). */
  padding?: Pair | 'valid' | 'same';
  dilation?: Pair;
  groups?: number;
}

/** Options of `convTranspose2d` (PyTorch's keyword arguments). @example k.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }); */
export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

const pair = (v: Pair | undefined, dflt: number): [number, number] =>
  v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

function params(
  op: string,
  w: Tensor,
  o: { stride?: Pair; padding?: Pair | 'valid' | 'same'; dilation?: Pair; groups?: number },
): Conv2dParams {
  const stride = pair(o.stride, 1);
  const dilation = pair(o.dilation, 1);
  let padding: [number, number];
  if (o.padding === 'valid') padding = [0, 0];
  else if (o.padding === 'same') {
    if (stride[0] !== 1 || stride[1] !== 1) throw new ArgumentError(`${op}: padding 'same' needs stride 1`);
    const ph = dilation[0] * (w.shape[2] - 1);
    const pw = dilation[1] * (w.shape[3] - 1);
    if (ph % 2 || pw % 2) throw new ArgumentError(`${op}: padding 'same' needs odd effective kernel sizes`);
    padding = [ph / 2, pw / 2];
  } else padding = pair(o.padding, 0);
  const groups = o.groups ?? 1;
  for (const [name, v, min] of [
    ['stride', stride, 1],
    ['dilation', dilation, 1],
    ['padding', padding, 0],
  ] as const) {
    if (v.some((x) => !Number.isInteger(x) || x < min))
      throw new ArgumentError(`${op}: ${name} [${v.join(', ')}] must be integers >= ${min}`);
  }
  if (!Number.isInteger(groups) || groups < 1) throw new ArgumentError(`${op}: groups must be a positive integer, got ${groups}`);
  return { stride, padding, dilation, groups };
}

/** conv2d without bias, differentiable in both inputs. */
function convRaw(x: Tensor, w: Tensor, p: Conv2dParams): Tensor {
  const b = backendOf('conv2d', x, w);
  const shape = conv2dOutputShape(x.shape, w.shape, p);
  const y = make(b, b.conv2d(x._view(), w._view(), p), x.dtype, shape);
  return record(y, 'conv2d', [x, w], (g) => [
    x.requiresGrad ? convInputGrad(g, w, x.shape, p) : null,
    w.requiresGrad ? convWeightGrad(x, g, w.shape, p) : null,
  ]);
}

/**
 * conv2d of `x` cut to `shape`: with an `outputPadding` below the dilation but not the stride,
 * the formula gives one more row or column than the convTranspose2d input it differentiates for.
 */
function convTo(x: Tensor, w: Tensor, p: Conv2dParams, shape: readonly number[]): Tensor {
  const y = convRaw(x, w, p);
  return y.shape[2] === shape[2] && y.shape[3] === shape[3] ? y : slice(slice(y, 2, 0, shape[2]), 3, 0, shape[3]);
}

/** The input-gradient of conv2d; also the forward of convTranspose2d. */
function convInputGrad(gy: Tensor, w: Tensor, inputShape: readonly number[], p: Conv2dParams): Tensor {
  const b = backendOf('convTranspose2d', gy, w);
  const y = make(b, b.conv2dInputGrad(gy._view(), w._view(), inputShape, p), gy.dtype, inputShape);
  return record(y, 'conv2dInputGrad', [gy, w], (g) => [
    gy.requiresGrad ? convTo(g, w, p, gy.shape) : null,
    w.requiresGrad ? convWeightGrad(g, gy, w.shape, p) : null,
  ]);
}

function convWeightGrad(x: Tensor, gy: Tensor, weightShape: readonly number[], p: Conv2dParams): Tensor {
  const b = backendOf('conv2d', x, gy);
  const y = make(b, b.conv2dWeightGrad(x._view(), gy._view(), weightShape, p), x.dtype, weightShape);
  return record(y, 'conv2dWeightGrad', [x, gy], (g) => [
    x.requiresGrad ? convInputGrad(gy, g, x.shape, p) : null,
    gy.requiresGrad ? convTo(x, g, p, gy.shape) : null,
  ]);
}

function addChannelBias(y: Tensor, bias: Tensor | null | undefined, op: string): Tensor {
  if (!bias) return y;
  if (bias.ndim !== 1 || bias.shape[0] !== y.shape[1]) {
    throw new ShapeError(`${op}: bias ${fmt(bias.shape)} must be [${y.shape[1]}]`);
  }
  return add(y, reshape(bias, [1, -1, 1, 1]));
}

/**
 * 2-D convolution, `torch.nn.functional.conv2d`. x: [N, C, H, W], weight: [O, C/groups, kh, kw].
 *
 * @example
 * ```ts
 * const y = k.conv2d(x, w, b, { padding: 1 }); // 3×3 "same" convolution
 * ```
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  if (x.ndim !== 4 || weight.ndim !== 4) {
    throw new ShapeError(
      `conv2d: input ${fmt(x.shape)} and weight ${fmt(weight.shape)} must both be 4-D ([N, C, H, W] and [O, C/groups, kh, kw])`,
    );
  }
  const p = params('conv2d', weight, options);
  const [, C] = x.shape;
  const [O, Cg, kh, kw] = weight.shape;
  if (C !== Cg * p.groups || O % p.groups !== 0) {
    throw new ShapeError(
      `conv2d: input ${fmt(x.shape)} with groups=${p.groups} needs weight [O, ${C / p.groups}, kh, kw] with O divisible by ${p.groups}, got ${fmt(weight.shape)}`,
    );
  }
  if (
    conv2dOutputShape(x.shape, weight.shape, p)
      .slice(2)
      .some((d) => d < 1)
  ) {
    throw new ShapeError(`conv2d: kernel ${kh}×${kw} (dilation ${p.dilation.join('×')}) is larger than padded input ${fmt(x.shape)}`);
  }
  const dtype = promoteTypes(x.dtype, weight.dtype);
  return addChannelBias(convRaw(cast(x, dtype), cast(weight, dtype), p), bias, 'conv2d');
}

/**
 * Transposed convolution, `torch.nn.functional.conv_transpose2d`. weight: [C, O/groups, kh, kw].
 *
 * @example
 * ```ts
 * k.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 });
 * ```
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: ConvTranspose2dOptions = {}): Tensor {
  if (x.ndim !== 4 || weight.ndim !== 4) {
    throw new ShapeError(`convTranspose2d: input ${fmt(x.shape)} and weight ${fmt(weight.shape)} must both be 4-D`);
  }
  const p = params('convTranspose2d', weight, options);
  const op = pair(options.outputPadding, 0);
  const [N, C, H, W] = x.shape;
  const [Cw, Og, kh, kw] = weight.shape;
  if (C !== Cw || C % p.groups !== 0) {
    throw new ShapeError(`convTranspose2d: input ${fmt(x.shape)} needs weight [${C}, O/groups, kh, kw], got ${fmt(weight.shape)}`);
  }
  if (op.some((v, i) => v >= Math.max(p.stride[i], p.dilation[i]) || v < 0)) {
    throw new ArgumentError(`convTranspose2d: outputPadding [${op.join(', ')}] must be smaller than stride or dilation`);
  }
  const Ho = convTransposeOutputSize(H, kh, p.stride[0], p.padding[0], p.dilation[0], op[0]);
  const Wo = convTransposeOutputSize(W, kw, p.stride[1], p.padding[1], p.dilation[1], op[1]);
  if (Ho < 1 || Wo < 1) throw new ShapeError(`convTranspose2d: output size ${Ho}×${Wo} for input ${fmt(x.shape)} is not positive`);
  const dtype = promoteTypes(x.dtype, weight.dtype);
  const y = convInputGrad(cast(x, dtype), cast(weight, dtype), [N, Og * p.groups, Ho, Wo], p);
  return addChannelBias(y, bias, 'convTranspose2d');
}

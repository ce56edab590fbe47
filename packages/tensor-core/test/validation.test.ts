/**
 * Bad arguments to view, creation and random ops: each is a `KilnError` subclass whose message
 * names the argument, thrown before anything is allocated (issue 8, §2).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';

beforeAll(async () => {
  await k.useBackend('cpu');
});

/** Asserts that `fn` throws `type` (a KilnError) with a message matching `message`. */
function refuses(fn: () => unknown, type: typeof k.KilnError, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'should throw').toBeInstanceOf(type);
  expect(thrown).toBeInstanceOf(k.KilnError);
  expect((thrown as Error).message).toMatch(message);
}

const int32 = (data: number[]) => k.tensor(data, { dtype: 'int32' });

describe('view ops refuse invalid sizes and indices', () => {
  it('expand([-5])', () => refuses(() => k.zeros([1]).expand([-5]), k.ShapeError, /expand: size -5 at dim 0/));
  it('expand([2, -1, 3]) on a 1-d tensor (-1 in a new leading dim)', () =>
    refuses(() => k.zeros([3]).expand([2, -1, 3]), k.ShapeError, /expand: size -1 at dim 1 .* new leading dim/));
  it('expand with a fractional size', () => refuses(() => k.zeros([1, 3]).expand([2.5, 3]), k.ShapeError, /expand: size 2.5 at dim 0/));
  it('expand still keeps existing dims with -1', () => expect(k.zeros([3, 1]).expand([2, -1, 4]).shape).toEqual([2, 3, 4]));
  it('slice(0, NaN)', () => refuses(() => k.zeros([4]).slice(0, NaN), k.ArgumentError, /slice: start must be an integer, got NaN/));
  it('slice with a fractional end', () => refuses(() => k.zeros([4]).slice(0, 0, 2.5), k.ArgumentError, /slice: end must be an integer/));
  it('split([7, -2]) (sums to the dim, but a size is negative)', () =>
    refuses(() => k.zeros([5]).split([7, -2]), k.ArgumentError, /split: size -2 at position 1/));
  it('split with a fractional size', () => refuses(() => k.zeros([5]).split([2.5, 2.5]), k.ArgumentError, /split: size 2.5/));
  it('select with a fractional index', () =>
    refuses(() => k.zeros([3]).select(0, 1.5), k.ArgumentError, /select: index must be an integer, got 1.5/));
  it('narrow outside the dim', () =>
    refuses(() => k.zeros([4]).narrow(0, 2, 3), k.ArgumentError, /narrow: length 3 from 2 does not fit dim 0 of size 4/));
  it('chunk into a fractional count', () =>
    refuses(() => k.zeros([4]).chunk(1.5), k.ArgumentError, /chunk: chunks must be a positive integer/));
  it('size() with a dim out of range', () => refuses(() => k.zeros([2]).size(3), k.ArgumentError, /size: dim 3 is out of range/));
  it('flip naming a dim twice', () =>
    refuses(() => k.zeros([2, 3]).flip([1, -1]), k.ArgumentError, /flip: dims \[1, -1\] name a dim twice/));
});

describe('creation ops refuse invalid shapes and dtypes', () => {
  it('zeros with dtype int64', () =>
    refuses(() => k.zeros([2], { dtype: 'int64' as never }), k.DTypeError, /full: dtype: unknown dtype "int64"/));
  it('cast to int64', () => refuses(() => k.cast(k.zeros([2]), 'int64' as never), k.DTypeError, /cast: dtype: unknown dtype "int64"/));
  it('Tensor.to(int64)', () => refuses(() => k.zeros([2]).to('int64' as never), k.DTypeError, /unknown dtype "int64"/));
  it('randn with dtype int64', () => refuses(() => k.randn([2], { dtype: 'int64' as never }), k.DTypeError, /randn: dtype: unknown dtype/));
  it('ones with a fractional size', () => refuses(() => k.ones([2, 1.5]), k.ShapeError, /full: shape \[2, 1.5\]/));
  it('linspace with fractional steps', () =>
    refuses(() => k.linspace(0, 1, 2.5), k.ArgumentError, /linspace: steps must be a non-negative integer/));
  it('arange to Infinity', () => refuses(() => k.arange(0, Infinity), k.ArgumentError, /arange: end must be a finite number/));
  it('a size beyond what the backend can hold is a BackendError, not a RangeError', () =>
    refuses(() => k.zeros([2 ** 40]), k.BackendError, /full: backend 'cpu' cannot hold shape \[1099511627776\]/));
  it('tensor() with a size beyond what the backend can hold', () =>
    refuses(() => k.rand([2 ** 20, 2 ** 20]), k.BackendError, /rand: backend 'cpu' cannot hold shape/));
});

describe('randint refuses what int32 cannot hold', () => {
  it('a negative shape', () => refuses(() => k.randint(0, 5, [-2]), k.ShapeError, /randint: shape \[-2\]/));
  it('high above 2^31 (int32 wraps)', () =>
    refuses(() => k.randint(0, 2 ** 32, [2]), k.ArgumentError, /randint: high 4294967296 is above the largest int32 \+ 1/));
  it('low below -2^31', () =>
    refuses(() => k.randint(-(2 ** 31) - 1, 0, [2]), k.ArgumentError, /randint: low -2147483649 is below the smallest int32/));
  it('a fractional bound', () => refuses(() => k.randint(0, 2.5, [2]), k.ArgumentError, /randint: high must be an integer/));
  it('high = 2^31 is fine, as in torch (high is exclusive)', async () => {
    const v = Array.from(await k.randint(0, 2 ** 31, [64], { seed: 1 }).data());
    expect(v.every((x) => x >= 0 && x < 2 ** 31)).toBe(true);
    // Ranges past 2^24 use all 32 bits of a lane: the low bits are not all zero.
    expect(v.some((x) => x % 256 !== 0)).toBe(true);
  });
  it('a seed that is not a non-negative integer', () =>
    refuses(() => k.randn([2], { seed: -1 }), k.ArgumentError, /seed must be a non-negative safe integer/));
});

describe('out-of-range ids are ArgumentErrors, not RangeErrors', () => {
  it('embedding', () =>
    refuses(
      () => k.embedding(int32([0, 7]), k.zeros([3, 2])),
      k.ArgumentError,
      /embedding: ids hold an id outside \[0, 3\) for weight \[3, 2\]/,
    ));
  it('indexSelect', () =>
    refuses(
      () => k.indexSelect(k.zeros([2, 3]), 1, int32([3])),
      k.ArgumentError,
      /indexSelect: index holds an id outside \[0, 3\) for dim 1/,
    ));
  it('gather (an id past its row would land in the next one; it is refused)', () =>
    refuses(
      () => k.gather(k.zeros([2, 3]), 1, int32([0, 3]).reshape([1, 2])),
      k.ArgumentError,
      /gather: index holds an id outside \[0, 3\) for dim 1/,
    ));
  it('gather with a negative id', () =>
    refuses(() => k.gather(k.zeros([2, 3]), 0, int32([-1]).reshape([1, 1])), k.ArgumentError, /gather: index/));
  it('gather with a float index', () =>
    refuses(() => k.gather(k.zeros([2, 3]), 0, k.zeros([1, 1])), k.ArgumentError, /gather: index must be int32/));
});

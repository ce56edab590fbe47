// loadStateDict's promise: nothing is loaded unless everything checks out, and every problem is a
// StateDictError (a KilnError) that lists it.
import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import { Linear, Module, StateDictError } from '../src/index.js';
import { values } from './helpers.js';

class Two extends Module {
  readonly a = this.registerModule('a', new Linear(2, 2));
  readonly b = this.registerModule('b', new Linear(2, 2));
}

/** A full, valid dict of ones, as a null-prototype record. */
function ones(): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const [key, t] of Object.entries(new Two().stateDict())) out[key] = k.onesLike(t);
  return out;
}

/** Loads `dict` and checks that it threw a StateDictError and that no parameter changed. */
async function refused(dict: Record<string, unknown>, options: { strict?: boolean } = {}): Promise<StateDictError> {
  const m = new Two();
  const before = await Promise.all(m.parameters().map(values));
  let err: unknown;
  try {
    m.loadStateDict(dict as Record<string, k.Tensor>, options);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(StateDictError);
  expect(err).toBeInstanceOf(k.KilnError);
  expect(await Promise.all(m.parameters().map(values))).toEqual(before);
  return err as StateDictError;
}

describe('loadStateDict refuses before loading anything', () => {
  it('reports keys like constructor and toString as unexpected', async () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      const dict = ones();
      dict[key] = k.tensor([1]);
      const err = await refused(dict);
      expect(err.unexpectedKeys).toEqual([key]);
    }
  });

  it('counts null and undefined values as present but invalid', async () => {
    for (const bad of [null, undefined]) {
      const dict = ones();
      dict['b.bias'] = bad;
      const err = await refused(dict);
      expect(err.missingKeys).toEqual([]);
      expect(err.invalidValues).toEqual([{ key: 'b.bias', reason: `is ${bad === null ? 'null' : 'undefined'}, not a tensor` }]);
      expect(err.message).toMatch(/invalid value for b\.bias/);
      await refused(dict, { strict: false }); // not even non-strict mode loads a null
    }
  });

  it('detects a disposed tensor before overwriting the others', async () => {
    const dict = ones();
    (dict['b.weight'] as k.Tensor).dispose(); // after a.weight, a.bias in load order
    const err = await refused(dict);
    expect(err.invalidValues).toEqual([{ key: 'b.weight', reason: 'was disposed' }]);
  });

  it('gives a StateDictError, not a TypeError, for a value that is not a tensor', async () => {
    for (const bad of [3, 'w', [1, 2], { shape: [2] }]) {
      const dict = ones();
      dict['a.weight'] = bad;
      const err = await refused(dict);
      expect(err.invalidValues.map((v) => v.key)).toEqual(['a.weight']);
    }
  });

  it('still loads a good dict, through a Map too', async () => {
    const m = new Two();
    m.loadStateDict(new Map(Object.entries(ones()) as [string, k.Tensor][]));
    expect(await values(m.b.weight)).toEqual([1, 1, 1, 1]);
  });
});

import * as k from '@kiln/tensor-core';
import { Module } from '../module.js';

/**
 * Zeroes elements with probability `p` and scales the rest by 1/(1−p) in training mode; the
 * identity after `eval()`. Masks come from the global generator.
 *
 * @example
 * ```ts
 * const drop = new Dropout(0.1);
 * drop.eval().forward(x) === x; // true
 * ```
 */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new k.ArgumentError(`Dropout: p must be in [0, 1], got ${p}`);
  }

  forward(x: k.Tensor): k.Tensor {
    return k.dropout(x, this.p, this.training);
  }
}

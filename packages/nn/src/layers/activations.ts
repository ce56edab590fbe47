import * as k from '@kiln/tensor-core';
import { Module } from '../module.js';

/**
 * `x · sigmoid(x)` (`torch.nn.SiLU`).
 *
 * @example
 * ```ts
 * new SiLU().forward(k.tensor([0, 1])); // [0, 0.7311]
 * ```
 */
export class SiLU extends Module {
  forward(x: k.Tensor): k.Tensor {
    return k.silu(x);
  }
}

/**
 * GELU (`torch.nn.GELU`), exact or with `approximate: 'tanh'`.
 *
 * @example
 * ```ts
 * new GELU({ approximate: 'tanh' }).forward(x);
 * ```
 */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(options: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    this.approximate = options.approximate ?? 'none';
  }
  forward(x: k.Tensor): k.Tensor {
    return k.gelu(x, { approximate: this.approximate });
  }
}

/**
 * `x · sigmoid(1.702 x)`, the GELU approximation OpenAI's CLIP was trained with
 * (`transformers`' `quick_gelu`).
 *
 * @example
 * ```ts
 * new QuickGELU().forward(x);
 * ```
 */
export class QuickGELU extends Module {
  forward(x: k.Tensor): k.Tensor {
    return k.quickGelu(x);
  }
}

/**
 * Returns its input unchanged (`torch.nn.Identity`), e.g. where a block has no shortcut conv.
 *
 * @example
 * ```ts
 * new Identity().forward(x) === x; // true
 * ```
 */
export class Identity extends Module {
  forward(x: k.Tensor): k.Tensor {
    return x;
  }
}

import type * as k from '@kiln/tensor-core';
import type { UnaryModule } from '../module.js';
import { ModuleList } from './module-list.js';

/**
 * Applies its modules in order (`torch.nn.Sequential`); children are named `0`, `1`, … as upstream.
 *
 * @example
 * ```ts
 * const mlp = new Sequential([new Linear(4, 8), new SiLU(), new Linear(8, 2)]);
 * mlp.forward(k.randn([3, 4])).shape; // [3, 2]
 * Object.keys(mlp.stateDict()); // ['0.weight', '0.bias', '2.weight', '2.bias']
 * ```
 */
export class Sequential<M extends UnaryModule = UnaryModule> extends ModuleList<M> {
  forward(x: k.Tensor): k.Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}

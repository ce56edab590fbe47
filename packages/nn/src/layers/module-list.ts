import { Module } from '../module.js';

/**
 * An indexable list of submodules registered as `0`, `1`, … (`torch.nn.ModuleList`), which is
 * how upstream keys such as `down_blocks.0.resnets.1.conv1.weight` get their numbers.
 *
 * @example
 * ```ts
 * const layers = new ModuleList([new Linear(8, 8), new Linear(8, 8)]);
 * layers.at(1).weight; // key '1.weight'
 * for (const layer of layers) x = layer.forward(x);
 * ```
 */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  /** Appends a module under the next index. Returns this. */
  push(module: M): this {
    this.registerModule(String(this.#items.length), module);
    this.#items.push(module);
    return this;
  }

  /** The module at `index` (negative counts from the end); throws when out of range. */
  at(index: number): M {
    const m = this.#items.at(index);
    if (m === undefined) throw new RangeError(`ModuleList: index ${index} out of range for length ${this.#items.length}`);
    return m;
  }

  get length(): number {
    return this.#items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

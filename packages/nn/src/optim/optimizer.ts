import * as k from '@kiln/tensor-core';
import { OptimizerError } from '../errors.js';

/** A hyperparameter value: what param groups and saved states hold besides tensors. @example new AdamW(params, { lr: 1e-4, betas: [0.9, 0.999] }); // numbers, booleans and number lists */
export type HyperValue = number | boolean | readonly number[];

/** The hyperparameters every optimizer has. @example for (const g of opt.paramGroups) g.lr = 1e-5; // every optimizer's groups have lr */
export interface BaseHyper {
  lr: number;
  /** The lr an LR schedule scales; set by the first schedule attached (PyTorch's `initial_lr`). */
  initialLr?: number;
}

/** A group of parameters sharing hyperparameters. @example opt.paramGroups[1].lr; // the hyperparameters of one group, with its params */
export type ParamGroup<H extends BaseHyper> = H & { params: k.Tensor[] };

/** A param group as given to a constructor: unspecified hyperparameters take the defaults. @example new AdamW([{ params: unet.parameters() }, { params: textEncoder.parameters(), lr: 5e-6 }], { lr: 1e-4 }); */
export type ParamGroupInput<H extends BaseHyper> = Partial<H> & { params: Iterable<k.Tensor> };

/** Per-parameter optimizer state: step counts and moment tensors. @example const { state } = opt.stateDict(); // per parameter index: step counts and moment tensors */
export type ParamState = Record<string, number | k.Tensor>;

/**
 * A serialisable snapshot of an optimizer, `torch.optim.Optimizer.state_dict()`-shaped:
 * parameters are referred to by their index across all groups, in order.
 *
 * @example
 * ```ts
 * const saved = opt.stateDict();
 * opt.loadStateDict(saved); // resume exactly
 * ```
 */
export interface OptimizerStateDict<H extends BaseHyper> {
  state: Record<number, ParamState>;
  paramGroups: (H & { params: number[] })[];
}

function isGroupList<H extends BaseHyper>(params: Iterable<k.Tensor> | Iterable<ParamGroupInput<H>>): ParamGroupInput<H>[] | null {
  const items = [...params] as (k.Tensor | ParamGroupInput<H>)[];
  if (items.length > 0 && items.every((p) => !(p instanceof k.Tensor))) return items as ParamGroupInput<H>[];
  if (items.some((p) => !(p instanceof k.Tensor))) throw new OptimizerError('optimizer: pass either tensors or param groups, not a mix');
  return null;
}

/**
 * The base of the optimizers: param groups, per-parameter state and exact save/restore.
 * Subclasses implement `step()`.
 *
 * @example
 * ```ts
 * const opt = new AdamW([{ params: unet.parameters() }, { params: textEncoder.parameters(), lr: 5e-6 }], { lr: 1e-4 });
 * ```
 */
export abstract class Optimizer<H extends BaseHyper, S extends ParamState = ParamState> {
  readonly defaults: Readonly<H>;
  readonly paramGroups: ParamGroup<H>[];
  /** @internal State per parameter tensor; tensors in it are owned by the optimizer. */
  protected readonly state = new Map<k.Tensor, S>();

  constructor(params: Iterable<k.Tensor> | Iterable<ParamGroupInput<H>>, defaults: H) {
    this.defaults = Object.freeze({ ...defaults });
    const groups = isGroupList(params) ?? [{ params: params as Iterable<k.Tensor> } as ParamGroupInput<H>];
    const seen = new Set<k.Tensor>();
    this.paramGroups = groups.map((g) => {
      const list = [...g.params];
      for (const p of list) {
        if (seen.has(p)) throw new OptimizerError('optimizer: a parameter appears in more than one group (or twice in one)');
        seen.add(p);
      }
      // An option given as undefined means "use the default", as an omitted one does.
      const given = Object.fromEntries(Object.entries(g).filter(([key, v]) => key !== 'params' && v !== undefined));
      const group = { ...defaults, ...given, params: list } as ParamGroup<H>;
      this.validate(group);
      return group;
    });
    if (seen.size === 0) throw new OptimizerError('optimizer: got an empty parameter list');
  }

  /** Throws an {@link OptimizerError} when a group's hyperparameters are out of range. */
  protected abstract validate(group: ParamGroup<H>): void;

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void;

  /**
   * Frees the gradients of all parameters and sets them to null.
   *
   * @example
   * ```ts
   * opt.step();
   * opt.zeroGrad();
   * ```
   */
  zeroGrad(): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /**
   * A snapshot of step counts, moment tensors and hyperparameters. Tensors are copies owned by
   * the caller (dispose them when done), so training can go on without changing the snapshot.
   *
   * @example
   * ```ts
   * const saved = opt.stateDict();
   * // … later, into a fresh optimizer over the same parameters:
   * opt2.loadStateDict(saved);
   * ```
   */
  stateDict(): OptimizerStateDict<H> {
    const state: Record<number, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const ids: number[] = [];
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s) state[index] = copyState(s);
        ids.push(index++);
      }
      const { params: _params, ...hyper } = g;
      return { ...(structuredClone(hyper) as unknown as H), params: ids };
    });
    return { state, paramGroups };
  }

  /**
   * Restores a {@link stateDict} snapshot: hyperparameters per group and per-parameter state
   * (copied, and cast to each parameter's dtype). The optimizer must have the same group
   * structure; the snapshot can be loaded more than once.
   *
   * @example
   * ```ts
   * opt.loadStateDict(saved);
   * ```
   */
  loadStateDict(dict: OptimizerStateDict<H>): void {
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw new OptimizerError(
        `loadStateDict: the state has ${dict.paramGroups.length} param groups, the optimizer ${this.paramGroups.length}`,
      );
    }
    const byIndex = new Map<number, k.Tensor>();
    dict.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi];
      if (saved.params.length !== group.params.length) {
        throw new OptimizerError(
          `loadStateDict: param group ${gi} has ${saved.params.length} parameters in the state, ${group.params.length} in the optimizer`,
        );
      }
      saved.params.forEach((id, j) => byIndex.set(id, group.params[j]));
    });
    for (const [id, s] of Object.entries(dict.state)) {
      const p = byIndex.get(Number(id));
      if (!p) throw new OptimizerError(`loadStateDict: state for parameter ${id}, which no param group lists`);
      for (const [name, v] of Object.entries(s)) {
        if (v instanceof k.Tensor && v.shape.join() !== p.shape.join()) {
          throw new OptimizerError(
            `loadStateDict: state '${name}' of parameter ${id} has shape [${v.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`,
          );
        }
      }
    }
    this.disposeState();
    dict.paramGroups.forEach((saved, gi) => {
      const { params: _params, ...hyper } = saved;
      Object.assign(this.paramGroups[gi], structuredClone(hyper));
    });
    for (const [id, s] of Object.entries(dict.state)) {
      const p = byIndex.get(Number(id))!;
      this.state.set(p, copyState(s, p.dtype) as S);
    }
  }

  /**
   * Frees the optimizer's state tensors (moments, momentum buffers); the next step starts fresh.
   *
   * @example
   * ```ts
   * opt.dispose();
   * ```
   */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof k.Tensor) v.dispose();
    this.state.clear();
  }
}

/** A deep copy of one parameter's state, outside every tidy scope, optionally cast to `dtype`. */
function copyState(s: ParamState, dtype?: k.DType): ParamState {
  const out: ParamState = {};
  for (const [name, v] of Object.entries(s)) {
    if (v instanceof k.Tensor) {
      const cast = dtype && k.isFloat(v.dtype) && v.dtype !== dtype;
      out[name] = k.keep(k.noGrad(() => (cast ? k.cast(v, dtype) : k.clone(v))));
    } else out[name] = v;
  }
  return out;
}

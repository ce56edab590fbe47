import { OptimizerError } from '../errors.js';
import type { BaseHyper, Optimizer } from './optimizer.js';

/**
 * A multiplier of the initial lr as a function of the step count (what `LambdaLR` takes).
 *
 * @example
 * ```ts
 * const warmup: LrLambda = (step) => Math.min(1, (step + 1) / 500);
 * const sched = new LambdaLR(opt, warmup);
 * ```
 */
export type LrLambda = (step: number) => number;

/**
 * What an LR scheduler saves: the step count and the lrs it scales.
 *
 * @example
 * ```ts
 * const saved = lrScheduler.stateDict();
 * lrScheduler.loadStateDict(saved);
 * ```
 */
export interface LRSchedulerState {
  lastEpoch: number;
  baseLrs: number[];
}

/**
 * `torch.optim.lr_scheduler.LambdaLR`: sets each group's lr to `initialLr · lambda(step)`.
 * Construction applies step 0 (as PyTorch does), and each `step()` call, made after
 * `optimizer.step()`, advances one.
 *
 * @example
 * ```ts
 * const sched = new LambdaLR(opt, (step) => Math.min(1, step / 100));
 * for (let i = 0; i < steps; i++) { …; opt.step(); sched.step(); }
 * ```
 */
export class LambdaLR {
  /** The number of `step()` calls so far (PyTorch's `last_epoch`). */
  lastEpoch: number;
  /** Each group's initial lr (the lr when the first schedule was attached). */
  baseLrs: number[];
  #lastLr: number[] = [];

  constructor(
    readonly optimizer: Optimizer<BaseHyper>,
    readonly lrLambda: LrLambda,
    lastEpoch = -1,
  ) {
    for (const g of optimizer.paramGroups) {
      if (lastEpoch === -1) g.initialLr ??= g.lr;
      else if (g.initialLr === undefined)
        throw new OptimizerError('LambdaLR: resuming (lastEpoch ≠ -1) needs initialLr in every param group');
    }
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.lastEpoch = lastEpoch;
    this.step();
  }

  /**
   * Advances one step and updates the optimizer's learning rates.
   *
   * @example
   * ```ts
   * opt.step();
   * sched.step();
   * ```
   */
  step(): void {
    this.lastEpoch += 1;
    this.#apply();
  }

  #apply(): void {
    const factor = this.lrLambda(this.lastEpoch);
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.baseLrs[i] * factor;
    });
    this.#lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  /**
   * The lrs set by the last step, one per param group.
   *
   * @example
   * ```ts
   * tracker.log({ lr: sched.getLastLr()[0] });
   * ```
   */
  getLastLr(): number[] {
    return [...this.#lastLr];
  }

  /**
   * The step count and base lrs, for checkpoints.
   *
   * @example
   * ```ts
   * const saved = sched.stateDict();
   * ```
   */
  stateDict(): LRSchedulerState {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs] };
  }

  /**
   * Restores a {@link stateDict} and re-applies the lr of that step to the optimizer.
   *
   * @example
   * ```ts
   * sched.loadStateDict(saved);
   * ```
   */
  loadStateDict(state: LRSchedulerState): void {
    if (state.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw new OptimizerError(
        `LambdaLR.loadStateDict: ${state.baseLrs.length} base lrs for ${this.optimizer.paramGroups.length} param groups`,
      );
    }
    this.lastEpoch = state.lastEpoch;
    this.baseLrs = [...state.baseLrs];
    this.#apply();
  }
}

/** diffusers' schedule names (`diffusers.optimization.SchedulerType`). @example getScheduler('cosine', { optimizer: opt, numWarmupSteps: 100, numTrainingSteps: 1000 }); */
export type SchedulerName =
  'linear' | 'cosine' | 'cosine_with_restarts' | 'polynomial' | 'constant' | 'constant_with_warmup' | 'piecewise_constant';

/** Arguments of {@link getScheduler}, diffusers' `get_scheduler` keywords camel-cased. @example getScheduler('polynomial', { optimizer: opt, numWarmupSteps: 0, numTrainingSteps: 800, power: 1, lrEnd: 1e-7 }); */
export interface GetSchedulerOptions {
  optimizer: Optimizer<BaseHyper>;
  numWarmupSteps?: number;
  numTrainingSteps?: number;
  /** Hard restarts of `cosine_with_restarts` (default 1). `cosine` always uses 0.5, as in diffusers. */
  numCycles?: number;
  /** Exponent of `polynomial` (default 1). */
  power?: number;
  /** Final lr of `polynomial` (default 1e-7). */
  lrEnd?: number;
  /** Rules of `piecewise_constant`, e.g. "1:10,0.1:20,0.01". */
  stepRules?: string;
  lastEpoch?: number;
}

const warmup = (step: number, numWarmup: number): number => step / Math.max(1, numWarmup);

/**
 * The LR schedules of `diffusers.optimization.get_scheduler`, with its exact formulas and its
 * argument handling (including its quirks: `cosine` ignores `numCycles` and uses half a cosine;
 * `polynomial` decays from the optimizer's default lr towards `lrEnd`).
 *
 * @example
 * ```ts
 * const sched = getScheduler('cosine', { optimizer: opt, numWarmupSteps: 100, numTrainingSteps: 1000 });
 * ```
 */
export function getScheduler(name: SchedulerName, options: GetSchedulerOptions): LambdaLR {
  const { optimizer, numWarmupSteps: warm, numTrainingSteps: total, lastEpoch = -1 } = options;
  const make = (fn: LrLambda) => new LambdaLR(optimizer, fn, lastEpoch);
  if (name === 'constant') return make(() => 1);
  if (name === 'piecewise_constant') return make(piecewise(options.stepRules));
  if (warm === undefined) throw new OptimizerError(`${name} requires \`numWarmupSteps\`, please provide that argument.`);
  if (name === 'constant_with_warmup') return make((s) => (s < warm ? s / Math.max(1, warm) : 1));
  if (total === undefined) throw new OptimizerError(`${name} requires \`numTrainingSteps\`, please provide that argument.`);
  const progress = (s: number) => (s - warm) / Math.max(1, total - warm);
  switch (name) {
    case 'linear':
      return make((s) => (s < warm ? warmup(s, warm) : Math.max(0, (total - s) / Math.max(1, total - warm))));
    case 'cosine':
      return make((s) => (s < warm ? warmup(s, warm) : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress(s))))));
    case 'cosine_with_restarts': {
      const cycles = options.numCycles ?? 1;
      return make((s) => {
        if (s < warm) return warmup(s, warm);
        const p = progress(s);
        if (p >= 1) return 0;
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * pyMod(cycles * p, 1))));
      });
    }
    case 'polynomial': {
      const lrInit = optimizer.defaults.lr;
      const lrEnd = options.lrEnd ?? 1e-7;
      const power = options.power ?? 1;
      if (!(lrInit > lrEnd)) throw new OptimizerError(`lr_end (${lrEnd}) must be smaller than initial lr (${lrInit})`);
      return make((s) => {
        if (s < warm) return warmup(s, warm);
        if (s > total) return lrEnd / lrInit;
        const pctRemaining = 1 - (s - warm) / (total - warm);
        return ((lrInit - lrEnd) * pctRemaining ** power + lrEnd) / lrInit;
      });
    }
    default:
      throw new OptimizerError(
        `unknown scheduler '${String(name)}'; expected one of linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, piecewise_constant`,
      );
  }
}

/** Python's `%` (result has the divisor's sign), which the restart formula relies on. */
function pyMod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

function piecewise(rules: string | undefined): LrLambda {
  if (!rules) throw new OptimizerError('piecewise_constant requires `stepRules`, e.g. "1:10,0.1:20,0.01"');
  const parts = rules.split(',');
  const table = new Map<number, number>();
  for (const rule of parts.slice(0, -1)) {
    const [value, steps] = rule.split(':');
    const v = Number(value);
    const s = Number.parseInt(steps ?? '', 10);
    if (!Number.isFinite(v) || !Number.isInteger(s)) throw new OptimizerError(`piecewise_constant: bad rule '${rule}' in '${rules}'`);
    table.set(s, v);
  }
  const last = Number(parts[parts.length - 1]);
  if (!Number.isFinite(last)) throw new OptimizerError(`piecewise_constant: bad final multiplier in '${rules}'`);
  const sorted = [...table.keys()].sort((a, b) => a - b);
  return (step) => {
    for (const s of sorted) if (step < s) return table.get(s)!;
    return last;
  };
}

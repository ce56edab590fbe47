import * as k from '@kiln/tensor-core';

/**
 * Picks the backend for an example: `KILN_BACKEND` if set, else the fastest one that works
 * here (wasm, then cpu).
 */
export async function pickBackend(preferred = process.env.KILN_BACKEND): Promise<string> {
  if (preferred) {
    await k.useBackend(preferred);
    return preferred;
  }
  for (const name of ['wasm', 'cpu']) {
    if (!k.listBackends().includes(name)) continue;
    try {
      await k.useBackend(name);
      return name;
    } catch {
      // Not available on this machine: try the next one.
    }
  }
  throw new Error('no backend available');
}

/** Adam (Kingma & Ba) over the public tensor API: the update is plain tensor ops. */
export class Adam {
  private m: k.Tensor[];
  private v: k.Tensor[];
  private t = 0;
  constructor(
    private readonly params: k.Tensor[],
    private readonly lr = 1e-2,
    private readonly betas: [number, number] = [0.9, 0.999],
    private readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => k.keep(k.zerosLike(p)));
    this.v = params.map((p) => k.keep(k.zerosLike(p)));
  }

  step(): void {
    this.t++;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    k.noGrad(() =>
      k.tidy(() => {
        this.params.forEach((p, i) => {
          const g = p.grad;
          if (!g) return;
          const m = this.m[i].mul(b1).add(g.mul(1 - b1));
          const v = this.v[i].mul(b2).add(g.square().mul(1 - b2));
          p.assign_(p.sub(m.div(c1).div(v.div(c2).sqrt().add(this.eps)).mul(this.lr)));
          this.m[i].assign_(m);
          this.v[i].assign_(v);
        });
      }),
    );
  }

  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
}

/** Plain SGD over the public API. */
export class SGD {
  constructor(
    private readonly params: k.Tensor[],
    private readonly lr: number,
  ) {}
  step(): void {
    k.noGrad(() => k.tidy(() => this.params.forEach((p) => p.grad && p.assign_(p.sub(p.grad.mul(this.lr))))));
  }
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }
}

/** PyTorch's default Linear/Conv init: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), seeded. */
export function uniformInit(shape: number[], fanIn: number, seed: number): k.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return k
    .tidy(() =>
      k
        .rand(shape, { seed })
        .mul(2 * bound)
        .sub(bound),
    )
    .requiresGrad_(true);
}

/** True when this module is the program node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && new URL(url).pathname.endsWith(process.argv[1].replace(/^.*\/examples\//, '/examples/'));
}

export interface TrainResult {
  backend: string;
  losses: number[];
  /** `k.memory()` after each step: flat when nothing leaks. */
  liveTensors: number[];
  liveBytes: number[];
  msPerStep: number;
}

/**
 * The training loop both examples share: each step computes the loss and its gradients inside
 * `tidy`, steps the optimizer, and records the loss and `k.memory()`.
 */
export async function trainLoop(
  backend: string,
  lossFn: () => k.Tensor,
  opt: { step(): void; zeroGrad(): void },
  steps: number,
  logEvery = 0,
): Promise<TrainResult> {
  const result: TrainResult = { backend, losses: [], liveTensors: [], liveBytes: [], msPerStep: 0 };
  const start = performance.now();
  for (let step = 0; step < steps; step++) {
    const loss = k.tidy(() => {
      const l = lossFn();
      l.backward();
      return l;
    });
    opt.step();
    opt.zeroGrad();
    result.losses.push(await loss.item());
    loss.dispose();
    result.liveTensors.push(k.memory().liveTensors);
    result.liveBytes.push(k.memory().liveBytes);
    if (logEvery && (step % logEvery === 0 || step === steps - 1)) {
      console.log(`step ${String(step).padStart(4)}  loss ${result.losses[step].toFixed(6)}  live tensors ${result.liveTensors[step]}`);
    }
  }
  result.msPerStep = (performance.now() - start) / steps;
  return result;
}

/** One line: first → last loss, the factor, and the speed. */
export function summary(r: TrainResult): string {
  const first = r.losses[0];
  const last = r.losses[r.losses.length - 1];
  return `backend ${r.backend}: loss ${first.toFixed(4)} → ${last.toFixed(6)} (${(first / last).toFixed(1)}× lower), ${r.msPerStep.toFixed(1)} ms/step`;
}

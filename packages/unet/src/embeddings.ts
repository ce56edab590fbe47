import * as k from '@kiln/tensor-core';
import { Linear, Module } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';

/**
 * The sinusoidal frequencies of diffusers' `get_timestep_embedding`, rounded to float32 step by
 * step as PyTorch computes them: `exp(-ln(10000) · i / (half − shift))`. With timesteps near 1000 a
 * one-ulp difference in a frequency moves the sine's argument by ~1e-3, so the float32 rounding
 * order matters.
 */
function frequencies(half: number, shift: number): Float32Array {
  const f = Math.fround;
  const c = f(-Math.log(10000));
  const d = f(half - shift);
  return Float32Array.from({ length: half }, (_, i) => f(Math.exp(f(f(f(i) * c) / d))));
}

/**
 * diffusers' `Timesteps` (no parameters): maps timesteps [N] to [N, dim] sinusoidal features
 * (`[cos, sin]` halves when `flipSinToCos`). Numbers are embedded on the host in float32; a
 * tensor is embedded with tensor ops on its backend.
 *
 * @example
 * ```ts
 * new Timesteps(320, true, 0).forward([999, 37]).shape; // [2, 320]
 * ```
 */
export class Timesteps extends Module {
  constructor(
    readonly numChannels: number,
    readonly flipSinToCos: boolean,
    readonly freqShift: number,
  ) {
    super();
  }

  forward(timesteps: k.Tensor | readonly number[], options: FactoryOptions = {}): k.Tensor {
    const half = Math.floor(this.numChannels / 2);
    const freqs = frequencies(half, this.freqShift);
    const odd = this.numChannels % 2;
    if (!(timesteps instanceof k.Tensor)) {
      const n = timesteps.length;
      const out = new Float32Array(n * this.numChannels);
      for (let r = 0; r < n; r++) {
        const t = Math.fround(timesteps[r]);
        for (let i = 0; i < half; i++) {
          const arg = Math.fround(t * freqs[i]);
          const [first, second] = this.flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
          out[r * this.numChannels + i] = first;
          out[r * this.numChannels + half + i] = second;
        }
      }
      return k.tensor(out, { shape: [n, this.numChannels], device: options.device }).to(options.dtype ?? 'float32');
    }
    const t = timesteps.to('float32').unsqueeze(1);
    const args = t.mul(k.tensor(freqs, { shape: [1, half], device: timesteps.device }));
    const [sin, cos] = [args.sin(), args.cos()];
    let emb = k.cat(this.flipSinToCos ? [cos, sin] : [sin, cos], 1);
    if (odd) emb = k.pad(emb, [0, 1]);
    return emb.to(options.dtype ?? 'float32');
  }
}

/**
 * diffusers' `TimestepEmbedding`: `linear_2(silu(linear_1(x)))`.
 *
 * @example
 * ```ts
 * new TimestepEmbedding(320, 1280).forward(k.randn([2, 320])).shape; // [2, 1280]
 * ```
 */
export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(inChannels: number, timeEmbedDim: number, o: FactoryOptions = {}) {
    super();
    this.linear1 = this.registerModule('linear_1', new Linear(inChannels, timeEmbedDim, o));
    this.linear2 = this.registerModule('linear_2', new Linear(timeEmbedDim, timeEmbedDim, o));
  }

  forward(x: k.Tensor): k.Tensor {
    return this.linear2.forward(k.silu(this.linear1.forward(x)));
  }
}

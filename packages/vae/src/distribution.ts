import * as k from '@kiln/tensor-core';

/** A generator for {@link DiagonalGaussianDistribution.sample}: tensor-core's, or a seed. @example latentDist.sample(42); latentDist.sample(new k.Generator(42)); // a seed, or a generator that advances */
export type SampleGenerator = NonNullable<k.RandomOptions['generator']> | number;

/**
 * diffusers' `DiagonalGaussianDistribution`: the VAE posterior N(mean, exp(logvar)) from the
 * encoder's moments [N, 2·C, H, W] (log-variance clamped to [−30, 20], as diffusers does).
 *
 * @example
 * ```ts
 * const { latentDist } = vae.encode(image);
 * const latents = latentDist.sample(k.manualSeed(0)).mul(vae.config.scaling_factor);
 * ```
 */
export class DiagonalGaussianDistribution {
  /** [N, C, H, W]. */
  readonly mean: k.Tensor;
  /** [N, C, H, W], clamped to [−30, 20]. */
  readonly logvar: k.Tensor;
  /** exp(logvar / 2). */
  readonly std: k.Tensor;
  /** exp(logvar). */
  readonly var: k.Tensor;

  constructor(readonly parameters: k.Tensor) {
    const [mean, logvar] = parameters.chunk(2, 1);
    this.mean = mean;
    this.logvar = logvar.clamp(-30, 20);
    this.std = this.logvar.mul(0.5).exp();
    this.var = this.logvar.exp();
  }

  /**
   * `mean + std · ε` with ε ~ N(0, 1) drawn from `generator` (a tensor-core generator, which
   * advances, or a seed); differentiable in mean and std (the reparameterisation trick).
   *
   * @example
   * ```ts
   * const z = latentDist.sample(42);
   * ```
   */
  sample(generator?: SampleGenerator): k.Tensor {
    const o = { dtype: this.mean.dtype, device: this.mean.device };
    const eps =
      typeof generator === 'number' ? k.randn(this.mean.shape, { ...o, seed: generator }) : k.randn(this.mean.shape, { ...o, generator });
    return this.mean.add(this.std.mul(eps));
  }

  /**
   * The most likely latent: the mean.
   *
   * @example
   * ```ts
   * const z = vae.encode(image).latentDist.mode();
   * ```
   */
  mode(): k.Tensor {
    return this.mean;
  }

  /**
   * KL divergence to N(0, 1) per sample, summed over C, H, W (diffusers' `kl()` without `other`).
   *
   * @example
   * ```ts
   * const kl = latentDist.kl().mean();
   * ```
   */
  kl(): k.Tensor {
    return this.mean.square().add(this.var).sub(1).sub(this.logvar).sum([1, 2, 3]).mul(0.5);
  }
}

import { ConfigError } from '@kiln/nn';

/**
 * A AutoencoderKL config that Kiln cannot build: a field with a wrong type, or a value Kiln does not
 * implement. `file` is the config's path (or `AutoencoderKL config`); `issues` name each field.
 *
 * @example
 * ```ts
 * try {
 *   new AutoencoderKL({ act_fn: 'gelu' });
 * } catch (err) {
 *   if (err instanceof VAEConfigError) console.log(err.issues);
 * }
 * ```
 */
export class VAEConfigError extends ConfigError {
  override name = 'VAEConfigError';
}

import { ConfigError } from '@kiln/nn';

/**
 * A UNet2DConditionModel config that Kiln cannot build: a field with a wrong type, or a value Kiln does not
 * implement. `file` is the config's path (or `UNet2DConditionModel config`); `issues` name each field.
 *
 * @example
 * ```ts
 * try {
 *   new UNet2DConditionModel({ class_embed_type: 'timestep' });
 * } catch (err) {
 *   if (err instanceof UNetConfigError) console.log(err.issues);
 * }
 * ```
 */
export class UNetConfigError extends ConfigError {
  override name = 'UNetConfigError';
}

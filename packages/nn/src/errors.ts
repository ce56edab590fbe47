import * as k from '@kiln/tensor-core';

/** One key whose tensor does not have the shape the module expects. */
export interface ShapeMismatch {
  readonly key: string;
  readonly expected: readonly number[];
  readonly got: readonly number[];
}

/**
 * `loadStateDict` found keys it cannot load. Every problem is listed at once (missing, unexpected
 * and mis-shaped keys), so a conversion bug is fixed in one round trip rather than one key at a time.
 *
 * @example
 * ```ts
 * try {
 *   model.loadStateDict(weights);
 * } catch (err) {
 *   if (err instanceof StateDictError) console.log(err.missingKeys, err.unexpectedKeys, err.shapeMismatches);
 * }
 * ```
 */
export class StateDictError extends k.KilnError {
  override name = 'StateDictError';
  constructor(
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    readonly shapeMismatches: readonly ShapeMismatch[],
    readonly module = 'Module',
  ) {
    super(StateDictError.describe(missingKeys, unexpectedKeys, shapeMismatches, module));
  }

  private static describe(
    missing: readonly string[],
    unexpected: readonly string[],
    mismatched: readonly ShapeMismatch[],
    module: string,
  ): string {
    const lines = [`Error(s) in loading state dict for ${module}:`];
    const list = (keys: readonly string[]) => keys.map((key) => `"${key}"`).join(', ');
    if (missing.length) lines.push(`  Missing key(s) (${missing.length}): ${list(missing)}`);
    if (unexpected.length) lines.push(`  Unexpected key(s) (${unexpected.length}): ${list(unexpected)}`);
    for (const m of mismatched) {
      lines.push(`  size mismatch for ${m.key}: checkpoint has shape [${m.got.join(', ')}], the module expects [${m.expected.join(', ')}]`);
    }
    return lines.join('\n');
  }
}

/** What went wrong with a safetensors file, for programs that react to it. */
export type SafetensorsErrorCode =
  | 'io'
  | 'truncated'
  | 'header_too_large'
  | 'invalid_header'
  | 'invalid_offsets'
  | 'unknown_dtype'
  | 'unsupported_dtype'
  | 'shape_mismatch'
  | 'value_out_of_range'
  | 'missing_tensor'
  | 'invalid_index';

/**
 * A safetensors file (or sharded index) that cannot be read or written. The message names the
 * file and, where one is to blame, the tensor.
 *
 * @example
 * ```ts
 * try {
 *   await loadSafetensors('model.safetensors');
 * } catch (err) {
 *   if (err instanceof SafetensorsError && err.code === 'truncated') console.log(`${err.file} is incomplete`);
 * }
 * ```
 */
export class SafetensorsError extends k.KilnError {
  override name = 'SafetensorsError';
  constructor(
    readonly code: SafetensorsErrorCode,
    detail: string,
    readonly file?: string,
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(`${file ?? '<bytes>'}${tensor !== undefined ? `: tensor '${tensor}'` : ''}: ${detail}`, options);
  }
}

/**
 * An optimizer or LR-schedule argument or state that cannot be used.
 *
 * @example
 * ```ts
 * new AdamW(params, { betas: [1, 0.999] }); // throws OptimizerError: invalid beta1 1
 * ```
 */
export class OptimizerError extends k.KilnError {
  override name = 'OptimizerError';
}

import * as k from '@kiln/tensor-core';

/** One key whose tensor does not have the shape the module expects. @example catch (e) { if (e instanceof StateDictError) for (const m of e.shapeMismatches) console.error(m.key, m.expected, m.got); } */
export interface ShapeMismatch {
  readonly key: string;
  readonly expected: readonly number[];
  readonly got: readonly number[];
}

/** One key whose value cannot be loaded at all (not a tensor, or a disposed one). @example catch (e) { if (e instanceof StateDictError) for (const v of e.invalidValues) console.error(v.key, v.reason); } */
export interface InvalidValue {
  readonly key: string;
  /** What is wrong, e.g. `'is null, not a tensor'` or `'was disposed'`. */
  readonly reason: string;
}

/** Extra context of a {@link StateDictError}. @example throw new StateDictError(missing, unexpected, mismatched, 'UNet2DConditionModel', { file: 'unet/diffusion_pytorch_model.safetensors' }); */
export interface StateDictErrorDetails {
  /** Keys whose values are not usable tensors. */
  readonly invalidValues?: readonly InvalidValue[];
  /** The file the weights came from, named in the message. */
  readonly file?: string;
}

/**
 * `loadStateDict` (or `loadWeights`) found keys it cannot load. Every problem is listed at once
 * (missing, unexpected, mis-shaped keys and values that are not tensors), so a conversion bug is
 * fixed in one round trip rather than one key at a time. Nothing was loaded when it is thrown.
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
  /** Keys whose values are not usable tensors (null, a number, a disposed tensor, …). */
  readonly invalidValues: readonly InvalidValue[];
  /** The file the weights came from, when known. */
  readonly file: string | undefined;
  constructor(
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    readonly shapeMismatches: readonly ShapeMismatch[],
    readonly module = 'Module',
    details: StateDictErrorDetails = {},
  ) {
    super(StateDictError.describe(missingKeys, unexpectedKeys, shapeMismatches, module, details));
    this.invalidValues = details.invalidValues ?? [];
    this.file = details.file;
  }

  private static describe(
    missing: readonly string[],
    unexpected: readonly string[],
    mismatched: readonly ShapeMismatch[],
    module: string,
    details: StateDictErrorDetails,
  ): string {
    const lines = [`Error(s) in loading state dict for ${module}${details.file ? ` from ${details.file}` : ''}:`];
    const list = (keys: readonly string[]) => keys.map((key) => `"${key}"`).join(', ');
    if (missing.length) lines.push(`  Missing key(s) (${missing.length}): ${list(missing)}`);
    if (unexpected.length) lines.push(`  Unexpected key(s) (${unexpected.length}): ${list(unexpected)}`);
    for (const m of mismatched) {
      lines.push(`  size mismatch for ${m.key}: checkpoint has shape [${m.got.join(', ')}], the module expects [${m.expected.join(', ')}]`);
    }
    for (const v of details.invalidValues ?? []) lines.push(`  invalid value for ${v.key}: ${v.reason}`);
    return lines.join('\n');
  }
}

/**
 * A `config.json` (or other JSON file of a model folder) that is missing, not JSON, or does not
 * match the schema the caller gave. `issues` name each bad field as a dotted path.
 *
 * @example
 * ```ts
 * try {
 *   await readConfig('unet/config.json', UNetConfigSchema);
 * } catch (err) {
 *   if (err instanceof ConfigError) console.log(err.file, err.issues); // ['block_out_channels.0: expected number']
 * }
 * ```
 */
export class ConfigError extends k.KilnError {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly issues: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${issues.join('; ')}`, options);
  }
}

/**
 * One `field.path: message` line per schema issue (a zod error's `issues`), the form every
 * {@link ConfigError} lists them in.
 *
 * @example
 * ```ts
 * const r = UNetConfigSchema.safeParse(raw);
 * if (!r.success) throw new UNetConfigError(file, configIssueLines(r.error));
 * ```
 */
export function configIssueLines(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`);
}

/** What went wrong with a safetensors file, for programs that react to it. @example catch (e) { if (e instanceof SafetensorsError && e.code === 'truncated') console.error('download incomplete:', e.message); } */
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
  | 'invalid_index'
  | 'not_found';

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

/**
 * A Node-only feature (reading or writing files, the Hub client) called in a browser. Bundlers
 * resolve Kiln's Node-only modules (`@kiln/nn/node`, the loaders behind `fromPretrained`,
 * `savePretrained`, `fromSingleFile`) to browser builds through the `browser` export condition;
 * those builds throw this instead of pulling `node:` modules into the bundle. In a browser, load
 * weights from bytes instead (`parseSafetensors`, `loadWeights`).
 *
 * @example
 * ```ts
 * try {
 *   await UNet2DConditionModel.fromPretrained('./sd15', { subfolder: 'unet' });
 * } catch (err) {
 *   if (err instanceof NodeOnlyError) console.log(err.feature); // 'loadPretrained (@kiln/nn/node)'
 * }
 * ```
 */
export class NodeOnlyError extends k.KilnError {
  override name = 'NodeOnlyError';
  constructor(readonly feature: string) {
    super(`${feature} needs Node (it reads or writes files); in a browser, fetch the bytes and use parseSafetensors/loadWeights`);
  }
}

/**
 * The browser build of a Node-only function: throws {@link NodeOnlyError} naming it. What the
 * `browser` builds of Kiln's Node-only modules export in place of each function.
 *
 * @example
 * ```ts
 * export const readVAEFolder = nodeOnly('readVAEFolder (@kiln/vae)');
 * ```
 */
export function nodeOnly(feature: string): (...args: never[]) => never {
  // A function, not an arrow, so that `new` on a stubbed class throws this error too.
  return function nodeOnlyStub(): never {
    throw new NodeOnlyError(feature);
  };
}

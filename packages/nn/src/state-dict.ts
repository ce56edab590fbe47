import type * as k from '@kiln/tensor-core';
import { StateDictError } from './errors.js';
import type { InvalidValue, ShapeMismatch } from './errors.js';

/** A state dict: upstream key → tensor, in registration order. @example const sd: StateDict = model.stateDict(); // { 'fc1.weight': Tensor, … } */
export type StateDict = Record<string, k.Tensor>;

/** What `loadStateDict` / `loadWeights` did not match (only non-empty with `strict: false`). @example const { missingKeys, unexpectedKeys } = model.loadStateDict(partial, { strict: false }); */
export interface LoadStateDictResult {
  readonly missingKeys: string[];
  readonly unexpectedKeys: string[];
}

/** A key pattern: an exact key or a regular expression tested against it. @example await loadWeights(model, file, { ignoreUnexpected: ['text_model.embeddings.position_ids', /^lora_/] }); */
export type KeyPattern = string | RegExp;

/** An empty record without a prototype, so a key named `__proto__` or `constructor` is data. */
export function nullRecord<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** The entries of a record or map (own keys only, `__proto__` included). */
export function entriesOf<V>(source: Readonly<Record<string, V>> | ReadonlyMap<string, V>): [string, V][] {
  return source instanceof Map ? [...(source as ReadonlyMap<string, V>)] : Object.entries(source as Readonly<Record<string, V>>);
}

export const matches = (key: string, patterns: readonly KeyPattern[] | undefined): boolean =>
  patterns?.some((p) => (typeof p === 'string' ? p === key : p.test(key))) ?? false;

/** What the checker needs to know about one source value: its shape, or why it is unusable. */
export type Described = { readonly shape: readonly number[] } | { readonly invalid: string };

export interface CheckOptions {
  readonly strict: boolean;
  readonly module: string;
  readonly file?: string;
  /** Source keys that are dropped silently (transformers' `_keys_to_ignore_on_load_unexpected`). */
  readonly ignoreUnexpected?: readonly KeyPattern[];
}

/**
 * Checks every key before anything is loaded: missing and unexpected keys (strict mode),
 * mis-shaped and unusable values (always). Throws one {@link StateDictError} listing all of them.
 */
export function checkLoad(
  expected: ReadonlyMap<string, k.Tensor>,
  sourceKeys: readonly string[],
  describe: (key: string) => Described,
  options: CheckOptions,
): LoadStateDictResult {
  const present = new Set(sourceKeys);
  const missingKeys = [...expected.keys()].filter((key) => !present.has(key));
  const unexpectedKeys = sourceKeys.filter((key) => !expected.has(key) && !matches(key, options.ignoreUnexpected));
  const shapeMismatches: ShapeMismatch[] = [];
  const invalidValues: InvalidValue[] = [];
  for (const [key, target] of expected) {
    if (!present.has(key)) continue;
    const d = describe(key);
    if ('invalid' in d) invalidValues.push({ key, reason: d.invalid });
    else if (d.shape.join() !== target.shape.join()) shapeMismatches.push({ key, expected: target.shape, got: d.shape });
  }
  const strictFail = options.strict && (missingKeys.length > 0 || unexpectedKeys.length > 0);
  if (shapeMismatches.length > 0 || invalidValues.length > 0 || strictFail) {
    throw new StateDictError(missingKeys, unexpectedKeys, shapeMismatches, options.module, { invalidValues, file: options.file });
  }
  return { missingKeys, unexpectedKeys };
}

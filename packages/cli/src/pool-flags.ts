import { UsageError } from './usage-error.js';

/**
 * Takes the pool's own flags (`--redis URL`, `--user NAME`, …) out of a command line and returns
 * them with the rest, which goes to the trainer's or `kiln generate`'s parser unchanged.
 */
export function takeFlags<const N extends string>(
  args: readonly string[],
  names: readonly N[],
  usage: string,
): { flags: Partial<Record<N, string>>; rest: string[] } {
  const flags: Partial<Record<N, string>> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf('=');
    const name = (arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '') as N;
    if (!names.includes(name)) {
      rest.push(arg);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === '') throw new UsageError(`--${name} needs a value\n\n${usage}`);
    flags[name] = value;
  }
  return { flags, rest };
}

/** A whole number ≥ `min` from a flag, or a UsageError naming it. */
export function intFlag(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} ${value}: expected a whole number ≥ ${min}`);
  return n;
}

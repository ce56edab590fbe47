import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { OPTION_HELP, TrainerConfigSchema, parseTrainerConfig } from './config.js';
import type { TrainerConfig } from './config.js';
import { TrainerConfigError } from './errors.js';
import { nearest } from './nearest.js';

type Kind = 'boolean' | 'number' | 'string' | 'list';

/** What a flag's value is, read off the option's zod schema (defaults and nullables unwrapped). */
function kindOf(schema: z.ZodType): Kind {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
  if (s instanceof z.ZodBoolean) return 'boolean';
  if (s instanceof z.ZodNumber) return 'number';
  if (s instanceof z.ZodArray) return 'list';
  return 'string';
}

/** Each option's kind, read off a config schema's fields. */
function kindsOf(shape: Record<string, unknown>): Record<string, Kind> {
  return Object.fromEntries(Object.entries(shape).map(([n, s]) => [n, kindOf(s as z.ZodType)]));
}

function unknownFlag(flag: string, names: readonly string[]): never {
  const near = nearest(flag, [...names, 'config']);
  throw new TrainerConfigError(`unknown flag --${flag}${near ? `; did you mean --${near}?` : ''}`, { field: flag });
}

function coerce(name: string, kind: Kind, raw: string): unknown {
  if (kind === 'number') {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v))
      throw new TrainerConfigError(`--${name} ${JSON.stringify(raw)}: expected a number`, { field: name, value: raw });
    return v;
  }
  if (kind === 'boolean') {
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    throw new TrainerConfigError(`--${name}=${JSON.stringify(raw)}: expected true or false`, { field: name, value: raw });
  }
  return raw;
}

/** Reads a YAML or JSON config file (by extension; YAML is a superset of JSON) into an object. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TrainerConfigError(`--config ${path}: cannot read it (${(e as Error).message})`, { field: 'config', value: path });
  }
  let data: unknown;
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new TrainerConfigError(`--config ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`, {
      field: 'config',
      value: path,
    });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new TrainerConfigError(`--config ${path}: expected a mapping of options`, { field: 'config', value: path });
  // Dashes read as underscores, as argparse does for flags.
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, v] of Object.entries(data)) out[key.replace(/-/g, '_')] = v;
  return out;
}

/**
 * Reads `--name value` flags (diffusers' names: `--learning_rate 1e-6`, `--learning_rate=1e-6`,
 * `--center_crop`; dashes may replace underscores) over the options of a `--config run.yaml|json`
 * file, typed by the fields of a config schema. Validation is the caller's (its config parser).
 */
export function readFlags(
  argv: readonly string[],
  shape: Record<string, unknown>,
): { options: Record<string, unknown>; configPath?: string } {
  const kinds = kindsOf(shape);
  const fromFlags: Record<string, unknown> = Object.create(null);
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--'))
      throw new TrainerConfigError(`unexpected argument ${JSON.stringify(arg)} (options are --name value)`, { value: arg });
    const eq = arg.indexOf('=');
    const flag = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)).replace(/-/g, '_');
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[i + 1];
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new TrainerConfigError(`--${flag} needs a value`, { field: flag });
      i++;
      return v;
    };
    if (flag === 'config') {
      configPath = takeValue();
      continue;
    }
    if (!Object.hasOwn(kinds, flag)) unknownFlag(flag, Object.keys(kinds));
    const kind = kinds[flag];
    if (kind === 'boolean') fromFlags[flag] = inline === undefined ? true : coerce(flag, kind, inline);
    else if (kind === 'list') {
      const values: string[] = inline !== undefined ? [inline] : [];
      while (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) values.push(argv[++i]);
      if (values.length === 0) throw new TrainerConfigError(`--${flag} needs at least one value`, { field: flag });
      fromFlags[flag] = values;
    } else fromFlags[flag] = coerce(flag, kind, takeValue());
  }
  const fromFile = configPath === undefined ? {} : readConfigFile(configPath);
  return { options: { ...fromFile, ...fromFlags }, configPath };
}

/**
 * Parses `kiln train-dreambooth` flags (see {@link readFlags}), then validates the result. An
 * unknown flag or key suggests the nearest option.
 *
 * @example
 * ```ts
 * const config = parseTrainerArgs(['--config', 'run.yaml', '--max_train_steps', '800']);
 * ```
 */
export function parseTrainerArgs(argv: readonly string[]): TrainerConfig {
  const { options, configPath } = readFlags(argv, TrainerConfigSchema.shape);
  return parseTrainerConfig(options, configPath ?? 'train-dreambooth');
}

/** Help rows: each option of a schema with its default and one line on what it does. */
export function optionRows(shape: Record<string, unknown>, help: Readonly<Record<string, string>>): string {
  return Object.entries(shape)
    .map(([n, schema]) => {
      const r = (schema as z.ZodType).safeParse(undefined);
      const def = !r.success ? '(required)' : `(default: ${r.data === null ? 'None' : JSON.stringify(r.data)})`;
      return `  --${n} ${def}\n      ${help[n] ?? ''}`;
    })
    .join('\n');
}

/** `--help`: every option with its default and one line on what it does. */
export function trainerHelp(): string {
  return `kiln train-dreambooth --pretrained_model_name_or_path DIR --instance_data_dir DIR --instance_prompt TEXT [options]

DreamBooth fine-tuning of Stable Diffusion 1.x, with the flags of diffusers' train_dreambooth.py.
--config run.yaml|json reads options from a file; flags override it.

options:
${optionRows(TrainerConfigSchema.shape, OPTION_HELP)}`;
}

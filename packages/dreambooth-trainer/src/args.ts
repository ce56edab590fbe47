import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { OPTION_HELP, OPTION_NAMES, TrainerConfigSchema, optionDefaults, parseTrainerConfig } from './config.js';
import type { OptionName, TrainerConfig } from './config.js';
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

const KINDS = Object.fromEntries(OPTION_NAMES.map((n) => [n, kindOf(TrainerConfigSchema.shape[n] as z.ZodType)])) as Record<
  OptionName,
  Kind
>;

function unknownFlag(flag: string): never {
  const near = nearest(flag, [...OPTION_NAMES, 'config']);
  throw new TrainerConfigError(`unknown flag --${flag}${near ? `; did you mean --${near}?` : ''}`, { field: flag });
}

function coerce(name: OptionName, raw: string): unknown {
  const kind = KINDS[name];
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
 * Parses `kiln train-dreambooth` flags: diffusers' names (`--learning_rate 1e-6`,
 * `--learning_rate=1e-6`, `--center_crop`; dashes may replace underscores), over the options of
 * a `--config run.yaml|json` file, then validates the result. An unknown flag or key suggests the
 * nearest option.
 *
 * @example
 * ```ts
 * const config = parseTrainerArgs(['--config', 'run.yaml', '--max_train_steps', '800']);
 * ```
 */
export function parseTrainerArgs(argv: readonly string[]): TrainerConfig {
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
    if (!Object.hasOwn(KINDS, flag)) unknownFlag(flag);
    const name = flag as OptionName;
    const kind = KINDS[name];
    if (kind === 'boolean') fromFlags[name] = inline === undefined ? true : coerce(name, inline);
    else if (kind === 'list') {
      const values: string[] = inline !== undefined ? [inline] : [];
      while (inline === undefined && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) values.push(argv[++i]);
      if (values.length === 0) throw new TrainerConfigError(`--${name} needs at least one value`, { field: name });
      fromFlags[name] = values;
    } else fromFlags[name] = coerce(name, takeValue());
  }
  const fromFile = configPath === undefined ? {} : readConfigFile(configPath);
  return parseTrainerConfig({ ...fromFile, ...fromFlags }, configPath === undefined ? 'train-dreambooth' : configPath);
}

/** `--help`: every option with its default and one line on what it does. */
export function trainerHelp(): string {
  const defaults = optionDefaults();
  const rows = OPTION_NAMES.map((n) => {
    const d = defaults[n];
    const def = d === undefined ? '(required)' : `(default: ${d === null ? 'None' : JSON.stringify(d)})`;
    return `  --${n} ${def}\n      ${OPTION_HELP[n]}`;
  });
  return `kiln train-dreambooth --pretrained_model_name_or_path DIR --instance_data_dir DIR --instance_prompt TEXT [options]

DreamBooth fine-tuning of Stable Diffusion 1.x, with the flags of diffusers' train_dreambooth.py.
--config run.yaml|json reads options from a file; flags override it.

options:
${rows.join('\n')}`;
}

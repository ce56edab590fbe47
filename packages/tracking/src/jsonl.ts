import { z } from 'zod';
import { TrackingError } from './errors.js';
import type { LogRecord, LoggedImage } from './records.js';

// metrics.jsonl: one record per line, append-only. Images are PNG files beside it, named by the
// line; NaN and ±Infinity, which JSON lacks, are written as strings.

const NON_FINITE = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity } as const;
const num = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]).transform((v) => (typeof v === 'number' ? v : NON_FINITE[v]));
const json = (v: number): number | string => (Number.isFinite(v) ? v : String(v));
const step = z.number().int().nonnegative();
const nums = z.record(z.string(), num);

const imageFile = z.object({
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  channels: z.number().int().min(1).max(4),
  file: z.string().min(1),
  caption: z.string().optional(),
});

const recordSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('run'), wall: z.number(), name: z.string(), environment: z.record(z.string(), z.unknown()) }),
  z.object({ kind: z.literal('scalars'), step, wall: z.number(), values: nums }),
  z.object({ kind: z.literal('images'), step, wall: z.number(), tag: z.string(), images: z.array(imageFile) }),
  z.object({ kind: z.literal('text'), step, wall: z.number(), tag: z.string(), text: z.string() }),
  z.object({ kind: z.literal('hparams'), wall: z.number(), config: z.record(z.string(), z.unknown()), metrics: nums }),
]);

/** A record as stored in JSONL: images refer to PNG files instead of holding bytes. @example const { records } = parseJsonl(text, 'metrics.jsonl'); // JsonlRecord[]: images point at their PNG files */
export type JsonlRecord =
  | Exclude<LogRecord, { kind: 'images' }>
  | (Omit<Extract<LogRecord, { kind: 'images' }>, 'images'> & { images: (Omit<LoggedImage, 'png'> & { file: string })[] });

/**
 * Copies a field of the raw JSON (whose keys zod's records drop when one is `__proto__`) into a
 * null-prototype record, so every key stays a key; numbers get their non-finite values back.
 */
function plain<T>(raw: unknown, numbers: boolean): Record<string, T> {
  const out: Record<string, T> = Object.create(null);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    out[k] = (numbers && typeof v === 'string' ? NON_FINITE[v as keyof typeof NON_FINITE] : v) as T;
  }
  return out;
}

/** One JSONL line (without the newline) for `r`; `imageFile(i)` names where image `i` was written. @example lines.push(toJsonlRecord(record)); // one line of metrics.jsonl */
export function toJsonlRecord(r: LogRecord, imageFile: (i: number) => string = (i) => `image-${i}.png`): string {
  switch (r.kind) {
    case 'scalars':
      return JSON.stringify({ ...r, values: Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, json(v)])) });
    case 'hparams':
      return JSON.stringify({ ...r, metrics: Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, json(v)])) });
    case 'images':
      return JSON.stringify({ ...r, images: r.images.map(({ png: _png, ...meta }, i) => ({ ...meta, file: imageFile(i) })) });
    default:
      return JSON.stringify(r);
  }
}

/**
 * Parses a metrics.jsonl file's text. A last line cut short (a run killed mid-write) is dropped
 * with a warning; any other bad line is a {@link TrackingError} naming `source` and the line.
 *
 * @example
 * ```ts
 * const { records, warnings } = parseJsonl(await readFile('runs/dog/metrics.jsonl', 'utf8'), 'metrics.jsonl');
 * ```
 */
export function parseJsonl(text: string, source: string): { records: JsonlRecord[]; warnings: string[] } {
  const lines = text.split('\n');
  const records: JsonlRecord[] = [];
  const warnings: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const last = i === lines.length - 1; // no newline after it: the writer may have been cut off
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (last) {
        warnings.push(
          `${source}:${i + 1}: the last line is incomplete (${line.length} bytes, the run was probably killed mid-write); read up to the last whole record`,
        );
        break;
      }
      throw new TrackingError(`${source}:${i + 1}: not a JSON record (${(err as Error).message})`);
    }
    const parsed = recordSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new TrackingError(`${source}:${i + 1}: ${issue.path.join('.') || 'record'}: ${issue.message}`);
    }
    const r = parsed.data;
    const raw = value as Record<string, unknown>;
    if (r.kind === 'scalars') records.push({ ...r, values: plain(raw.values, true) });
    else if (r.kind === 'hparams') records.push({ ...r, config: plain(raw.config, false), metrics: plain(raw.metrics, true) });
    else if (r.kind === 'run') records.push({ ...r, environment: plain(raw.environment, false) });
    else records.push(r);
  }
  return { records, warnings };
}

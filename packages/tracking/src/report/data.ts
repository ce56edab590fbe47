import type { LogRecord, RunData } from '../records.js';

/** One run reduced to what the report draws; JSON-safe (non-finite numbers become null). */
export interface ReportRun {
  name: string;
  environment: Record<string, unknown>;
  config: Record<string, unknown>;
  metrics: Record<string, number | null>;
  warnings: string[];
  /** Per scalar key: [steps, values]. `it/s` is derived from step and wall-clock differences. */
  series: Record<string, [number[], (number | null)[]]>;
  images: { tag: string; step: number; images: { src: string; caption?: string; width: number; height: number }[] }[];
  texts: { tag: string; step: number; text: string }[];
}

const finite = (v: number): number | null => (Number.isFinite(v) ? v : null);

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function push(series: ReportRun['series'], key: string, step: number, v: number | null): void {
  const s = (series[key] ??= [[], []]);
  s[0].push(step);
  s[1].push(v);
}

/** Collects a run's records into series, image grids, texts and tables. */
export function reportRun(run: RunData): ReportRun {
  const out: ReportRun = {
    name: run.name,
    environment: {},
    config: {},
    metrics: {},
    warnings: [...(run.warnings ?? [])],
    series: {},
    images: [],
    texts: [],
  };
  let prev: { step: number; wall: number } | undefined;
  for (const r of run.records as LogRecord[]) {
    switch (r.kind) {
      case 'run':
        out.environment = { ...r.environment };
        break;
      case 'scalars':
        for (const [k, v] of Object.entries(r.values)) push(out.series, k, r.step, finite(v));
        if (!('it/s' in r.values) && prev && r.step > prev.step && r.wall > prev.wall)
          push(out.series, 'it/s', r.step, (r.step - prev.step) / (r.wall - prev.wall));
        prev = { step: r.step, wall: r.wall };
        break;
      case 'images':
        out.images.push({
          tag: r.tag,
          step: r.step,
          images: r.images.map((im) => ({
            src: `data:image/png;base64,${base64(im.png)}`,
            width: im.width,
            height: im.height,
            ...(im.caption !== undefined ? { caption: im.caption } : {}),
          })),
        });
        break;
      case 'text':
        out.texts.push({ tag: r.tag, step: r.step, text: r.text });
        break;
      case 'hparams':
        out.config = { ...r.config };
        out.metrics = Object.fromEntries(Object.entries(r.metrics).map(([k, v]) => [k, finite(v)]));
        break;
      default:
        r satisfies never;
    }
  }
  return out;
}

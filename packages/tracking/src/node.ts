/**
 * Node entry of `@kiln/tracking`: a run folder with `metrics.jsonl` (+ PNGs under `images/`),
 * TensorBoard event files and `report.html`, and reading runs back to rebuild or compare reports.
 *
 * @packageDocumentation
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { writeFileAtomic } from '@kiln/nn/node';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { TrackingError } from './errors.js';
import { parseJsonl, toJsonlRecord } from './jsonl.js';
import { RunLogger, type RunLoggerOptions } from './logger.js';
import { MemorySink } from './memory-sink.js';
import type { LogRecord, RunData } from './records.js';
import { buildReport } from './report/html.js';
import type { Sink } from './sink.js';
import { encodeEvents, fileVersionEvent } from './tfevents.js';

export * from './index.js';

/** The file every run folder has; its absence means "not a Kiln run". */
export const METRICS_FILE = 'metrics.jsonl';
export const REPORT_FILE = 'report.html';

/** Writes all of `data` at the file's position (writeSync may write less than asked). */
function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** An append-only file written line by line as records come, fsync'd at flush. */
class AppendFile {
  private fd: number;
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a');
  }
  append(data: string | Uint8Array): void {
    writeAll(this.fd, data);
  }
  sync(): void {
    fsyncSync(this.fd);
  }
  close(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

const safeName = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || '_';

/**
 * `metrics.jsonl` plus one PNG per logged image. A line is appended as soon as it is logged, so
 * the file can be read while the run goes on; a line naming images waits until they are written
 * (atomically), and later lines queue behind it to keep the order.
 */
export class JsonlFileSink implements Sink {
  private readonly file: AppendFile;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  constructor(readonly dir: string) {
    this.file = new AppendFile(join(dir, METRICS_FILE));
  }
  write(r: LogRecord): void {
    if (r.kind !== 'images' && this.queued === 0) {
      this.file.append(`${toJsonlRecord(r)}\n`);
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(async () => {
        const names: string[] = [];
        if (r.kind === 'images') {
          for (const [i, img] of r.images.entries()) {
            const name = `images/${safeName(r.tag)}/${String(r.step).padStart(8, '0')}_${i}.png`;
            await writeFileAtomic(join(this.dir, name), img.png);
            names.push(name);
          }
        }
        this.file.append(`${toJsonlRecord(r, (i) => names[i])}\n`);
      })
      .finally(() => this.queued--);
  }
  async flush(): Promise<void> {
    await this.queue;
    this.file.sync();
  }
  async close(): Promise<void> {
    await this.flush();
    this.file.close();
  }
}

/** A TensorBoard event file (`events.out.tfevents.<time>.<host>.<pid>.kiln`) in the run folder. */
export class TensorBoardFileSink implements Sink {
  private readonly file: AppendFile;
  private lastStep = 0;
  constructor(dir: string, wall = Date.now() / 1000) {
    this.file = new AppendFile(join(dir, `events.out.tfevents.${Math.floor(wall)}.${safeName(hostname())}.${process.pid}.kiln`));
    this.file.append(fileVersionEvent(wall));
  }
  get path(): string {
    return this.file.path;
  }
  write(r: LogRecord): void {
    if ('step' in r) this.lastStep = Math.max(this.lastStep, r.step);
    for (const e of encodeEvents(r, this.lastStep)) this.file.append(e);
  }
  async flush(): Promise<void> {
    this.file.sync();
  }
  async close(): Promise<void> {
    this.file.close();
  }
}

/** Rewrites `report.html` (atomically) at every flush, so it can be reopened while training runs. */
export class HtmlReportFileSink extends MemorySink {
  constructor(readonly path: string) {
    super();
  }
  override async flush(): Promise<void> {
    await writeFileAtomic(this.path, buildReport([{ name: this.name, records: this.records }]));
  }
  override async close(): Promise<void> {
    await this.flush();
  }
}

/** What `openRun` writes besides the JSONL log, which is always written (diffusers' `--report_to`). */
export type ReportTo = 'tensorboard' | 'html';

/**
 * A logger writing the run folder `dir`: always `metrics.jsonl`, plus TensorBoard event files
 * and the HTML report as `reportTo` asks (both by default).
 *
 * @example
 * ```ts
 * const log = openRun('runs/dog', { name: 'dog', reportTo: ['tensorboard', 'html'] });
 * log.log(1, { loss: 0.2 });
 * await log.flush(); // fsync'd; report.html rewritten
 * ```
 */
export function openRun(dir: string, options: RunLoggerOptions & { reportTo?: readonly ReportTo[] } = {}): RunLogger {
  const reportTo = new Set(options.reportTo ?? ['tensorboard', 'html']);
  for (const r of reportTo)
    if (r !== 'tensorboard' && r !== 'html') throw new TrackingError(`openRun: unknown reportTo '${r}' (expected 'tensorboard' or 'html')`);
  mkdirSync(dir, { recursive: true });
  const sinks: Sink[] = [new JsonlFileSink(dir)];
  if (reportTo.has('tensorboard')) sinks.push(new TensorBoardFileSink(dir, options.clock?.()));
  if (reportTo.has('html')) sinks.push(new HtmlReportFileSink(join(dir, REPORT_FILE)));
  return new RunLogger(sinks, { name: basename(resolve(dir)), ...options });
}

/**
 * Reads a run folder back: every whole record of `metrics.jsonl` with its images. A last line cut
 * short (a killed run) becomes a warning; a folder without logs is a {@link TrackingError}.
 */
export function readRun(dir: string): RunData {
  const file = join(dir, METRICS_FILE);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TrackingError(`run folder ${dir} does not exist`);
  if (!existsSync(file)) throw new TrackingError(`run folder ${dir} has no ${METRICS_FILE}: not a Kiln run, or it logged nothing`);
  const { records, warnings } = parseJsonl(readFileSync(file, 'utf8'), file);
  const out: LogRecord[] = records.map((r) => {
    if (r.kind !== 'images') return r;
    return {
      ...r,
      images: r.images.map(({ file: f, ...meta }) => {
        const path = resolve(dir, f);
        if (!path.startsWith(resolve(dir) + '/')) throw new TrackingError(`${file}: image path '${f}' leaves the run folder`);
        if (!existsSync(path)) throw new TrackingError(`${file}: image '${f}' is missing`);
        return { ...meta, png: new Uint8Array(readFileSync(path)) };
      }),
    };
  });
  const run = out.find((r) => r.kind === 'run');
  return { name: run?.kind === 'run' ? run.name : basename(resolve(dir)), records: out, warnings };
}

/**
 * Rebuilds the report from the runs' JSONL logs and writes it atomically: for one run, to
 * `<dir>/report.html` unless `out` is given; for several (compared on one page), to `out`.
 * Returns the path written.
 */
export async function writeReport(dirs: readonly string[], out?: string): Promise<string> {
  if (dirs.length === 0) throw new TrackingError('writeReport: name at least one run folder');
  if (dirs.length > 1 && !out) throw new TrackingError('writeReport: comparing several runs needs an output file');
  const runs = dirs.map(readRun);
  const path = out ?? join(dirs[0], REPORT_FILE);
  await writeFileAtomic(path, buildReport(runs));
  return path;
}

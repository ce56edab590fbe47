import { TrackingError } from './errors.js';
import { type ImageInput, toLoggedImage } from './png.js';
import type { LogRecord } from './records.js';
import type { Sink } from './sink.js';

/** Options of a {@link RunLogger}. @example openRun('runs/dog', { name: 'dog', environment: { backend: 'wasm', threads: 2 } }); */
export interface RunLoggerOptions {
  /** The run's name in reports; defaults to `'run'`. */
  name?: string;
  /** Backend, adapter name, threads, versions…: shown in the report. */
  environment?: Record<string, unknown>;
  /** Seconds since the Unix epoch; replaceable for reproducible files in tests. */
  clock?: () => number;
}

function checkStep(step: number, where: string): void {
  if (!Number.isSafeInteger(step) || step < 0) throw new TrackingError(`${where}: step ${step} must be a non-negative integer`);
}

function checkTag(tag: string, where: string): void {
  if (typeof tag !== 'string' || tag.length === 0) throw new TrackingError(`${where}: tag must be a non-empty string`);
}

/**
 * What a training loop logs through: scalars, images, text and hyperparameters, fanned out to
 * every sink (JSONL, TensorBoard, HTML report, memory). Logging is synchronous; `flush()` makes
 * it durable. In Node, `openRun(dir)` from `@kiln/tracking/node` builds one with file sinks.
 *
 * @example
 * ```ts
 * const memory = new MemorySink();
 * const log = new RunLogger([memory], { name: 'dog', environment: { backend: 'wasm' } });
 * log.log(1, { loss: 0.12, lr: 1e-4 });
 * log.logImages(1, 'validation', [{ width: 2, height: 1, data: new Uint8Array([255, 0, 0, 0, 0, 255]) }]);
 * await log.close();
 * const blob = memory.report(); // the HTML report
 * ```
 */
export class RunLogger {
  private closed = false;
  private readonly clock: () => number;

  constructor(
    private readonly sinks: readonly Sink[],
    options: RunLoggerOptions = {},
  ) {
    this.clock = options.clock ?? (() => Date.now() / 1000);
    this.emit({ kind: 'run', wall: this.clock(), name: options.name ?? 'run', environment: { ...options.environment } });
  }

  private emit(r: LogRecord): void {
    if (this.closed) throw new TrackingError(`the logger is closed; cannot log a ${r.kind} record`);
    for (const s of this.sinks) s.write(r);
  }

  /** Scalars at `step` (loss, lr, it/s, memory…). Non-finite values are logged as they are. */
  log(step: number, scalars: Record<string, number>): void {
    checkStep(step, 'log');
    const values: Record<string, number> = Object.create(null);
    for (const [key, v] of Object.entries(scalars)) {
      if (typeof v !== 'number') throw new TrackingError(`log: scalar '${key}' is ${typeof v}, not a number`);
      values[key] = v;
    }
    this.emit({ kind: 'scalars', step, wall: this.clock(), values });
  }

  /** A set of images under `tag` at `step` (a validation grid), encoded once as PNG. */
  logImages(step: number, tag: string, images: readonly ImageInput[]): void {
    checkStep(step, 'logImages');
    checkTag(tag, 'logImages');
    const logged = images.map((img, i) => toLoggedImage(img, `logImages('${tag}') image ${i}`));
    this.emit({ kind: 'images', step, wall: this.clock(), tag, images: logged });
  }

  /** Text under `tag` at `step`. */
  logText(step: number, tag: string, text: string): void {
    checkStep(step, 'logText');
    checkTag(tag, 'logText');
    this.emit({ kind: 'text', step, wall: this.clock(), tag, text: String(text) });
  }

  /** The run's configuration and its final metrics (TensorBoard's HParams dashboard, the report's tables). */
  logHparams(config: Record<string, unknown>, finalMetrics: Record<string, number> = {}): void {
    for (const [key, v] of Object.entries(finalMetrics)) {
      if (typeof v !== 'number') throw new TrackingError(`logHparams: metric '${key}' is ${typeof v}, not a number`);
    }
    this.emit({ kind: 'hparams', wall: this.clock(), config: { ...config }, metrics: { ...finalMetrics } });
  }

  /** Makes everything logged so far durable (fsync'd files, a rewritten report). */
  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.flush()));
  }

  /** Flushes and closes every sink; later logging is an error. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await Promise.all(this.sinks.map((s) => s.close()));
  }
}

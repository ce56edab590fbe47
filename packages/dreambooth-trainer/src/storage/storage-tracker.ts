import { MemorySink, RunLogger, buildReport, toJsonlRecord } from '@kiln/tracking';
import type { LogRecord } from '@kiln/tracking';
import type { TrainerStorage } from './storage.js';

const safeName = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) || '_';

/**
 * A run folder written through a {@link TrainerStorage}, with the same files as `@kiln/tracking/node`'s
 * `openRun` minus TensorBoard's append-only event file: `metrics.jsonl` (rewritten whole at each
 * flush, atomically, so it never ends in half a line), logged images as PNGs under `images/`, and
 * `report.html` when asked.
 */
class StorageRunSink extends MemorySink {
  private written = 0;
  private lines: string[] = [];
  constructor(
    private readonly storage: TrainerStorage,
    private readonly dir: string,
    private readonly html: boolean,
  ) {
    super();
  }
  override async flush(): Promise<void> {
    const s = this.storage;
    for (; this.written < this.records.length; this.written++) {
      const r: LogRecord = this.records[this.written];
      const names: string[] = [];
      if (r.kind === 'images')
        for (const [i, img] of r.images.entries()) {
          const name = `images/${safeName(r.tag)}/${String(r.step).padStart(8, '0')}_${i}.png`;
          await s.write(s.join(this.dir, name), img.png);
          names.push(name);
        }
      this.lines.push(`${toJsonlRecord(r, (i) => names[i])}\n`);
    }
    await s.write(s.join(this.dir, 'metrics.jsonl'), this.lines.join(''));
    if (this.html) await s.write(s.join(this.dir, 'report.html'), buildReport([{ name: this.name, records: this.records }]));
  }
  override async close(): Promise<void> {
    await this.flush();
  }
}

/** A logger writing the run folder `dir` through the storage (see StorageRunSink). */
export function openStorageRun(storage: TrainerStorage, dir: string, o: { html: boolean; name: string }): RunLogger {
  return new RunLogger([new StorageRunSink(storage, dir, o.html)], { name: o.name });
}

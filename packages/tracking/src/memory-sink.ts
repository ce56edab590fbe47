import type { LogRecord } from './records.js';
import { buildReport } from './report/html.js';
import type { Sink } from './sink.js';

/**
 * Keeps every record in memory: the sink for browsers (and tests). `report()` gives the HTML
 * report as a Blob to show in an iframe or offer as a download.
 *
 * @example
 * ```ts
 * const memory = new MemorySink();
 * const log = new RunLogger([memory], { name: 'in-tab' });
 * log.log(0, { loss: 1 });
 * const url = URL.createObjectURL(memory.report());
 * ```
 */
export class MemorySink implements Sink {
  readonly records: LogRecord[] = [];

  write(record: LogRecord): void {
    this.records.push(record);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  /** The run's name, from its first record. */
  get name(): string {
    const first = this.records[0];
    return first?.kind === 'run' ? first.name : 'run';
  }

  /** The HTML report of this run as a `text/html` Blob. */
  report(): Blob {
    return new Blob([buildReport([{ name: this.name, records: this.records }])], { type: 'text/html' });
  }
}

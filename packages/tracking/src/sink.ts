import type { LogRecord } from './records.js';

/**
 * Where a {@link RunLogger} sends records: JSONL, TensorBoard, the HTML report, memory. `write` is
 * called synchronously in logging order; `flush` makes what was written durable or visible.
 *
 * @example
 * ```ts
 * const printer: Sink = { write: (r) => console.log(r.kind), flush: async () => {}, close: async () => {} };
 * const log = new RunLogger([printer, new MemorySink()]);
 * ```
 */
export interface Sink {
  write(record: LogRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

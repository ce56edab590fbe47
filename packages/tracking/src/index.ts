/**
 * Metrics for training runs: a small logger (`log`, `logImages`, `logText`, `logHparams`) with
 * sinks for JSONL, TensorBoard event files, a self-contained HTML report and memory. File sinks
 * and reading runs back live in `@kiln/tracking/node`; everything here runs in browsers too.
 *
 * @packageDocumentation
 */
export { TrackingError } from './errors.js';
export { RunLogger, type RunLoggerOptions } from './logger.js';
export { MemorySink } from './memory-sink.js';
export type { ImageInput } from './png.js';
export type { HparamsRecord, ImagesRecord, LogRecord, LoggedImage, RunData, RunRecord, ScalarsRecord, TextRecord } from './records.js';
export { buildReport } from './report/html.js';
export { smooth } from './report/smoothing.js';
export type { Sink } from './sink.js';
export { crc32c, maskedCrc32c } from './crc32c.js';
export { encodeEvents, fileVersionEvent, frameRecord } from './tfevents.js';
export { parseJsonl, toJsonlRecord, type JsonlRecord } from './jsonl.js';

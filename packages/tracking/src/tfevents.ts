// TensorBoard event files: TFRecord framing (length, masked CRC-32C of the length, data, masked
// CRC-32C of the data) around `tensorboard.Event` protos. Field numbers are those of
// tensorboard/compat/proto/{event,summary,tensor}.proto and plugins/hparams/*.proto.
import { maskedCrc32c } from './crc32c.js';
import { ProtoWriter } from './protobuf.js';
import type { HparamsRecord, LogRecord } from './records.js';

const DT_STRING = 7;
const DATA_CLASS_TENSOR = 2;
const HPARAM_STRING = 1;
const HPARAM_BOOL = 2;
const HPARAM_FLOAT64 = 3;
const STATUS_SUCCESS = 1;

/** Frames one serialized proto as a TFRecord. @example const framed = frameRecord(eventBytes); // length, masked CRCs, data */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

function event(wall: number, step: number, build: (w: ProtoWriter) => void): Uint8Array {
  const w = new ProtoWriter().double(1, wall).uint(2, step);
  build(w);
  return frameRecord(w.finish());
}

type ValueBuilder = (v: ProtoWriter) => void;

function summaryEvent(wall: number, step: number, values: ValueBuilder[]): Uint8Array {
  return event(wall, step, (e) => e.message(5, (s) => values.forEach((build) => s.message(1, build))));
}

/** `SummaryMetadata` naming a plugin, with its serialized plugin data. */
function pluginMetadata(plugin: string, content: Uint8Array, dataClass = 0): ValueBuilder {
  return (m) => m.message(1, (p) => p.string(1, plugin).bytes(2, content)).uint(4, dataClass);
}

/** The event every file starts with: `file_version: "brain.Event:2"`. @example const first = frameRecord(fileVersionEvent(Date.now() / 1000)); // 'brain.Event:2' */
export function fileVersionEvent(wall: number): Uint8Array {
  return event(wall, 0, (e) => e.string(3, 'brain.Event:2'));
}

/** `google.protobuf.Value` for an hparam: numbers, strings and booleans as such, anything else as JSON. */
function hparamValue(v: unknown): { build: ValueBuilder; type: number } {
  if (typeof v === 'number') return { build: (w) => w.double(2, v), type: HPARAM_FLOAT64 };
  if (typeof v === 'boolean') return { build: (w) => w.uint(4, v ? 1 : 0), type: HPARAM_BOOL };
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? 'null');
  return { build: (w) => w.string(3, s, true), type: HPARAM_STRING };
}

function hparamsEvents(r: HparamsRecord, step: number): Uint8Array[] {
  const entries = Object.entries(r.config).map(([name, v]) => ({ name, ...hparamValue(v) }));
  const metricNames = Object.keys(r.metrics);
  const plugin = (data: ValueBuilder) => pluginMetadata('hparams', pluginData(data));
  const experiment = plugin((d) =>
    d.message(2, (x) => {
      for (const e of entries) x.message(4, (h) => h.string(1, e.name).uint(4, e.type));
      for (const m of metricNames) x.message(5, (mi) => mi.message(1, (n) => n.string(2, m)));
    }),
  );
  const start = plugin((d) =>
    d.message(3, (s) => {
      for (const e of entries) s.message(1, (kv) => kv.string(1, e.name, true).message(2, e.build));
      s.double(5, r.wall);
    }),
  );
  const end = plugin((d) => d.message(4, (s) => s.uint(1, STATUS_SUCCESS).double(2, r.wall)));
  return [
    summaryEvent(r.wall, 0, [(v) => v.string(1, '_hparams_/experiment').message(9, experiment)]),
    summaryEvent(r.wall, 0, [(v) => v.string(1, '_hparams_/session_start_info').message(9, start)]),
    summaryEvent(
      r.wall,
      step,
      metricNames.map((m) => (v: ProtoWriter) => v.string(1, m).float(2, r.metrics[m])),
    ),
    summaryEvent(r.wall, 0, [(v) => v.string(1, '_hparams_/session_end_info').message(9, end)]),
  ];
}

/** `HParamsPluginData { version: 0, <data> }` serialized. */
function pluginData(data: ValueBuilder): Uint8Array {
  const w = new ProtoWriter().uint(1, 0);
  data(w);
  return w.finish();
}

/**
 * The framed events for one log record. `lastStep` places an hparams record's final metrics at
 * the run's last step, as TensorBoard's HParams dashboard reads them.
 *
 * @example
 * ```ts
 * for (const event of encodeEvents({ kind: 'scalars', step: 1, wall: Date.now() / 1000, values: { loss: 0.1 } })) file.write(frameRecord(event));
 * ```
 */
export function encodeEvents(r: LogRecord, lastStep = 0): Uint8Array[] {
  switch (r.kind) {
    case 'run':
      return [];
    case 'scalars':
      return [
        summaryEvent(
          r.wall,
          r.step,
          Object.entries(r.values).map(
            ([tag, x]) =>
              (v: ProtoWriter) =>
                v.string(1, tag).float(2, x),
          ),
        ),
      ];
    case 'images':
      return [
        summaryEvent(
          r.wall,
          r.step,
          r.images.map(
            (img, i) => (v: ProtoWriter) =>
              v
                .string(1, r.images.length === 1 ? r.tag : `${r.tag}/${i}`)
                .message(4, (m) => m.uint(1, img.height).uint(2, img.width).uint(3, img.channels).bytes(4, img.png)),
          ),
        ),
      ];
    case 'text':
      return [
        summaryEvent(r.wall, r.step, [
          (v) =>
            v
              .string(1, r.tag)
              .message(9, pluginMetadata('text', new Uint8Array(0), DATA_CLASS_TENSOR))
              .message(8, (t) =>
                t
                  .uint(1, DT_STRING)
                  .message(2, () => {})
                  .string(8, r.text, true),
              ),
        ]),
      ];
    case 'hparams':
      return hparamsEvents(r, lastStep);
    default:
      return r satisfies never;
  }
}

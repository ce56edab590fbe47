// The TensorBoard protos Kiln writes, as protobufjs schema text: an independent decoder for the
// tests (field numbers copied from tensorboard/compat/proto and plugins/hparams, Apache-2.0).
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto3";
package tb;
message Event {
  double wall_time = 1; int64 step = 2;
  oneof what { string file_version = 3; bytes graph_def = 4; Summary summary = 5; }
}
message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1; string display_name = 2; string summary_description = 3; int32 data_class = 4;
}
message TensorShapeProto { message Dim { int64 size = 1; string name = 2; } repeated Dim dim = 2; bool unknown_rank = 3; }
message TensorProto { int32 dtype = 1; TensorShapeProto tensor_shape = 2; int32 version_number = 3; bytes tensor_content = 4;
  repeated float float_val = 5 [packed = true]; repeated bytes string_val = 8; }
message Summary {
  message Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
  message Value {
    string node_name = 7; string tag = 1; SummaryMetadata metadata = 9;
    oneof value { float simple_value = 2; bytes obsolete_old_style_histogram = 3; Image image = 4; TensorProto tensor = 8; }
  }
  repeated Value value = 1;
}
message PbValue { oneof kind { int32 null_value = 1; double number_value = 2; string string_value = 3; bool bool_value = 4; } }
message MetricName { string group = 1; string tag = 2; }
message MetricInfo { MetricName name = 1; string display_name = 3; string description = 4; int32 dataset_type = 5; }
message HParamInfo { string name = 1; string display_name = 2; string description = 3; int32 type = 4; }
message Experiment { string name = 6; string description = 1; string user = 2; double time_created_secs = 3;
  repeated HParamInfo hparam_infos = 4; repeated MetricInfo metric_infos = 5; }
message SessionStartInfo { map<string, PbValue> hparams = 1; string model_uri = 2; string monitor_url = 3; string group_name = 4; double start_time_secs = 5; }
message SessionEndInfo { int32 status = 1; double end_time_secs = 2; }
message HParamsPluginData { int32 version = 1; oneof data { Experiment experiment = 2; SessionStartInfo session_start_info = 3; SessionEndInfo session_end_info = 4; } }
`;

const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
export const Event = root.lookupType('tb.Event');
export const HParamsPluginData = root.lookupType('tb.HParamsPluginData');

/** Bitwise CRC-32C (no table), TFRecord's mask: the test's own oracle for the framing. */
function crc32cBitwise(bytes: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}
export const masked = (b: Uint8Array): number => {
  const c = crc32cBitwise(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};
export { crc32cBitwise };

/** Splits a TFRecord file into its records, checking both CRCs of every one. */
export function readRecords(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let off = 0;
  while (off < file.length) {
    const len = Number(view.getBigUint64(off, true));
    if (view.getUint32(off + 8, true) !== masked(file.subarray(off, off + 8))) throw new Error(`bad length CRC at ${off}`);
    const data = file.subarray(off + 12, off + 12 + len);
    if (view.getUint32(off + 12 + len, true) !== masked(data)) throw new Error(`bad data CRC at ${off}`);
    out.push(data);
    off += 16 + len;
  }
  return out;
}

/** Every event of an event file, as plain objects. */
export function decodeEvents(file: Uint8Array): Record<string, any>[] {
  return readRecords(file).map((r) => Event.toObject(Event.decode(r), { longs: Number, bytes: Uint8Array, defaults: false, oneofs: true }));
}

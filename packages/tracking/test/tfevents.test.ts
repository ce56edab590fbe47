import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { crc32c, maskedCrc32c, openRun } from '@kiln/tracking/node';
import { crc32cBitwise, decodeEvents, HParamsPluginData, masked } from './tensorboard-proto.js';

const red = { width: 2, height: 2, data: new Uint8Array([255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0]) };
const utf8 = new TextDecoder();

function clock(start = 1_700_000_000): () => number {
  let t = start;
  return () => (t += 0.5);
}

describe('CRC-32C', () => {
  it('matches the RFC 3720 check values and a bitwise implementation', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    expect(crc32c(bytes)).toBe(crc32cBitwise(bytes));
    expect(maskedCrc32c(bytes)).toBe(masked(bytes));
  });
});

describe('TensorBoard event files', () => {
  it('decode with protobufjs, every CRC checked, and hold what was logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-tb-'));
    const log = openRun(dir, { reportTo: ['tensorboard'], clock: clock() });
    log.log(1, { loss: 0.5, lr: 1e-4 });
    log.log(2, { loss: NaN, ...JSON.parse('{"__proto__": 3}') }); // a key, not a prototype
    log.logImages(2, 'validation', [red, { ...red, caption: 'two' }]);
    log.logText(2, 'prompt', 'a photo of sks dog — ünïcode');
    log.logHparams({ learning_rate: 5e-6, train_text_encoder: false, scheduler: 'constant', nested: { a: 1 } }, { final_loss: 0.25 });
    await log.close();

    const file = readdirSync(dir).find((f) => f.startsWith('events.out.tfevents.'))!;
    const events = decodeEvents(new Uint8Array(readFileSync(join(dir, file))));
    expect(events[0].file_version).toBe('brain.Event:2');
    const values = events
      .slice(1)
      .flatMap((e) => e.summary.value.map((v: Record<string, any>) => ({ step: e.step ?? 0, wall: e.wall_time, ...v })));
    const byTag = (tag: string) => values.filter((v) => v.tag === tag);

    expect(byTag('loss').map((v) => [v.step, v.simple_value])).toEqual([
      [1, 0.5],
      [2, NaN],
    ]);
    expect(byTag('lr')[0].simple_value).toBeCloseTo(1e-4, 10);
    expect(byTag('__proto__')[0].simple_value).toBe(3);
    expect(byTag('loss')[0].wall).toBe(1_700_000_001.5); // the sink and the run record took the first two ticks

    const [img0, img1] = [byTag('validation/0')[0], byTag('validation/1')[0]];
    expect([img0.step, img0.image.width, img0.image.height, img0.image.colorspace]).toEqual([2, 2, 2, 3]);
    const png = decode(img1.image.encoded_image_string);
    expect([png.width, png.height, png.channels]).toEqual([2, 2, 3]);
    expect(Array.from(png.data)).toEqual(Array.from(red.data));

    const text = byTag('prompt')[0];
    expect(text.metadata.plugin_data.plugin_name).toBe('text');
    expect(text.tensor.dtype).toBe(7);
    expect(utf8.decode(text.tensor.string_val[0])).toBe('a photo of sks dog — ünïcode');

    const plugin = (tag: string) =>
      HParamsPluginData.toObject(HParamsPluginData.decode(byTag(tag)[0].metadata.plugin_data.content), { oneofs: true, defaults: false });
    const exp = plugin('_hparams_/experiment').experiment;
    expect(exp.hparam_infos.map((h: Record<string, unknown>) => [h.name, h.type])).toEqual([
      ['learning_rate', 3],
      ['train_text_encoder', 2],
      ['scheduler', 1],
      ['nested', 1],
    ]);
    expect(exp.metric_infos[0].name.tag).toBe('final_loss');
    const start = plugin('_hparams_/session_start_info').session_start_info.hparams;
    expect(start.learning_rate.number_value).toBe(5e-6);
    expect(start.train_text_encoder.bool_value ?? false).toBe(false);
    expect(start.scheduler.string_value).toBe('constant');
    expect(start.nested.string_value).toBe('{"a":1}');
    expect(plugin('_hparams_/session_end_info').session_end_info.status).toBe(1);
    expect(byTag('final_loss')[0]).toMatchObject({ step: 2, simple_value: 0.25 });
  });
});

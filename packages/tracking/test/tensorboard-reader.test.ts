/**
 * A second reader: TensorBoard's own EventAccumulator read `fixtures/tensorboard/events.out.tfevents.kiln`
 * (written by the code below) and its view is committed as `tensorboard-read.json`, made by
 * `scripts/tensorboard_read.py`. This test checks that Kiln still writes those exact bytes and
 * that protobufjs's decoding agrees with what TensorBoard saw. Regenerate both with
 * `KILN_WRITE_FIXTURES=1` and the script (see its docstring) after an intended format change.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeEvents, fileVersionEvent, MemorySink, RunLogger } from '@kiln/tracking';
import { decodeEvents } from './tensorboard-proto.js';

const dir = join(__dirname, 'fixtures/tensorboard');
const fixture = join(dir, 'events.out.tfevents.kiln');

function kilnEventFile(): Uint8Array {
  let t = 1_750_000_000;
  const memory = new MemorySink();
  const log = new RunLogger([memory], { name: 'fixture', clock: () => (t += 1) });
  const img = (w: number, h: number, c: 3 | 4, seed: number) => ({
    width: w,
    height: h,
    channels: c,
    data: Uint8Array.from({ length: w * h * c }, (_, i) => (i * 37 + seed) & 255),
  });
  for (let s = 1; s <= 4; s++) log.log(s * 10, { loss: 1 / s, lr: 2e-6 * s });
  log.log(50, { loss: NaN });
  log.logImages(20, 'validation', [img(4, 3, 3, 1), img(4, 3, 3, 2)]);
  log.logImages(40, 'single', [img(2, 2, 4, 3)]);
  log.logText(40, 'prompt', 'a photo of sks dog, ünïcode ✓');
  log.logHparams({ learning_rate: 5e-6, train_text_encoder: true, lr_scheduler: 'constant' }, { final_loss: 0.125 });
  let last = 0;
  const parts = [fileVersionEvent(t)];
  for (const r of memory.records) {
    if ('step' in r) last = Math.max(last, r.step);
    parts.push(...encodeEvents(r, last));
  }
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}

describe('event files through TensorBoard', () => {
  const bytes = kilnEventFile();
  if (process.env.KILN_WRITE_FIXTURES === '1') writeFileSync(fixture, bytes);

  it('Kiln writes exactly the file TensorBoard read', () => {
    expect(Buffer.from(bytes).equals(readFileSync(fixture))).toBe(true);
  });

  it("TensorBoard's reading matches what was logged and what protobufjs decodes", () => {
    const tb = JSON.parse(readFileSync(join(dir, 'tensorboard-read.json'), 'utf8'));
    expect(tb.file_version).toBe(2); // TensorBoard parses 'brain.Event:2'
    expect(tb.scalars.loss).toEqual([
      [10, 1],
      [20, 0.5],
      [30, Math.fround(1 / 3)],
      [40, 0.25],
      [50, 'NaN'],
    ]);
    expect(tb.scalars.lr.map((p: number[]) => p[1])).toEqual([1, 2, 3, 4].map((s) => Math.fround(2e-6 * s)));
    expect(tb.scalars.final_loss).toEqual([[50, 0.125]]);

    const values = decodeEvents(bytes).flatMap((e) =>
      (e.summary?.value ?? []).map((v: Record<string, any>) => ({ step: e.step ?? 0, ...v })),
    );
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    const images = values
      .filter((v) => v.image)
      .map((v) => [v.tag, v.step, v.image.width, v.image.height, sha(v.image.encoded_image_string)]);
    const tbImages = Object.entries(tb.images as Record<string, unknown[][]>).flatMap(([tag, es]) => es.map((e) => [tag, ...e]));
    expect(tbImages.sort()).toEqual(images.sort());
    expect(tbImages).toHaveLength(3);

    expect(tb.text.prompt).toEqual([[40, 'a photo of sks dog, ünïcode ✓']]);
    expect(tb.hparams['_hparams_/experiment'].experiment.hparam_infos.map((h: { name: string }) => h.name)).toEqual([
      'learning_rate',
      'train_text_encoder',
      'lr_scheduler',
    ]);
    expect(tb.hparams['_hparams_/session_start_info'].session_start_info.hparams).toEqual({
      learning_rate: 5e-6,
      train_text_encoder: true,
      lr_scheduler: 'constant',
    });
    expect(tb.hparams['_hparams_/session_end_info'].session_end_info.status).toBe('STATUS_SUCCESS');
  });
});

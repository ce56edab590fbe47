import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { CLIPTextModel } from '@kiln/clip';
import { FIXTURE, relError } from './text-model-fixture.js';

// PyTorch with transformers' additive finfo.min padding mask (scripts/make_text_model_reference.py).
const masked = JSON.parse(readFileSync(join(FIXTURE, 'reference-masks.json'), 'utf8')) as {
  input_ids: number[][];
  attention_mask: number[][];
  last_hidden_state: number[][][];
  pooler_output: number[][];
};

let model: CLIPTextModel;
beforeAll(async () => {
  await k.useBackend('cpu');
  model = await CLIPTextModel.fromPretrained(FIXTURE);
});

/** Rows of lastHiddenState at the given positions: the pooled output transformers would give. */
async function rowsAt(last: k.Tensor, positions: number[]): Promise<number[]> {
  const [, L, H] = last.shape;
  const data = await last.data();
  return positions.flatMap((p, b) => Array.from(data.subarray((b * L + p) * H, (b * L + p + 1) * H)));
}

describe('CLIPTextModel pooling, as transformers pools', () => {
  it('pools at the first eos_token_id, and at position 0 in a row without one', async () => {
    const ids = [
      [998, 5, 999, 7, 999, 999],
      [998, 5, 6, 7, 8, 9], // truncated without an end token
      [999, 1, 2, 3, 4, 5],
    ];
    const out = k.noGrad(() => model.forward(ids));
    const expected = await rowsAt(out.lastHiddenState, [2, 0, 0]);
    expect(Array.from(await out.poolerOutput.data())).toEqual(expected);
  });

  it('keeps the legacy rule for eos_token_id 2 (SD 1.x configs): the largest id', async () => {
    const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
    const legacy = new CLIPTextModel({ ...config, eos_token_id: 2 });
    legacy.loadStateDict(model.stateDict());
    const ids = [
      [998, 5, 999, 7, 999, 2], // largest id first at 2; the 2 at the end is ignored
      [998, 5, 6, 2, 8, 9], // largest id 998 at 0
      [1, 2, 3, 700, 4, 700], // first of two equal maxima, as torch.argmax
    ];
    const out = k.noGrad(() => legacy.forward(ids));
    expect(Array.from(await out.poolerOutput.data())).toEqual(await rowsAt(out.lastHiddenState, [2, 0, 3]));
  });
});

describe('CLIPTextModel attention masks, against PyTorch', () => {
  it('matches transformers for all-zero, left- and right-padding masks (no NaN)', async () => {
    const out = k.noGrad(() => model.forward(masked.input_ids, { attentionMask: masked.attention_mask }));
    const last = await out.lastHiddenState.data();
    expect(Array.from(last).every(Number.isFinite)).toBe(true);
    expect(relError(last, masked.last_hidden_state.flat(2))).toBeLessThan(1e-4);
    expect(relError(await out.poolerOutput.data(), masked.pooler_output.flat())).toBeLessThan(1e-4);
  });

  it('an all-zero mask differs from no mask only through rows that attend evenly', async () => {
    const ids = [masked.input_ids[0]];
    const zero = k.noGrad(() => model.forward(ids, { attentionMask: [ids[0].map(() => 0)] }));
    const data = await zero.lastHiddenState.data();
    expect(Array.from(data).every(Number.isFinite)).toBe(true);
    // Position 0 attends only to itself with or without a mask.
    const plain = k.noGrad(() => model.forward(ids));
    const H = plain.lastHiddenState.shape[2];
    expect(relError(data.subarray(0, H), Array.from((await plain.lastHiddenState.data()).subarray(0, H)))).toBeLessThan(1e-6);
  });
});

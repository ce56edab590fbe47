import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { StateDictError, skipInit } from '@kiln/nn';
import { loadSafetensors, openSafetensors, saveSafetensors } from '@kiln/nn/node';
import { UNet2DConditionModel, ldmUNetKey, parseUNetConfig } from '@kiln/unet';
import { fixture } from './golden.js';

const DIR = fixture('unet_tiny');
let tmp: string;
beforeAll(async () => {
  await k.useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'kiln-unet-ldm-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('UNet single-file (LDM) checkpoints', () => {
  it("maps SD 1.x's keys as the original Stable Diffusion names them", () => {
    const c = parseUNetConfig({});
    const cases: [string, string][] = [
      ['time_embedding.linear_1.weight', 'time_embed.0.weight'],
      ['conv_in.weight', 'input_blocks.0.0.weight'],
      ['down_blocks.0.resnets.1.norm1.weight', 'input_blocks.2.0.in_layers.0.weight'],
      ['down_blocks.1.attentions.0.proj_in.weight', 'input_blocks.4.1.proj_in.weight'],
      ['down_blocks.1.resnets.0.conv_shortcut.weight', 'input_blocks.4.0.skip_connection.weight'],
      ['down_blocks.2.downsamplers.0.conv.bias', 'input_blocks.9.0.op.bias'],
      ['down_blocks.3.resnets.1.time_emb_proj.weight', 'input_blocks.11.0.emb_layers.1.weight'],
      ['mid_block.resnets.1.conv2.weight', 'middle_block.2.out_layers.3.weight'],
      ['mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight', 'middle_block.1.transformer_blocks.0.attn2.to_k.weight'],
      ['up_blocks.0.resnets.2.conv1.weight', 'output_blocks.2.0.in_layers.2.weight'],
      ['up_blocks.0.upsamplers.0.conv.weight', 'output_blocks.2.1.conv.weight'],
      ['up_blocks.1.upsamplers.0.conv.weight', 'output_blocks.5.2.conv.weight'],
      ['up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight', 'output_blocks.11.1.transformer_blocks.0.ff.net.2.weight'],
      ['conv_norm_out.bias', 'out.0.bias'],
      ['conv_out.weight', 'out.2.weight'],
    ];
    for (const [diffusers, ldm] of cases) expect(ldmUNetKey(diffusers, c)).toBe(ldm);
    // SD 1.5's 686 keys map one-to-one.
    const keys = Object.keys(skipInit(() => new UNet2DConditionModel(c)).stateDict());
    expect(new Set(keys.map((key) => ldmUNetKey(key, c))).size).toBe(686);
  });

  it('diffusers folder → Kiln → single file → Kiln → diffusers folder is bit-exact', async () => {
    const unet = await UNet2DConditionModel.fromPretrained(DIR);
    const single = join(tmp, 'sd.safetensors');
    // Other parts of a real single file are ignored by the UNet.
    await saveSafetensors(single, { ...unet.ldmStateDict(), 'first_stage_model.decoder.conv_in.bias': k.zeros([4]) });
    await using f = await openSafetensors(single);
    expect(f.keys()).toContain('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight');
    const back = await UNet2DConditionModel.fromSingleFile(single, { config: unet.config });
    await back.savePretrained(join(tmp, 'unet'));
    const original = await loadSafetensors(join(DIR, 'model.safetensors'));
    const again = await loadSafetensors(join(tmp, 'unet', 'diffusion_pytorch_model.safetensors'));
    expect(Object.keys(again).sort()).toEqual(Object.keys(original).sort());
    for (const key of Object.keys(original)) {
      expect(new Uint8Array((await again[key].data()).buffer), key).toEqual(new Uint8Array((await original[key].data()).buffer));
    }
  });

  it('a single file without the UNet part names the missing keys', async () => {
    const single = join(tmp, 'vae-only.safetensors');
    await saveSafetensors(single, { 'first_stage_model.decoder.conv_in.bias': k.zeros([4]) });
    const config = (await UNet2DConditionModel.fromPretrained(DIR)).config;
    const err = await UNet2DConditionModel.fromSingleFile(single, { config }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDictError);
    expect((err as StateDictError).missingKeys).toContain('conv_in.weight');
  });
});

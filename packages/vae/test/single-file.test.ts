import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { skipInit } from '@kiln/nn';
import { loadSafetensors, openSafetensors, saveSafetensors } from '@kiln/nn/node';
import { AutoencoderKL, ldmVAEKey, parseVAEConfig } from '@kiln/vae';
import { fixture } from './golden.js';

const DIR = fixture('vae_tiny');
let tmp: string;
beforeAll(async () => {
  await k.useBackend('cpu');
  tmp = await mkdtemp(join(tmpdir(), 'kiln-vae-ldm-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe('VAE single-file (LDM) checkpoints', () => {
  it("maps SD 1.x's keys and shapes as the original Stable Diffusion names them", () => {
    const c = parseVAEConfig({});
    const cases: [string, number[], string, number[]?][] = [
      ['encoder.conv_in.weight', [128, 3, 3, 3], 'encoder.conv_in.weight'],
      ['encoder.down_blocks.1.resnets.0.conv_shortcut.weight', [256, 128, 1, 1], 'encoder.down.1.block.0.nin_shortcut.weight'],
      ['encoder.down_blocks.2.downsamplers.0.conv.bias', [512], 'encoder.down.2.downsample.conv.bias'],
      ['encoder.mid_block.resnets.1.norm2.weight', [512], 'encoder.mid.block_2.norm2.weight'],
      ['encoder.mid_block.attentions.0.group_norm.bias', [512], 'encoder.mid.attn_1.norm.bias'],
      ['encoder.mid_block.attentions.0.to_q.weight', [512, 512], 'encoder.mid.attn_1.q.weight', [512, 512, 1, 1]],
      ['decoder.mid_block.attentions.0.to_out.0.weight', [512, 512], 'decoder.mid.attn_1.proj_out.weight', [512, 512, 1, 1]],
      ['decoder.mid_block.attentions.0.to_v.bias', [512], 'decoder.mid.attn_1.v.bias'],
      ['encoder.conv_norm_out.weight', [512], 'encoder.norm_out.weight'],
      ['decoder.up_blocks.0.resnets.2.conv1.weight', [512, 512, 3, 3], 'decoder.up.3.block.2.conv1.weight'],
      ['decoder.up_blocks.0.upsamplers.0.conv.weight', [512, 512, 3, 3], 'decoder.up.3.upsample.conv.weight'],
      ['decoder.up_blocks.3.resnets.0.conv_shortcut.bias', [128], 'decoder.up.0.block.0.nin_shortcut.bias'],
      ['post_quant_conv.weight', [4, 4, 1, 1], 'post_quant_conv.weight'],
    ];
    for (const [diffusers, shape, key, ldmShape] of cases)
      expect(ldmVAEKey(diffusers, shape, c)).toEqual(ldmShape ? { key, shape: ldmShape } : { key });
    const sd = skipInit(() => new AutoencoderKL(c)).stateDict();
    expect(new Set(Object.entries(sd).map(([key, t]) => ldmVAEKey(key, t.shape, c)?.key)).size).toBe(248);
  });

  it('diffusers folder → Kiln → single file → Kiln → diffusers folder is bit-exact', async () => {
    const vae = await AutoencoderKL.fromPretrained(DIR);
    const single = join(tmp, 'sd.safetensors');
    await saveSafetensors(single, { ...vae.ldmStateDict(), 'model.diffusion_model.out.2.bias': k.zeros([4]) });
    await using f = await openSafetensors(single);
    expect(f.info('first_stage_model.decoder.mid.attn_1.q.weight').shape).toEqual([64, 64, 1, 1]);
    const back = await AutoencoderKL.fromSingleFile(single, { config: vae.config });
    await back.savePretrained(join(tmp, 'vae'));
    const original = await loadSafetensors(join(DIR, 'model.safetensors'));
    const again = await loadSafetensors(join(tmp, 'vae', 'diffusion_pytorch_model.safetensors'));
    expect(Object.keys(again).sort()).toEqual(Object.keys(original).sort());
    for (const key of Object.keys(original)) {
      expect(again[key].shape, key).toEqual(original[key].shape);
      expect(new Uint8Array((await again[key].data()).buffer), key).toEqual(new Uint8Array((await original[key].data()).buffer));
    }
  });
});

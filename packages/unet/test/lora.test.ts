import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import {
  AdamW,
  LORA_ADAPTER_METADATA_KEY,
  LORA_TARGETS,
  injectLora,
  skipInit,
  loraLayers,
  loraStateDict,
  mergeLora,
  serializeSafetensors,
  unmergeLora,
} from '@kiln/nn';
import { loadLoraWeights, loadSafetensors, saveLoraWeights } from '@kiln/nn/node';
import { UNet2DConditionModel } from '@kiln/unet';
import { afterAll, describe, expect, it } from 'vitest';
import { relDiff } from './golden.js';
import { LORA_DIR, tinyLoraUnet } from './lora-fixture.js';

/**
 * LoRA on the tiny UNet through nn's public API: kohya's wide target set, training only the
 * adapters, merged vs applied, and the diffusers-format keys against diffusers v0.31.0's own
 * conversion of the kohya file Kiln wrote (fixtures/lora, see its README).
 */
const fixturePath = (name: string): string => fileURLToPath(new URL(name, LORA_DIR));
const dir = await mkdtemp(join(tmpdir(), 'kiln-unet-lora-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

interface DiffusersView {
  keys: Record<string, number[]>;
  network_alphas: Record<string, number>;
  lora_config: {
    r: number;
    lora_alpha: number;
    rank_pattern: Record<string, number>;
    alpha_pattern: Record<string, number>;
    target_modules: string[];
  };
}

const inputs = (): [k.Tensor, number, k.Tensor] => [k.randn([1, 4, 8, 8], { seed: 1 }), 500, k.randn([1, 5, 32], { seed: 2 })];

describe('LoRA on UNet2DConditionModel', () => {
  it("diffusers-format keys and shapes are what diffusers' kohya conversion of the same adapter produces", async () => {
    const expected = (JSON.parse(await readFile(fixturePath('diffusers_unet_keys.json'), 'utf8')) as { unet: DiffusersView }).unet;
    const { tensors, metadata } = loraStateDict({ unet: tinyLoraUnet() });
    const ours = Object.fromEntries([...tensors].map(([key, t]) => [key.slice('unet.'.length), t.shape]));
    expect([...tensors.keys()].every((key) => key.startsWith('unet.'))).toBe(true);
    expect(Object.keys(ours).sort()).toEqual(Object.keys(expected.keys).sort());
    for (const [key, shape] of Object.entries(expected.keys)) expect(ours[key], key).toEqual(shape);
    // The alphas diffusers derives (network_alphas → LoraConfig) are the ones Kiln writes.
    const config = JSON.parse(metadata[LORA_ADAPTER_METADATA_KEY]!);
    expect(config['unet.r']).toBe(expected.lora_config.r);
    expect(config['unet.lora_alpha']).toBe(expected.lora_config.lora_alpha);
    expect(config['unet.alpha_pattern']).toEqual(expected.lora_config.alpha_pattern);
    expect(config['unet.rank_pattern']).toEqual(expected.lora_config.rank_pattern);
    expect([...config['unet.target_modules']].sort()).toEqual(expected.lora_config.target_modules);
  });

  it('the committed kohya fixture is what Kiln writes today, and loads back into a plain UNet exactly', async () => {
    const unet = tinyLoraUnet();
    const file = join(dir, 'kohya.safetensors');
    await saveLoraWeights(file, { unet }, { format: 'kohya', metadata: { ss_output_name: 'kiln_tiny', ss_base_model_version: 'sd_v1' } });
    expect((await readFile(file)).equals(await readFile(fixturePath('kiln_kohya_unet.safetensors')))).toBe(true);
    k.manualSeed(0);
    const config = JSON.parse(await readFile(fileURLToPath(new URL('./fixtures/unet_tiny/config.json', import.meta.url)), 'utf8'));
    const plain = new UNet2DConditionModel(config);
    const keysBefore = Object.keys(plain.stateDict());
    await loadLoraWeights({ unet: plain }, fixturePath('kiln_kohya_unet.safetensors'));
    expect(Object.keys(plain.stateDict())).toEqual(keysBefore);
    expect(loraLayers(plain)).toHaveLength(loraLayers(unet).length);
    const [x, t, ctx] = inputs();
    const want = k.noGrad(() => unet.forward(x, t, ctx).sample);
    expect(
      await relDiff(
        k.noGrad(() => plain.forward(x, t, ctx).sample),
        want,
      ),
    ).toBe(0);
    // The same adapter through the diffusers layout.
    await saveLoraWeights(join(dir, 'pytorch_lora_weights.safetensors'), { unet });
    k.manualSeed(0);
    const viaDiffusers = new UNet2DConditionModel(config);
    await loadLoraWeights({ unet: viaDiffusers }, join(dir, 'pytorch_lora_weights.safetensors'));
    expect(
      await relDiff(
        k.noGrad(() => viaDiffusers.forward(x, t, ctx).sample),
        want,
      ),
    ).toBe(0);
    const file2 = Object.keys(await loadSafetensors(join(dir, 'pytorch_lora_weights.safetensors')));
    expect(file2).toContain('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight');
  });

  it("diffusers' attention targets: to_q, to_k, to_v, to_out.0 of every attention", () => {
    k.manualSeed(0);
    const unet = new UNet2DConditionModel(
      JSON.parse(
        JSON.stringify({
          block_out_channels: [32, 64],
          layers_per_block: 1,
          cross_attention_dim: 32,
          attention_head_dim: 8,
          norm_num_groups: 8,
          down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
          up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
          sample_size: 16,
        }),
      ),
    );
    const paths = [...injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4 }).layers.keys()];
    expect(paths).toHaveLength(4 * 2 * 4); // 4 transformers (down 1, mid 1, up 2) × attn1/attn2 × 4
    expect(paths.every((p) => /\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/.test(p))).toBe(true);
  });

  it("SD 1.5's UNet with diffusers' DreamBooth LoRA targets at rank 4: 128 layers, 797,184 parameters (3.2 MB float32)", async () => {
    const config = JSON.parse(await readFile(fileURLToPath(new URL('./fixtures/sd15_unet.json', import.meta.url)), 'utf8'));
    const unet = skipInit(() => new UNet2DConditionModel(config)); // placeholders: no 3.4 GB of weights
    const lora = injectLora(unet, { targets: LORA_TARGETS.unetAttention, rank: 4, init: 'gaussian' });
    // 16 transformers × (attn1, attn2) × (to_q, to_k, to_v, to_out.0): 56·C + 6144 per transformer of width C.
    expect(lora.layers.size).toBe(128);
    expect(lora.parameters().reduce((n, p) => n + p.numel(), 0)).toBe(797_184);
    expect(lora.layers.get('mid_block.attentions.0.transformer_blocks.0.attn2.to_k')!.loraA.weight.shape).toEqual([4, 768]);
  });

  it('training moves only the adapters (with gradient checkpointing); the trained model merged equals it applied to ≤ 1e-6', async () => {
    const unet = tinyLoraUnet();
    unet.enableGradientCheckpointing();
    const base = Object.fromEntries(Object.entries(unet.stateDict()).map(([key, t]) => [key, k.keep(k.clone(t))]));
    const params = loraLayers(unet).flatMap(([, l]) => l.adapterParameters());
    const opt = new AdamW(params, { lr: 1e-3 });
    const [x, t, ctx] = inputs();
    const target = k.randn([1, 4, 8, 8], { seed: 3 });
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      const loss = k.mseLoss(unet.forward(x, t, ctx).sample, target);
      losses.push(await loss.item());
      loss.backward();
      expect(unet.parameters().filter((p) => p.grad !== null).length).toBe(params.length);
      opt.step();
      opt.zeroGrad();
    }
    expect(losses[2]).toBeLessThan(losses[0]!);
    // Base weights untouched by training.
    const after = unet.stateDict();
    const same = await Promise.all(
      Object.keys(base).map(async (key) =>
        Buffer.from(await serializeSafetensors({ a: after[key]! })).equals(Buffer.from(await serializeSafetensors({ a: base[key]! }))),
      ),
    );
    expect(same.every(Boolean)).toBe(true);
    unet.eval();
    const applied = k.noGrad(() => unet.forward(x, t, ctx).sample);
    mergeLora(unet);
    const merged = k.noGrad(() => unet.forward(x, t, ctx).sample);
    expect(await relDiff(merged, applied)).toBeLessThan(1e-6);
    unmergeLora(unet);
    expect(
      await relDiff(
        k.noGrad(() => unet.forward(x, t, ctx).sample),
        applied,
      ),
    ).toBeLessThan(1e-6);
  });
});

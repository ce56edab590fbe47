import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as k from '@kiln/tensor-core';
import { LORA_ADAPTER_METADATA_KEY, LORA_TARGETS, injectLora, loraLayers, loraStateDict, mergeLora } from '@kiln/nn';
import { loadLoraWeights } from '@kiln/nn/node';
import { CLIPTextModel } from '@kiln/clip';
import { describe, expect, it } from 'vitest';
import { LORA_DIR, tinyLoraTextEncoder } from './lora-fixture.js';
import { relError } from './text-model-fixture.js';

/**
 * LoRA on the CLIP text encoder through nn's public API; the diffusers-format keys against the
 * real diffusers v0.31.0 reading the kohya file Kiln wrote (fixtures/lora, see its README).
 */
const fixturePath = (name: string): string => fileURLToPath(new URL(name, LORA_DIR));
const ids = [[998, 5, 17, 300, 999, 999]];

describe('LoRA on CLIPTextModel', () => {
  it("diffusers-format keys, shapes and alpha are what diffusers' conversion of the kohya file gives", async () => {
    const expected = JSON.parse(await readFile(fixturePath('diffusers_te_keys.json'), 'utf8')).text_encoder as {
      keys: Record<string, number[]>;
      lora_config: { r: number; lora_alpha: number; target_modules: string[] };
    };
    const { tensors, metadata } = loraStateDict({ text_encoder: tinyLoraTextEncoder() });
    const ours = Object.fromEntries([...tensors].map(([key, t]) => [key.slice('text_encoder.'.length), t.shape]));
    expect([...tensors.keys()].every((key) => key.startsWith('text_encoder.'))).toBe(true);
    expect(Object.keys(ours).sort()).toEqual(Object.keys(expected.keys).sort());
    for (const [key, shape] of Object.entries(expected.keys)) expect(ours[key], key).toEqual(shape);
    const config = JSON.parse(metadata[LORA_ADAPTER_METADATA_KEY]!);
    expect(config['text_encoder.lora_alpha']).toBe(expected.lora_config.lora_alpha);
    expect(config['text_encoder.r']).toBe(expected.lora_config.r);
    expect([...config['text_encoder.target_modules']].sort()).toEqual(expected.lora_config.target_modules);
  });

  it('the kohya fixture loads into a plain text encoder and reproduces the adapted outputs; merged equals applied', async () => {
    const adapted = tinyLoraTextEncoder();
    const want = await k.noGrad(() => adapted.forward(ids).lastHiddenState).data();
    const config = JSON.parse(await readFile(fileURLToPath(new URL('./fixtures/tiny-clip-text/config.json', import.meta.url)), 'utf8'));
    k.manualSeed(0);
    const plain = new CLIPTextModel(config);
    const base = await k.noGrad(() => plain.forward(ids).lastHiddenState).data();
    await loadLoraWeights({ text_encoder: plain }, fixturePath('kiln_kohya_te.safetensors'));
    expect(loraLayers(plain)).toHaveLength(18);
    const got = await k.noGrad(() => plain.forward(ids).lastHiddenState).data();
    expect(relError(got, want)).toBe(0);
    expect(relError(base, want)).toBeGreaterThan(1e-3);
    mergeLora(plain);
    expect(relError(await k.noGrad(() => plain.forward(ids).lastHiddenState).data(), want)).toBeLessThan(1e-6);
  });

  it("diffusers' --train_text_encoder targets: q_proj, k_proj, v_proj, out_proj of every layer", () => {
    const model = new CLIPTextModel({
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      max_position_embeddings: 4,
    });
    const paths = [...injectLora(model, { targets: LORA_TARGETS.textEncoderAttention, rank: 2 }).layers.keys()];
    expect(paths).toEqual(
      [0, 1].flatMap((i) => ['k_proj', 'v_proj', 'q_proj', 'out_proj'].map((p) => `text_model.encoder.layers.${i}.self_attn.${p}`)),
    );
  });
});

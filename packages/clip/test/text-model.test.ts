import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { skipInit } from '@kiln/nn';
import { CLIPConfigError, CLIPTextModel } from '@kiln/clip';
import { FIXTURE, ref, relError } from './text-model-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-clip-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('CLIPTextModel', () => {
  it('round-trips bit-exactly through savePretrained / fromPretrained', async () => {
    const model = await CLIPTextModel.fromPretrained(FIXTURE);
    const dir = join(tmp, 'saved');
    await model.savePretrained(dir);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    const again = await CLIPTextModel.fromPretrained(dir);
    const a = model.stateDict();
    const b = again.stateDict();
    expect(Object.keys(b)).toEqual(Object.keys(a));
    for (const key of Object.keys(a)) expect(await b[key].data()).toEqual(await a[key].data());
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).hidden_size).toBe(32);
  });

  it('uses upstream state-dict keys', () => {
    const model = new CLIPTextModel({
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      max_position_embeddings: 4,
    });
    const keys = Object.keys(model.stateDict());
    expect(keys).toContain('text_model.embeddings.token_embedding.weight');
    expect(keys).toContain('text_model.encoder.layers.1.self_attn.q_proj.weight');
    expect(keys).toContain('text_model.encoder.layers.0.mlp.fc2.bias');
    expect(keys).toContain('text_model.final_layer_norm.weight');
  });

  it("builds SD 1.5's text encoder with 123,060,480 parameters", () => {
    // Shapes only: skipInit builds it without drawing 123M random numbers (it took ~2 minutes).
    const model = skipInit(() => new CLIPTextModel({}, { dtype: 'float16' }));
    expect(model.numParameters()).toBe(123_060_480);
    model.dispose();
  });

  it('a padding attention mask changes nothing before the padding (causal attention)', async () => {
    const model = await CLIPTextModel.fromPretrained(FIXTURE);
    const ids = [ref.input_ids[0]];
    const mask = [ids[0].map((_, i) => (i < 5 ? 1 : 0))];
    const plain = await model.forward(ids).lastHiddenState.slice(1, 0, 5).data();
    const masked = await model.forward(ids, { attentionMask: mask }).lastHiddenState.slice(1, 0, 5).data();
    expect(relError(masked, Array.from(plain))).toBeLessThan(1e-6);
  });

  it('trains: every parameter gets a gradient', () => {
    const model = new CLIPTextModel({
      vocab_size: 20,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 6,
      eos_token_id: 19,
    });
    k.tidy(() =>
      model
        .forward([[0, 3, 19, 19]])
        .lastHiddenState.square()
        .mean()
        .backward(),
    );
    for (const [name, p] of model.namedParameters()) expect(p.grad, name).not.toBeNull();
  });

  it('rejects bad configs, ids and folders with errors naming them', async () => {
    expect(() => new CLIPTextModel({ hidden_size: 30, num_attention_heads: 4 })).toThrow(/hidden_size/);
    const model = new CLIPTextModel({
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 4,
    });
    expect(() => model.forward([[1, 2, 3, 4, 5]])).toThrow(/5 tokens exceed max_position_embeddings 4/);
    const bad = join(tmp, 'bad');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ hidden_size: 'big' }));
    await expect(CLIPTextModel.fromPretrained(bad)).rejects.toThrow(CLIPConfigError);
    await expect(CLIPTextModel.fromPretrained(bad)).rejects.toThrow(/config\.json.*hidden_size/);
    const mismatch = join(tmp, 'mismatch');
    mkdirSync(mismatch, { recursive: true });
    copyFileSync(join(FIXTURE, 'model.safetensors'), join(mismatch, 'model.safetensors'));
    writeFileSync(
      join(mismatch, 'config.json'),
      JSON.stringify({ ...JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')), intermediate_size: 48 }),
    );
    await expect(CLIPTextModel.fromPretrained(mismatch)).rejects.toThrow(/mlp\.fc1\.weight/);
  });
});

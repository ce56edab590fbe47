import { describe, expect, it } from 'vitest';
import { KilnError } from '@kiln/tensor-core';
import { CLIPConfigError, CLIPTextModel, parseCLIPTextConfig } from '@kiln/clip';

function configError(fn: () => unknown): CLIPConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CLIPConfigError);
    expect(e).toBeInstanceOf(KilnError);
    return e as CLIPConfigError;
  }
  throw new Error('expected a CLIPConfigError');
}

describe('CLIP text config bounds', () => {
  it.each([
    ['vocab_size', 1e12],
    ['hidden_size', 2 ** 20],
    ['intermediate_size', 2 ** 40],
    ['num_hidden_layers', 1e9],
    ['num_attention_heads', 2 ** 31],
    ['max_position_embeddings', 1e15],
    ['projection_dim', 1e10],
    ['eos_token_id', 2 ** 53],
    ['layer_norm_eps', Infinity],
  ] as const)('%s: %d is a CLIPConfigError naming the field, before any tensor is made', (field, value) => {
    const err = configError(() => new CLIPTextModel({ [field]: value }));
    expect(err.message).toContain(field);
    expect(err.issues.some((i) => i.startsWith(`${field}:`))).toBe(true);
  });

  it('bounds the largest weight, not only each field', () => {
    const err = configError(() => parseCLIPTextConfig({ vocab_size: 2 ** 20, hidden_size: 2 ** 12 }, 'te/config.json'));
    expect(err.message).toMatch(/^te\/config\.json: .*vocab_size/);
    expect(err.file).toBe('te/config.json');
    expect(() => parseCLIPTextConfig({ vocab_size: 2 ** 20, hidden_size: 1024, num_attention_heads: 16 })).not.toThrow();
  });

  it("accepts every released CLIP text encoder's config (SD 1.x, SD 2.x, SDXL bigG)", () => {
    expect(parseCLIPTextConfig({}).hidden_size).toBe(768);
    expect(
      parseCLIPTextConfig({
        hidden_size: 1024,
        intermediate_size: 4096,
        num_attention_heads: 16,
        num_hidden_layers: 23,
        hidden_act: 'gelu',
      }).num_hidden_layers,
    ).toBe(23);
    expect(
      parseCLIPTextConfig({
        hidden_size: 1280,
        intermediate_size: 5120,
        num_attention_heads: 20,
        num_hidden_layers: 32,
        hidden_act: 'gelu',
        eos_token_id: 2,
        bos_token_id: 0,
        pad_token_id: 1,
      }).projection_dim,
    ).toBe(768);
  });
});

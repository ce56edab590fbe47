import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, skipInit } from '@kiln/nn';
import { UNet2DConditionModel, UNetConfigError, parseUNetConfig } from '@kiln/unet';
import { fixture } from './golden.js';

const json = (name: string) => JSON.parse(readFileSync(`${fixture('.')}${name}`, 'utf8'));

describe('UNet config', () => {
  it("SD 1.5's config builds diffusers' exact keys and shapes (859,520,964 parameters)", () => {
    const want = json('sd15_unet_shapes.json') as {
      count: { params: number; state_dict_tensors: number };
      shapes: Record<string, number[]>;
    };
    const unet = skipInit(() => new UNet2DConditionModel(json('sd15_unet.json')));
    expect(unet.numParameters()).toBe(859_520_964);
    expect(want.count.params).toBe(859_520_964);
    const got = Object.fromEntries(Object.entries(unet.stateDict()).map(([key, t]) => [key, [...t.shape]]));
    expect(Object.keys(got).length).toBe(want.count.state_dict_tensors);
    expect(got).toEqual(want.shapes);
    unet.dispose();
  });

  it('keeps unknown fields so a saved config round-trips', () => {
    const c = parseUNetConfig({ ...json('unet_tiny/config.json'), _name_or_path: 'x', some_future_field: [1, 2] });
    expect(c.some_future_field).toEqual([1, 2]);
    expect(c._name_or_path).toBe('x');
    expect(c.cross_attention_dim).toBe(32);
  });

  it.each([
    ['class_embed_type', 'timestep'],
    ['addition_embed_type', 'text_time'],
    ['time_embedding_type', 'fourier'],
    ['resnet_time_scale_shift', 'scale_shift'],
    ['act_fn', 'gelu'],
    ['only_cross_attention', true],
    ['encoder_hid_dim', 768],
  ])('refuses %s = %j by name', (field, value) => {
    const bad = () => parseUNetConfig({ ...json('unet_tiny/config.json'), [field]: value });
    expect(bad).toThrow(UNetConfigError);
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(new RegExp(`${field}: is not implemented by Kiln`));
  });

  it('names mistyped and inconsistent fields', () => {
    expect(() => parseUNetConfig({ block_out_channels: [320, '640'] })).toThrow(/block_out_channels\.1/);
    expect(() => parseUNetConfig({ block_out_channels: [32, 64], norm_num_groups: 8 })).toThrow(
      /down_block_types: has 4 entries, block_out_channels has 2/,
    );
    expect(() => parseUNetConfig({ attention_head_dim: 7 })).toThrow(
      /attention_head_dim: 7 heads do not divide block_out_channels\[0\] = 320/,
    );
    expect(() =>
      parseUNetConfig({ down_block_types: ['CrossAttnDownBlock2D', 'SimpleCrossAttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'] }),
    ).toThrow(/down_block_types\.1/);
  });

  it("reads SD 1.x's attention_head_dim as the number of heads", () => {
    const unet = skipInit(() => new UNet2DConditionModel(json('unet_tiny/config.json')));
    const attn = unet.downBlocks.at(0).attentions!.at(0).transformerBlocks.at(0).attn1;
    expect(attn.heads).toBe(8);
    unet.dispose();
  });
});

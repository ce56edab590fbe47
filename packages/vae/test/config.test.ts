import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, skipInit } from '@kiln/nn';
import { AutoencoderKL, VAEConfigError, convertLegacyVAEKey, parseVAEConfig } from '@kiln/vae';
import { fixture } from './golden.js';

const json = (name: string) => JSON.parse(readFileSync(`${fixture('.')}${name}`, 'utf8'));

describe('AutoencoderKL config', () => {
  it("SD 1.5's config builds diffusers' exact keys and shapes (83,653,863 parameters)", () => {
    const want = json('sd15_vae_shapes.json') as { count: Record<string, number>; shapes: Record<string, number[]> };
    const vae = skipInit(() => new AutoencoderKL(json('sd15_vae.json')));
    expect(vae.numParameters()).toBe(83_653_863);
    expect(vae.encoder.numParameters()).toBe(want.count.encoder);
    expect(vae.decoder.numParameters()).toBe(want.count.decoder);
    const got = Object.fromEntries(Object.entries(vae.stateDict()).map(([key, t]) => [key, [...t.shape]]));
    expect(Object.keys(got).length).toBe(want.count.state_dict_tensors);
    expect(got).toEqual(want.shapes);
    vae.dispose();
  });

  it('keeps unknown fields so a saved config round-trips', () => {
    const c = parseVAEConfig({ ...json('vae_tiny/config.json'), _name_or_path: 'x', some_future_field: { a: 1 } });
    expect(c.some_future_field).toEqual({ a: 1 });
    expect(c.scaling_factor).toBe(0.18215);
  });

  it('refuses what it does not implement, by name', () => {
    expect(() => parseVAEConfig({ act_fn: 'gelu' })).toThrow(VAEConfigError);
    expect(() => parseVAEConfig({ act_fn: 'gelu' })).toThrow(ConfigError);
    expect(() => parseVAEConfig({ act_fn: 'gelu' })).toThrow(/act_fn: is not implemented by Kiln/);
    expect(() =>
      parseVAEConfig({ down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'] }),
    ).toThrow(/down_block_types\.1/);
    expect(() => parseVAEConfig({ block_out_channels: [128, 256], norm_num_groups: 32 })).toThrow(
      /up_block_types: has 4 entries, block_out_channels has 2/,
    );
    expect(() => parseVAEConfig({ latent_channels: 0 })).toThrow(/latent_channels/);
  });

  it('without quant convs or mid-block attention (use_quant_conv, mid_block_add_attention)', () => {
    const c = { ...json('vae_tiny/config.json'), use_quant_conv: false, use_post_quant_conv: false, mid_block_add_attention: false };
    const keys = Object.keys(skipInit(() => new AutoencoderKL(c)).stateDict());
    expect(keys.some((key) => key.startsWith('quant_conv') || key.startsWith('post_quant_conv') || key.includes('attentions'))).toBe(false);
  });

  it("converts the old attention names as diffusers' _convert_deprecated_attention_blocks", () => {
    expect(convertLegacyVAEKey('encoder.mid_block.attentions.0.query.weight')).toBe('encoder.mid_block.attentions.0.to_q.weight');
    expect(convertLegacyVAEKey('decoder.mid_block.attentions.0.key.bias')).toBe('decoder.mid_block.attentions.0.to_k.bias');
    expect(convertLegacyVAEKey('decoder.mid_block.attentions.0.value.weight')).toBe('decoder.mid_block.attentions.0.to_v.weight');
    expect(convertLegacyVAEKey('decoder.mid_block.attentions.0.proj_attn.weight')).toBe('decoder.mid_block.attentions.0.to_out.0.weight');
    expect(convertLegacyVAEKey('decoder.mid_block.attentions.0.group_norm.weight')).toBe(
      'decoder.mid_block.attentions.0.group_norm.weight',
    );
    expect(convertLegacyVAEKey('decoder.up_blocks.0.resnets.0.conv1.weight')).toBe('decoder.up_blocks.0.resnets.0.conv1.weight');
  });
});

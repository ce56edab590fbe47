import { readFileSync } from 'node:fs';
import * as k from '@kiln/tensor-core';
import { LORA_TARGETS, injectLora, loraLayers } from '@kiln/nn';
import { CLIPTextModel } from '@kiln/clip';

export const LORA_DIR = new URL('./fixtures/lora/', import.meta.url);

/**
 * The tiny CLIP text model (fixtures/tiny-clip-text/config.json, weights from seed 0) with kohya's
 * text-encoder set (attention projections, fc1, fc2) at rank 4 / alpha 2; lora_A from
 * Generator(1), lora_B from seeds 2000… (B is zero at init).
 */
export function tinyLoraTextEncoder(): CLIPTextModel {
  const config = JSON.parse(readFileSync(new URL('./fixtures/tiny-clip-text/config.json', import.meta.url), 'utf8'));
  k.manualSeed(0);
  const model = new CLIPTextModel(config);
  injectLora(model, { targets: LORA_TARGETS.kohyaTextEncoder, rank: 4, alpha: 2, generator: new k.Generator(1) });
  k.noGrad(() => {
    let seed = 2000;
    for (const [, l] of loraLayers(model)) l.loraB.weight.assign_(k.randn(l.loraB.weight.shape, { seed: seed++ }).mul(0.1));
  });
  return model;
}

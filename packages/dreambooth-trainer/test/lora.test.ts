import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from 'fast-png';
import * as k from '@kiln/tensor-core';
import { openSafetensors } from '@kiln/nn/node';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseTrainerArgs, trainDreamBooth } from '../src/node.js';
import { CheckpointError, LORA_LEARNING_RATE, TrainerConfigError, parseTrainerConfig } from '../src/index.js';
import type { TrainerConfigInput } from '../src/index.js';
import { tempDir, tinyModel, writeImages } from './helpers.js';

let base: TrainerConfigInput;
beforeAll(async () => {
  await k.useBackend('wasm');
  base = {
    pretrained_model_name_or_path: await tinyModel(),
    instance_data_dir: writeImages(3),
    instance_prompt: 'a photo of sks dog',
    with_prior_preservation: true,
    class_data_dir: tempDir('class'),
    class_prompt: 'a photo of dog',
    num_class_images: 2,
    sample_batch_size: 2,
    class_inference_steps: 2,
    resolution: 16,
    train_batch_size: 2,
    max_train_steps: 4,
    checkpointing_steps: 2,
    lr_warmup_steps: 0,
    seed: 3,
    backend: 'wasm',
    report_to: 'jsonl',
    lora: true,
  };
}, 120_000); // the tiny model is written here: slow on a loaded machine

/** Tensor name → bytes of a safetensors file. */
async function tensorsOf(path: string): Promise<Map<string, { shape: number[]; bytes: Buffer }>> {
  const reader = await openSafetensors(path);
  const out = new Map<string, { shape: number[]; bytes: Buffer }>();
  try {
    for (const name of reader.keys()) {
      const t = await reader.tensor(name);
      out.set(name, { shape: [...t.shape], bytes: Buffer.from(((await t.data()) as Float32Array).buffer) });
      t.dispose();
    }
  } finally {
    await reader.close();
  }
  return out;
}

describe('trainDreamBooth --lora', () => {
  it("writes pytorch_lora_weights.safetensors in diffusers' layout and nothing of the base model", async () => {
    const out = tempDir('lora-out');
    const r = await trainDreamBooth(
      { ...base, output_dir: out, rank: 2, validation_prompt: 'a photo of sks dog', validation_steps: 100 },
      {
        log: () => {},
      },
    );
    expect(r.step).toBe(4);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    expect(existsSync(join(out, 'model_index.json'))).toBe(false);
    expect(existsSync(join(out, 'unet'))).toBe(false);
    const file = join(out, 'pytorch_lora_weights.safetensors');
    const tensors = await tensorsOf(file);
    const keys = [...tensors.keys()];
    // The tiny UNet has 4 transformer blocks (down 1, mid 1, up 2), each with attn1 and attn2.
    expect(keys).toHaveLength(4 * 2 * 4 * 2);
    for (const key of keys) expect(key).toMatch(/^unet\..*\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.weight$/);
    expect(tensors.get('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight')!.shape).toEqual([2, 32]);
    expect(tensors.get('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight')!.shape).toEqual([32, 2]);
    // Training moved lora_B off its zero start.
    const b = new Float32Array(tensors.get('unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight')!.bytes.buffer);
    expect(b.some((v) => v !== 0)).toBe(true);
    // Checkpoints hold the adapters and the optimizer, not the models.
    expect(readdirSync(join(out, 'checkpoint-2')).sort()).toEqual([
      'optimizer.safetensors',
      'pytorch_lora_weights.safetensors',
      'trainer_state.json',
    ]);

    // The base model with the file loaded makes the validation image the trainer made with its
    // in-memory adapters, bit for bit: the base weights did not move, and the file is the adapters.
    const png = decode(readFileSync(join(out, 'validation', 'step-4-0.png')));
    const pipe = await StableDiffusionPipeline.fromPretrained(base.pretrained_model_name_or_path);
    // runValidation's settings: seed + 0, 25 steps, the validation scheduler, the training resolution.
    const settings = {
      prompt: 'a photo of sks dog',
      seed: 3,
      numInferenceSteps: 25,
      width: 16,
      height: 16,
      scheduler: 'DPMSolverMultistepScheduler',
    } as const;
    const free = await pipe.txt2img(settings);
    await pipe.loadLoraWeights(out);
    const adapted = await pipe.txt2img(settings);
    expect(Array.from(adapted.rgba[0]!.data)).toEqual(Array.from(png.data));
    expect(Array.from(free.rgba[0]!.data)).not.toEqual(Array.from(png.data));
    for (const x of [free, adapted]) x.images.dispose();
    pipe.dispose();
  }, 300_000);

  it('interrupted and resumed = uninterrupted, bit for bit (text-encoder adapters and dropout included)', async () => {
    const cfg = { ...base, train_text_encoder: true, lora_dropout: 0.25, learning_rate: 1e-2 };
    const full = tempDir('lora-full');
    const a = await trainDreamBooth({ ...cfg, output_dir: full }, { log: () => {} });
    const split = tempDir('lora-split');
    const controller = new AbortController();
    const b1 = await trainDreamBooth(
      { ...cfg, output_dir: split },
      { signal: controller.signal, log: () => {}, onStep: ({ step }) => void (step === 3 && controller.abort()) },
    );
    expect(b1).toMatchObject({ step: 3, interrupted: true });
    const b2 = await trainDreamBooth({ ...cfg, output_dir: split, resume_from_checkpoint: 'latest' }, { log: () => {} });
    expect([...b1.losses, ...b2.losses]).toEqual(a.losses);
    const [wa, wb] = [
      await tensorsOf(join(full, 'pytorch_lora_weights.safetensors')),
      await tensorsOf(join(split, 'pytorch_lora_weights.safetensors')),
    ];
    expect([...wb.keys()]).toEqual([...wa.keys()]);
    expect([...wa.keys()].filter((key) => key.startsWith('text_encoder.'))).toHaveLength(1 * 4 * 2);
    for (const [key, t] of wa) expect(wb.get(key)!.bytes.equals(t.bytes), key).toBe(true);

    // A checkpoint of another rank is refused by name, before anything loads.
    await expect(
      trainDreamBooth({ ...cfg, output_dir: split, rank: 8, resume_from_checkpoint: 'checkpoint-4' }, { log: () => {} }),
    ).rejects.toThrow(CheckpointError);
  }, 300_000);
});

describe('--lora options', () => {
  const required = ['--pretrained_model_name_or_path', 'm', '--instance_data_dir', 'd', '--instance_prompt', 'p'];

  it("takes train_dreambooth_lora.py's defaults: rank 4, no dropout, learning rate 5e-4, output lora-dreambooth-model", () => {
    const c = parseTrainerArgs([...required, '--lora']);
    expect(c).toMatchObject({
      lora: true,
      rank: 4,
      lora_dropout: 0,
      learning_rate: LORA_LEARNING_RATE,
      output_dir: 'lora-dreambooth-model',
    });
    expect(LORA_LEARNING_RATE).toBe(5e-4);
    expect(parseTrainerArgs([...required, '--lora', '--rank', '16', '--learning_rate', '1e-4', '--output_dir', 'o'])).toMatchObject({
      rank: 16,
      learning_rate: 1e-4,
      output_dir: 'o',
    });
    // A full fine-tune keeps train_dreambooth.py's.
    expect(parseTrainerArgs(required)).toMatchObject({ lora: false, learning_rate: 5e-6, output_dir: 'text-inversion-model' });
  });

  it('refuses LoRA options without --lora, and combinations that cannot work', () => {
    const input = { pretrained_model_name_or_path: 'm', instance_data_dir: 'd', instance_prompt: 'p' };
    expect(() => parseTrainerConfig({ ...input, rank: 8 })).toThrow(/rank = 8: applies to LoRA training; add --lora/);
    expect(() => parseTrainerConfig({ ...input, lora_dropout: 0.1 })).toThrow(TrainerConfigError);
    expect(() => parseTrainerConfig({ ...input, lora: true, rank: 0 })).toThrow(/rank/);
    expect(() => parseTrainerConfig({ ...input, lora: true, lora_dropout: 1 })).toThrow(/lora_dropout/);
    expect(() => parseTrainerConfig({ ...input, lora: true, save_single_file: true })).toThrow(/save_single_file/);
    expect(() => parseTrainerConfig({ ...input, lora: true, lora_dropout: 0.1, gradient_checkpointing: true })).toThrow(/dropout masks/);
  });
});

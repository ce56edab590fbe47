import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPTION_NAMES, TrainerConfigError, compatNotes, nearest, parseTrainerConfig } from '../src/index.js';
import { parseTrainerArgs, trainerHelp } from '../src/node.js';

const required = ['--pretrained_model_name_or_path', 'sd15', '--instance_data_dir', 'dog', '--instance_prompt', 'a photo of sks dog'];
const dir = mkdtempSync(join(tmpdir(), 'kiln-db-config-'));

describe('train_dreambooth.py options', () => {
  it("takes diffusers' defaults", () => {
    const c = parseTrainerArgs(required);
    expect(c).toMatchObject({
      output_dir: 'text-inversion-model',
      seed: null,
      resolution: 512,
      train_batch_size: 4,
      sample_batch_size: 4,
      num_train_epochs: 1,
      max_train_steps: null,
      checkpointing_steps: 500,
      checkpoints_total_limit: null,
      gradient_accumulation_steps: 1,
      learning_rate: 5e-6,
      lr_scheduler: 'constant',
      lr_warmup_steps: 500,
      lr_num_cycles: 1,
      lr_power: 1,
      adam_beta1: 0.9,
      adam_beta2: 0.999,
      adam_weight_decay: 1e-2,
      adam_epsilon: 1e-8,
      max_grad_norm: 1,
      prior_loss_weight: 1,
      num_class_images: 100,
      report_to: 'tensorboard',
      logging_dir: 'logs',
      num_validation_images: 4,
      validation_steps: 100,
      validation_scheduler: 'DPMSolverMultistepScheduler',
      snr_gamma: null,
      offset_noise: false,
      with_prior_preservation: false,
      center_crop: false,
      train_text_encoder: false,
    });
  });

  it('parses flags in both forms, booleans, dashes for underscores', () => {
    const c = parseTrainerArgs([
      ...required,
      '--learning_rate=1e-4',
      '--max-train-steps',
      '800',
      '--center_crop',
      '--train_text_encoder=false',
      '--seed',
      '0',
    ]);
    expect(c).toMatchObject({ learning_rate: 1e-4, max_train_steps: 800, center_crop: true, train_text_encoder: false, seed: 0 });
  });

  it('reads YAML and JSON config files, and flags override them', () => {
    writeFileSync(
      join(dir, 'run.yaml'),
      'pretrained_model_name_or_path: sd15\ninstance_data_dir: dog\ninstance_prompt: a photo of sks dog\nlearning_rate: 2.0e-6\nmax_train_steps: 400\n',
    );
    writeFileSync(
      join(dir, 'run.json'),
      JSON.stringify({ pretrained_model_name_or_path: 'sd15', instance_data_dir: 'dog', instance_prompt: 'x', 'train-batch-size': 2 }),
    );
    expect(parseTrainerArgs(['--config', join(dir, 'run.yaml'), '--max_train_steps', '10'])).toMatchObject({
      learning_rate: 2e-6,
      max_train_steps: 10,
    });
    expect(parseTrainerArgs(['--config', join(dir, 'run.json')]).train_batch_size).toBe(2);
  });

  it('names the field and the value of a wrong type, in a file or a flag', () => {
    writeFileSync(
      join(dir, 'bad.yaml'),
      'pretrained_model_name_or_path: sd15\ninstance_data_dir: dog\ninstance_prompt: p\nlearning_rate: fast\n',
    );
    expect(() => parseTrainerArgs(['--config', join(dir, 'bad.yaml')])).toThrow(/learning_rate = "fast" is invalid/);
    expect(() => parseTrainerArgs([...required, '--train_batch_size', 'four'])).toThrow(/--train_batch_size "four": expected a number/);
    expect(() => parseTrainerArgs([...required, '--train_batch_size', '2.5'])).toThrow(/train_batch_size = 2.5 is invalid/);
    expect(() => parseTrainerArgs([...required, '--lr_scheduler', 'cosin'])).toThrow(/lr_scheduler = "cosin" is invalid/);
    expect(() => parseTrainerArgs(['--instance_data_dir', 'dog'])).toThrow(/pretrained_model_name_or_path = nothing is invalid/);
  });

  it('suggests the nearest name for an unknown flag or key', () => {
    expect(() => parseTrainerArgs([...required, '--learning_rte', '1'])).toThrow(
      /unknown flag --learning_rte; did you mean --learning_rate\?/,
    );
    expect(() => parseTrainerConfig({ instance_promt: 'x' })).toThrow(/unknown option 'instance_promt'; did you mean 'instance_prompt'\?/);
    const err = (() => {
      try {
        parseTrainerArgs([...required, '--max_steps', '3']);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TrainerConfigError);
    expect((err as TrainerConfigError).field).toBe('max_steps');
    expect(nearest('gradient_acumulation_steps', OPTION_NAMES)).toBe('gradient_accumulation_steps');
  });

  it("applies diffusers' cross-field rules", () => {
    expect(() => parseTrainerArgs([...required, '--with_prior_preservation'])).toThrow(
      /class_data_dir = null: You must specify a data directory/,
    );
    expect(() => parseTrainerArgs([...required, '--train_text_encoder', '--pre_compute_text_embeddings'])).toThrow(/cannot be used with/);
    // fp16/bf16 train (mixed-precision.test.ts); other values are refused by name.
    expect(parseTrainerArgs([...required, '--mixed_precision', 'bf16']).mixed_precision).toBe('bf16');
    expect(() => parseTrainerArgs([...required, '--mixed_precision', 'fp8'])).toThrow(/mixed_precision = "fp8" is invalid/);
  });

  it('accepts the flags that make no sense here, with a note each', () => {
    const c = parseTrainerArgs([
      ...required,
      '--use_8bit_adam',
      '--enable_xformers_memory_efficient_attention',
      '--allow_tf32',
      '--dataloader_num_workers',
      '4',
      '--push_to_hub',
      '--local_rank',
      '0',
    ]);
    const notes = compatNotes(c);
    expect(notes).toHaveLength(6);
    expect(notes.join('\n')).toMatch(/--use_8bit_adam: .*AdamW/);
    expect(compatNotes(parseTrainerArgs(required))).toEqual([]);
  });

  it('--help lists every option with its default', () => {
    const help = trainerHelp();
    for (const name of OPTION_NAMES) expect(help).toContain(`--${name} `);
    expect(help).toContain('--learning_rate (default: 0.000005)');
    expect(help).toContain('--instance_prompt (required)');
  });
});

import { TrainerConfigError } from '@kiln/dreambooth-trainer';
import { describe, expect, it } from 'vitest';
import { JobPayloadError, StoragePathError, parsePayload } from '@kiln/jobs';

const config = {
  pretrained_model_name_or_path: 'models/sd15',
  instance_data_dir: 'subjects/dog',
  instance_prompt: 'a photo of sks dog',
  output_dir: 'runs/dog',
};
const thrown = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

describe('parsePayload: train-dreambooth', () => {
  it("validates the config with the trainer's own schema and defaults", () => {
    const p = parsePayload('train-dreambooth', { user: 'ana', config: { ...config, max_train_steps: 400 } });
    expect(p.type).toBe('train-dreambooth');
    if (p.type !== 'train-dreambooth') return;
    expect(p.user).toBe('ana');
    expect(p.config.max_train_steps).toBe(400);
    expect(p.config.learning_rate).toBe(5e-6); // diffusers' default
    expect(p.config.output_dir).toBe('runs/dog');
  });

  it('refuses a malformed config with the trainer error naming the option', () => {
    const e = thrown(() => parsePayload('train-dreambooth', { config: { ...config, learning_rate: -1 } }));
    expect(e).toBeInstanceOf(TrainerConfigError);
    expect(e.message).toMatch(/learning_rate = -1 is invalid/);
    const typo = thrown(() => parsePayload('train-dreambooth', { config: { ...config, max_train_step: 4 } }));
    expect(typo).toBeInstanceOf(TrainerConfigError);
    expect(typo.message).toMatch(/unknown option 'max_train_step'; did you mean 'max_train_steps'/);
  });

  it.each([
    ['instance_data_dir', '../../etc'],
    ['output_dir', '/tmp/out'],
    ['pretrained_model_name_or_path', 'models/../../secret'],
    ['class_data_dir', 'a\\..\\b'],
    ['logging_dir', '../../logs'],
  ])('refuses %s = %s as a path out of the storage', (field, value) => {
    const e = thrown(() => parsePayload('train-dreambooth', { config: { ...config, [field]: value } }));
    expect(e).toBeInstanceOf(StoragePathError);
    expect(e.message).toContain(`config.${field} = ${JSON.stringify(value)}`);
  });

  it('needs an output_dir of its own and resumes only from "latest"', () => {
    const { output_dir: _, ...noOut } = config;
    expect(thrown(() => parsePayload('train-dreambooth', { config: noOut }))).toMatchObject({
      name: 'JobPayloadError',
      field: 'config.output_dir',
    });
    const e = thrown(() => parsePayload('train-dreambooth', { config: { ...config, resume_from_checkpoint: '/elsewhere/checkpoint-9' } }));
    expect(e).toMatchObject({ name: 'JobPayloadError', field: 'config.resume_from_checkpoint' });
    expect(parsePayload('train-dreambooth', { config: { ...config, resume_from_checkpoint: 'latest' } })).toBeTruthy();
  });

  it('refuses unknown payload fields, bad user names and unknown job types', () => {
    expect(thrown(() => parsePayload('train-dreambooth', { config, script: 'rm -rf /' }))).toBeInstanceOf(JobPayloadError);
    expect(thrown(() => parsePayload('train-dreambooth', { config, user: 'a b:c' })).message).toMatch(/user/);
    expect(thrown(() => parsePayload('train-dreambooth', 'not an object'))).toBeInstanceOf(JobPayloadError);
    expect(thrown(() => parsePayload('shell', {})).message).toMatch(
      /unknown job type "shell"; one of train-dreambooth, generate, generate-batch/,
    );
  });
});

describe('parsePayload: generate and generate-batch', () => {
  it("validates requests with kiln generate's schema (strings from a command line become numbers)", () => {
    const p = parsePayload('generate', { model: 'models/sd15', out: 'images/fox', request: { prompt: 'a fox', steps: '20', seed: 3 } });
    expect(p).toMatchObject({ type: 'generate', model: 'models/sd15', out: 'images/fox' });
    if (p.type === 'train-dreambooth') return;
    expect(p.requests).toEqual([{ prompt: 'a fox', negativePrompt: '', steps: 20, guidanceScale: 7.5, seed: 3, numImages: 1 }]);
  });

  it('names the request and field at fault', () => {
    const e = thrown(() =>
      parsePayload('generate-batch', { model: 'm', out: 'o', requests: [{ prompt: 'ok' }, { prompt: 'bad', steps: 0, colour: 'red' }] }),
    );
    expect(e).toBeInstanceOf(JobPayloadError);
    expect(e.message).toMatch(/requests\.1\.steps/);
    expect(e.message).toMatch(/colour/);
    expect(thrown(() => parsePayload('generate-batch', { model: 'm', out: 'o', requests: [] })).message).toMatch(/requests/);
  });

  it('confines model and out to the storage', () => {
    expect(thrown(() => parsePayload('generate', { model: '../m', out: 'o', request: { prompt: 'x' } }))).toMatchObject({
      name: 'StoragePathError',
      key: '../m',
    });
    expect(thrown(() => parsePayload('generate-batch', { model: 'm', out: '/var/www', requests: [{ prompt: 'x' }] })).message).toMatch(
      /^out = "\/var\/www": absolute paths are refused/,
    );
  });
});

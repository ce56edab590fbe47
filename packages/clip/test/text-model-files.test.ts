// CLIPTextModel.fromPretrained/savePretrained through nn's model-folder I/O: sharded indexes are
// path-checked, every failure is a KilnError naming the file, fp16 variants and dtypes load.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { SafetensorsError, StateDictError } from '@kiln/nn';
import { CLIPTextModel } from '@kiln/clip';
import { FIXTURE } from './text-model-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-clip-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder with the fixture's config and the given index text, the fixture's weights one level up. */
function withIndex(name: string, index: string): string {
  const dir = join(tmp, name, 'text_encoder');
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
  copyFileSync(join(FIXTURE, 'model.safetensors'), join(tmp, name, 'outside.safetensors'));
  writeFileSync(join(dir, 'model.safetensors.index.json'), index);
  return dir;
}

describe('CLIPTextModel folders', () => {
  it("refuses a model.safetensors.index.json whose weight_map points at '../outside.safetensors'", async () => {
    const keys = Object.keys(new CLIPTextModel(JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'))).stateDict());
    const dir = withIndex('evil', JSON.stringify({ weight_map: Object.fromEntries(keys.map((key) => [key, '../outside.safetensors'])) }));
    const err = await CLIPTextModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code: 'invalid_index', file: join(dir, 'model.safetensors.index.json') });
    expect((err as Error).message).toMatch(/'\.\.\/outside\.safetensors' is not a file name inside the index's folder/);
  });

  it('a non-JSON index is a typed error naming the file', async () => {
    const dir = withIndex('garbage', 'version https://git-lfs.github.com/spec/v1\n');
    const err = await CLIPTextModel.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k.KilnError);
    expect(err).toMatchObject({ code: 'invalid_index', file: join(dir, 'model.safetensors.index.json') });
  });

  it('a checkpoint that does not fit is a StateDictError (a KilnError) naming the file', async () => {
    const dir = join(tmp, 'mismatch');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIXTURE, 'model.safetensors'), join(dir, 'model.safetensors'));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')), intermediate_size: 48 }),
    );
    const err = (await CLIPTextModel.fromPretrained(dir).catch((e: unknown) => e)) as StateDictError;
    expect(err).toBeInstanceOf(StateDictError);
    expect(err).toBeInstanceOf(k.KilnError);
    expect(err.file).toBe(join(dir, 'model.safetensors'));
    expect(err.shapeMismatches.map((m) => m.key)).toContain('text_model.encoder.layers.0.mlp.fc1.weight');
  });

  it('saves and loads an fp16 variant in a subfolder, converting to the dtype asked for', async () => {
    const model = await CLIPTextModel.fromPretrained(FIXTURE, { dtype: 'float16' });
    expect(model.textModel.finalLayerNorm.weight!.dtype).toBe('float16');
    const root = join(tmp, 'pipe');
    await model.savePretrained(join(root, 'text_encoder'), { variant: 'fp16' });
    expect(readdirSync(join(root, 'text_encoder')).sort()).toEqual(['config.json', 'model.fp16.safetensors']);
    const f32 = await CLIPTextModel.fromPretrained(root, { subfolder: 'text_encoder', variant: 'fp16' });
    const key = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    expect(f32.stateDict()[key].dtype).toBe('float32');
    expect(await f32.stateDict()[key].data()).toEqual(await model.stateDict()[key].data());
    await expect(CLIPTextModel.fromPretrained(root, { subfolder: 'text_encoder' })).rejects.toMatchObject({ code: 'not_found' });
  });
});

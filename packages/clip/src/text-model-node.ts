// Node-only file access for CLIPTextModel (loaded by dynamic import from fromPretrained/savePretrained).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type * as k from '@kiln/tensor-core';
import { loadSafetensors, saveSafetensors } from '@kiln/nn';
import { CLIPConfigError, parseCLIPTextConfig } from './text-config.js';
import type { CLIPTextConfig } from './text-config.js';

const exists = async (p: string) => (await stat(p).catch(() => null))?.isFile() ?? false;

export async function readTextModelFolder(
  dir: string,
  subfolder?: string,
): Promise<{ config: CLIPTextConfig; weights: Record<string, k.Tensor>; file: string }> {
  const root = subfolder ? join(dir, subfolder) : dir;
  const configPath = join(root, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new CLIPConfigError(configPath, [(e as Error).message]);
  }
  const config = parseCLIPTextConfig(raw, configPath);
  const single = join(root, 'model.safetensors');
  const index = join(root, 'model.safetensors.index.json');
  if (await exists(single)) return { config, weights: await loadSafetensors(single), file: single };
  if (await exists(index)) {
    const { weight_map: map } = JSON.parse(await readFile(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (!map || typeof map !== 'object') throw new CLIPConfigError(index, ['weight_map is missing']);
    const weights: Record<string, k.Tensor> = {};
    for (const shard of new Set(Object.values(map))) Object.assign(weights, await loadSafetensors(join(root, shard)));
    return { config, weights, file: index };
  }
  throw new CLIPConfigError(root, ['no model.safetensors or model.safetensors.index.json in this folder']);
}

export async function writeTextModelFolder(dir: string, config: object, state: Record<string, k.Tensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, 'model.safetensors'), state, { format: 'pt' });
  const path = join(dir, 'config.json');
  const tmp = join(dirname(path), `.config.json.tmp-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

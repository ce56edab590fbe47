// A DreamBooth run survives a reload: the fine-tuned UNet, AdamW's moments and step counts, the
// noise generator's position, the loss history and the before/after samples are kept in the
// origin private file system (OPFS), where a worker writes files without user prompts. Each file is
// replaced whole (a writable stream commits on close); `session.json` is written last and names
// the step, so a reload that interrupted a save restores nothing rather than a mix of steps.
import type * as k from '@kiln/tensor-core';
import { openSafetensorsBlob, serializeSafetensors } from '@kiln/nn';
import type { OptimizerStateDict, AdamWHyper, ParamState, SafetensorsBlob } from '@kiln/nn';
import type { RgbaImage } from '@kiln/pipeline';

const FOLDER = 'kiln-dreambooth';

/** What a run keeps besides tensors. */
export interface SavedSession {
  /** The model it was trained from (a run on another model is not restored). */
  modelUrl: string;
  prompt: string;
  learningRate: number;
  step: number;
  losses: number[];
  generator: k.GeneratorState;
  before: RgbaImage[];
  after: RgbaImage[];
  /** The subject images trained on. */
  instances: RgbaImage[];
}

interface SavedSessionJson extends Omit<SavedSession, 'before' | 'after' | 'instances'> {
  before: string[];
  after: string[];
  instances: string[];
}

/** The tensors and optimizer state of a run, as read back. */
export interface Restored {
  session: SavedSession;
  unet: SafetensorsBlob;
  optimizer: OptimizerStateDict<AdamWHyper>;
}

async function folder(): Promise<FileSystemDirectoryHandle | null> {
  const storage = (navigator as Navigator & { storage?: StorageManager }).storage;
  if (!storage?.getDirectory) return null;
  try {
    return await (await storage.getDirectory()).getDirectoryHandle(FOLDER, { create: true });
  } catch {
    return null; // no OPFS here (some private modes): runs just do not persist
  }
}

async function write(dir: FileSystemDirectoryHandle, name: string, data: Uint8Array | string): Promise<void> {
  const file = await dir.getFileHandle(name, { create: true });
  const out = await file.createWritable();
  await out.write(data as FileSystemWriteChunkType);
  await out.close();
}

const toBase64 = (im: RgbaImage) =>
  `${im.width}x${im.height}:${btoa(String.fromCharCode(...new Uint8Array(im.data.buffer, im.data.byteOffset, im.data.byteLength)))}`;
function fromBase64(s: string): RgbaImage {
  const [size, b64] = s.split(':');
  const [width, height] = size.split('x').map(Number);
  const bin = atob(b64);
  const data = new Uint8ClampedArray(bin.length);
  for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
  return { width, height, data };
}

/** Saves a run: UNet and optimizer tensors first, then `session.json`. Resolves to false where OPFS is missing. */
export async function saveSession(
  session: SavedSession,
  unet: Record<string, k.Tensor>,
  optimizer: OptimizerStateDict<AdamWHyper>,
): Promise<boolean> {
  const dir = await folder();
  if (!dir) return false;
  const step = String(session.step);
  await write(dir, 'unet.safetensors', await serializeSafetensors(unet, { step }));
  // Moment tensors under `state.<param>.<name>`; step counts and hyperparameters as JSON metadata.
  const tensors: Record<string, k.Tensor> = {};
  const scalars: Record<string, Record<string, number>> = {};
  for (const [id, s] of Object.entries(optimizer.state)) {
    for (const [name, v] of Object.entries(s)) {
      if (typeof v === 'number') (scalars[id] ??= {})[name] = v;
      else tensors[`state.${id}.${name}`] = v;
    }
  }
  const meta = { step, scalars: JSON.stringify(scalars), param_groups: JSON.stringify(optimizer.paramGroups) };
  await write(dir, 'optimizer.safetensors', await serializeSafetensors(tensors, meta));
  const json: SavedSessionJson = {
    ...session,
    before: session.before.map(toBase64),
    after: session.after.map(toBase64),
    instances: session.instances.map(toBase64),
  };
  await write(dir, 'session.json', JSON.stringify(json));
  return true;
}

/** The saved run, if there is a whole one for `modelUrl`. Tensors of the optimizer state are the caller's to dispose. */
export async function loadSession(modelUrl: string): Promise<Restored | null> {
  const dir = await folder();
  if (!dir) return null;
  try {
    const json = JSON.parse(await (await (await dir.getFileHandle('session.json')).getFile()).text()) as SavedSessionJson;
    if (json.modelUrl !== modelUrl) return null;
    const unet = await openSafetensorsBlob(await (await dir.getFileHandle('unet.safetensors')).getFile(), {
      source: 'OPFS unet.safetensors',
    });
    const opt = await openSafetensorsBlob(await (await dir.getFileHandle('optimizer.safetensors')).getFile(), {
      source: 'OPFS optimizer.safetensors',
    });
    const step = String(json.step);
    if (unet.metadata.step !== step || opt.metadata.step !== step) return null;
    const state: Record<number, ParamState> = {};
    for (const [id, s] of Object.entries(JSON.parse(opt.metadata.scalars) as Record<string, Record<string, number>>))
      state[Number(id)] = { ...s };
    for (const key of opt.keys()) {
      const [, id, name] = key.split('.');
      (state[Number(id)] ??= {})[name] = await opt.tensor(key);
    }
    const optimizer = { state, paramGroups: JSON.parse(opt.metadata.param_groups) as OptimizerStateDict<AdamWHyper>['paramGroups'] };
    const images = { before: json.before.map(fromBase64), after: json.after.map(fromBase64), instances: json.instances.map(fromBase64) };
    return { session: { ...json, ...images }, unet, optimizer };
  } catch {
    return null; // nothing saved yet, or an incomplete save
  }
}

/** Forgets the saved run. */
export async function clearSession(): Promise<void> {
  const storage = (navigator as Navigator & { storage?: StorageManager }).storage;
  if (!storage?.getDirectory) return;
  await (await storage.getDirectory()).removeEntry(FOLDER, { recursive: true }).catch(() => undefined);
}

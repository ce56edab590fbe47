/**
 * `@kiln/world/node`: the world written as folders of PNG images with caption files, the layout
 * Kiln's trainers (and diffusers' and kohya's) read.
 *
 * @example
 * ```ts
 * import { writeWorldFolder } from '@kiln/world/node';
 * await writeWorldFolder('data/world', { kind: 'captioned', count: 1000, seed: 0 });
 * ```
 * @packageDocumentation
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rgbToPng } from './png.js';
import { caption } from './caption.js';
import { renderScene } from './render.js';
import { autoencoderScene, worldScene } from './scene.js';
import type { Scene } from './scene.js';

export { rgbToPng };

/** Options of {@link writeWorldFolder}. */
export interface WorldFolderOptions {
  /** `captioned`: the base model's world (named colours, captions with dropout); `autoencoder`: any colours, two-tone, dots (no captions). */
  kind: 'captioned' | 'autoencoder';
  count: number;
  seed: number;
  /** Image side in pixels (default 32). */
  size?: number;
}

/**
 * Writes `count` images of the world as `00000.png` … with `00000.txt` captions, into a temporary
 * folder renamed into place (a killed run leaves no half-written dataset).
 *
 * @example
 * ```ts
 * await writeWorldFolder('data/vae', { kind: 'autoencoder', count: 4096, seed: 1 });
 * ```
 */
export async function writeWorldFolder(dir: string, o: WorldFolderOptions): Promise<void> {
  const size = o.size ?? 32;
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  for (let i = 0; i < o.count; i++) {
    const scene: Scene = o.kind === 'captioned' ? worldScene(o.seed, i) : autoencoderScene(o.seed, i);
    const name = String(i).padStart(5, '0');
    await writeFile(join(tmp, `${name}.png`), rgbToPng(renderScene(scene, size), size));
    if (o.kind === 'captioned') await writeFile(join(tmp, `${name}.txt`), caption(scene, o.seed, i));
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}
export { WORLD_SCORER_DIR, loadWorldScorer } from './scorer-node.js';
export { runDemo, DemoOptionsSchema, BASE_MODEL_DIR, progressBar } from './demo.js';
export type { DemoOptions, DemoSample } from './demo.js';

/**
 * `@kiln/pipeline/node`: the Node side of `@kiln/pipeline` (file output), kept out of the main
 * entry so browser bundles have no `node:` imports.
 *
 * @example
 * ```ts
 * import { formatParameters } from '@kiln/pipeline';
 * import { writePng } from '@kiln/pipeline/node';
 * await writePng('out/fox.png', rgba[0], { parameters: formatParameters(info) });
 * ```
 * @packageDocumentation
 */
import { writeFileAtomic } from '@kiln/nn/node';
export { downloadPipeline, isHubId } from './hub.js';
export type { HubOptions, DownloadProgress } from './hub.js';
export { HubDownloadError } from './hub-download.js';
import { encodePng } from './png.js';
import type { RgbaImage } from './txt2img-options.js';

/**
 * Writes an image as a PNG, atomically (temporary file, fsync, rename: a reader or a killed
 * process never leaves a half-written image), with the generation parameters in a `parameters`
 * text chunk as AUTOMATIC1111's web UI writes them (see `formatParameters`).
 *
 * @example
 * ```ts
 * await writePng('out/00000.png', rgba[0], { parameters: 'a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 512x512' });
 * ```
 */
export async function writePng(path: string, image: RgbaImage, options: { parameters?: string } = {}): Promise<void> {
  await writeFileAtomic(path, encodePng(image, { text: options.parameters === undefined ? {} : { parameters: options.parameters } }));
}

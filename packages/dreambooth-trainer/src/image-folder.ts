import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Example } from './dataset.js';
import { decodeImage, isWebp } from './decode-image.js';
import { decodeWebp } from './webp-node.js';
import { DatasetError } from './errors.js';

/** File extensions read as images (any case). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.jpe', '.webp'];

/** The image files of a folder, sorted by name (hidden files skipped). */
export async function listImages(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new DatasetError(`${dir}: cannot list the folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return names.filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
}

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** The prompt of every image without a caption file. */
  prompt: string;
  /** e.g. `.txt`: `dog1.png` takes its prompt from `dog1.txt` when that exists. */
  captionExtension?: string | null;
  /** Images whose shorter side is below this are refused (upscaling them would only train blur). */
  minSide: number;
  /** Read at most this many (diffusers' num_class_images). */
  limit?: number;
  /** "instance" or "class", for messages. */
  what: string;
}

/**
 * Reads and decodes a folder of training images (PNG, JPEG, WebP; gray, palette, 16-bit and alpha are
 * converted to RGB; EXIF orientation applied), with optional caption files. No images, an image
 * that does not decode and an image too small are {@link DatasetError}s naming the file.
 *
 * @example
 * ```ts
 * const examples = await loadImageFolder('data/dog', { prompt: 'a photo of sks dog', captionExtension: '.txt', minSide: 64, what: 'instance' });
 * ```
 */
export async function loadImageFolder(dir: string, o: ImageFolderOptions): Promise<Example[]> {
  if (!(await stat(dir).catch(() => null))?.isDirectory()) throw new DatasetError(`${o.what} images: ${dir} is not a folder`);
  let files = await listImages(dir);
  if (files.length === 0) throw new DatasetError(`${o.what} images: ${dir} has no images (${IMAGE_EXTENSIONS.join(', ')})`);
  if (o.limit !== undefined) files = files.slice(0, o.limit);
  const out: Example[] = [];
  for (const f of files) {
    const path = join(dir, f);
    const bytes = new Uint8Array(await readFile(path));
    const image = isWebp(bytes) ? await decodeWebp(bytes, path) : decodeImage(bytes, path);
    if (Math.min(image.width, image.height) < o.minSide) {
      throw new DatasetError(
        `${path}: ${image.width}×${image.height} is too small: the shorter side must be at least ${o.minSide} px (a quarter of --resolution: upscaling more only trains blur)`,
      );
    }
    let prompt = o.prompt;
    if (o.captionExtension) {
      const caption = await readFile(join(dir, f.slice(0, f.length - extname(f).length) + o.captionExtension), 'utf8').catch(() => null);
      // An empty caption file is an empty prompt (unconditional), as kohya and diffusers' imagefolder read it.
      if (caption !== null) prompt = caption.trim();
    }
    out.push({ name: path, image, prompt });
  }
  return out;
}

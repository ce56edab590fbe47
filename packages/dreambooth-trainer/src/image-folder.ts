import type { Example } from './dataset.js';
import { decodeImage, isWebp } from './decode-image.js';
import { resolveEnvironment } from './environment.js';
import { DatasetError } from './errors.js';
import { errorCode, readText } from './storage/storage.js';
import type { TrainerStorage } from './storage/storage.js';
import { decodeWebpImage } from './webp.js';

/**
 * File extensions read as images (any case).
 *
 * @example
 * ```ts
 * IMAGE_EXTENSIONS.includes('.webp'); // true
 * ```
 */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.jpe', '.webp'];

/** The extension of a file name, with its dot (`''` when it has none). */
const extname = (name: string) => {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(i) : '';
};

/** The storage of a call that names none: the filesystem in Node, the Origin Private File System in a browser. */
const storageOf = async (storage?: TrainerStorage) => storage ?? (await resolveEnvironment({})).storage;

/**
 * The image files of a folder, sorted by name (hidden files skipped).
 *
 * @example
 * ```ts
 * await listImages('data/dog'); // ['1.jpg', '2.png']
 * ```
 */
export async function listImages(dir: string, storage?: TrainerStorage): Promise<string[]> {
  const s = await storageOf(storage);
  let names: string[];
  try {
    names = await s.list(dir);
  } catch (e) {
    throw new DatasetError(`${dir}: cannot list the folder (${errorCode(e)})`);
  }
  return names.filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
}

/**
 * Options of {@link loadImageFolder}.
 *
 * @example
 * ```ts
 * const examples = await loadImageFolder('dog', { prompt: 'a photo of sks dog', captionExtension: '.txt', minSide: 64, what: 'instance' });
 * ```
 */
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
  /** Where `dir` is (default: the filesystem in Node, the Origin Private File System in a browser). */
  storage?: TrainerStorage;
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
  const s = await storageOf(o.storage);
  if ((await s.kind(dir).catch(() => null)) !== 'folder') throw new DatasetError(`${o.what} images: ${dir} is not a folder`);
  let files = await listImages(dir, s);
  if (files.length === 0) throw new DatasetError(`${o.what} images: ${dir} has no images (${IMAGE_EXTENSIONS.join(', ')})`);
  if (o.limit !== undefined) files = files.slice(0, o.limit);
  const out: Example[] = [];
  for (const f of files) {
    const path = s.join(dir, f);
    const bytes = await s.read(path);
    const image = isWebp(bytes) ? await decodeWebpImage(bytes, path) : decodeImage(bytes, path);
    if (Math.min(image.width, image.height) < o.minSide) {
      throw new DatasetError(
        `${path}: ${image.width}×${image.height} is too small: the shorter side must be at least ${o.minSide} px (a quarter of --resolution: upscaling more only trains blur)`,
      );
    }
    let prompt = o.prompt;
    if (o.captionExtension) {
      const caption = await readText(s, s.join(dir, f.slice(0, f.length - extname(f).length) + o.captionExtension)).catch(() => null);
      // An empty caption file is an empty prompt (unconditional), as kohya and diffusers' imagefolder read it.
      if (caption !== null) prompt = caption.trim();
    }
    out.push({ name: path, image, prompt });
  }
  return out;
}

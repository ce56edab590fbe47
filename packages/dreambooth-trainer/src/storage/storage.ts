import { KilnError } from '@kiln/tensor-core';
import type { TensorMap } from '@kiln/nn';

/**
 * What went wrong with a storage path, in POSIX's words (Node's own errors carry the same codes).
 *
 * @example
 * ```ts
 * const missing = (e: unknown) => e instanceof StorageError && e.code === 'ENOENT';
 * ```
 */
export type StorageErrorCode = 'ENOENT' | 'ENOTDIR' | 'EISDIR' | 'EEXIST' | 'EIO';

/**
 * A storage operation failed; names the path and carries a POSIX-style `code`.
 *
 * @example
 * ```ts
 * await memoryStorage().read('missing.txt').catch((e: StorageError) => e.code); // 'ENOENT'
 * ```
 */
export class StorageError extends KilnError {
  override name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/**
 * Everything the trainer reads and writes goes through this: image folders, the base model (when
 * no `loadPipeline` is given), checkpoints, logs and the trained model. Paths are strings the
 * storage itself joins; `'/'` separates folders everywhere. Implementations: `nodeStorage()`
 * (the filesystem; `@kiln/dreambooth-trainer/node`), {@link opfsStorage} (a browser's Origin
 * Private File System) and {@link memoryStorage}.
 *
 * Guarantees the trainer relies on: `write` is atomic (a reader, or the next run after a crash,
 * sees the old content or the new, never half), and `rename` of a folder is atomic or, where the
 * platform cannot do that, copies everything before removing the source.
 *
 * @example
 * ```ts
 * const storage: TrainerStorage = memoryStorage();
 * await storage.write('out/notes.txt', 'hello');
 * await storage.list('out'); // ['notes.txt']
 * ```
 */
export interface TrainerStorage {
  /** For messages ("OPFS", "memory", "filesystem"). */
  readonly name: string;
  /** Joins path parts (and normalises `.`, `..` and repeated separators). */
  join(...parts: string[]): string;
  /** The whole file; a missing one is an error with code `ENOENT`. */
  read(path: string): Promise<Uint8Array>;
  /** The file as a Blob whose bytes are read on demand (multi-GB weights are not held twice). */
  blob(path: string): Promise<Blob>;
  /** Creates or replaces a file atomically; parent folders are created. */
  write(path: string, data: Uint8Array | string): Promise<void>;
  /** Optional: writes a safetensors file without building it in memory first (Node streams it). */
  writeTensors?(path: string, tensors: TensorMap, metadata?: Readonly<Record<string, string>>): Promise<void>;
  /** The names in a folder (unsorted); a missing folder is `ENOENT`, a file `ENOTDIR`. */
  list(path: string): Promise<string[]>;
  /** What is at `path`, or null. */
  kind(path: string): Promise<'file' | 'folder' | null>;
  /** Creates a folder and its parents; an existing folder is fine. */
  mkdir(path: string): Promise<void>;
  /** Moves a file or folder; `to` must not exist and its parent must. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file or a folder with its content; a missing path is fine. */
  remove(path: string): Promise<void>;
}

/** The last part of a `/`-separated path. */
export const baseName = (path: string): string => path.replace(/\/+$/, '').split('/').pop() ?? '';

/** Everything before the last part of a `/`-separated path (`.` when there is none). */
export function dirName(path: string): string {
  const parts = path.replace(/\/+$/, '').split('/');
  parts.pop();
  return parts.length === 0 ? '.' : parts.join('/') || '/';
}

/** POSIX path joining and normalisation, for storages without a platform path module. */
export function joinPosix(...parts: string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  const absolute = joined.startsWith('/');
  const out: string[] = [];
  for (const p of joined.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (p !== '..' || !absolute) out.push(p);
  }
  const body = out.join('/');
  return absolute ? `/${body}` : body || '.';
}

/** The code of a storage (or Node) error, else its message: what trainer messages show in parentheses. */
export const errorCode = (e: unknown): string => (e as { code?: string }).code ?? (e as Error).message;

const utf8 = new TextDecoder();

/** A file as UTF-8 text. */
export async function readText(storage: TrainerStorage, path: string): Promise<string> {
  return utf8.decode(await storage.read(path));
}

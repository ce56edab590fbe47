// Node only: reached through `#node-only` and `@kiln/dreambooth-trainer/node`.
import { openAsBlob } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { saveSafetensors, writeFileAtomic } from '@kiln/nn/node';
import type { TrainerStorage } from './storage.js';

/**
 * The filesystem as a {@link TrainerStorage}: paths are Node paths (relative ones against the
 * working directory), files are written atomically (temporary file, fsync, rename, as `@kiln/nn`'s
 * model folders are), safetensors are streamed to disk tensor by tensor, and a folder rename is
 * the filesystem's atomic rename. Node's own errors pass through, with their `code`.
 *
 * @example
 * ```ts
 * import { nodeStorage, trainDreamBooth } from '@kiln/dreambooth-trainer/node';
 * await trainDreamBooth(config, { storage: nodeStorage() }); // what the Node default does
 * ```
 */
export function nodeStorage(): TrainerStorage {
  return {
    name: 'filesystem',
    join,
    async read(path) {
      return new Uint8Array(await readFile(path));
    },
    async blob(path) {
      return (await openAsBlob(path)) as Blob;
    },
    write: writeFileAtomic,
    writeTensors: saveSafetensors,
    async list(path) {
      return readdir(path);
    },
    async kind(path) {
      const s = await stat(path).catch(() => null);
      return s === null ? null : s.isDirectory() ? 'folder' : 'file';
    },
    async mkdir(path) {
      await mkdir(path, { recursive: true });
    },
    async rename(from, to) {
      await rename(from, to);
    },
    async remove(path) {
      await rm(path, { recursive: true, force: true });
    },
  };
}

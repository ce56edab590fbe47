import { StorageError, joinPosix } from './storage.js';
import type { StorageErrorCode, TrainerStorage } from './storage.js';

/** The parts of the File System API this uses beyond TypeScript's DOM types (async iteration, Chromium's `move`). */
type Dir = FileSystemDirectoryHandle & { keys(): AsyncIterable<string> };
type Movable = FileSystemHandle & { move?: (parent: FileSystemDirectoryHandle, name: string) => Promise<void> };

const CODES: Record<string, StorageErrorCode> = {
  NotFoundError: 'ENOENT',
  TypeMismatchError: 'ENOTDIR',
  InvalidModificationError: 'EEXIST',
};

/** A DOMException of the File System API as a {@link StorageError} naming `path`. */
function storageError(e: unknown, path: string): StorageError {
  if (e instanceof StorageError) return e;
  const name = (e as DOMException).name;
  return new StorageError(CODES[name] ?? 'EIO', path, `${name}: ${(e as Error).message}`, { cause: e });
}

/**
 * A {@link TrainerStorage} on the browser's Origin Private File System
 * (`navigator.storage.getDirectory()`), or on any directory handle: paths are folders below it
 * (a leading `/` is the root). Writes go through `createWritable()`, which the browser commits
 * atomically on close; folders are renamed with `move()` where the browser has it, and copied
 * (files of subfolders first, then the folder's own files) and then removed where it does not.
 *
 * @example
 * ```ts
 * import { opfsStorage, trainDreamBooth } from '@kiln/dreambooth-trainer';
 * const storage = await opfsStorage();
 * await storage.write('data/dog/1.jpg', new Uint8Array(await file.arrayBuffer()));
 * ```
 */
export async function opfsStorage(root?: FileSystemDirectoryHandle): Promise<TrainerStorage> {
  const top = (root ?? (await navigator.storage.getDirectory())) as Dir;
  const partsOf = (path: string) =>
    joinPosix(path)
      .split('/')
      .filter((p) => p !== '' && p !== '.');
  const folder = async (parts: string[], create: boolean, path: string): Promise<Dir> => {
    let d = top;
    try {
      for (const p of parts) d = (await d.getDirectoryHandle(p, { create })) as Dir;
    } catch (e) {
      throw storageError(e, path);
    }
    return d;
  };
  const file = async (path: string): Promise<FileSystemFileHandle> => {
    const parts = partsOf(path);
    const d = await folder(parts.slice(0, -1), false, path);
    try {
      return await d.getFileHandle(parts[parts.length - 1]);
    } catch (e) {
      throw storageError((e as DOMException).name === 'TypeMismatchError' ? new StorageError('EISDIR', path, 'is a folder') : e, path);
    }
  };
  const handle = async (path: string): Promise<{ parent: Dir; name: string; h: FileSystemHandle } | null> => {
    const parts = partsOf(path);
    if (parts.length === 0) return null;
    const parent = await folder(parts.slice(0, -1), false, path).catch(() => null);
    if (!parent) return null;
    const name = parts[parts.length - 1];
    const h = await parent.getDirectoryHandle(name).catch(() => parent.getFileHandle(name).catch(() => null));
    return h ? { parent, name, h } : null;
  };
  const copy = async (from: FileSystemHandle, toParent: Dir, name: string): Promise<void> => {
    if (from.kind === 'file') {
      const w = await (await toParent.getFileHandle(name, { create: true })).createWritable();
      await w.write(await (from as FileSystemFileHandle).getFile());
      await w.close();
      return;
    }
    const src = from as Dir;
    const dst = (await toParent.getDirectoryHandle(name, { create: true })) as Dir;
    const names: string[] = [];
    for await (const n of src.keys()) names.push(n);
    const kids = await Promise.all(
      names.sort().map(async (n) => [n, await src.getDirectoryHandle(n).catch(() => src.getFileHandle(n))] as const),
    );
    // Subfolders before files: a folder whose own files (a checkpoint's trainer_state.json) exist is complete.
    for (const [n, h] of kids) if (h.kind === 'directory') await copy(h, dst, n);
    for (const [n, h] of kids) if (h.kind === 'file') await copy(h, dst, n);
  };
  const storage: TrainerStorage = {
    name: 'OPFS',
    join: joinPosix,
    async read(path) {
      return new Uint8Array(await (await storage.blob(path)).arrayBuffer());
    },
    async blob(path) {
      const h = await file(path);
      try {
        return await h.getFile();
      } catch (e) {
        throw storageError(e, path);
      }
    },
    async write(path, data) {
      const parts = partsOf(path);
      const d = await folder(parts.slice(0, -1), true, path);
      try {
        const w = await (await d.getFileHandle(parts[parts.length - 1], { create: true })).createWritable();
        try {
          await w.write(typeof data === 'string' ? data : (data as Uint8Array<ArrayBuffer>));
          await w.close();
        } catch (e) {
          await w.abort().catch(() => undefined);
          throw e;
        }
      } catch (e) {
        throw storageError((e as DOMException).name === 'TypeMismatchError' ? new StorageError('EISDIR', path, 'is a folder') : e, path);
      }
    },
    async list(path) {
      const parts = partsOf(path);
      const d = await folder(parts, false, path);
      const names: string[] = [];
      try {
        for await (const n of d.keys()) names.push(n);
      } catch (e) {
        throw storageError(e, path);
      }
      return names;
    },
    async kind(path) {
      if (partsOf(path).length === 0) return 'folder';
      const h = await handle(path);
      return h === null ? null : h.h.kind === 'directory' ? 'folder' : 'file';
    },
    async mkdir(path) {
      await folder(partsOf(path), true, path);
    },
    async rename(from, to) {
      const src = await handle(from);
      if (!src) throw new StorageError('ENOENT', from, 'no such file or folder');
      if (await handle(to)) throw new StorageError('EEXIST', to, 'already exists');
      const parts = partsOf(to);
      const dst = await folder(parts.slice(0, -1), false, to);
      const name = parts[parts.length - 1];
      const move = (src.h as Movable).move;
      try {
        if (move) {
          await move.call(src.h, dst, name);
          return;
        }
      } catch {
        // A browser with move() for files only: copy below.
      }
      try {
        await copy(src.h, dst, name);
      } catch (e) {
        await dst.removeEntry(name, { recursive: true }).catch(() => undefined);
        throw storageError(e, to);
      }
      await src.parent.removeEntry(src.name, { recursive: true });
    },
    async remove(path) {
      const h = await handle(path);
      if (!h) return;
      try {
        await h.parent.removeEntry(h.name, { recursive: true });
      } catch (e) {
        if ((e as DOMException).name !== 'NotFoundError') throw storageError(e, path);
      }
    },
  };
  return storage;
}

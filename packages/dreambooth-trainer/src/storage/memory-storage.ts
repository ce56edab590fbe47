import { StorageError, joinPosix } from './storage.js';
import type { TrainerStorage } from './storage.js';

/**
 * A {@link TrainerStorage} in memory: files are byte arrays in a map. For tests, and for a run
 * whose checkpoints need not outlive the page (a browser tab without OPFS).
 *
 * @example
 * ```ts
 * const storage = memoryStorage();
 * await storage.write('data/dog/1.png', pngBytes);
 * await trainDreamBooth({ ...config, instance_data_dir: 'data/dog' }, { storage, loadPipeline: async () => pipe });
 * ```
 */
export function memoryStorage(): TrainerStorage {
  const files = new Map<string, Uint8Array>();
  const folders = new Set<string>(['.', '/']);
  const norm = (p: string) => joinPosix(p);
  const parentOf = (p: string) => {
    const i = p.lastIndexOf('/');
    return i < 0 ? '.' : i === 0 ? '/' : p.slice(0, i);
  };
  const kind = (p: string) => (files.has(p) ? 'file' : folders.has(p) ? 'folder' : null);
  const mkdirs = (p: string) => {
    for (let q = p; !folders.has(q); q = parentOf(q)) {
      if (files.has(q)) throw new StorageError('ENOTDIR', q, 'is a file, not a folder');
      folders.add(q);
    }
  };
  const under = (p: string) => (q: string) => q.startsWith(p === '/' ? '/' : `${p}/`) && q !== p;
  const storage: TrainerStorage = {
    name: 'memory',
    join: joinPosix,
    async read(path) {
      const p = norm(path);
      const f = files.get(p);
      if (!f) throw new StorageError(folders.has(p) ? 'EISDIR' : 'ENOENT', p, folders.has(p) ? 'is a folder' : 'no such file');
      return f.slice();
    },
    async blob(path) {
      return new Blob([(await storage.read(path)) as Uint8Array<ArrayBuffer>]);
    },
    async write(path, data) {
      const p = norm(path);
      if (folders.has(p)) throw new StorageError('EISDIR', p, 'is a folder');
      mkdirs(parentOf(p));
      files.set(p, typeof data === 'string' ? new TextEncoder().encode(data) : data.slice());
    },
    async list(path) {
      const p = norm(path);
      if (files.has(p)) throw new StorageError('ENOTDIR', p, 'is a file, not a folder');
      if (!folders.has(p)) throw new StorageError('ENOENT', p, 'no such folder');
      const names = new Set<string>();
      for (const q of [...files.keys(), ...folders]) if (parentOf(q) === p && q !== p) names.add(q.slice(q.lastIndexOf('/') + 1));
      return [...names];
    },
    async kind(path) {
      return kind(norm(path));
    },
    async mkdir(path) {
      mkdirs(norm(path));
    },
    async rename(from, to) {
      const [a, b] = [norm(from), norm(to)];
      if (kind(a) === null) throw new StorageError('ENOENT', a, 'no such file or folder');
      if (kind(b) !== null) throw new StorageError('EEXIST', b, 'already exists');
      if (!folders.has(parentOf(b))) throw new StorageError('ENOENT', parentOf(b), 'no such folder');
      const move = (q: string) => b + q.slice(a.length);
      for (const [q, f] of [...files]) if (q === a || under(a)(q)) (files.delete(q), files.set(move(q), f));
      for (const q of [...folders]) if (q === a || under(a)(q)) (folders.delete(q), folders.add(move(q)));
    },
    async remove(path) {
      const p = norm(path);
      files.delete(p);
      folders.delete(p);
      for (const q of [...files.keys()]) if (under(p)(q)) files.delete(q);
      for (const q of [...folders]) if (under(p)(q)) folders.delete(q);
    },
  };
  return storage;
}
